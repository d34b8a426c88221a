#include "mjpeg/access.hpp"

#include <algorithm>
#include <cstdio>
#include <string>

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

void login_limiter::make_room(clock::time_point now) {
  // Forget quiet addresses first; if every one is recent, the one quiet for longest goes.
  for (auto it = records_.begin(); it != records_.end();) {
    if (it->second.refused_until <= now && now - it->second.last >= limits_.forget)
      it = records_.erase(it);
    else
      ++it;
  }
  if (records_.size() < limits_.tracked || records_.empty()) return;
  // Still full: the address quiet for longest goes, one that is locked out only if all are.
  const auto first_to_go = [now](const auto& a, const auto& b) {
    const bool a_locked = a.second.refused_until > now;
    const bool b_locked = b.second.refused_until > now;
    if (a_locked != b_locked) return b_locked;
    return a_locked ? a.second.refused_until < b.second.refused_until : a.second.last < b.second.last;
  };
  records_.erase(std::min_element(records_.begin(), records_.end(), first_to_go));
}

login_limiter::clock::duration login_limiter::refused_for(const boost::asio::ip::address& peer,
                                                          clock::time_point now) {
  std::lock_guard lock{mutex_};
  const auto it = records_.find(key_of(peer));
  if (it == records_.end() || it->second.refused_until <= now) return clock::duration::zero();
  return it->second.refused_until - now;
}

login_limiter::verdict login_limiter::failed(const boost::asio::ip::address& peer, clock::time_point now,
                                             int& in_a_row) {
  std::lock_guard lock{mutex_};
  const key k = key_of(peer);
  auto it = records_.find(k);
  if (it == records_.end()) {
    if (records_.size() >= limits_.tracked) make_room(now);
    it = records_.emplace(k, record{}).first;
  }
  record& r = it->second;
  if (now - r.last >= limits_.forget) r.failures = 0;
  r.last = now;
  in_a_row = ++r.failures;
  if (r.failures < limits_.failures) return verdict::counted;
  // Locked out: the count starts over, so after the lockout the next round is as long again.
  r.failures = 0;
  r.refused_until = now + limits_.lockout;
  return verdict::locked_out;
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
  const auto address = peer.remote_endpoint(ignored).address();
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
