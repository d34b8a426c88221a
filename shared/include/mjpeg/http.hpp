/// Requests in, bytes out: HTTP parsing, routing and response writers, with no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/url.hpp"

/// Requests in, bytes out: parsing, routing and response writers. No sockets here, so every
/// byte is unit-testable.
namespace mjpeg::http {

using status = boost::beast::http::status;

/// Request headers larger than this get 431.
inline constexpr std::size_t header_limit = 8 * 1024;
/// Request targets longer than this get 414.
inline constexpr std::size_t target_limit = 2 * 1024;

/// Beast's request parser with our limits; GET has no body, so the body type is empty.
class request_parser : public boost::beast::http::request_parser<boost::beast::http::empty_body> {
 public:
  /// Sets the header limit.
  request_parser() { header_limit(static_cast<std::uint32_t>(http::header_limit)); }
};

/// What the router needs from a parsed request.
struct request_head {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;  ///< Parsed method.
  std::string target;                                                   ///< Request target as sent.
  unsigned version = 11;                                                ///< 10 for HTTP/1.0, 11 for 1.1.
  std::string authorization;                                            ///< Authorization header value.
  bool has_body = false;                                                ///< Content-Length > 0 or chunked.
  std::string host;                                                     ///< The (first) Host header value.
  std::size_t host_count = 0;                                           ///< How many Host headers came.
};

/// Copies what routing needs out of a parser whose header is complete.
request_head head_of(const request_parser& parser);

/// What to send back.
enum class resource {
  none,      ///< Nothing: the peer left before sending a request.
  error,     ///< An error status (see route_result::code).
  page,      ///< The HTML viewer.
  stream,    ///< The endless multipart stream.
  snapshot,  ///< The latest frame as one JPEG.
  stats,     ///< JSON counters.
  metrics,   ///< The same counters in Prometheus text format.
  health,    ///< The health check: 200, or 503 once the source has been down too long.
  cameras,   ///< The JSON list of cameras (name, source kind, size, rate, viewers, frame age).
};

/// How a stream's response is labelled; the bytes after the head are the same either way (the
/// boundary, each part's headers, its JPEG).
enum class stream_type {
  multipart,     ///< multipart/x-mixed-replace: what <img>, players and relays read (the default).
  octet_stream,  ///< application/octet-stream (`?type=octet-stream`), for a script that reads the
                 ///< stream with fetch() in an engine that refuses a multipart body (WebKit).
};

/// What the router found out about the request's credentials.
enum class credentials {
  not_checked,  ///< No --auth, or the request failed before credentials mattered.
  missing,      ///< --auth is on and the request carried no Authorization header.
  wrong,        ///< It carried credentials, and they are not the right ones.
  right,        ///< It carried the right credentials.
};

/// The router's decision.
struct route_result {
  resource what = resource::none;                ///< What to send.
  status code = status::ok;                      ///< HTTP status for `what`.
  bool head_only = false;                        ///< HEAD request: send the header, no body.
  credentials login = credentials::not_checked;  ///< What the credentials check found.
  unsigned retry_after = 0;                      ///< Seconds for Retry-After (429), 0 for none.
  unsigned max_fps = 0;                          ///< The stream's ?fps=N cap for this viewer, 0 for none.
  std::string reason{};                          ///< Why a 400 or 404 was given, for its body (may be empty).
  std::size_t camera = 0;                        ///< The camera a stream, snapshot or page is for.
  bool one_camera = false;  ///< One named camera's page or stats (/NAME/, /NAME/stats), not the server's.
  stream_type type = stream_type::multipart;  ///< The stream's Content-Type (?type=).
};

/// Access control for every endpoint.
struct route_options {
  /// Expected Authorization value ("Basic …"), empty when no --auth was given.
  std::string expected_authorization;
  /// The server listens on a loopback address: a Host must name loopback (localhost, *.localhost,
  /// 127.x.y.z, [::1]) or one of allowed_hosts, so a web page cannot reach the server through DNS
  /// rebinding. Otherwise any well-formed Host is accepted.
  bool loopback_only = false;
  /// Host names (without port) accepted besides loopback ones when loopback_only is set.
  std::vector<std::string> allowed_hosts;
  /// Reverse proxies (--trusted-proxy): from these peers the client address is the one their
  /// X-Forwarded-For (or Forwarded) header names (see client_address).
  std::vector<boost::asio::ip::address> trusted_proxies;
  /// Each camera's frame rate, in the order of `cameras` (the one camera's alone without names):
  /// the highest ?fps=N a viewer of it may ask for. A camera not listed has no upper bound.
  std::vector<double> camera_rates;
  /// The cameras' names (--camera), in order; empty for a server's one unnamed camera.
  std::vector<std::string> cameras;
};

/// Builds the Authorization value `user:pass` must arrive as.
std::string basic_authorization(std::string_view user_colon_pass);

/// Pure routing: method, target, version, Host and credentials to a resource and status.
///
/// Checked in this order, each failure answering at once: version 505, target length 414, method
/// 405, body 400, target form 400 (origin-form "/path?query" or absolute-form
/// "http://host/path"), Host 400 (HTTP/1.1 needs exactly one well-formed Host, HTTP/1.0 at most
/// one), Host not allowed 421 (see route_options::loopback_only), credentials 401, path 404, then
/// the query 400 with a reason: `fps=N` on the stream and the page (a whole number from 1 to the
/// camera's rate; the stream then sends this viewer at most N frames a second), `type=multipart`
/// or `type=octet-stream` on the stream (and the page), `mode=stream` or `mode=snapshot` on the
/// page. Other parameters (cache busters) are ignored. With named cameras, `/NAME/stream`,
/// `/NAME/snapshot` and `/NAME/` (its page) are that camera's, `?action=stream_N` and
/// `snapshot_N` the N-th camera's (from 0), the plain URLs the first camera's; an unknown camera
/// is 404 with a reason.
route_result route(const request_head& head, const route_options& options);

/// The status for a request whose header could not be read: `ec` from Beast's read_header (or
/// the stream), the parser it was reading into, and the bytes it could not parse (the start of
/// the buffer read_header filled). resource::none when the peer simply left.
route_result route_error(const boost::beast::error_code& ec, const request_parser& parser,
                         std::string_view unparsed = {});

/// True when `name` may name a camera (--camera NAME=SOURCE): [a-z0-9_-], 1 to 32 characters.
bool valid_camera_name(std::string_view name);

/// True when `value` is a well-formed Host header value: uri-host [ ":" port ] (RFC 9110 §7.2).
bool valid_host(std::string_view value);

/// True when the host part of a well-formed Host value names this machine's loopback:
/// localhost, *.localhost, 127.0.0.0/8 or [::1], with or without a port.
bool loopback_host(std::string_view value);

/// True when the Authorization value `presented` carries the same Basic credentials as
/// `expected` (both "Basic <base64>"): the scheme in any case, spaces after it tolerated, and the
/// credentials compared in constant time.
bool same_credentials(std::string_view presented, std::string_view expected);

/// The response head for the stream (what HEAD /stream gets), labelled as `type` says.
std::string stream_head(stream_type type);

/// The response head for the stream, followed by the first boundary line.
std::string stream_preamble(stream_type type);

/// A complete plain-text error response; 405 carries Allow, 503 and 429 Retry-After
/// (`retry_after` seconds, at least 1), 401 WWW-Authenticate; a `reason` follows the status text
/// in the body. The connection closes after it.
std::string error_response(status code, unsigned retry_after = 1, std::string_view reason = {});

/// A complete response carrying `body` with the given content type (HTML page, JSON stats).
std::string document_response(std::string_view content_type, std::string_view body, bool head_only);

/// The health check's answer: 200 "ok" when `healthy`, else 503 with `why` as the body; plain
/// text, the connection closes after it.
std::string health_response(bool healthy, std::string_view why, bool head_only);

/// The response head for a snapshot of `f`; the JPEG bytes follow it unchanged.
std::string snapshot_head(const frame& f);

}  // namespace mjpeg::http
