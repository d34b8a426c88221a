// Exercise 7.2 (docs/07-freshness.md), after 7.1: a viewer whose queue is full when the next frame
// comes is cut off instead of losing its oldest frame, as Redis cuts a subscriber that passes its
// output buffer limit. A viewer that stops reading for three seconds finds its stream ended; a
// viewer beside it that keeps reading keeps its stream.

#include <gtest/gtest.h>

#include <chrono>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(SlowViewerCutOff, AViewerAWholeQueueBehindIsDisconnectedAndAFastOneIsNot) {
  server_process server{exercise_binary("mjpeg_io_uring"), small_frames()};
  // A 4 KiB receive buffer: what waits for the slow viewer waits in the server, where it counts.
  stream_reader slow{server.port(), "/stream", "", "127.0.0.1", 4 * 1024};
  stream_reader fast{server.port()};
  ASSERT_EQ(slow.open(), 200);
  ASSERT_TRUE(slow.next());
  ASSERT_EQ(fast.open(), 200);
  // The slow viewer reads nothing for three seconds (90 frames at 30 fps, 30 at 10) while the fast
  // one reads every frame as it comes.
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until)
    ASSERT_TRUE(fast.next()) << "the viewer that keeps reading keeps its stream";
  // The slow viewer then reads what was already on its way; after that its stream must end.
  int parts = 0;
  while (parts <= 40 && slow.next(2s))
    ++parts;
  EXPECT_TRUE(slow.conn().closed()) << "a viewer a whole queue behind is cut off (it read " << parts
                                    << " more frames and the stream went on)";
  EXPECT_TRUE(fast.next()) << "and the fast one is still served";
}

}  // namespace
