// End-to-end tests of a connection's and a server's life at its edges, over every variant they
// apply to: viewers who leave while no frames flow, deadlines that count from accept, a low
// open-file limit, and a source that hangs while opening. Every test is bounded in time and
// asserts behaviour, never speed.

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::EveryVariant;
using mjpeg::test::ready_when;
using mjpeg::test::server_process;
using mjpeg::test::silent_upstream;
using mjpeg::test::stream_reader;
using mjpeg::test::viewers_now;
using clock_type = std::chrono::steady_clock;

// Issue 15.1: with no frame due for ten seconds, three viewers come, get the current frame and
// leave. The server must notice while they wait for the next frame: their slots, threads and
// places in /stats are free again long before that frame (without the fix, the cap stays full
// and /stats gets 503; a single-thread server never even accepts the second visitor).
TEST_P(EveryVariant, ViewersWhoLeaveWhileNoFramesFlowAreNoticed) {
  std::vector<std::string> args = {"--width", "160", "--height", "120", "--fps", "0.1"};
  // Room for exactly three open connections in the model's own terms: its viewer limit, or three
  // workers and no queue; a model that serves one at a time needs nothing.
  if (has_option("--max-clients"))
    args.insert(args.end(), {"--max-clients", "3"});
  else if (has_option("--queue"))
    args.insert(args.end(), {"--threads", "3", "--queue", "0"});
  server_process server{binary(), args};
  for (int visit = 0; visit < 3; ++visit) {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(5s), 200) << "visit " << visit << ": " << server.error_output();
    ASSERT_TRUE(viewer.next(5s)) << "visit " << visit;
  }  // each visitor closes its connection here
  const auto until = clock_type::now() + 4s;
  int now = -1;
  while ((now = viewers_now(server.port())) != 0 && clock_type::now() < until)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(now, 0) << "viewers who left are still counted (or hold every slot)";
  stream_reader again{server.port()};
  EXPECT_EQ(again.open(5s), 200);
  EXPECT_TRUE(again.next(5s));
}

// Issue 15.11: the header deadline counts from accept, not from when a worker takes the
// connection. One worker streams to a viewer; a slowloris waits in the queue behind it. When the
// worker frees up, the slowloris's --header-timeout has long passed: it gets 408 at once, not a
// fresh timeout (which would hold its queue slot for twice the timeout).
TEST_P(EveryVariant, QueuedSlowlorisGets408WhenItsHeaderTimeoutFromAcceptHasPassed) {
  if (!has_option("--queue")) GTEST_SKIP() << "only a model with a --queue queues accepted connections";
  server_process server{binary(),
                        {"--width", "160", "--height", "120", "--fps", "15", "--threads", "1", "--queue", "1",
                         "--header-timeout", "2"}};
  auto viewer = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(viewer->open(), 200);
  mjpeg::test::connection slowloris{server.port()};
  const auto connected = clock_type::now();
  ASSERT_TRUE(slowloris.send("GET /stream HTTP/1.1\r\nHost: loc"));  // and never more
  std::this_thread::sleep_for(3s);                                   // past the header timeout, still queued
  viewer.reset();                                                    // the worker is free
  const std::string answer = slowloris.read_all(5s);
  const auto answered = clock_type::now() - connected;
  mjpeg::test::response r;
  mjpeg::test::parse_head(answer, r);
  EXPECT_EQ(r.status, 408);
  // Taken at 3 s with its deadline (2 s after accept) gone: answered at once, well before the
  // 5 s a fresh timeout would give it.
  EXPECT_LT(answered, 4500ms) << "the header timeout started when the worker took it";
}

// Issue 15.9: under a low open-file limit the cap is lowered to what the limit allows (the
// server's own descriptors reserved), with one line saying so, and several viewers are served.
TEST_P(EveryVariant, LowOpenFileLimitLowersTheCapWithOneLineAndStillServes) {
  if (!has_option("--max-clients")) GTEST_SKIP() << "no --max-clients";
  server_process server{
      "/usr/bin/prlimit",
      {"--nofile=64", binary(), "--width", "160", "--height", "120", "--max-clients", "100"}};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 8; ++i)
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
  for (auto& v : viewers) {
    ASSERT_EQ(v->open(5s), 200) << server.error_output();
    ASSERT_TRUE(v->next(5s));
  }
  EXPECT_NE(server.error_output().find("--max-clients 100 lowered to"), std::string::npos)
      << server.error_output();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0);
}

// Issue 15.12: a source that accepts and never answers ends start-up within the open timeout
// with one line saying so (not 50 s of silence).
TEST_P(EveryVariant, SourceThatHangsWhileOpeningEndsStartUpWithOneLine) {
  silent_upstream upstream;
  const auto start = clock_type::now();
  const auto result = mjpeg::test::run_command(binary(), {"--port", "0", "--source", upstream.url()}, 20s);
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("did not open within"), std::string::npos) << result.err;
  EXPECT_LT(clock_type::now() - start, 10s);
}

// Issue 15.12: SIGTERM (and SIGINT) stop a server within the promised second while its source is
// still opening.
TEST_P(EveryVariant, SignalDuringStartUpStopsTheServerWithinASecond) {
  silent_upstream upstream;
  for (const int sig : {SIGTERM, SIGINT}) {
    server_process server{binary(), {"--port", "0", "--source", upstream.url()}, ready_when::started};
    // The server connects to the upstream from inside its source's open; then signals are its own.
    ASSERT_TRUE(upstream.accept_within(10s)) << server.error_output();
    std::this_thread::sleep_for(100ms);
    const auto start = clock_type::now();
    server.signal(sig);
    EXPECT_EQ(server.wait(5s), 0) << "signal " << sig << ": " << server.error_output();
    EXPECT_LT(clock_type::now() - start, mjpeg::test::stop_bound) << "signal " << sig;
  }
}

}  // namespace
