/// mjpeg-load's server under test: started by --launch, watched from /proc during the run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "mjpeg/process.hpp"
#include "viewers.hpp"

namespace mjpeg::bench {

/// Starts the --launch command (words split at spaces) with the shared launcher; `cfg.url` gets
/// its host and port (keeping the path given, else /stream) and `cfg.server_pid` its pid.
/// nullptr without --launch. Throws std::runtime_error when the server does not start.
std::unique_ptr<launched_server> launch(config& cfg);

/// What the run saw through /proc: the server (when it has a pid) and the load generator itself.
struct observation {
  std::optional<process_sample> at_window_start;  ///< The server when the window opened.
  std::optional<process_sample> at_end;           ///< The server at the end.
  std::map<int, double> threads_at_window_start;  ///< Its threads' run times then.
  std::map<int, double> threads_at_end;           ///< And at the end.
  std::uint64_t rss_max = 0;                      ///< Largest RSS seen.
  int threads_max = 0;                            ///< Most threads seen.
  bool alive = true;                              ///< False once the server was gone.
  double own_cpu = 0;                             ///< This process's CPU seconds in the window.
  /// The server's CPU seconds in the window; NaN when it was not sampled at both ends.
  double server_cpu() const;
};

/// Samples `pid` (none when 0) every 100–200 ms until the timeline's end, and this process's CPU
/// over the window.
observation observe(pid_t pid, const timeline& tl);

}  // namespace mjpeg::bench
