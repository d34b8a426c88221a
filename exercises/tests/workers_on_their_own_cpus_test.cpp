// Exercise 6.1 (docs/06-processes.md): each worker process on a CPU of its own, as nginx's
// `worker_cpu_affinity auto` places them: worker i may run only on the i-th of the CPUs the parent
// may use (round again when there are more workers than CPUs), so the scheduler never moves it.

#include <gtest/gtest.h>

#include <sched.h>

#include <cstddef>
#include <regex>
#include <string>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// The CPUs `pid` may run on, in order.
std::vector<int> cpus_of(pid_t pid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(pid, sizeof set, &set) != 0) return cpus;
  for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(static_cast<int>(cpu));
  return cpus;
}

TEST(WorkersOnTheirOwnCpus, WorkerIMayRunOnlyOnTheIthCpuOfTheParent) {
  server_process server{exercise_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  const std::vector<int> parent = cpus_of(server.pid());
  ASSERT_GE(parent.size(), 2u) << "on one CPU every placement is the same: the check needs two";
  std::vector<pid_t> workers;
  ASSERT_TRUE(eventually([&] { return (workers = worker_pids(server.port())).size() == 2; }, 5s));
  for (std::size_t i = 0; i < workers.size(); ++i)
    EXPECT_EQ(cpus_of(workers[i]), std::vector<int>{parent[i % parent.size()]})
        << "worker " << i << " (pid " << workers[i] << ") may run on one CPU, the parent's "
        << i % parent.size() << "th";
  // (A worker answers /snapshot once the bus has brought it a frame.)
  EXPECT_TRUE(eventually([&] { return get(server.port(), "/snapshot").status == 200; }, 10s))
      << "and the workers serve";
}

}  // namespace
