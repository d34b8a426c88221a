// Exercise 3.2 (docs/03-thread-pool.md): the pool starts a worker only when a connection finds
// none free, up to --threads, as Python's ThreadPoolExecutor does, instead of all of them at
// start-up. An idle server then has none; three viewers make three, all served.

#include <gtest/gtest.h>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(PoolStartingWorkersOnDemand, AnIdleServerHasNoWorkersAndEachViewerAddsOne) {
  server_process server{exercise_binary("mjpeg_thread_pool"), small_frames({"--threads", "32"})};
  const long idle = proc_status(server.pid(), "Threads");
  ASSERT_GT(idle, 0);
  EXPECT_LT(idle, 32) << "an idle server must not have started its 32 workers";
  auto viewers = open_viewers(server.port(), 3);
  for (auto& v : viewers)
    EXPECT_TRUE(v->next()) << "every viewer is served";
  EXPECT_TRUE(eventually([&] { return proc_status(server.pid(), "Threads") == idle + 3; }, 2s))
      << "three viewers, three workers: " << proc_status(server.pid(), "Threads") << " threads, idle "
      << idle;
}

}  // namespace
