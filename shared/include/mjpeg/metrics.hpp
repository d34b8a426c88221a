/// /stats (JSON) and /metrics (Prometheus text) rendered from one stats snapshot: pure functions,
/// tested byte for byte.
#pragma once

#include <string>

#include "mjpeg/stats.hpp"

namespace mjpeg {

/// The name /stats and /metrics give a source state: "up", "down" or "idle".
const char* source_state_name(source_state s) noexcept;

/// The JSON document served at /stats.
std::string render_json(const stats_snapshot& s);

/// The Prometheus text exposition (format 0.0.4) served at /metrics.
std::string render_prometheus(const stats_snapshot& s);

}  // namespace mjpeg
