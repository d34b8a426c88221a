// Slow clients over every variant: a slowloris (half a header then silence, a header dribbled
// forever, no request at all) is closed after --header-timeout and not before; a slow reader
// gets fresh frames with gaps, never a backlog; a stalled reader is dropped after
// --send-timeout and its descriptor released. Where a model cannot defend itself
// (single_thread serves one connection at a time), the test asserts that as the lesson, and
// that the server recovers.

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "mjpeg/process.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace mjpeg::test;
using steady = std::chrono::steady_clock;

// Reads what a slowloris connection gets until the server closes it; true if it was closed with
// 408 or nothing at all.
::testing::AssertionResult closed_with_408_or_nothing(connection& c, std::chrono::milliseconds timeout) {
  const std::string answer = c.read_all(timeout);
  if (!c.closed()) return ::testing::AssertionFailure() << "still open after " << timeout.count() << " ms";
  if (answer.empty()) return ::testing::AssertionSuccess();
  const auto r = parse_response(answer);
  if (r.status == 408) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "answered " << r.status;
}

// The same for half a header: it must get its 408.
::testing::AssertionResult closed_with_408(connection& c, std::chrono::milliseconds timeout) {
  const auto r = parse_response(c.read_all(timeout));
  if (!c.closed()) return ::testing::AssertionFailure() << "still open after " << timeout.count() << " ms";
  if (r.status == 408) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "answered " << r.status;
}

// Sends one more byte of a header that never ends to each connection every 100 ms, as a
// slowloris does to outlast a per-read timeout, until destroyed.
class trickler {
 public:
  explicit trickler(std::vector<connection*> targets)
      : thread_{[this, targets = std::move(targets)] {
          for (connection* c : targets)
            c->send("GET /stream HTTP/1.1\r\nX-Slow: ");
          while (!stop_.load()) {
            for (connection* c : targets)
              c->send("a");  // fails harmlessly once the server has closed it
            std::this_thread::sleep_for(100ms);
          }
        }} {}
  ~trickler() {
    stop_ = true;
    thread_.join();
  }
  trickler(const trickler&) = delete;
  trickler& operator=(const trickler&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_P(EveryVariant, SlowlorisIsClosedAfterHeaderTimeout) {
  constexpr auto header_timeout = 1s;
  server_process server{binary(), small_frames({"--header-timeout", "1"})};
  if (one_at_a_time()) {
    // The lesson: one header that never ends holds the only thread; a viewer behind it gets
    // nothing until --header-timeout frees the server, then it is served. The slowloris keeps
    // sending a byte at a time, so only a deadline on the whole head ends it.
    connection slowloris{server.port()};
    const trickler drip{{&slowloris}};
    std::this_thread::sleep_for(100ms);  // the server takes the slowloris first
    stream_reader viewer{server.port()};
    EXPECT_EQ(viewer.open(500ms), 0) << "single_thread served a viewer while a slowloris held it";
    EXPECT_TRUE(closed_with_408_or_nothing(slowloris, 5s));
    ASSERT_EQ(viewer.open(5s), 200) << "the server did not recover after the header timeout";
    EXPECT_TRUE(viewer.next());
    return;
  }

  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  // Three kinds: half a header then silence, a header dribbled forever, no request at all.
  constexpr int attackers = 24;
  std::vector<std::unique_ptr<connection>> slowloris;
  std::vector<connection*> dribbling;
  const auto start = steady::now();
  for (int i = 0; i < attackers; ++i) {
    slowloris.push_back(std::make_unique<connection>(server.port()));
    if (i % 3 == 0) {
      ASSERT_TRUE(slowloris.back()->send("GET /stream HTTP/1.1\r\nHost: lo"));
    } else if (i % 3 == 1) {
      dribbling.push_back(slowloris.back().get());
    }
  }
  const trickler drip{dribbling};
  // While they hold their connections, the viewer keeps receiving and a newcomer is served.
  std::uint64_t last_seq = 0;
  while (steady::now() - start < header_timeout / 2) {
    const auto part = viewer.next();
    ASSERT_TRUE(part) << server.error_output();
    EXPECT_GT(seq_of(*part), last_seq);
    last_seq = seq_of(*part);
  }
  EXPECT_TRUE(good_snapshot(get(server.port(), "/snapshot")));
  // Every one of them is closed after the timeout, not before, and not much after; half a
  // header gets its 408.
  EXPECT_TRUE(closed_with_408(*slowloris.front(), 10s));
  EXPECT_GE(steady::now() - start, header_timeout - 100ms) << "closed before its time was up";
  EXPECT_LT(steady::now() - start, header_timeout + 3s) << "closed long after its time was up";
  for (std::size_t i = 1; i < slowloris.size(); ++i) {  // the first one is read above
    if (i % 3 == 0) {
      EXPECT_TRUE(closed_with_408(*slowloris[i], 10s)) << "attacker " << i;
    } else {
      EXPECT_TRUE(closed_with_408_or_nothing(*slowloris[i], 10s)) << "attacker " << i;
    }
  }
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(viewer.next()) << "frame " << i << " after the slowloris: " << server.error_output();
}

TEST_P(EveryVariant, SlowReaderGetsSkippedFramesThatAreFresh) {
  server_process server{binary(), large_frames()};
  // A small receive buffer, so the kernel cannot hoard a backlog of old frames for it.
  stream_reader slow{server.port(), "/stream", "", "127.0.0.1", 16 * 1024};
  ASSERT_EQ(slow.open(), 200);
  // Take one frame every 200 ms for 4 s at 30 fps: a server that queued frames would fall
  // further behind with every read (about 170 ms each, over 3 s by the end).
  std::uint64_t last_seq = 0;
  std::uint64_t skipped = 0;
  double last_lag = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(200ms);
    const auto part = slow.next();
    ASSERT_TRUE(part) << "read " << i << ": " << server.error_output();
    const auto seq = seq_of(*part);
    ASSERT_GT(seq, last_seq);
    if (last_seq != 0) skipped += seq - last_seq - 1;
    last_seq = seq;
    last_lag = static_cast<double>(now_us()) / 1e6 - std::stod(part->headers.at("x-timestamp"));
  }
  std::cout << "[ slow     ] " << GetParam() << ": " << skipped << " frames skipped in 20 reads; last frame "
            << last_lag << " s old\n";
  EXPECT_GT(skipped, 20u) << "a slow reader should see gaps in X-Frame-Seq";
  EXPECT_LT(last_lag, 1.5) << "the last frame was " << last_lag << " s old: frames are queued, not skipped";
}

TEST_P(EveryVariant, StalledReaderIsDroppedAfterSendTimeoutAndReleased) {
  server_process server{binary(), large_frames({"--send-timeout", "0.5"})};
  ASSERT_TRUE(good_snapshot(get(server.port(), "/snapshot")));
  std::unique_ptr<stream_reader> viewer;
  if (!one_at_a_time()) {
    viewer = std::make_unique<stream_reader>(server.port());
    ASSERT_EQ(viewer->open(), 200);
    ASSERT_TRUE(viewer->next());
  }
  // Everything the server holds now is the baseline: the stalled reader must cost nothing after.
  std::this_thread::sleep_for(300ms);
  const int baseline_fds = mjpeg::open_fds(server.pid());

  stalled_reader stalled{server.port()};
  const std::string stalled_name = local_name(stalled.conn().fd());
  ASSERT_EQ(stalled.open(), 200);  // then it never reads again
  EXPECT_GT(mjpeg::open_fds(server.pid()), baseline_fds) << "the stalled reader's socket is not counted";

  if (viewer) {
    // The server drops it while the good viewer keeps receiving: it leaves the /stats listing,
    // where the good viewer stays.
    const std::string viewer_name = local_name(viewer->conn().fd());
    stats_snapshot s;
    for (const auto until = steady::now() + 20s; steady::now() < until;) {
      ASSERT_TRUE(viewer->next()) << server.error_output();
      s = read_stats(server.port());
      if (s.status == 200 && s.viewers_now == 1) break;
    }
    EXPECT_EQ(s.viewers_now, 1u) << "the stalled viewer is still listed";
    EXPECT_FALSE(s.lists(stalled_name));
    EXPECT_TRUE(s.lists(viewer_name));
    EXPECT_GE(s.viewers_total, 2u) << "the stalled reader was a viewer before it was dropped";
  } else {
    // single_thread: nobody else is served until the stalled one is dropped; then all is normal.
    EXPECT_TRUE(good_snapshot(get(server.port(), "/snapshot", 20s)));
    const auto s = read_stats(server.port());
    EXPECT_EQ(s.viewers_now, 0u);
    EXPECT_GE(s.viewers_total, 1u);
  }
  // Its socket is released on the server although the client still holds its end.
  EXPECT_LE(fds_settled(server.pid(), baseline_fds), baseline_fds);
  if (viewer) {
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(viewer->next());
  }
  // What the kernel already held is delivered, then the stream ends.
  EXPECT_TRUE(stalled.drain_to_end(10s)) << "the server must have closed the stalled connection";
}

}  // namespace
