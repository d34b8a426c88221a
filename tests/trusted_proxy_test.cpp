// Behind a reverse proxy every request comes from the proxy's address. With --trusted-proxy, the
// login lockout counts the client the proxy names in X-Forwarded-For (or Forwarded), so one
// attacker behind nginx no longer locks out every user; from any other peer those headers are
// ignored, since anyone can send them.

#include <gtest/gtest.h>

#include <string>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using mjpeg::test::EveryVariant;
using mjpeg::test::request;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;

// A snapshot request as nginx's shipped site forwards it: credentials as given, and the client's
// address appended to X-Forwarded-For (or a Forwarded header instead).
std::string forwarded(const std::string& password_base64, const std::string& forwarding_header) {
  return "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " + password_base64 + "\r\n" +
         forwarding_header + "\r\nConnection: close\r\n\r\n";
}

const std::string right = "dmlld2VyOnJpZ2h0LW9uZQ==";  // viewer:right-one
const std::string wrong = "dmlld2VyOmd1ZXNz";          // viewer:guess

TEST_P(EveryVariant, BehindATrustedProxyOneAttackerLocksOutOnlyItself) {
  server_process server{binary(),
                        small_frames({"--auth", "viewer:right-one", "--trusted-proxy", "127.0.0.1"})};
  const auto port = server.port();
  const std::string attacker = "X-Forwarded-For: 198.51.100.7";
  int refused_after = 0;
  for (int i = 1; i <= 20 && refused_after == 0; ++i)
    if (request(port, forwarded(wrong, attacker)).status == 429) refused_after = i;
  EXPECT_EQ(refused_after, 11) << "ten guesses, then refused";
  EXPECT_EQ(request(port, forwarded(right, attacker)).status, 429);
  // Everybody else behind the same proxy is served, whichever header the proxy uses.
  EXPECT_EQ(request(port, forwarded(right, "X-Forwarded-For: 203.0.113.9")).status, 200);
  EXPECT_EQ(request(port, forwarded(right, "X-Forwarded-For: 198.51.100.7, 203.0.113.9")).status, 200)
      << "the address the proxy appended counts, not what the client claimed before it";
  EXPECT_EQ(request(port, forwarded(right, "Forwarded: for=\"[2001:db8::9]:4711\";proto=https")).status, 200);
  EXPECT_EQ(request(port, forwarded(right, "Forwarded: for=203.0.113.10")).status, 200);
  EXPECT_EQ(request(port, forwarded(right, "X-Forwarded-For: 203.0.113.11, 198.51.100.7")).status, 429)
      << "an attacker cannot hide behind a made-up address to the left";
  const std::string log = server.error_output();
  EXPECT_NE(log.find("wrong credentials in a row from 198.51.100.7; refusing it"), std::string::npos) << log;
}

TEST_P(EveryVariant, ForwardingHeadersFromAnUntrustedPeerAreIgnored) {
  // The proxy is somebody else: our requests' X-Forwarded-For changes nothing, so a guesser cannot
  // pose as a new client with each guess.
  server_process server{binary(),
                        small_frames({"--auth", "viewer:right-one", "--trusted-proxy", "192.0.2.80"})};
  const auto port = server.port();
  int refused_after = 0;
  for (int i = 1; i <= 20 && refused_after == 0; ++i)
    if (request(port, forwarded(wrong, "X-Forwarded-For: 198.51.100." + std::to_string(i))).status == 429)
      refused_after = i;
  EXPECT_EQ(refused_after, 11);
}

}  // namespace
