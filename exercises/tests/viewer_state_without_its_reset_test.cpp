// Exercise 2b.2 (docs/02b-context-locals.md), a break on purpose: take the per-viewer reset out of
// viewer_scope (server_stats::viewer_started keeps giving a new id, but no longer zeroes the
// counters). On the thread pool a worker's thread_local then carries one viewer's counts into the
// next viewer it serves: the pool's lesson of chapter 3, in the real server.

#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// The frames the server says it sent viewer `id`, from its line as the viewer left; -1 before.
long frames_logged(const std::string& log, int id) {
  std::smatch m;
  const std::regex line{"viewer " + std::to_string(id) +
                        " from \\S+ left after [0-9.]+ s: (\\d+) frames sent"};
  return std::regex_search(log, m, line) ? std::stol(m[1].str()) : -1;
}

TEST(ViewerStateWithoutItsReset, TheNextViewerOnAWorkerStartsFromTheLastOnesCounts) {
  // One worker: both viewers are served by the same thread, one after the other.
  server_process server{exercise_binary("mjpeg_thread_pool"), small_frames({"--threads", "1"})};
  {
    stream_reader one{server.port()};
    ASSERT_EQ(one.open(), 200);
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE(one.next());
  }
  ASSERT_TRUE(eventually([&] { return frames_logged(server.error_output(), 1) >= 10; }, 10s))
      << server.error_output();
  {
    stream_reader two{server.port()};
    ASSERT_EQ(two.open(5s), 200);
    ASSERT_TRUE(two.next());
  }
  long two_frames = -1;
  ASSERT_TRUE(eventually([&] { return (two_frames = frames_logged(server.error_output(), 2)) >= 0; }, 10s))
      << server.error_output();
  EXPECT_GE(two_frames, frames_logged(server.error_output(), 1))
      << "viewer two took one frame; the server counts " << two_frames
      << " for it: with the reset in place, its count starts from zero";
}

}  // namespace
