// The capture rate /stats reports (issue 15, item 8), with frame times the test chooses.

#include <gtest/gtest.h>

#include <string>

#include "mjpeg/stats.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const auto t0 = clock_type::time_point{} + 1h;

TEST(CaptureFps, JitterDoesNotInflateTheRate) {
  // 30 frames a second on average, alternating short and long intervals (a loaded machine): the
  // mean of the per-interval rates would say about 58; the frames published say 30.
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 90; ++i) {
    t += i % 2 == 0 ? 10ms : 56'667us;
    stats.frame_captured(t);
  }
  EXPECT_NEAR(stats.capture_fps(t), 30.0, 1.0);
  EXPECT_NEAR(stats.capture_fps(t + 20ms), 30.0, 1.0) << "between two frames";
}

TEST(CaptureFps, CannotOvershootTheFramesPublished) {
  // Whatever the pattern of intervals, the rate never exceeds frames over the time they took.
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 300; ++i) {
    t += std::chrono::microseconds{1000 + (i * 7919) % 60000};
    stats.frame_captured(t);
    const double rate = stats.capture_fps(t);
    EXPECT_LE(rate, static_cast<double>(i) / std::chrono::duration<double>(t - t0).count() * 1.6 + 1)
        << "frame " << i;
  }
}

TEST(CaptureFps, StallCountsDownToZero) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 60; ++i)
    stats.frame_captured(t += 33'333us);
  EXPECT_NEAR(stats.capture_fps(t), 30.0, 0.3);
  EXPECT_LT(stats.capture_fps(t + 500ms), 25.0) << "half a second without a frame";
  EXPECT_EQ(stats.capture_fps(t + 3s), 0.0) << "nothing published in the window";
  EXPECT_EQ(mjpeg::server_stats{"empty"}.capture_fps(t0), 0.0);
}

TEST(CaptureFps, LowFrameRatesStillMeasure) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 0.5);  // one frame every two seconds
  auto t = t0;
  for (int i = 0; i < 5; ++i)
    stats.frame_captured(t += 2s);
  EXPECT_NEAR(stats.capture_fps(t + 100ms), 0.5, 0.01);
}

TEST(CaptureFps, StatsJsonShowsTheWindowedRate) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  const auto now = clock_type::now();
  for (int i = 60; i > 0; --i)
    stats.frame_captured(now - i * 20ms);  // 50 per second, the last one 20 ms ago
  const std::string json = stats.to_json(0, 0);
  const auto at = json.find("\"fps_capture\":");
  ASSERT_NE(at, std::string::npos) << json;
  EXPECT_NEAR(std::stod(json.substr(at + 14)), 50.0, 2.0) << json;
}

}  // namespace
