// Exercise 2b.1 (docs/02b-context-locals.md), a break on purpose: take `thread_local` away from
// the thread-per-client server's viewer_state, so that it is one plain global, as in the chapter's
// first program. Every viewer's thread then writes the one object: /stats lists two viewers under
// one id, the newest.

#include <gtest/gtest.h>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace mjpeg::test;

TEST(GlobalViewerStateOnThreads, TwoViewersOnTwoThreadsShareOneViewerState) {
  server_process server{exercise_binary("mjpeg_thread_per_client"), small_frames()};
  expect_two_viewers_share_one_viewer_state(
      server.port(), "two viewers, two threads: with a global both threads use one viewer_state");
}

}  // namespace
