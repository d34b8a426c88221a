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
  expect_the_next_viewer_waits_for_room(server.port(), "its slot");
}

}  // namespace
