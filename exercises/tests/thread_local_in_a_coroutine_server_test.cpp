// Exercise 4.1 (docs/04-async.md), a break on purpose: move the async server's viewer_state out
// of the coroutine frame into a thread_local, as in the thread-per-client chapter. On one thread,
// every coroutine then shares one object: /stats lists two viewers under one id, the newest.

#include <gtest/gtest.h>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace mjpeg::test;

TEST(ThreadLocalInACoroutineServer, TwoViewersOnOneThreadShareOneViewerState) {
  server_process server{exercise_binary("mjpeg_async"), small_frames({"--threads", "1"})};
  expect_two_viewers_share_one_viewer_state(
      server.port(), "two viewers, one thread: with a thread_local both coroutines use one viewer_state");
}

}  // namespace
