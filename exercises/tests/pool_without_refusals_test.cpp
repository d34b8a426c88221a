// Exercise 3.1 (docs/03-thread-pool.md): the pool's acceptor waits for room in the queue instead
// of answering 503, so the kernel's listen backlog becomes the queue beyond it: a viewer beyond
// --threads + --queue is not refused but waits, connected, and is served once a worker is free.

#include <gtest/gtest.h>

#include <memory>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(PoolWithoutRefusals, AViewerBeyondTheQueueWaitsForAWorkerInsteadOfA503) {
  server_process server{exercise_binary("mjpeg_thread_pool"),
                        small_frames({"--threads", "1", "--queue", "0"})};
  auto one = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(one->open(), 200);
  ASSERT_TRUE(one->next());
  stream_reader two{server.port()};
  EXPECT_EQ(two.open(1s), 0) << "viewer two must wait, not be answered (a 503 is " << 503 << ")";
  EXPECT_TRUE(one->next()) << "viewer one keeps receiving";
  one.reset();  // viewer one leaves: its worker is free
  ASSERT_EQ(two.open(5s), 200) << "once a worker is free, the waiting viewer is served";
  EXPECT_TRUE(two.next());
}

}  // namespace
