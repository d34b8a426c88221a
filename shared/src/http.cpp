#include "mjpeg/http.hpp"

#include <boost/asio/error.hpp>
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

route_result route(const request_head& head, const route_options& options) {
  const auto error = [](status code) { return route_result{resource::error, code, false}; };
  if (head.version != 10 && head.version != 11) return error(status::http_version_not_supported);
  if (head.target.size() > target_limit) return error(status::uri_too_long);
  if (head.method != verb::get && head.method != verb::head) return error(status::method_not_allowed);
  if (head.has_body) return error(status::bad_request);
  if (!options.expected_authorization.empty() &&
      !same_secret(head.authorization, options.expected_authorization))
    return error(status::unauthorized);

  // Routes match on the path; the query only matters for mjpg-streamer's "/?action=…" URLs.
  const std::string_view target = head.target;
  const auto query_at = target.find('?');
  const std::string_view path = target.substr(0, query_at);
  const std::string_view query = query_at == std::string_view::npos ? "" : target.substr(query_at + 1);
  const bool head_only = head.method == verb::head;
  const auto found = [&](resource what) { return route_result{what, status::ok, head_only}; };

  if (path == "/") {
    if (query.empty()) return found(resource::page);
    if (query == "action=stream") return found(resource::stream);
    if (query == "action=snapshot") return found(resource::snapshot);
    return error(status::not_found);
  }
  if (path == "/stream") return found(resource::stream);
  if (path == "/snapshot") return found(resource::snapshot);
  if (path == "/stats") return found(resource::stats);
  return error(status::not_found);
}

route_result route_error(const boost::beast::error_code& ec, const request_parser& parser) {
  const auto error = [](status code) { return route_result{resource::error, code, false}; };
  if (ec == boost::asio::error::timed_out) return error(status::request_timeout);
  if (ec == bhttp::error::bad_version) return error(status::http_version_not_supported);
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

std::string stream_head() {
  std::string out = status_line(status::ok);
  out += "Content-Type: multipart/x-mixed-replace;boundary=";
  out += boundary;
  out +=
      "\r\n"
      "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
      "Pragma: no-cache\r\n"
      "Connection: close\r\n"
      "\r\n";
  return out;
}

std::string stream_preamble() {
  std::string out = stream_head();
  out += "--";
  out += boundary;
  out += "\r\n";
  return out;
}

std::string error_response(status code) {
  std::string body{to_std(bhttp::obsolete_reason(code))};
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
  if (code == status::service_unavailable) out += "Retry-After: 1\r\n";
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

std::string snapshot_head(const frame& f) {
  std::string out = status_line(status::ok);
  out += f.part_header().substr(0, f.part_header().size() - 2);  // same fields, minus the blank line
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  return out;
}

}  // namespace mjpeg::http
