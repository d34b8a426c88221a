// End-to-end tests of mjpeg-async's own lesson: many viewers on few threads, and the limits and
// timeouts that keep one bad client from hurting the others. Every test is bounded in time and
// asserts behaviour, never speed.

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <memory>
#include <vector>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::server_process;
using mjpeg::test::stream_reader;

// Small frames at a modest rate keep hundreds of viewers light on a 2-core machine (and under
// the sanitizers).
std::vector<std::string> args(std::vector<std::string> extra) {
  std::vector<std::string> all = {"--width", "160", "--height", "120", "--fps", "15"};
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

std::string binary() {
  return mjpeg::test::variant_binary("mjpeg_async");
}

// The viewers_now field of /stats, or -1.
int viewers_now(unsigned short port) {
  const auto stats = get(port, "/stats");
  const std::string field = "\"viewers_now\":";
  const auto at = stats.body.find(field);
  return at == std::string::npos ? -1 : std::stoi(stats.body.substr(at + field.size()));
}

// Opens `n` stream viewers, each with its response head read.
std::vector<std::unique_ptr<stream_reader>> open_viewers(unsigned short port, int n) {
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < n; ++i)
    viewers.push_back(std::make_unique<stream_reader>(port));
  for (auto& v : viewers)
    EXPECT_EQ(v->open(10s), 200);
  return viewers;
}

TEST(Async, TwoHundredViewersOnOneThreadAllReceiveFrames) {
  server_process server{binary(), args({"--threads", "1"})};
  auto viewers = open_viewers(server.port(), 200);
  // Each viewer gets fresh frames in order, though one thread serves them all.
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < viewers.size(); ++i) {
      const auto part = viewers[i]->next(10s);
      ASSERT_TRUE(part) << "viewer " << i << " round " << round << ": " << server.error_output();
      EXPECT_EQ(std::stoul(part->headers.at("content-length")), part->body.size());
    }
  }
  EXPECT_EQ(viewers_now(server.port()), 200);
}

TEST(Async, FourThreadsServeViewersAndRequestsTogether) {
  server_process server{binary(), args({"--threads", "4"})};
  auto viewers = open_viewers(server.port(), 8);
  for (int frame = 0; frame < 10; ++frame) {
    for (auto& v : viewers) {
      const auto part = v->next(10s);
      ASSERT_TRUE(part) << server.error_output();
    }
    // Short requests are answered in between, on whichever thread is free.
    EXPECT_EQ(get(server.port(), "/snapshot").status, 200);
  }
  viewers.resize(4);  // half the viewers leave
  EXPECT_EQ(get(server.port(), "/nope").status, 404);
  for (auto& v : viewers)
    ASSERT_TRUE(v->next(10s));
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0) << server.error_output();
}

TEST(Async, MaxClientsGivesTheSixthA503WithRetryAfter) {
  server_process server{binary(), args({"--max-clients", "5"})};
  auto viewers = open_viewers(server.port(), 5);
  const auto sixth = get(server.port(), "/stream");
  EXPECT_EQ(sixth.status, 503);
  EXPECT_TRUE(sixth.headers.contains("retry-after"));
  // The five keep streaming, and once one leaves there is room again.
  for (auto& v : viewers)
    ASSERT_TRUE(v->next());
  viewers.pop_back();
  const auto until = std::chrono::steady_clock::now() + 5s;
  int status = 0;
  while (status != 200 && std::chrono::steady_clock::now() < until) {
    stream_reader again{server.port()};
    status = again.open();
    if (status != 200) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 200);
}

TEST(Async, HeaderTimeoutClosesASlowlorisWhileAViewerKeepsReceiving) {
  server_process server{binary(), args({"--header-timeout", "0.5"})};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  mjpeg::test::connection slowloris{server.port()};
  ASSERT_TRUE(slowloris.send("GET /stream HTTP/1.1\r\nHost: loc"));  // and never more
  const auto start = std::chrono::steady_clock::now();
  const std::string answer = slowloris.read_all(5s);
  EXPECT_TRUE(slowloris.closed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  mjpeg::test::response r;
  mjpeg::test::parse_head(answer, r);
  EXPECT_EQ(r.status, 408);
  // The viewer never noticed.
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(viewer.next()) << "frame " << i;
}

TEST(Async, StalledReaderIsDroppedAfterSendTimeoutWhileOthersKeepReceiving) {
  // Large frames fill a stalled viewer's buffers quickly.
  server_process server{binary(),
                        {"--width", "640", "--height", "480", "--fps", "30", "--send-timeout", "0.5"}};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  stream_reader stalled{server.port()};
  stalled.conn().set_receive_buffer(4096);
  ASSERT_EQ(stalled.open(), 200);  // then it never reads again
  // The server notices the stall and drops it, while the good viewer keeps receiving.
  const auto until = std::chrono::steady_clock::now() + 20s;
  int now = 2;
  while (now != 1 && std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(viewer.next()) << server.error_output();
    now = viewers_now(server.port());
  }
  EXPECT_EQ(now, 1) << "the stalled viewer is still listed";
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(viewer.next());
  // What the kernel already held is delivered, then the stream ends.
  stalled.conn().read_all(10s);
  EXPECT_TRUE(stalled.conn().closed());
}

TEST(Async, ShutdownWithFiveHundredViewersExitsZeroWithinASecond) {
  server_process server{binary(), args({})};
  auto viewers = open_viewers(server.port(), 500);
  for (auto& v : viewers)
    ASSERT_TRUE(v->next(10s));
  // None of them reads now: the server has full sockets and parked viewers alike.
  const auto start = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0) << server.error_output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, mjpeg::test::stop_bound);
}

}  // namespace
