// Exercise 7.1 (docs/07-freshness.md): replace latest-frame-wins with a bounded queue per viewer
// (30 frames, the oldest dropped when full), in the io_uring server where every viewer meets its
// frames in one place. A viewer that stops reading for two seconds then gets the frames captured
// meanwhile, in order and old, instead of the newest: the queue's depth becomes the viewer's delay.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// X-Timestamp (capture time, epoch seconds with microseconds) in microseconds.
std::int64_t captured_us(const part& p) {
  return static_cast<std::int64_t>(std::stod(p.headers.at("x-timestamp")) * 1e6);
}

TEST(BoundedFrameQueue, AViewerThatPausedGetsTheFramesCapturedMeanwhileInOrder) {
  server_process server{exercise_binary("mjpeg_io_uring"), small_frames()};
  // A 4 KiB receive buffer: what waits for the viewer waits in the server, not in its own kernel.
  stream_reader viewer{server.port(), "/stream", "", "127.0.0.1", 4 * 1024};
  ASSERT_EQ(viewer.open(), 200);
  auto first = viewer.next();
  ASSERT_TRUE(first);
  // The viewer does not read for two seconds (a busy phone, a tab in the background): the scenario,
  // not a wait for something to happen.
  std::this_thread::sleep_for(2s);
  const std::int64_t resumed = now_us();
  // It reads again as fast as it can, until the first frame captured after it resumed.
  int old_frames = 0;
  std::uint64_t last_seq = seq_of(*first);
  std::int64_t oldest_age_us = 0;
  for (int i = 0; i < 120; ++i) {
    auto p = viewer.next();
    ASSERT_TRUE(p) << "the stream goes on after the pause";
    EXPECT_GT(seq_of(*p), last_seq) << "frames arrive in order";
    last_seq = seq_of(*p);
    if (captured_us(*p) >= resumed) break;
    ++old_frames;
    if (old_frames == 1) oldest_age_us = now_us() - captured_us(*p);
  }
  // Latest-frame-wins (with the freshness gate) leaves the frame or two already in the sockets
  // (2 here); a queue of 30 keeps a second of video at 30 fps (32 here with what the sockets held;
  // fewer if the capture ran slower).
  EXPECT_GE(old_frames, 12) << "frames captured while the viewer paused, delivered after it resumed"
                            << " (the first of them " << oldest_age_us / 1000 << " ms old)";
}

}  // namespace
