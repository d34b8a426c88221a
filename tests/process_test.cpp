// The /proc sampler of the tests and the benchmark, and the one launcher of a server binary.

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <stdexcept>

#include "mjpeg/process.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg;
using namespace std::chrono_literals;

TEST(SampleProcess, ReadsOurOwnProcess) {
  const auto before = sample_process(::getpid());
  ASSERT_TRUE(before);
  EXPECT_GE(before->threads, 1);
  EXPECT_GT(before->rss_bytes, 100'000u);
  // Burn some CPU so the counter moves by at least a clock tick.
  volatile double x = 0;
  const double start = own_cpu_seconds();
  while (own_cpu_seconds() - start < 0.05)
    for (int i = 0; i < 100000; ++i)
      x = x + i;
  const auto after = sample_process(::getpid());
  ASSERT_TRUE(after);
  EXPECT_GT(after->cpu_seconds, before->cpu_seconds);
  EXPECT_FALSE(sample_process(0x7ffffff0));  // no such process
}

TEST(ThreadRuntimes, FinerThanTicksAndFallBackWhenThreadsExit) {
  const auto runtimes = thread_runtimes(::getpid());
  if (runtimes.empty()) GTEST_SKIP() << "no /proc/<pid>/task/*/sched on this kernel";
  EXPECT_EQ(runtimes.size(), 1u);  // gtest runs on one thread
  EXPECT_GT(runtimes.begin()->second, 0);

  const process_sample before{1.00, 0, 2};
  const process_sample after{1.50, 0, 2};
  // Same threads: the fine run times win (0.2 + 0.29 = 0.49 s, not the ticks' 0.50).
  EXPECT_NEAR(cpu_between(before, {{1, 0.5}, {2, 0.3}}, after, {{1, 0.7}, {2, 0.59}}), 0.49, 1e-9);
  // A new thread counts from zero.
  EXPECT_NEAR(cpu_between(before, {{1, 0.5}}, after, {{1, 0.7}, {3, 0.29}}), 0.49, 1e-9);
  // Thread 2 exited with its time: only the ticks still hold it.
  EXPECT_NEAR(cpu_between(before, {{1, 0.5}, {2, 0.3}}, after, {{1, 0.7}}), 0.50, 1e-9);
  // No per-thread data: ticks.
  EXPECT_NEAR(cpu_between(before, {}, after, {}), 0.50, 1e-9);
}

TEST(OpenFds, CountsOurDescriptors) {
  const int before = open_fds(::getpid());
  ASSERT_GT(before, 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_EQ(open_fds(::getpid()), before + 2);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  EXPECT_EQ(open_fds(::getpid()), before);
  EXPECT_EQ(open_fds(0x7ffffff0), -1);
}

TEST(LaunchedServer, ReadsTheUrlLineAndStopsPolitely) {
  launched_server server{mjpeg::test::variant_binary("mjpeg_single_thread"), mjpeg::test::small_frames()};
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/");
  EXPECT_GT(server.port(), 0);
  const auto sample = sample_process(server.pid());
  ASSERT_TRUE(sample);
  EXPECT_GE(sample->threads, 2);  // serving thread + capture
  EXPECT_EQ(server.stop(5s), 0) << "SIGTERM is a clean exit";
  EXPECT_FALSE(sample_process(server.pid()));
}

TEST(LaunchedServer, SaysWhatTheProgramPrintedWhenThereIsNoUrl) {
  try {
    launched_server server{mjpeg::test::variant_binary("mjpeg_single_thread"), {"--fps", "-3"}, "/dev/null"};
    FAIL() << "started a server with a bad option";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find("printed no URL line"), std::string::npos) << e.what();
  }
  EXPECT_THROW((launched_server{"/nonexistent/mjpeg-nothing", {}}), std::runtime_error);
}

}  // namespace
