#include "mjpeg/http.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

namespace mjpeg::http {
namespace {

namespace bhttp = boost::beast::http;
using boost::beast::http::verb;

std::string_view to_std(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

constexpr std::string_view allowed_methods = "GET, HEAD";

// Constant-time comparison, so response timing does not reveal how much of a password matched.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : ~a[i]));
  return diff == 0;
}

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 §3.2.2).
bool valid_reg_name(std::string_view name) {
  constexpr std::string_view allowed = "-._~!$&'()*+,;=";
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (std::isalnum(static_cast<unsigned char>(c)) || allowed.find(c) != std::string_view::npos) continue;
    if (c == '%' && i + 2 < name.size() && is_hex(name[i + 1]) && is_hex(name[i + 2])) {
      i += 2;
      continue;
    }
    return false;
  }
  return !name.empty();
}

// A Host value split into its host ("[::1]", "example.com") and its port (possibly empty);
// nullopt when it is not uri-host [ ":" port ].
struct host_port {
  std::string_view host;
  std::string_view port;
};

std::optional<host_port> split_host(std::string_view value) {
  host_port out;
  std::string_view rest;
  if (!value.empty() && value.front() == '[') {
    const auto close = value.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = value.substr(0, close + 1);
    rest = value.substr(close + 1);
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(std::string{out.host.substr(1, out.host.size() - 2)}, ec);
    if (ec) return std::nullopt;
  } else {
    const auto colon = value.find(':');
    out.host = value.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : value.substr(colon);
    if (!valid_reg_name(out.host)) return std::nullopt;  // an IPv4 address is a reg-name too
  }
  if (!rest.empty()) {
    if (rest.front() != ':') return std::nullopt;
    out.port = rest.substr(1);
    if (out.port.size() > 5 || !std::all_of(out.port.begin(), out.port.end(), is_digit)) return std::nullopt;
  }
  return out;
}

// A host name as compared: lower case, without a trailing dot (an absolute DNS name).
std::string normal_name(std::string_view host) {
  std::string name{host};
  std::transform(name.begin(), name.end(), name.begin(), lower);
  if (name.size() > 1 && name.back() == '.') name.pop_back();
  return name;
}

// The parts of a request target the router uses: the authority of an absolute-form target (empty
// for origin-form), the path and the query. nullopt for anything else (asterisk-form,
// authority-form, other schemes, userinfo), which is a bad request for GET and HEAD.
struct target_parts {
  std::string_view authority;
  std::string_view path;
  std::string_view query;
};

std::optional<target_parts> split_target(std::string_view target) {
  target_parts out;
  target = target.substr(0, target.find('#'));  // a fragment is never sent, and means nothing here
  if (istarts_with(target, "http://") || istarts_with(target, "https://")) {
    // Absolute-form (RFC 9112 §3.2.2): servers must accept it; its authority is the host asked for.
    target.remove_prefix(target.find("://") + 3);
    const auto end = target.find_first_of("/?");
    out.authority = target.substr(0, end);
    target = end == std::string_view::npos ? std::string_view{} : target.substr(end);
    // userinfo in an http(s) URI is an error (RFC 9110 §4.2.4)
    if (out.authority.find('@') != std::string_view::npos || !split_host(out.authority)) return std::nullopt;
  } else if (target.empty() || target.front() != '/') {
    return std::nullopt;
  }
  const auto query_at = target.find('?');
  out.path = target.substr(0, query_at);
  if (out.path.empty()) out.path = "/";
  if (query_at != std::string_view::npos) out.query = target.substr(query_at + 1);
  return out;
}

// mjpg-streamer's "/?action=stream" family: the action may carry an input number ("stream_1": the
// camera of that index, from 0) and other parameters may follow, such as OctoPrint's cache buster
// ("action=stream&1700000000000"). Returns the action without its input number (into `input`),
// "" when the query names no action, or "?" for an input we do not have out of `inputs`.
std::string_view mjpg_streamer_action(std::string_view query, std::size_t inputs, std::size_t& input) {
  input = 0;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.rfind("action=", 0) != 0) continue;
    std::string_view action = param.substr(7);
    if (const auto underscore = action.find('_'); underscore != std::string_view::npos) {
      const std::string_view number = action.substr(underscore + 1);
      if (number.empty() || number.size() > 3 || !std::all_of(number.begin(), number.end(), is_digit) ||
          (number.size() > 1 && number.front() == '0'))
        return "?";
      for (const char c : number)
        input = input * 10 + static_cast<std::size_t>(c - '0');
      if (input >= inputs) return "?";
      action = action.substr(0, underscore);
    }
    return action.empty() ? "?" : action;
  }
  return "";
}

// The query's parameters as the router reads them: ?fps=N and ?type= on the stream and the page,
// ?mode= on the page. Anything else is left alone (cache busters such as "_=1700000000000").
// `error` says what is wrong, empty when nothing is.
struct query_options {
  unsigned fps = 0;
  stream_type type = stream_type::multipart;
  std::string_view mode;
  std::string error;
};

query_options read_query(std::string_view query, double camera_fps) {
  query_options out;
  // The highest whole rate a viewer may ask for; a camera slower than 1 fps still allows 1.
  const unsigned most = camera_fps > 0 ? std::max(1U, static_cast<unsigned>(camera_fps + 1e-9)) : 1000U;
  while (!query.empty() && out.error.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.rfind("fps=", 0) == 0) {
      const std::string_view value = param.substr(4);
      unsigned n = 0;
      const bool digits =
          !value.empty() && value.size() <= 4 && std::all_of(value.begin(), value.end(), is_digit);
      for (const char c : digits ? value : std::string_view{})
        n = n * 10 + static_cast<unsigned>(c - '0');
      if (!digits || n < 1 || n > most)
        out.error = "fps must be a whole number of frames per second from 1 to " + std::to_string(most) +
                    " (the camera's rate)";
      out.fps = n;
    } else if (param.rfind("type=", 0) == 0) {
      // The same parts under another Content-Type, for WebKit's fetch() (stream_type).
      const std::string_view value = param.substr(5);
      if (value == "octet-stream")
        out.type = stream_type::octet_stream;
      else if (value == "multipart")
        out.type = stream_type::multipart;
      else
        out.error = "type must be multipart or octet-stream";
    } else if (param.rfind("mode=", 0) == 0) {
      out.mode = param.substr(5);
      if (out.mode != "stream" && out.mode != "snapshot") out.error = "mode must be stream or snapshot";
    }
  }
  return out;
}

// After Beast's bad_version: 505 only for a well-formed request line whose version is one we do
// not speak ("GET / HTTP/2.0\r\n"); a space in the target, a bare LF, or a mangled version
// make a malformed request line, which is 400.
bool well_formed_but_unsupported_version(std::string_view unparsed) {
  const auto end = unparsed.find('\n');
  if (end == std::string_view::npos || end == 0 || unparsed[end - 1] != '\r') return false;
  const std::string_view line = unparsed.substr(0, end - 1);
  const auto first = line.find(' ');
  const auto second = line.find(' ', first + 1);
  if (first == std::string_view::npos || first == 0 || second == std::string_view::npos ||
      second == first + 1 || line.find(' ', second + 1) != std::string_view::npos)
    return false;
  const std::string_view version = line.substr(second + 1);
  return version.size() == 8 && version.substr(0, 5) == "HTTP/" && is_digit(version[5]) &&
         version[6] == '.' && is_digit(version[7]);
}

// "Basic <token>" to the decoded credentials; the scheme in any case and any spaces after it
// (RFC 9110 §11.1, §11.4). False when it is not Basic or not base64.
bool basic_credentials(std::string_view value, std::string& out) {
  namespace b64 = boost::beast::detail::base64;
  const auto space = value.find_first_of(" \t");
  if (space == std::string_view::npos || !iequals(value.substr(0, space), "basic")) return false;
  std::string_view token = value.substr(space);
  token.remove_prefix(std::min(token.find_first_not_of(" \t"), token.size()));
  token = token.substr(0, token.find_last_not_of(" \t") + 1);
  if (token.empty()) return false;
  // decoded_size counts whole groups of four only; decode also writes what an unpadded last group
  // holds (up to two bytes more), so leave room for it (found by the fuzzer: a stack overflow).
  out.resize(b64::decoded_size(token.size()) + 3);
  const auto [written, read] = b64::decode(out.data(), token.data(), token.size());
  out.resize(written);
  // Only padding may follow, and only as much as completes the last group of four.
  const std::string_view rest = token.substr(read);
  if (read % 4 == 1 || rest.find_first_not_of('=') != std::string_view::npos) return false;
  return rest.empty() || (read + rest.size()) % 4 == 0;
}

std::string status_line(status code) {
  std::string line = "HTTP/1.1 ";
  line += std::to_string(static_cast<unsigned>(code));
  line += ' ';
  line += to_std(bhttp::obsolete_reason(code));
  line += "\r\n";
  return line;
}

}  // namespace

request_head head_of(const request_parser& parser) {
  const auto& msg = parser.get();
  request_head head;
  head.method = msg.method();
  head.target = std::string{to_std(msg.target())};
  head.version = msg.version();
  head.authorization = std::string{to_std(msg[bhttp::field::authorization])};
  head.host = std::string{to_std(msg[bhttp::field::host])};
  head.host_count = msg.count(bhttp::field::host);
  const auto length = parser.content_length();
  head.has_body = parser.chunked() || (length && *length > 0);
  return head;
}

std::string basic_authorization(std::string_view user_colon_pass) {
  namespace b64 = boost::beast::detail::base64;
  std::string encoded(b64::encoded_size(user_colon_pass.size()), '\0');
  encoded.resize(b64::encode(encoded.data(), user_colon_pass.data(), user_colon_pass.size()));
  return "Basic " + encoded;
}

bool valid_camera_name(std::string_view name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
  });
}

bool valid_host(std::string_view value) {
  return split_host(value).has_value();
}

bool loopback_host(std::string_view value) {
  const auto parts = split_host(value);
  if (!parts) return false;
  const std::string name = normal_name(parts->host);
  if (name == "localhost" || (name.size() > 10 && name.substr(name.size() - 10) == ".localhost")) return true;
  boost::system::error_code ec;
  if (name.front() == '[') {
    const auto v6 = boost::asio::ip::make_address_v6(name.substr(1, name.size() - 2), ec);
    return !ec && (v6.is_loopback() ||
                   (v6.is_v4_mapped() &&
                    boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).is_loopback()));
  }
  const auto v4 = boost::asio::ip::make_address_v4(name, ec);  // dotted quad only, as browsers send it
  return !ec && v4.is_loopback();
}

bool same_credentials(std::string_view presented, std::string_view expected) {
  std::string given, wanted;
  if (!basic_credentials(expected, wanted)) return false;
  const bool parsed = basic_credentials(presented, given);
  return same_secret(given, wanted) && parsed;
}

route_result route(const request_head& head, const route_options& options) {
  const auto error = [](status code) { return route_result{resource::error, code, false}; };
  if (head.version != 10 && head.version != 11) return error(status::http_version_not_supported);
  if (head.target.size() > target_limit) return error(status::uri_too_long);
  if (head.method != verb::get && head.method != verb::head) return error(status::method_not_allowed);
  if (head.has_body) return error(status::bad_request);
  const auto target = split_target(head.target);
  if (!target) return error(status::bad_request);

  // Exactly one well-formed Host for HTTP/1.1, at most one for HTTP/1.0 (RFC 9112 §3.2). The host
  // asked for is the absolute-form target's authority if there is one, else the Host header.
  if (head.host_count > 1 || (head.host_count == 0 && head.version >= 11) ||
      (head.host_count == 1 && !valid_host(head.host)))
    return error(status::bad_request);
  const std::string_view asked = !target->authority.empty() ? target->authority : std::string_view{head.host};
  if (options.loopback_only && !asked.empty() && !loopback_host(asked)) {
    const std::string name = normal_name(split_host(asked)->host);
    const bool allowed = std::any_of(options.allowed_hosts.begin(), options.allowed_hosts.end(),
                                     [&](const std::string& a) { return normal_name(a) == name; });
    if (!allowed) return error(status::misdirected_request);
  }

  auto login = credentials::not_checked;
  if (!options.expected_authorization.empty()) {
    login = head.authorization.empty()                                             ? credentials::missing
            : same_credentials(head.authorization, options.expected_authorization) ? credentials::right
                                                                                   : credentials::wrong;
    if (login != credentials::right) return {resource::error, status::unauthorized, false, login};
  }

  // Routes match on the path, then the query: mjpg-streamer's "/?action=…" URLs, ?fps= on the
  // stream (and on the page, which passes it on), ?mode= on the page.
  const bool head_only = head.method == verb::head;
  // ?fps=N is checked against the rate of the camera the URL names (the first for plain URLs).
  const auto found = [&](resource what, std::size_t camera = 0) {
    const query_options query =
        read_query(target->query, camera < options.camera_rates.size() ? options.camera_rates[camera] : 0.0);
    const bool streamed = what == resource::stream || what == resource::page;
    if (!query.error.empty() && streamed)
      return route_result{resource::error, status::bad_request, false, login, 0, 0, query.error};
    route_result result{what, status::ok, head_only, login, 0, streamed ? query.fps : 0U, {}, camera};
    if (what == resource::stream) result.type = query.type;
    return result;
  };
  const auto not_found = route_result{resource::error, status::not_found, false, login};
  const std::string_view path = target->path;
  const std::size_t camera_count = std::max<std::size_t>(1, options.cameras.size());
  if (path == "/") {
    std::size_t input = 0;
    const std::string_view action = mjpg_streamer_action(target->query, camera_count, input);
    auto result = action.empty()         ? found(resource::page)
                  : action == "stream"   ? found(resource::stream, input)
                  : action == "snapshot" ? found(resource::snapshot, input)
                                         : not_found;
    if (action == "?" && options.cameras.size() > 1)
      result.reason = "there are " + std::to_string(camera_count) + " cameras, numbered 0 to " +
                      std::to_string(camera_count - 1);
    result.camera = input;
    return result;
  }
  if (path == "/stream") return found(resource::stream);
  if (path == "/snapshot") return found(resource::snapshot);
  if (path == "/stats") return found(resource::stats);
  if (path == "/metrics") return found(resource::metrics);
  if (path == "/healthz") return found(resource::health);
  if (options.cameras.empty()) return not_found;
  if (path == "/cameras") return found(resource::cameras);
  // "/NAME/…": one named camera's stream, snapshot or page (whose status line asks "stats").
  const auto slash = path.find('/', 1);
  const std::string_view name = path.substr(1, slash == std::string_view::npos ? path.size() : slash - 1);
  const auto known = std::find(options.cameras.begin(), options.cameras.end(), name);
  if (known == options.cameras.end()) {
    auto unknown = not_found;
    if (valid_camera_name(name) && slash != std::string_view::npos)
      unknown.reason = "no camera of that name; /cameras lists them";
    return unknown;
  }
  const std::string_view rest = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  const auto camera = static_cast<std::size_t>(known - options.cameras.begin());
  auto result = rest == "/stream"     ? found(resource::stream, camera)
                : rest == "/snapshot" ? found(resource::snapshot, camera)
                : rest == "/stats"    ? found(resource::stats, camera)
                : rest == "/"         ? found(resource::page, camera)
                                      : not_found;
  result.camera = camera;
  result.one_camera = result.what == resource::page || result.what == resource::stats;
  if (rest.empty()) result.reason = "a camera's page is its name with a slash after it";
  return result;
}

route_result route_error(const boost::beast::error_code& ec, const request_parser& parser,
                         std::string_view unparsed) {
  const auto error = [](status code) { return route_result{resource::error, code, false}; };
  if (ec == boost::asio::error::timed_out) return error(status::request_timeout);
  // Beast says bad_version for any request line it cannot finish at the version, a target with a
  // space and a bare LF included: only a well-formed line with another version is 505.
  if (ec == bhttp::error::bad_version)
    return error(well_formed_but_unsupported_version(unparsed) ? status::http_version_not_supported
                                                               : status::bad_request);
  // The header limit also catches a request line that never ends: that one is the target's fault.
  if (ec == bhttp::error::header_limit)
    return error(parser.get().method_string().empty() ? status::uri_too_long
                                                      : status::request_header_fields_too_large);
  // The peer left, reset, or we are shutting down: there is nobody to answer.
  if (ec == bhttp::error::end_of_stream || ec == boost::asio::error::eof ||
      ec == boost::asio::error::connection_reset || ec == boost::asio::error::operation_aborted ||
      ec == boost::asio::error::broken_pipe)
    return {};
  return error(status::bad_request);
}

std::string stream_head(stream_type type) {
  std::string out = status_line(status::ok);
  // Either way the boundary is named, so a client that splits on it finds it (a parameter that
  // application/octet-stream does not define is ignored by those that do not: RFC 2045 §5.1).
  out += type == stream_type::octet_stream ? "Content-Type: application/octet-stream;boundary="
                                           : "Content-Type: multipart/x-mixed-replace;boundary=";
  out += boundary;
  out +=
      "\r\n"
      "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
      "Pragma: no-cache\r\n"
      "Connection: close\r\n"
      "\r\n";
  return out;
}

std::string stream_preamble(stream_type type) {
  std::string out = stream_head(type);
  out += "--";
  out += boundary;
  out += "\r\n";
  return out;
}

std::string error_response(status code, unsigned retry_after, std::string_view reason) {
  std::string body{to_std(bhttp::obsolete_reason(code))};
  if (!reason.empty()) {
    body += ": ";
    body += reason;
  }
  body += '\n';
  std::string out = status_line(code);
  out += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  if (code == status::method_not_allowed) {
    out += "Allow: ";
    out += allowed_methods;
    out += "\r\n";
  }
  if (code == status::service_unavailable || code == status::too_many_requests)
    out += "Retry-After: " + std::to_string(std::max(retry_after, 1U)) + "\r\n";
  if (code == status::unauthorized) out += "WWW-Authenticate: Basic realm=\"mjpeg\", charset=\"UTF-8\"\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

std::string document_response(std::string_view content_type, std::string_view body, bool head_only) {
  std::string out = status_line(status::ok);
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

std::string health_response(bool healthy, std::string_view why, bool head_only) {
  const std::string body = healthy ? std::string{"ok\n"} : std::string{why} + "\n";
  std::string out = status_line(healthy ? status::ok : status::service_unavailable);
  out += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

std::string snapshot_head(const frame& f) {
  std::string out = status_line(status::ok);
  out += f.part_header().substr(0, f.part_header().size() - 2);  // same fields, minus the blank line
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  return out;
}

}  // namespace mjpeg::http
