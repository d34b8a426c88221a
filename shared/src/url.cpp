#include "mjpeg/url.hpp"

namespace mjpeg::http {

std::optional<url> parse_url(std::string_view text) {
  constexpr std::string_view scheme = "http://";
  if (!text.starts_with(scheme)) return std::nullopt;
  text.remove_prefix(scheme.size());
  url u;
  u.scheme = "http";
  const auto slash = text.find('/');
  std::string_view authority = text.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string{text.substr(slash)};
  // The userinfo ends at the last "@" before the path: a password may contain "@" itself.
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    u.userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
  }
  u.port = "80";
  if (authority.starts_with('[')) {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (after.starts_with(':'))
      u.port = after.substr(1);
    else if (!after.empty())
      return std::nullopt;
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
  }
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

}  // namespace mjpeg::http
