// Statistics of the load generator against hand-computed values.

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "stats.hpp"

namespace {

using namespace mjpeg::bench;

std::vector<double> one_to(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(Percentile, NearestRank) {
  const auto ten = one_to(10);
  EXPECT_EQ(percentile(ten, 5), 1);    // rank ceil(0.5) = 1
  EXPECT_EQ(percentile(ten, 50), 5);   // rank 5
  EXPECT_EQ(percentile(ten, 51), 6);   // rank ceil(5.1) = 6
  EXPECT_EQ(percentile(ten, 90), 9);   // rank 9
  EXPECT_EQ(percentile(ten, 99), 10);  // rank ceil(9.9) = 10
  EXPECT_EQ(percentile(ten, 100), 10);
  EXPECT_EQ(percentile(ten, 0), 1);
  const auto thousand = one_to(1000);
  EXPECT_EQ(percentile(thousand, 99), 990);
  EXPECT_EQ(percentile(thousand, 99.9), 999);
  EXPECT_EQ(percentile(std::vector<double>{}, 50), 0);
  EXPECT_EQ(percentile(std::vector<double>{42}, 99.9), 42);
}

TEST(Summarize, SortsAndSummarizes) {
  const auto s = summarize({4, 1, 3, 2, 10});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.mean, 4.0);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.p5, 1);
  EXPECT_EQ(s.p50, 3);  // rank ceil(2.5) = 3 of 1 2 3 4 10
  EXPECT_EQ(s.p90, 10);
  EXPECT_EQ(s.max, 10);
  const auto empty = summarize({});
  EXPECT_EQ(empty.count, 0u);
  EXPECT_EQ(empty.max, 0);
}

TEST(JainIndex, HandComputed) {
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{30, 30, 30, 30}), 1.0);
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{30, 0, 0, 0}), 0.25);     // one of four gets all
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{1, 2, 3}), 36.0 / 42.0);  // 6² / (3·14)
  EXPECT_DOUBLE_EQ(jain_index(std::vector<double>{30, 15}), 45.0 * 45 / (2 * 1125.0));  // 0.9
  EXPECT_EQ(jain_index(std::vector<double>{}), 0);
  EXPECT_EQ(jain_index(std::vector<double>{0, 0}), 0);
}

}  // namespace
