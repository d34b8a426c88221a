#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "mjpeg/http.hpp"

/// Who may ask what: the one per-request decision every variant makes (routing, Host, credentials)
/// and the per-address limit on wrong credentials behind it.
namespace mjpeg {

/// Counts wrong credentials per client address and refuses an address that keeps guessing, so a
/// password cannot be tried thousands of times a second. IPv6 clients count per /64, the block one
/// host usually has. Failures also count per network (IPv4 /24, IPv6 /56, what one customer
/// usually gets), with a larger allowance, so an attacker cannot guess on by moving through its
/// addresses; other networks are not affected. A record with recent failures is never dropped to
/// make room: when every record is recent, addresses not yet tracked are refused until one ages
/// out (a distributed attack locks newcomers out rather than resetting its own counts). Thread-safe.
class login_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// The policy.
  struct limits {
    int failures = 10;                                   ///< Wrong credentials in a row before a lockout.
    clock::duration lockout = std::chrono::seconds{60};  ///< How long the address is refused then.
    clock::duration forget = std::chrono::minutes{10};   ///< Failures older than this are forgotten.
    std::size_t tracked = 4096;                          ///< Addresses remembered at most (networks too).
    int network_failures = 50;  ///< Wrong credentials from one /24 or /56 before all of it is refused.
  };

  /// What a failure led to.
  enum class verdict {
    counted,     ///< One more failure; the address may still try.
    locked_out,  ///< This failure started a lockout.
  };

  /// A limiter with the default policy.
  login_limiter() = default;
  /// A limiter with `policy`.
  explicit login_limiter(limits policy) : limits_{policy} {}

  /// How much longer `peer` is refused; zero when it may try.
  clock::duration refused_for(const boost::asio::ip::address& peer, clock::time_point now);
  /// Records wrong credentials from `peer`; `in_a_row` is set to its failures so far.
  verdict failed(const boost::asio::ip::address& peer, clock::time_point now, int& in_a_row);
  /// Right credentials from `peer`: its failures are forgotten.
  void succeeded(const boost::asio::ip::address& peer);
  /// The policy in force.
  const limits& policy() const noexcept { return limits_; }

  /// True when a log line about `what` may be written now (at most one a second each, so a flood
  /// of guesses cannot flood the log); `held_back` is set to the lines suppressed since the last.
  bool may_log(verdict what, clock::time_point now, std::uint64_t& held_back);

 private:
  using key = std::array<unsigned char, 16>;
  struct record {
    int failures = 0;
    clock::time_point last{};
    clock::time_point refused_until{};
  };
  struct log_budget {
    clock::time_point last{};
    std::uint64_t held_back = 0;
  };
  static key key_of(const boost::asio::ip::address& peer);
  static key network_of(const boost::asio::ip::address& peer);
  // Room for one more record in `records`, false when every one has recent failures.
  bool make_room(std::map<key, record>& records, clock::time_point now);
  // Counts one failure in `r`; true when it starts a lockout at `allowed` failures.
  bool count(record& r, clock::time_point now, int allowed);

  limits limits_;
  std::mutex mutex_;                       // guards everything below
  std::map<key, record> records_;          // per address (/64 for IPv6)
  std::map<key, record> networks_;         // per /24 or /56
  clock::time_point newcomers_refused_{};  // while the tables are full of recent failures
  std::array<log_budget, 2> logs_{};       // one per verdict
};

/// The address a request comes from, for the login limit: the peer's, or, when the peer is one of
/// `trusted_proxies`, the client's that the proxy names: the rightmost address of X-Forwarded-For
/// (all its lines, in order; the proxy appends the address it saw) that is not a trusted proxy
/// itself, or, without X-Forwarded-For, of Forwarded's for= parameters. Headers from any other
/// peer are ignored (anyone can send them); a trusted proxy that names no usable address is
/// taken as the client.
boost::asio::ip::address client_address(const boost::asio::ip::address& peer,
                                        const http::request_parser& parser,
                                        const std::vector<boost::asio::ip::address>& trusted_proxies);

/// The answer to one request, decided once for every variant: Beast's outcome `ec` reading the
/// request head from `peer` into `parser` and `buffer`, then routing by `routes` (see http::route),
/// then the per-address login limit in `logins` (429 with Retry-After while the peer is locked out; wrong
/// credentials counted and logged, rate-limited).
http::route_result plan_request(const http::route_options& routes, login_limiter& logins,
                                const boost::beast::error_code& ec, const http::request_parser& parser,
                                const boost::beast::flat_buffer& buffer,
                                const boost::asio::ip::tcp::socket& peer);

}  // namespace mjpeg
