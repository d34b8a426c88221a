/// Reading a running server's /stats in tests: the counters and the listed viewers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mjpeg::test {

/// One viewer as /stats lists it.
struct listed_viewer {
  std::uint64_t id = 0;              ///< The viewer's id.
  std::string peer;                  ///< "address:port".
  std::uint64_t last_seq = 0;        ///< Last frame sent.
  std::uint64_t frames_sent = 0;     ///< Frames sent.
  std::uint64_t frames_skipped = 0;  ///< Frames skipped.
};

/// The parts of /stats the tests look at.
struct stats_snapshot {
  int status = 0;                      ///< HTTP status of /stats (0: no answer).
  std::uint64_t viewers_now = 0;       ///< Viewers streaming.
  std::uint64_t viewers_total = 0;     ///< Viewers ever.
  std::uint64_t rejected = 0;          ///< 503s sent.
  std::uint64_t frames_captured = 0;   ///< Frames captured.
  std::vector<listed_viewer> viewers;  ///< The listed viewers.
  /// True if a viewer with this peer name is listed.
  bool lists(const std::string& peer) const;
};

/// The number after "name": in `json` (the first one from `from`); throws if absent.
std::uint64_t stats_number(const std::string& json, const std::string& name, std::size_t from = 0);

/// The raw text of the top-level field `name` of /stats `json` ("up", "42", "[…]"), a string's
/// quotes removed; "" when absent.
std::string stats_field(const std::string& json, const std::string& name);

/// GET /stats from `host`, parsed (status only when it is not 200).
stats_snapshot read_stats(unsigned short port, const std::string& host = "127.0.0.1");

/// The viewers_now field of /stats from `host`, or -1 when /stats does not answer.
int viewers_now(unsigned short port, const std::string& host = "127.0.0.1");

/// The nearest-rank `q`-quantile (0 < q <= 1) of `values`, as mjpeg-load reports percentiles: the
/// smallest value with at least q of them at or below it. 0 for no values.
double percentile(std::vector<double> values, double q);

}  // namespace mjpeg::test
