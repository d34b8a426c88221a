// Floods over every variant: more viewers than the cap get 503 with Retry-After and free slots
// serve again; running out of descriptors pauses accepting without spinning; a burst of a
// thousand connects is served or cleanly refused, and the server exits cleanly afterwards.

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "mjpeg/process.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;
using steady = std::chrono::steady_clock;

TEST_P(EveryVariant, MoreConnectionsThanTheCapGet503WithRetryAfter) {
  // The cap is --max-clients where the model has one; a pool's cap is its workers plus its
  // queue, and queued viewers wait, so five workers and no queue hold exactly five viewers.
  std::vector<std::string> cap;
  if (has_option("--max-clients"))
    cap = {"--max-clients", "5"};
  else if (has_option("--queue"))
    cap = {"--threads", "5", "--queue", "0"};
  else
    GTEST_SKIP() << "this model has no limit: it serves one connection at a time";
  server_process server{binary(), small_frames(cap)};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 5; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200) << "viewer " << i;
  }
  for (int i = 0; i < 20; ++i) {
    const auto r = get(server.port(), "/stream");
    EXPECT_EQ(r.status, 503) << "extra connection " << i;
    EXPECT_EQ(header(r, "retry-after"), "1");
  }
  for (auto& v : viewers)
    ASSERT_TRUE(v->next()) << "a viewer within the limit was disturbed";
  // Once one leaves there is room again: for a request, and for a new viewer (a 503 in between
  // is allowed, it says when to retry, so retry as a browser would).
  viewers.pop_back();
  EXPECT_TRUE(eventually([&] { return good_snapshot(get(server.port(), "/snapshot")); }, 5s));
  std::unique_ptr<stream_reader> newcomer;
  EXPECT_TRUE(eventually(
      [&] {
        newcomer = std::make_unique<stream_reader>(server.port());
        return newcomer->open() == 200;
      },
      5s))
      << "the freed slot must serve a new viewer";
  EXPECT_TRUE(newcomer->next());
  for (auto& v : viewers)
    ASSERT_TRUE(v->next()) << "the viewers within the limit keep receiving";
}

TEST_P(EveryVariant, DescriptorExhaustionPausesWithoutSpinningAndRecovers) {
  ASSERT_EQ(::access("/usr/bin/prlimit", X_OK), 0) << "util-linux prlimit is needed";
  constexpr int fd_limit = 100;
  std::vector<std::string> args = {
      "--nofile=100:100", "--", binary(), "--width", "160", "--height", "120", "--fps", "5",
      "--header-timeout", "60"};
  // Without a viewer limit, the flood reaches the descriptor limit itself.
  if (has_option("--max-clients")) args.insert(args.end(), {"--max-clients", "0"});
  server_process server{"/usr/bin/prlimit", args};
  ASSERT_TRUE(good_snapshot(get(server.port(), "/snapshot")));

  // Hold more idle connections than the server may have descriptors.
  std::vector<std::unique_ptr<connection>> flood;
  for (int i = 0; i < fd_limit + 50; ++i)
    flood.push_back(std::make_unique<connection>(server.port()));
  std::this_thread::sleep_for(500ms);  // let it accept what it can and hit the wall
  const auto cpu_seconds = [&] { return mjpeg::sample_process(server.pid()).value().cpu_seconds; };
  const double cpu_before = cpu_seconds();
  const auto wall_before = steady::now();
  std::this_thread::sleep_for(2s);
  const double cpu = cpu_seconds() - cpu_before;
  const double wall = std::chrono::duration<double>(steady::now() - wall_before).count();
  EXPECT_LT(cpu, 0.3 * wall) << "server burned " << cpu << " s of CPU in " << wall << " s: a busy loop";
  if (has_option("--max-clients")) {
    EXPECT_NE(server.error_output().find("pausing"), std::string::npos)
        << "expected the server to hit the descriptor limit: " << server.error_output();
  }

  // Free the descriptors: the server serves again.
  flood.clear();
  EXPECT_TRUE(eventually([&] { return good_snapshot(get(server.port(), "/snapshot", 2s)); }, 20s))
      << server.error_output();
  EXPECT_EQ(server.wait(0ms), -1) << "the server died: " << server.error_output();
}

TEST_P(EveryVariant, BurstOfAThousandConnectsIsServedOrCleanlyRefused) {
  std::vector<std::string> args = small_frames({"--header-timeout", "30"});
  // The pool's lesson: beyond threads + queue, 503.
  if (has_option("--queue")) args.insert(args.end(), {"--threads", "8", "--queue", "16"});
  server_process server{binary(), args};
  constexpr std::size_t n = 1000;
  const auto result =
      burst(server.port(), n, "GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n", sanitized ? 120s : 60s);
  std::size_t served = 0, refused = 0;
  std::map<std::string, int> other;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = result.replies[i];
    if (!result.done[i])
      ++other["hanging"];
    else if (good_snapshot(r))
      ++served;
    else if (r.status == 503 && r.headers.contains("retry-after"))
      ++refused;
    else
      ++other["status " + std::to_string(r.status) + " errno " + std::to_string(result.errors[i])];
  }
  std::ostringstream summary;
  for (const auto& [what, count] : other)
    summary << what << ": " << count << "; ";
  EXPECT_EQ(served + refused, n) << "served " << served << ", refused " << refused
                                 << ", other: " << summary.str() << server.error_output();
  EXPECT_GT(served, 0);
  std::cout << "[ burst    ] " << GetParam() << ": " << served << " served, " << refused
            << " refused (503)\n";
  // And afterwards all is normal, down to a clean exit.
  EXPECT_TRUE(eventually([&] { return good_snapshot(get(server.port(), "/snapshot")); }, 10s));
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(10s), 0) << server.error_output();
}

}  // namespace
