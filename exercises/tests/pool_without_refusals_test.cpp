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
  expect_the_next_viewer_waits_for_room(server.port(), "its worker");
}

}  // namespace
