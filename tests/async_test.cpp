// End-to-end tests of mjpeg-async's own lesson: many viewers on few threads, and a shutdown that
// does not wait for hundreds of parked viewers. (Its limits and timeouts, shared with every
// model, are tested over every variant: floods_test.cpp, slow_clients_test.cpp.) Every test is
// bounded in time and asserts behaviour, never speed.

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <vector>

#include "client.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::open_viewers;
using mjpeg::test::server_process;
using mjpeg::test::viewers_now;

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
