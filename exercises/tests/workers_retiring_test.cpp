// Exercise 6.2 (docs/06-processes.md): a worker that has served five viewers is replaced once it
// has none (gunicorn's max_requests), and visitors keep being served across the replacement.

#include <gtest/gtest.h>

#include <exception>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// One visitor: the stream, one frame, gone. A connection the kernel had given a worker that was
// stopping is refused or reset with it (each worker has its own SO_REUSEPORT socket): such a
// visitor knocks again, as a browser would, up to `tries` times.
bool visit(unsigned short port, int tries) {
  for (int i = 0; i < tries; ++i) {
    try {
      stream_reader viewer{port};
      if (viewer.open(5s) == 200 && viewer.next(5s)) return true;
    } catch (const std::exception&) {
      // refused or reset: knock again
    }
  }
  return false;
}

// worker_pids, with a refused or reset /stats request (a worker stopping) as "none yet".
std::vector<pid_t> pids_of_workers(unsigned short port) {
  try {
    return worker_pids(port);
  } catch (const std::exception&) {
    return {};
  }
}

TEST(WorkersRetiring, AWorkerIsReplacedAfterFiveViewersAndVisitorsAreStillServed) {
  server_process server{exercise_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  std::vector<pid_t> first;
  ASSERT_TRUE(eventually([&] { return (first = pids_of_workers(server.port())).size() == 2; }, 10s));
  // Twelve visitors one after another: at least one of the two workers takes six of them.
  for (int i = 0; i < 12; ++i)
    ASSERT_TRUE(visit(server.port(), 3)) << "visitor " << i + 1 << " was never served";
  std::vector<pid_t> now;
  EXPECT_TRUE(eventually(
      [&] {
        now = pids_of_workers(server.port());
        return now.size() == 2 && (now[0] != first[0] || now[1] != first[1]);
      },
      10s))
      << "no worker was replaced after twelve viewers";
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(visit(server.port(), 3)) << "after the replacement, visitor " << i + 1;
}

}  // namespace
