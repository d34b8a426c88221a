// Exercise 4b.1 (docs/04b-readiness-and-completion.md): the ring keeps an accept in flight only
// while the server has room. At --max-clients there is none, so a new connection is never taken
// from the kernel and turned away with 503: it waits in the listen backlog, connected, and is
// served once a viewer leaves and the ring asks for the next connection again.

#include <gtest/gtest.h>

#include <memory>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(RingAcceptingOnlyWithRoom, AViewerBeyondMaxClientsWaitsInTheBacklogInsteadOfA503) {
  server_process server{exercise_binary("mjpeg_io_uring"), small_frames({"--max-clients", "1"})};
  auto one = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(one->open(), 200);
  ASSERT_TRUE(one->next());
  stream_reader two{server.port()};
  EXPECT_EQ(two.open(1s), 0) << "viewer two must wait, not be answered (a 503 is " << 503 << ")";
  EXPECT_TRUE(one->next()) << "viewer one keeps receiving";
  one.reset();  // viewer one leaves: its slot is free
  ASSERT_EQ(two.open(5s), 200) << "once a slot is free, the ring accepts the waiting viewer";
  EXPECT_TRUE(two.next());
}

}  // namespace
