// Exercise 1.2 (docs/01-single-thread.md): one thread still, but every viewer in turn, a frame
// each: three viewers watch at once and /stats is answered while they do.

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(ViewersInTurn, ThreeViewersWatchAtOnceOnOneThread) {
  server_process server{exercise_binary("mjpeg_single_thread"), small_frames()};
  const long threads = proc_status(server.pid(), "Threads");
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 3; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(2s), 200) << "viewer " << i + 1 << " is served while the others watch";
  }
  // Each takes ten frames in turn, all of them newer than the last.
  std::vector<std::uint64_t> last(viewers.size(), 0);
  for (int frame = 0; frame < 10; ++frame)
    for (std::size_t i = 0; i < viewers.size(); ++i) {
      const auto part = viewers[i]->next(2s);
      ASSERT_TRUE(part) << "viewer " << i + 1 << ", frame " << frame;
      EXPECT_GT(seq_of(*part), last[i]);
      last[i] = seq_of(*part);
    }
  EXPECT_EQ(get(server.port(), "/stats", 2s).status, 200) << "a request is answered between two frames";
  EXPECT_EQ(proc_status(server.pid(), "Threads"), threads)
      << "no thread per viewer: the same threads as before";
}

}  // namespace
