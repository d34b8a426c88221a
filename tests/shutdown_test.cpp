// Stopping over every variant: SIGTERM exits 0 within the promised second with every kind of
// connection open (streaming viewers, a stalled reader, a head that never ends, a silent
// connection, a viewer queued in the pool), SIGINT exits 0, and --duration stops by itself.

#include <signal.h>

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST_P(EveryVariant, SigtermWithBusyConnectionsExitsZeroWithinASecond) {
  // Each of them has a minute of patience left: shutdown must not wait for any of them. A pool
  // of four is kept busy by the first four connections, so the last one waits in its queue.
  std::vector<std::string> args = large_frames({"--header-timeout", "60", "--send-timeout", "60"});
  if (has_option("--queue")) args.insert(args.end(), {"--threads", "4", "--queue", "2"});
  server_process server{binary(), args};
  // Two viewers streaming (single_thread serves the first; the rest wait in its backlog).
  stream_reader one{server.port()};
  ASSERT_EQ(one.open(), 200) << server.error_output();
  ASSERT_TRUE(one.next());
  std::unique_ptr<stream_reader> two;
  if (!one_at_a_time()) {
    two = std::make_unique<stream_reader>(server.port());
    ASSERT_EQ(two->open(), 200);
    ASSERT_TRUE(two->next());
  }
  stalled_reader stalled{server.port()};
  connection half{server.port()};
  ASSERT_TRUE(half.send("GET /stream HTTP/1.1\r\nHost: lo"));
  connection silent{server.port()};
  stream_reader last{server.port()};   // served, or queued where the workers are busy
  std::this_thread::sleep_for(500ms);  // the stalled viewer's buffers fill up; all are accepted
  ASSERT_TRUE(one.next());

  const auto start = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(10s), 0) << server.error_output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, stop_bound);
}

TEST_P(EveryVariant, SigintExitsZero) {
  server_process server{binary(), small_frames()};
  server.signal(SIGINT);
  EXPECT_EQ(server.wait(2s), 0) << server.error_output();
}

TEST_P(EveryVariant, DurationStopsByItself) {
  // Long enough for a sanitized build to start (and print its URL line) on a busy machine.
  server_process server{binary(), small_frames({"--duration", "2"})};
  EXPECT_EQ(server.wait(6s), 0) << server.error_output();
}

}  // namespace
