// The per-address limit on wrong credentials (issue 15, item 4), with a clock the test drives.

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "mjpeg/access.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::login_limiter;
using verdict = login_limiter::verdict;

boost::asio::ip::address ip(const char* text) {
  return boost::asio::ip::make_address(text);
}

// Fails `n` times from `peer` at `now`; the verdict of the last failure.
verdict fail(login_limiter& limiter, const char* peer, int n, login_limiter::clock::time_point now) {
  verdict last = verdict::counted;
  int in_a_row = 0;
  for (int i = 0; i < n; ++i)
    last = limiter.failed(ip(peer), now, in_a_row);
  return last;
}

const auto t0 = login_limiter::clock::time_point{} + 1h;

TEST(LoginLimiter, RefusesAnAddressAfterTooManyFailuresAndOnlyThatOne) {
  login_limiter limiter;
  const int allowed = limiter.policy().failures;
  EXPECT_EQ(fail(limiter, "192.0.2.1", allowed - 1, t0), verdict::counted);
  EXPECT_EQ(limiter.refused_for(ip("192.0.2.1"), t0), 0s) << "still allowed to try";
  EXPECT_EQ(fail(limiter, "192.0.2.1", 1, t0), verdict::locked_out);
  EXPECT_EQ(limiter.refused_for(ip("192.0.2.1"), t0 + 1s), limiter.policy().lockout - 1s);
  EXPECT_EQ(limiter.refused_for(ip("192.0.2.2"), t0 + 1s), 0s) << "other addresses are not affected";
  EXPECT_EQ(limiter.refused_for(ip("::ffff:192.0.2.1"), t0 + 1s), limiter.policy().lockout - 1s)
      << "the same IPv4 host seen through a v4-mapped address";
  // The lockout ends on its own, and the next round of guesses is as long as the first.
  const auto later = t0 + limiter.policy().lockout;
  EXPECT_EQ(limiter.refused_for(ip("192.0.2.1"), later), 0s);
  EXPECT_EQ(fail(limiter, "192.0.2.1", allowed - 1, later), verdict::counted);
  EXPECT_EQ(fail(limiter, "192.0.2.1", 1, later), verdict::locked_out);
}

TEST(LoginLimiter, SuccessAndTimeForgetFailures) {
  login_limiter limiter;
  const int allowed = limiter.policy().failures;
  fail(limiter, "192.0.2.1", allowed - 1, t0);
  limiter.succeeded(ip("192.0.2.1"));
  EXPECT_EQ(fail(limiter, "192.0.2.1", allowed - 1, t0), verdict::counted) << "a success starts over";
  EXPECT_EQ(fail(limiter, "192.0.2.1", 1, t0 + limiter.policy().forget), verdict::counted)
      << "old failures are forgotten";
}

TEST(LoginLimiter, IPv6CountsPerSlash64) {
  login_limiter limiter;
  const int allowed = limiter.policy().failures;
  int in_a_row = 0;
  for (int i = 0; i < allowed; ++i)
    limiter.failed(ip(("2001:db8:1:2::" + std::to_string(i + 1)).c_str()), t0, in_a_row);
  EXPECT_GT(limiter.refused_for(ip("2001:db8:1:2:ffff::9"), t0), 0s) << "one host's /64 is one client";
  EXPECT_EQ(limiter.refused_for(ip("2001:db8:1:3::1"), t0), 0s) << "the next /64 is another";
}

TEST(LoginLimiter, RemembersABoundedNumberOfAddresses) {
  login_limiter::limits policy;
  policy.tracked = 16;
  login_limiter limiter{policy};
  // Many addresses failing once each cannot grow the table without bound, and the address that is
  // locked out is not what gets forgotten while others are quieter.
  fail(limiter, "192.0.2.1", policy.failures, t0);
  for (int i = 0; i < 1000; ++i)
    fail(limiter, ("198.51.100." + std::to_string(i % 250) + "").c_str(), 1, t0 + 1ms * (i + 1));
  EXPECT_GT(limiter.refused_for(ip("192.0.2.1"), t0 + 1s), 0s);
}

// An attacker with a network of addresses (any IPv6 /48) used to fail once from each and never be
// refused. Failures also count per /56 (IPv6) and /24 (IPv4); other networks are not affected.
TEST(LoginLimiter, AnAttackerMovingThroughItsNetworkIsRefused) {
  login_limiter limiter;
  const int allowed = limiter.policy().network_failures;
  char address[64];
  for (int i = 0; i < allowed; ++i) {
    std::snprintf(address, sizeof address, "2001:db8:0:ab%02x::1", i);  // a new /64 each time
    EXPECT_EQ(limiter.refused_for(ip(address), t0), 0s) << i;
    fail(limiter, address, 1, t0);
  }
  EXPECT_GT(limiter.refused_for(ip("2001:db8:0:abff::77"), t0), 0s) << "the /56 is refused";
  EXPECT_EQ(limiter.refused_for(ip("2001:db8:0:ac00::1"), t0), 0s) << "the next /56 is another network";
  for (int i = 0; i < allowed; ++i)
    fail(limiter, ("198.51.100." + std::to_string(i + 1)).c_str(), 1, t0);
  EXPECT_GT(limiter.refused_for(ip("198.51.100.250"), t0), 0s) << "the /24 is refused";
  EXPECT_EQ(limiter.refused_for(ip("198.51.101.1"), t0), 0s);
}

// A full table used to drop its quietest unlocked record for a new address: an attacker with more
// addresses than the table holds reset its own count. Records with recent failures now stay, and
// while every record is recent, addresses not yet tracked are refused.
TEST(LoginLimiter, ARecordWithRecentFailuresIsNeverDroppedForANewOne) {
  login_limiter::limits policy;
  policy.tracked = 16;
  login_limiter limiter{policy};
  EXPECT_EQ(fail(limiter, "192.0.2.1", policy.failures - 1, t0), verdict::counted);
  for (int i = 0; i < 40; ++i)  // one failure each from 40 other networks
    fail(limiter, ("10.0." + std::to_string(i) + ".1").c_str(), 1, t0 + 1ms * (i + 1));
  EXPECT_EQ(fail(limiter, "192.0.2.1", 1, t0 + 1s), verdict::locked_out) << "its count was kept";
  EXPECT_GT(limiter.refused_for(ip("192.0.2.1"), t0 + 1s), 0s);
  EXPECT_GT(limiter.refused_for(ip("203.0.113.9"), t0 + 1s), 0s) << "a newcomer while the table is full";
  // Once the failures are old, the table makes room again.
  const auto later = t0 + policy.forget + policy.lockout + 1s;
  EXPECT_EQ(limiter.refused_for(ip("203.0.113.9"), later), 0s);
  EXPECT_EQ(fail(limiter, "203.0.113.9", 1, later), verdict::counted);
}

TEST(LoginLimiter, LogLinesAreRateLimited) {
  login_limiter limiter;
  std::uint64_t held_back = 99;
  EXPECT_TRUE(limiter.may_log(verdict::counted, t0, held_back));
  EXPECT_EQ(held_back, 0u);
  for (int i = 0; i < 50; ++i)
    EXPECT_FALSE(limiter.may_log(verdict::counted, t0 + 10ms * i, held_back));
  EXPECT_TRUE(limiter.may_log(verdict::locked_out, t0 + 500ms, held_back))
      << "lockouts have their own budget";
  EXPECT_TRUE(limiter.may_log(verdict::counted, t0 + 1s, held_back));
  EXPECT_EQ(held_back, 50u) << "the next line says how many were held back";
}

}  // namespace
