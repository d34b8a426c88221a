#include "mjpeg/access.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mjpeg/log.hpp"

namespace mjpeg {

login_limiter::key login_limiter::key_of(const boost::asio::ip::address& peer) {
  if (peer.is_v4())
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, peer.to_v4()).to_bytes();
  key k = peer.to_v6().to_bytes();
  // A v4-mapped address is one IPv4 host; anything else counts by its /64.
  if (!peer.to_v6().is_v4_mapped()) std::fill(k.begin() + 8, k.end(), 0);
  return k;
}

login_limiter::key login_limiter::network_of(const boost::asio::ip::address& peer) {
  key k = key_of(peer);
  const bool v4 = peer.is_v4() || peer.to_v6().is_v4_mapped();
  std::fill(k.begin() + (v4 ? 15 : 7), k.end(), 0);  // IPv4 /24 (of the mapped form), IPv6 /56
  return k;
}

bool login_limiter::make_room(std::map<key, record>& records, clock::time_point now) {
  // Only records without recent failures may go: dropping one with recent failures for a new
  // address would let an attacker with many addresses reset its own counts.
  for (auto it = records.begin(); it != records.end();) {
    if (it->second.refused_until <= now && now - it->second.last >= limits_.forget)
      it = records.erase(it);
    else
      ++it;
  }
  return records.size() < limits_.tracked;
}

bool login_limiter::count(record& r, clock::time_point now, int allowed) {
  if (now - r.last >= limits_.forget) r.failures = 0;
  r.last = now;
  if (++r.failures < allowed) return false;
  // Locked out: the count starts over, so after the lockout the next round is as long again.
  r.failures = 0;
  r.refused_until = now + limits_.lockout;
  return true;
}

login_limiter::clock::duration login_limiter::refused_for(const boost::asio::ip::address& peer,
                                                          clock::time_point now) {
  std::lock_guard lock{mutex_};
  auto until = newcomers_refused_;
  const auto it = records_.find(key_of(peer));
  if (it != records_.end()) until = it->second.refused_until;  // tracked: judged on its own record
  if (const auto net = networks_.find(network_of(peer)); net != networks_.end())
    until = std::max(until, net->second.refused_until);
  return until <= now ? clock::duration::zero() : until - now;
}

login_limiter::verdict login_limiter::failed(const boost::asio::ip::address& peer, clock::time_point now,
                                             int& in_a_row) {
  std::lock_guard lock{mutex_};
  bool locked = false;
  const auto find_or_make = [&](std::map<key, record>& records, const key& k) -> record* {
    auto it = records.find(k);
    if (it != records.end()) return &it->second;
    if (records.size() >= limits_.tracked && !make_room(records, now)) {
      // Full of recent failures: a distributed attack. Newcomers are refused until it calms down.
      newcomers_refused_ = now + limits_.lockout;
      locked = true;
      return nullptr;
    }
    return &records.emplace(k, record{}).first->second;
  };
  in_a_row = 0;
  if (record* host = find_or_make(records_, key_of(peer))) {
    locked = count(*host, now, limits_.failures) || locked;
    in_a_row = host->refused_until > now ? limits_.failures : host->failures;
  }
  if (record* network = find_or_make(networks_, network_of(peer)))
    locked = count(*network, now, limits_.network_failures) || locked;
  return locked ? verdict::locked_out : verdict::counted;
}

void login_limiter::succeeded(const boost::asio::ip::address& peer) {
  std::lock_guard lock{mutex_};
  records_.erase(key_of(peer));
}

bool login_limiter::may_log(verdict what, clock::time_point now, std::uint64_t& held_back) {
  std::lock_guard lock{mutex_};
  log_budget& budget = logs_[what == verdict::counted ? 0 : 1];
  if (budget.last != clock::time_point{} && now - budget.last < std::chrono::seconds{1}) {
    ++budget.held_back;
    return false;
  }
  budget.last = now;
  held_back = budget.held_back;
  budget.held_back = 0;
  return true;
}

namespace {

// One IPv4 host seen through a v4-mapped IPv6 address is that IPv4 address.
boost::asio::ip::address plain(const boost::asio::ip::address& a) {
  return a.is_v6() && a.to_v6().is_v4_mapped() ? boost::asio::ip::address{a.to_v6().to_v4()} : a;
}

std::string_view trimmed(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// An address as X-Forwarded-For or Forwarded's for= writes it: "192.0.2.1", "2001:db8::1",
// "[2001:db8::1]:4711", "192.0.2.1:4711", quoted or not. Nothing for "unknown" or a _token.
std::optional<boost::asio::ip::address> node_address(std::string_view node) {
  node = trimmed(node);
  if (node.size() >= 2 && node.front() == '"' && node.back() == '"') node = node.substr(1, node.size() - 2);
  if (!node.empty() && node.front() == '[') {
    node = node.substr(1, node.find(']') == std::string_view::npos ? node.size() : node.find(']') - 1);
  } else if (node.find(':') == node.rfind(':') && node.find(':') != std::string_view::npos) {
    node = node.substr(0, node.find(':'));  // IPv4 with a port
  }
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(std::string{node}, ec);
  if (ec) return std::nullopt;
  return plain(a);
}

// Every element of a comma-separated header, over all its lines, in order.
std::vector<std::string_view> elements(const http::request_parser& parser, std::string_view name) {
  std::vector<std::string_view> out;
  const auto [begin, end] = parser.get().equal_range(boost::beast::string_view{name.data(), name.size()});
  for (auto it = begin; it != end; ++it) {
    const std::string_view value{it->value().data(), it->value().size()};
    for (std::size_t at = 0; at <= value.size();) {
      const auto comma = std::min(value.find(',', at), value.size());
      out.push_back(trimmed(value.substr(at, comma - at)));
      at = comma + 1;
    }
  }
  return out;
}

}  // namespace

boost::asio::ip::address client_address(const boost::asio::ip::address& peer,
                                        const http::request_parser& parser,
                                        const std::vector<boost::asio::ip::address>& trusted_proxies) {
  const auto trusted = [&](const boost::asio::ip::address& a) {
    return std::any_of(trusted_proxies.begin(), trusted_proxies.end(),
                       [&](const boost::asio::ip::address& t) { return plain(t) == plain(a); });
  };
  if (!trusted(peer)) return peer;
  // The nodes the proxies name, nearest last.
  std::vector<std::string_view> nodes = elements(parser, "X-Forwarded-For");
  if (nodes.empty()) {
    for (const std::string_view element : elements(parser, "Forwarded"))
      for (std::size_t at = 0; at < element.size();) {
        const auto semicolon = std::min(element.find(';', at), element.size());
        const auto pair = trimmed(element.substr(at, semicolon - at));
        if (pair.size() > 4 && (pair[0] | 0x20) == 'f' && (pair[1] | 0x20) == 'o' &&
            (pair[2] | 0x20) == 'r' && pair[3] == '=')
          nodes.push_back(pair.substr(4));
        at = semicolon + 1;
      }
  }
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    const auto a = node_address(*it);
    if (!a) return peer;  // garbled or "unknown": nothing further left can be believed
    if (!trusted(*a)) return *a;
  }
  return peer;
}

namespace {

std::string address_text(const boost::asio::ip::address& a) {
  return a.is_v6() && !a.to_v6().is_v4_mapped() ? a.to_string()
         : a.is_v6()                            ? a.to_v6().to_v4().to_string()
                                                : a.to_string();
}

std::string held_back_text(std::uint64_t held_back) {
  return held_back == 0 ? "" : " (" + std::to_string(held_back) + " similar lines held back)";
}

}  // namespace

http::route_result plan_request(const http::route_options& routes, login_limiter& logins,
                                const boost::beast::error_code& ec, const http::request_parser& parser,
                                const boost::beast::flat_buffer& buffer,
                                const boost::asio::ip::tcp::socket& peer) {
  if (ec) {
    const auto data = buffer.data();
    return http::route_error(ec, parser, {static_cast<const char*>(data.data()), data.size()});
  }
  http::route_result plan = http::route(http::head_of(parser), routes);
  if (plan.login == http::credentials::not_checked) return plan;

  boost::system::error_code ignored;
  const auto address =
      client_address(peer.remote_endpoint(ignored).address(), parser, routes.trusted_proxies);
  const auto now = login_limiter::clock::now();
  // A locked-out address is refused whatever it sends, right credentials included: otherwise
  // guessing would simply go on, answered by 429 instead of 401.
  if (const auto wait = logins.refused_for(address, now); wait > login_limiter::clock::duration::zero()) {
    const auto seconds_left = std::chrono::ceil<std::chrono::seconds>(wait).count();
    return {http::resource::error, http::status::too_many_requests, false, plan.login,
            static_cast<unsigned>(seconds_left)};
  }
  if (plan.login == http::credentials::right) {
    logins.succeeded(address);
  } else if (plan.login == http::credentials::wrong) {
    int in_a_row = 0;
    const auto verdict = logins.failed(address, now, in_a_row);
    std::uint64_t held_back = 0;
    if (logins.may_log(verdict, now, held_back)) {
      const std::string who = address_text(address);
      if (verdict == login_limiter::verdict::locked_out)
        log::write(
            log::level::warning, "%d wrong credentials in a row from %s; refusing it for %lld s%s", in_a_row,
            who.c_str(),
            static_cast<long long>(std::chrono::ceil<std::chrono::seconds>(logins.policy().lockout).count()),
            held_back_text(held_back).c_str());
      else
        log::write(log::level::warning, "wrong credentials from %s (%d in a row)%s", who.c_str(), in_a_row,
                   held_back_text(held_back).c_str());
    }
  }
  return plan;
}

}  // namespace mjpeg
