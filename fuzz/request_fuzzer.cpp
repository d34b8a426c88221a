// libFuzzer target over request handling: the bytes a client sends, through the same Beast
// parser the servers use, the router, and the response writers. Any crash, sanitizer report,
// or a route that produces no valid response is a bug.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/http/error.hpp>

#include "mjpeg/http.hpp"

namespace {

namespace http = mjpeg::http;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks how the request arrives: in pieces of 1..256 bytes, as a network
  // would deliver it; the rest is the request.
  const std::size_t piece = static_cast<std::size_t>(data[0]) + 1;
  const std::string_view input{reinterpret_cast<const char*>(data + 1), size - 1};

  http::request_parser parser;
  boost::beast::error_code ec = boost::beast::http::error::need_more;
  std::string buffered;
  for (std::size_t at = 0; at < input.size() && !parser.is_header_done();) {
    const std::size_t take = std::min(piece, input.size() - at);
    buffered.append(input.substr(at, take));
    at += take;
    // What Beast's read_header does with each read: offer everything not yet consumed.
    const auto used = parser.put(boost::asio::buffer(buffered), ec);
    buffered.erase(0, used);
    if (ec && ec != boost::beast::http::error::need_more) break;
    if (!ec && parser.is_header_done()) break;
  }
  if (!parser.is_header_done() && (!ec || ec == boost::beast::http::error::need_more))
    ec = boost::beast::http::error::partial_message;

  // Bound to loopback with --auth and one --allow-host: every check the router has is armed.
  http::route_options options;
  options.expected_authorization = http::basic_authorization("user:secret");
  options.loopback_only = true;
  options.allowed_hosts = {"camera.example"};
  options.cameras = {"front", "yard", "door_2"};  // three named cameras: their URLs are routed too
  const http::route_result plan =
      ec ? http::route_error(ec, parser, buffered) : http::route(http::head_of(parser), options);

  // Whatever the input, the answer is a well-formed response or a silent close.
  if (plan.what == http::resource::error) {
    const std::string response = http::error_response(plan.code, plan.retry_after, plan.reason);
    check(response.rfind("HTTP/1.1 4", 0) == 0 || response.rfind("HTTP/1.1 5", 0) == 0);
    check(response.find("\r\n\r\n") != std::string::npos);
  } else if (plan.what != http::resource::none) {
    check(plan.code == http::status::ok);
    check(parser.is_header_done());
    check(plan.camera < options.cameras.size());
  }
  return 0;
}
