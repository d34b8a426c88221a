/// The load generator's statistics: percentiles, summaries, fairness.
#pragma once

#include <cstdint>
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

}  // namespace mjpeg::bench
