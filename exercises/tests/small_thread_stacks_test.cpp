// Exercise 2.1 (docs/02-thread-per-client.md): a viewer's thread reserves the default stack
// (8 MiB of address space on Debian, RLIMIT_STACK); serve_client needs a few dozen KiB. Give the
// viewers' threads a 256 KiB stack, and a flood of viewers costs 32 times less address space.

#include <gtest/gtest.h>

#include <cstdlib>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(SmallThreadStacks, EachViewerThreadReservesAtMostOneMebibyte) {
  // One malloc arena, so that what grows with the viewers is their threads' stacks, not the
  // 64 MiB arenas glibc would otherwise reserve for some of the new threads.
  ::setenv("MALLOC_ARENA_MAX", "1", 1);
  server_process server{exercise_binary("mjpeg_thread_per_client"), small_frames()};
  ::unsetenv("MALLOC_ARENA_MAX");
  const long before_kib = proc_status(server.pid(), "VmSize");
  const long threads_before = proc_status(server.pid(), "Threads");
  constexpr int viewers = 16;
  auto open = open_viewers(server.port(), viewers);
  for (auto& v : open)
    ASSERT_TRUE(v->next()) << "every viewer is served, on its small stack too";
  ASSERT_TRUE(
      eventually([&] { return proc_status(server.pid(), "Threads") >= threads_before + viewers; }, 2s));
  const long per_viewer_kib = (proc_status(server.pid(), "VmSize") - before_kib) / viewers;
  EXPECT_LE(per_viewer_kib, 1024) << "address space per viewer thread (KiB); the default stack is 8192";
}

}  // namespace
