// The threaded servers' lessons as end-to-end tests: thread_per_client serves everyone at once;
// thread_pool serves N viewers, holds the next ones in its queue and refuses the rest; thread_local
// viewer state must start fresh for every viewer; --help offers each model's own options. (Their
// timeouts, caps and shutdown, shared with every model, are tested over every variant.)

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "client.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace mjpeg::test;
using clock_type = std::chrono::steady_clock;

const std::string per_client = "mjpeg_thread_per_client";
const std::string pool = "mjpeg_thread_pool";

std::string binary(const std::string& key) {
  return mjpeg::test::variant_binary(key);
}

// --- thread_per_client ------------------------------------------------------------------------

// Its lesson: every viewer has its own thread, so three viewers are all served at the same time
// (single_thread would leave two of them waiting).
TEST(ThreadPerClient, ServesThreeViewersAtOnce) {
  server_process server{binary(per_client), small_frames({})};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 3; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200) << "viewer " << i << server.error_output();
  }
  std::vector<std::uint64_t> last(3, 0);
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < viewers.size(); ++i) {
      const auto part = viewers[i]->next();
      ASSERT_TRUE(part) << "viewer " << i << " round " << round;
      EXPECT_GT(seq_of(*part), last[i]);
      last[i] = seq_of(*part);
    }
  }
  // And /stats, a fourth connection, is answered while all three stream.
  const auto stats = read_stats(server.port());
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.viewers_now, 3u);
  ASSERT_EQ(stats.viewers.size(), 3u);
  EXPECT_NE(stats.viewers[0].id, stats.viewers[1].id);
  EXPECT_NE(stats.viewers[1].id, stats.viewers[2].id);
  EXPECT_NE(stats.viewers[0].id, stats.viewers[2].id);
}

// --- thread_pool ------------------------------------------------------------------------------

// Its lesson: one task is one whole viewer. Two workers serve two viewers; the third waits in
// the queue, connected but receiving nothing, until a worker comes free; the fourth finds the
// queue full and gets 503 at once.
TEST(ThreadPool, TwoWorkersServeTwoHoldTheThirdAndRefuseTheFourth) {
  server_process server{binary(pool), small_frames({"--threads", "2", "--queue", "1"})};
  auto first = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(first->open(), 200) << server.error_output();
  ASSERT_TRUE(first->next());
  auto second = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(second->open(), 200);
  ASSERT_TRUE(second->next());

  stream_reader third{server.port()};
  EXPECT_EQ(third.open(1500ms), 0) << "the third viewer must get nothing while both workers are busy";
  EXPECT_FALSE(third.conn().closed()) << "the third viewer waits, connected";

  const auto fourth = get(server.port(), "/stream");
  EXPECT_EQ(fourth.status, 503) << "the queue (1) is full: the fourth is refused";
  EXPECT_EQ(fourth.headers.count("retry-after"), 1u);
  ASSERT_TRUE(first->next()) << "the refusal disturbs nobody";
  ASSERT_TRUE(second->next());

  first.reset();  // a worker comes free and takes the waiting viewer
  ASSERT_EQ(third.open(10s), 200);
  EXPECT_TRUE(third.next());
  EXPECT_TRUE(second->next());

  // With the viewers gone, /stats (itself a task) gets a worker and shows the one refusal.
  second.reset();
  const auto stats = [&] {
    stats_snapshot s;
    for (const auto until = clock_type::now() + 10s; clock_type::now() < until;) {
      s = read_stats(server.port());
      if (s.status == 200) break;
    }
    return s;
  }();
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.rejected, 1u);
}

// thread_local now lives per worker and outlives each viewer. Two viewers occupy both workers
// and leave, so each worker's viewer_state holds a finished viewer's id and counters; the next
// viewer lands on one of them and must start fresh: a new id, and counters that count only its
// own frames. Without the per-viewer reset it would show ids 1 or 2 and carry on the old counts.
TEST(ThreadPool, SecondViewerOnAWorkerStartsFresh) {
  server_process server{binary(pool), small_frames({"--threads", "2"})};
  std::uint64_t earlier_frames = 0;
  {
    stream_reader a{server.port()};
    stream_reader b{server.port()};
    ASSERT_EQ(a.open(), 200) << server.error_output();
    ASSERT_EQ(b.open(), 200);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(a.next());
      ASSERT_TRUE(b.next());
      earlier_frames += 1;
    }
  }  // both leave; their workers keep their thread_local viewer_state

  stream_reader fresh{server.port()};
  ASSERT_EQ(fresh.open(), 200);
  const auto first = fresh.next();
  ASSERT_TRUE(first);
  const std::uint64_t first_seq = seq_of(*first);
  // The server counts a frame after its write returns, so the count may trail what we received
  // by one. Receiving a fourth frame proves the third was counted: the worker counts each frame
  // before it waits for and writes the next.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(fresh.next());

  // /stats goes to the other worker (queued until it notices its viewer left).
  const auto stats = read_stats(server.port());
  ASSERT_EQ(stats.status, 200);
  ASSERT_EQ(stats.viewers.size(), 1u) << "only the fresh viewer streams now";
  const listed_viewer& v = stats.viewers[0];
  EXPECT_EQ(v.peer, local_name(fresh.conn().fd()));
  EXPECT_GT(v.id, 2u) << "a new viewer gets a new id, not the one its worker served before";
  EXPECT_GE(v.last_seq, first_seq + 2);
  EXPECT_GE(v.frames_sent, 3u);
  // Every frame since its first was either sent or skipped, nothing before it. /stats reads the
  // counters one by one while frames go on, so allow a few frames of slack; the old viewer's
  // 30+ frames would exceed it.
  const std::uint64_t own_frames = v.last_seq - first_seq + 1;
  EXPECT_LE(v.frames_sent + v.frames_skipped, own_frames + 10)
      << "frames_sent " << v.frames_sent << " skipped " << v.frames_skipped << " since seq " << first_seq
      << " to " << v.last_seq << ": counting on from the worker's previous viewer (" << earlier_frames
      << " frames)?";
}

// --- both -------------------------------------------------------------------------------------

class Threaded : public testing::TestWithParam<std::string> {
 protected:
  std::string binary() const { return ::binary(GetParam()); }
};

// --help describes the options the model gives, and only those.
TEST_P(Threaded, HelpShowsTheModelsOptions) {
  const auto r = mjpeg::test::run_command(binary(), {"--help"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const bool is_pool = GetParam() == pool;
  EXPECT_EQ(r.out.find("--threads") != std::string::npos, is_pool) << r.out;
  EXPECT_EQ(r.out.find("--queue") != std::string::npos, is_pool) << r.out;
  EXPECT_EQ(r.out.find("--max-clients") != std::string::npos, !is_pool) << r.out;
  for (const char* common : {"--header-timeout", "--send-timeout", "--port", "--source", "--fps"})
    EXPECT_NE(r.out.find(common), std::string::npos) << common;
}

INSTANTIATE_TEST_SUITE_P(Variants, Threaded, testing::Values(per_client, pool),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
