#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

namespace mjpeg::bench {

/// Order statistics of a set of values.
struct summary {
  std::size_t count = 0;  ///< Number of values.
  double mean = 0;        ///< Arithmetic mean.
  double min = 0;         ///< Smallest value.
  double p5 = 0;          ///< 5th percentile.
  double p50 = 0;         ///< Median.
  double p90 = 0;         ///< 90th percentile.
  double p99 = 0;         ///< 99th percentile.
  double p999 = 0;        ///< 99.9th percentile.
  double max = 0;         ///< Largest value.
};

/// Nearest-rank percentile of ascending `sorted` values: the smallest value with at least p% of
/// the values at or below it. 0 for no values.
double percentile(std::span<const double> sorted, double p) noexcept;

/// Sorts `values` and summarizes them (all zeros for no values).
summary summarize(std::vector<double> values);

/// Jain's fairness index (Σx)² / (n·Σx²): 1 when everyone gets the same, 1/n when one gets all.
/// 0 when there are no values or all are zero.
double jain_index(std::span<const double> values) noexcept;

/// One reading of a process from /proc.
struct process_sample {
  double cpu_seconds = 0;       ///< User + system CPU time so far.
  std::uint64_t rss_bytes = 0;  ///< Resident set size.
  int threads = 0;              ///< Number of threads.
};

/// Reads /proc/<pid>/stat and /proc/<pid>/status; nullopt when the process is gone.
std::optional<process_sample> sample_process(pid_t pid);

/// Nanosecond CPU run time of each live thread of a process (/proc/<pid>/task/*/sched,
/// se.sum_exec_runtime), keyed by thread id; empty when unavailable. Finer than the clock ticks
/// of sample_process, but threads that exited are missing.
std::map<int, double> thread_runtimes(pid_t pid);

/// CPU seconds a process used between two readings: the per-thread run times where they are
/// complete, the coarse tick counts where threads exited in between (the ticks exceed them).
double cpu_between(const process_sample& before, const std::map<int, double>& threads_before,
                   const process_sample& after, const std::map<int, double>& threads_after);

/// CPU time (user + system) this process has used so far.
double own_cpu_seconds() noexcept;

}  // namespace mjpeg::bench
