/// The one parser of http:// URLs (part of http: the relay, the load generator and the launcher
/// use it). No sockets and no Boost, so the launcher links it without the core.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mjpeg::http {

/// The parts of "http://[user:pass@]host[:port][/target]".
struct url {
  std::string scheme;    ///< "http".
  std::string userinfo;  ///< "user:pass" before the "@", or empty.
  std::string host;      ///< The host, an IPv6 address without its brackets.
  std::string port;      ///< The port as written; "80" when the URL names none.
  std::string target;    ///< Path and query from the first "/"; "/" when the URL has none.
};

/// Parses `text`: nullopt unless it is an http:// URL with a host (an IPv6 host in brackets, "]"
/// included) and, after a ":", a port that is not empty.
std::optional<url> parse_url(std::string_view text);

}  // namespace mjpeg::http
