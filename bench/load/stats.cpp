#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mjpeg::bench {

double percentile(std::span<const double> sorted, double p) noexcept {
  if (sorted.empty()) return 0;
  // Rank ceil(p/100 · n), 1-based; the small epsilon keeps 99.9% of 1000 at rank 999, not 1000.
  const double exact = p / 100.0 * static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

summary summarize(std::vector<double> values) {
  summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.min = values.front();
  s.max = values.back();
  s.p5 = percentile(values, 5);
  s.p50 = percentile(values, 50);
  s.p90 = percentile(values, 90);
  s.p99 = percentile(values, 99);
  s.p999 = percentile(values, 99.9);
  return s;
}

double jain_index(std::span<const double> values) noexcept {
  double sum = 0;
  double squares = 0;
  for (const double x : values) {
    sum += x;
    squares += x * x;
  }
  if (values.empty() || squares == 0) return 0;
  return sum * sum / (static_cast<double>(values.size()) * squares);
}

}  // namespace mjpeg::bench
