// The soak over every multi-viewer variant: ten thousand short visits (snapshots and streams
// left after one frame) leave descriptors and memory flat, and the server exits cleanly, so
// that under ASan the leak checker looks at it after all those cycles.

#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
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

// Resident memory of `pid` in KiB.
long rss_kib(pid_t pid) {
  const auto sample = mjpeg::sample_process(pid);
  return sample ? static_cast<long>(sample->rss_bytes / 1024) : -1;
}

// Runs `cycles` connect/request/disconnect cycles on `threads` client threads: even cycles fetch
// a snapshot, odd ones read the head and one part of the stream and leave. Returns failures.
int run_cycles(unsigned short port, int cycles, int threads) {
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t)
    clients.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < cycles;) {
        bool ok = false;
        try {
          if (i % 2 == 0) {
            ok = good_snapshot(get(port, "/snapshot", 10s));
          } else {
            stream_reader viewer{port};
            ok = viewer.open(10s) == 200 && viewer.next(10s).has_value();
          }
        } catch (const std::exception&) {
          ok = false;  // could not connect
        }
        if (!ok) failures.fetch_add(1);
      }
    });
  for (auto& c : clients)
    c.join();
  return failures.load();
}

TEST_P(EveryVariant, SoakOfTenThousandCyclesKeepsDescriptorsAndMemoryFlat) {
  if (one_at_a_time()) GTEST_SKIP() << "the soak is for the multi-viewer models";
  // Sanitized builds are several times slower; they run a tenth of the cycles, which still
  // shows a per-connection leak (and ASan reports leaks itself).
  const int cycles = sanitized ? 1000 : 10000;
  const int warm_up = cycles / 10;
  // Where --threads means threads running one event loop (not a pool's workers), use two, so
  // sessions really end and begin in parallel.
  std::vector<std::string> extra;
  if (has_option("--threads") && !has_option("--queue")) extra = {"--threads", "2"};
  server_process server{binary(), small_frames(extra)};
  const auto start = steady::now();
  ASSERT_EQ(run_cycles(server.port(), warm_up, 4), 0) << server.error_output();
  ASSERT_TRUE(eventually([&] { return viewers_now(server.port()) == 0; }, 10s));
  std::this_thread::sleep_for(500ms);
  const int fds_before = mjpeg::open_fds(server.pid());
  const long rss_before = rss_kib(server.pid());

  const int failures = run_cycles(server.port(), cycles - warm_up, 4);
  EXPECT_EQ(failures, 0) << server.error_output();
  EXPECT_TRUE(eventually([&] { return viewers_now(server.port()) == 0; }, 10s));
  const int fds_after = fds_settled(server.pid(), fds_before, 5s);
  const long rss_after = rss_kib(server.pid());
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();

  std::cout << "[ soak     ] " << GetParam() << ": " << cycles << " cycles in " << seconds << " s; fds "
            << fds_before << " -> " << fds_after << "; VmRSS " << rss_before << " -> " << rss_after
            << " KiB\n";
  RecordProperty("cycles", cycles);
  RecordProperty("fds_before", fds_before);
  RecordProperty("fds_after", fds_after);
  RecordProperty("rss_kib_before", static_cast<int>(rss_before));
  RecordProperty("rss_kib_after", static_cast<int>(rss_after));
  EXPECT_LE(fds_after, fds_before + 2) << "descriptors leak";
  // A sanitizer's allocator keeps freed blocks in quarantine and grows its shadow and metadata
  // per thread and lock, so its RSS says little about ours: it gets a looser bound (ASan's leak
  // checker still looks at the exit below), the plain build the strict one.
  EXPECT_LT(rss_after - rss_before, (sanitized ? 64 : 20) * 1024) << "memory grows with connections";
  // A clean exit, so that under ASan the leak checker looks at the server after all those cycles.
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(10s), 0) << server.error_output();
}

}  // namespace
