/// mjpeg-load's report: the viewers' numbers gathered by group, as JSON and as a human summary.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server.hpp"
#include "viewers.hpp"

namespace mjpeg::bench {

/// Aggregates of one group of viewers.
struct group_report {
  int requested = 0;                  ///< Connections of this kind.
  int connected = 0;                  ///< Of which connected.
  int ok = 0;                         ///< Got 200.
  int refused = 0;                    ///< Got another status, or no connection.
  int starved = 0;                    ///< Got 200 but no frame in the window.
  int disconnected = 0;               ///< Closed by the server.
  int streaming_at_end = 0;           ///< Still open at the end.
  int waiting = 0;                    ///< Connected, no response yet (in a backlog or a queue).
  std::uint64_t frames = 0;           ///< Frames received in the window.
  std::uint64_t bytes = 0;            ///< Bytes received in the window.
  std::uint64_t skipped = 0;          ///< Gaps in X-Frame-Seq.
  std::uint64_t stalls = 0;           ///< Gaps between frames over --stall-ms.
  double max_gap_ms = 0;              ///< Longest gap.
  std::map<int, int> statuses;        ///< Count by status.
  std::map<std::string, int> errors;  ///< Count by error text.
  std::vector<double> fps;            ///< Per viewer, refused and starved ones as 0.
  std::vector<double> ttff_ms;        ///< Time to first frame, per viewer that got one.
  std::vector<double> ages_ms;        ///< Every frame's age at receipt.
  std::vector<double> close_after_s;  ///< Idle: when the server closed them.
  http::multipart_errors parse;       ///< What did not look right in the streams.
};

/// Everything a run measured.
struct run_report {
  double window_s = 0;  ///< Seconds metrics counted.
  group_report normal;  ///< Viewers at full speed.
  group_report slow;    ///< Slow viewers.
  group_report idle;    ///< Idle connections.
  observation seen;     ///< Through /proc.
  /// The server's CPU over the window in percent of one core; NaN when not sampled.
  double server_cpu_percent() const;
  /// The server's CPU µs per frame received by a viewer; NaN when not sampled or no frames.
  double cpu_us_per_frame() const;
};

/// Gathers the workers' viewers by kind, with what /proc showed.
run_report gather(const std::vector<std::unique_ptr<worker>>& workers, const config& cfg, const timeline& tl,
                  observation seen);

/// The report as a JSON document (the --json file), per-viewer details included if asked.
std::string json_report(const run_report& r, const config& cfg, const timeline& tl,
                        const std::vector<std::unique_ptr<worker>>& workers);

/// The human summary on stdout.
void print_summary(const run_report& r, const config& cfg);

}  // namespace mjpeg::bench
