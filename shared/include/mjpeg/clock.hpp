/// The two clocks of the project: wall time for capture stamps, steady time for every deadline.
#pragma once

#include <chrono>

namespace mjpeg {

/// Wall clock used for capture times; viewers compare it with their own clock to get frame age.
using wall_clock = std::chrono::system_clock;

/// Monotonic clock for deadlines, timeouts and pacing.
using steady_clock = std::chrono::steady_clock;

/// Seconds from the command line as a steady_clock duration.
inline steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>{s});
}

}  // namespace mjpeg
