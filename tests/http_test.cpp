#include <gtest/gtest.h>

#include <deque>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "mjpeg/http.hpp"

namespace {

namespace http = mjpeg::http;
using http::resource;
using http::status;

// A SyncReadStream that hands out the given chunks, then ends with `final_error` (end of stream
// by default, or timed_out to model a client that stops sending).
class chunk_stream {
 public:
  chunk_stream(std::deque<std::string> chunks, boost::system::error_code final_error)
      : chunks_{std::move(chunks)}, final_{final_error} {}
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    if (chunks_.empty()) {
      ec = final_;
      return 0;
    }
    ec = {};
    std::string& chunk = chunks_.front();
    const std::size_t n = boost::asio::buffer_copy(buffers, boost::asio::buffer(chunk));
    chunk.erase(0, n);
    if (chunk.empty()) chunks_.pop_front();
    return n;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error{ec};
    return n;
  }

 private:
  std::deque<std::string> chunks_;
  boost::system::error_code final_;
};

// The same path the servers take: Beast's read_header into our parser, then the router.
http::route_result handle(std::deque<std::string> chunks, const http::route_options& options = {},
                          boost::system::error_code final_error = boost::asio::error::eof) {
  chunk_stream stream{std::move(chunks), final_error};
  boost::beast::flat_buffer buffer;
  http::request_parser parser;
  boost::system::error_code ec;
  boost::beast::http::read_header(stream, buffer, parser, ec);
  if (ec)
    return http::route_error(ec, parser,
                             {static_cast<const char*>(buffer.data().data()), buffer.data().size()});
  return http::route(http::head_of(parser), options);
}

http::route_result handle(const std::string& raw) {
  return handle(std::deque<std::string>{raw});
}

std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

http::route_options with_auth(const std::string& user_colon_pass) {
  http::route_options options;
  options.expected_authorization = http::basic_authorization(user_colon_pass);
  return options;
}

http::route_options loopback_bind(std::vector<std::string> allowed = {}) {
  http::route_options options;
  options.loopback_only = true;
  options.allowed_hosts = std::move(allowed);
  return options;
}

TEST(Route, Endpoints) {
  EXPECT_EQ(handle(get("/")).what, resource::page);
  EXPECT_EQ(handle(get("/stream")).what, resource::stream);
  EXPECT_EQ(handle(get("/stream?t=123")).what, resource::stream);
  EXPECT_EQ(handle(get("/snapshot")).what, resource::snapshot);
  EXPECT_EQ(handle(get("/stats")).what, resource::stats);
  EXPECT_EQ(handle(get("/metrics")).what, resource::metrics);
  // mjpg-streamer compatible URLs.
  EXPECT_EQ(handle(get("/?action=stream")).what, resource::stream);
  EXPECT_EQ(handle(get("/?action=snapshot")).what, resource::snapshot);
}

TEST(Route, HeadIsHeaderOnly) {
  const auto r = handle("HEAD /snapshot HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.what, resource::snapshot);
  EXPECT_TRUE(r.head_only);
  EXPECT_FALSE(handle(get("/snapshot")).head_only);
}

TEST(Route, Http10IsServed) {
  EXPECT_EQ(handle("GET /stream HTTP/1.0\r\n\r\n").what, resource::stream);
}

TEST(Route, UnknownPathIs404) {
  for (const char* target : {"/nope", "/streamx", "/?action=nope", "/favicon.ico", "/?action=stream_1"}) {
    const auto r = handle(get(target));
    EXPECT_EQ(r.what, resource::error) << target;
    EXPECT_EQ(r.code, status::not_found) << target;
  }
}

TEST(Route, OtherMethodsAre405) {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"}) {
    const auto r = handle(std::string{method} + " /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.code, status::method_not_allowed) << method;
  }
}

TEST(Route, MalformedRequestsAre400) {
  for (const std::string& raw : {
           std::string{"GARBAGE\r\n\r\n"}, std::string{"GET /stream\r\n\r\n"},  // no version
           std::string{"GET /stream HTTP/1.1\r\nNoColonHere\r\n\r\n"},          // header without colon
           std::string{"GET /stream HTTP/1.1\r\nContent-Length: x\r\n\r\n"},
           std::string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15},  // a TLS hello
       }) {
    const auto r = handle(raw);
    EXPECT_EQ(r.what, resource::error) << raw;
    EXPECT_EQ(r.code, status::bad_request) << raw;
  }
}

TEST(Route, BodyOnGetIs400) {
  EXPECT_EQ(handle("GET /stream HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").code, status::bad_request);
  EXPECT_EQ(handle("GET /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").code,
            status::bad_request);
}

TEST(Route, UnsupportedVersionIs505) {
  EXPECT_EQ(handle("GET /stream HTTP/2.0\r\n\r\n").code, status::http_version_not_supported);
  EXPECT_EQ(handle("GET /stream HTTP/0.9\r\n\r\n").code, status::http_version_not_supported);
}

TEST(Route, LongTargetIs414) {
  EXPECT_EQ(handle(get("/" + std::string(3000, 'a'))).code, status::uri_too_long);
  // Longer than the whole header limit, with the request line still unfinished.
  EXPECT_EQ(handle("GET /" + std::string(9000, 'a')).code, status::uri_too_long);
}

TEST(Route, OversizedHeadersAre431) {
  std::string raw = "GET /stream HTTP/1.1\r\n";
  for (int i = 0; i < 200; ++i)
    raw += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'z') + "\r\n";
  raw += "\r\n";
  ASSERT_GT(raw.size(), http::header_limit);
  EXPECT_EQ(handle(raw).code, status::request_header_fields_too_large);
  // One huge field, arriving in pieces.
  const std::string huge = "X: " + std::string(9000, 'b');
  EXPECT_EQ(handle({"GET / HTTP/1.1\r\n", huge.substr(0, 4000), huge.substr(4000), "\r\n\r\n"}).code,
            status::request_header_fields_too_large);
}

TEST(Route, HeaderTimeoutIs408) {
  const auto r = handle({"GET /stream HTTP/1.1\r\nHost"}, {}, boost::asio::error::timed_out);
  EXPECT_EQ(r.code, status::request_timeout);
}

TEST(Route, PeerLeavingGetsNoResponse) {
  EXPECT_EQ(handle({}, {}, boost::asio::error::eof).what, resource::none);
  EXPECT_EQ(handle({"GET /str"}, {}, boost::asio::error::connection_reset).what, resource::none);
}

TEST(Route, AuthRequiredWhenConfigured) {
  const http::route_options options = with_auth("alice:secret");
  EXPECT_EQ(options.expected_authorization, "Basic YWxpY2U6c2VjcmV0");
  EXPECT_EQ(handle({get("/stream")}, options).code, status::unauthorized);
  EXPECT_EQ(
      handle({"GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n"}, options)
          .code,
      status::unauthorized);
  EXPECT_EQ(
      handle({"GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"}, options)
          .what,
      resource::stream);
}

// The request arrives one byte per read, and split in two at every possible point.
TEST(Route, SplitAtEveryByte) {
  const std::string raw = "GET /snapshot HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: test\r\n\r\n";
  std::deque<std::string> bytes;
  for (const char c : raw)
    bytes.emplace_back(1, c);
  EXPECT_EQ(handle(bytes).what, resource::snapshot);
  for (std::size_t split = 1; split < raw.size(); ++split) {
    const auto r = handle({raw.substr(0, split), raw.substr(split)});
    EXPECT_EQ(r.what, resource::snapshot) << "split at " << split;
  }
  const std::string bad = "GET /stream HTTP/1.1\r\nBad Header\r\n\r\n";
  for (std::size_t split = 1; split < bad.size(); ++split)
    EXPECT_EQ(handle({bad.substr(0, split), bad.substr(split)}).code, status::bad_request)
        << "split at " << split;
}

// --- issue 15: Host (3), mjpg-streamer URLs (5), auth scheme (6), request lines (10) ---------------

std::string get_with_host(const std::string& target, const std::string& host) {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
}

TEST(Route, Http11NeedsExactlyOneWellFormedHost) {
  EXPECT_EQ(handle("GET /snapshot HTTP/1.1\r\n\r\n").code, status::bad_request) << "no Host";
  EXPECT_EQ(handle("GET /snapshot HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n").code,
            status::bad_request)
      << "two Hosts";
  for (const char* host : {"", "ex ample", "a/b", "a@b", "[::1", "[zz]", "[::1]x", "host:port", "host:123456",
                           "a:1:2", "%zz", "host\x7f"}) {
    const auto r = handle(get_with_host("/snapshot", host));
    EXPECT_EQ(r.code, status::bad_request) << "Host: " << host;
    EXPECT_FALSE(http::valid_host(host)) << host;
  }
  for (const char* host : {"localhost", "localhost:8080", "example.com", "EXAMPLE.com:", "10.0.0.1:80",
                           "[::1]", "[fe80::1]:8080", "my-cam_1.local", "a%20b"}) {
    EXPECT_EQ(handle(get_with_host("/snapshot", host)).what, resource::snapshot) << "Host: " << host;
    EXPECT_TRUE(http::valid_host(host)) << host;
  }
  // HTTP/1.0 may leave Host out, but not send two.
  EXPECT_EQ(handle("GET /snapshot HTTP/1.0\r\n\r\n").what, resource::snapshot);
  EXPECT_EQ(handle("GET /snapshot HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n").code, status::bad_request);
  EXPECT_EQ(handle("GET /snapshot HTTP/1.0\r\nHost: a b\r\n\r\n").code, status::bad_request);
}

TEST(Route, LoopbackBindAnswersOnlyLoopbackHosts) {
  const http::route_options loopback = loopback_bind();
  for (const char* host :
       {"localhost", "LocalHost:8080", "localhost.", "cam.localhost", "cam.localhost:1", "127.0.0.1",
        "127.0.0.1:8080", "127.1.2.3", "[::1]", "[::1]:8080", "[::ffff:127.0.0.1]"}) {
    EXPECT_EQ(handle({get_with_host("/stats", host)}, loopback).what, resource::stats) << host;
    EXPECT_TRUE(http::loopback_host(host)) << host;
  }
  // What a DNS-rebinding page sends, and names that only look like loopback.
  for (const char* host :
       {"evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.evil.example",
        "notlocalhost", "10.0.0.1", "0.0.0.0", "2130706433", "127.1", "[::2]", "[::]"}) {
    const auto r = handle({get_with_host("/stats", host)}, loopback);
    EXPECT_EQ(r.what, resource::error) << host;
    EXPECT_EQ(r.code, status::misdirected_request) << host;
    EXPECT_FALSE(http::loopback_host(host)) << host;
  }
  // HTTP/1.0 without Host names nothing to check (browsers always send Host).
  EXPECT_EQ(handle({"GET /stats HTTP/1.0\r\n\r\n"}, loopback).what, resource::stats);
  // Bound elsewhere, any well-formed Host is fine.
  EXPECT_EQ(handle(get_with_host("/stats", "evil.example")).what, resource::stats);
}

TEST(Route, AllowHostAddsNamesToALoopbackBind) {
  const http::route_options options = loopback_bind({"cam.example", "[fd00::1]"});
  EXPECT_EQ(handle({get_with_host("/stats", "cam.example")}, options).what, resource::stats);
  EXPECT_EQ(handle({get_with_host("/stats", "CAM.Example.:8443")}, options).what, resource::stats);
  EXPECT_EQ(handle({get_with_host("/stats", "[fd00::1]:80")}, options).what, resource::stats);
  EXPECT_EQ(handle({get_with_host("/stats", "localhost")}, options).what, resource::stats);
  EXPECT_EQ(handle({get_with_host("/stats", "other.example")}, options).code, status::misdirected_request);
  EXPECT_EQ(handle({get_with_host("/stats", "sub.cam.example")}, options).code, status::misdirected_request);
}

TEST(Route, AbsoluteFormTargetsAreAccepted) {
  // RFC 9112 §3.2.2: servers must accept absolute-form; its authority is the host asked for.
  EXPECT_EQ(handle(get("http://x/snapshot")).what, resource::snapshot);
  EXPECT_EQ(handle(get("HTTP://X:8080/stream?t=1")).what, resource::stream);
  EXPECT_EQ(handle(get("https://x/stats")).what, resource::stats);
  EXPECT_EQ(handle(get("http://x")).what, resource::page);
  EXPECT_EQ(handle(get("http://x?action=snapshot")).what, resource::snapshot);
  EXPECT_EQ(handle(get("http://x/nope")).code, status::not_found);
  const http::route_options loopback = loopback_bind();
  EXPECT_EQ(handle({get_with_host("http://localhost:8080/snapshot", "evil.example")}, loopback).what,
            resource::snapshot);
  EXPECT_EQ(handle({get_with_host("http://evil.example/snapshot", "localhost")}, loopback).code,
            status::misdirected_request);
  // Still HTTP/1.1: Host is required.
  EXPECT_EQ(handle("GET http://x/snapshot HTTP/1.1\r\n\r\n").code, status::bad_request);
}

TEST(Route, OtherTargetFormsAre400) {
  for (const char* target : {"*", "stream", "x:80", "ftp://x/stream", "http://", "http:///stream",
                             "http://user:pass@x/stream", "http://a b/"}) {
    const auto r = handle(get(target));
    EXPECT_EQ(r.code, status::bad_request) << target;
  }
}

TEST(Route, MalformedRequestLinesAre400Not505) {
  for (const std::string& raw : {
           std::string{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"},     // a space in the target
           std::string{"GET / HTTP/1.1\nHost: x\n\n"},              // bare LF line ends
           std::string{"GET / HTTP/1.1\rHost: x\r\n\r\n"},          // bare CR
           std::string{"GET / HTTP/1.1 \r\nHost: x\r\n\r\n"},       // a space after the version
           std::string{"GET / http/1.1\r\nHost: x\r\n\r\n"},        // the name is case-sensitive
           std::string{"GET / HTTP/1.10\r\nHost: x\r\n\r\n"},       // two-digit minor
           std::string{"GET / HTTP/11\r\nHost: x\r\n\r\n"},         // no dot
           std::string{"GET / FOO/1.1\r\nHost: x\r\n\r\n"},         // not HTTP
           std::string{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n"},       // two spaces
           std::string{"GET / HTTP/2.0 extra\r\nHost: x\r\n\r\n"},  // more after the version
       }) {
    const auto r = handle(raw);
    EXPECT_EQ(r.what, resource::error) << raw;
    EXPECT_EQ(r.code, status::bad_request) << raw;
  }
  // A well-formed request line with a version we do not speak stays 505.
  for (const char* version : {"HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"})
    EXPECT_EQ(handle("GET / " + std::string{version} + "\r\nHost: x\r\n\r\n").code,
              status::http_version_not_supported)
        << version;
  // Delivered a byte at a time, bare LF is still 400.
  const std::string bare_lf = "GET / HTTP/1.1\nHost: x\n\n";
  std::deque<std::string> bytes;
  for (const char c : bare_lf)
    bytes.emplace_back(1, c);
  EXPECT_EQ(handle(bytes).code, status::bad_request);
}

TEST(Route, MjpgStreamerUrlVariants) {
  // OctoPrint's cache buster, mjpg-streamer's input number, and extra parameters.
  for (const char* target : {"/?action=stream", "/?action=stream&1700000000000", "/?action=stream_0",
                             "/?action=stream_0&1700000000000", "/?action=stream&foo=bar&x",
                             "/?t=1&action=stream", "/?action=stream&action=snapshot"})
    EXPECT_EQ(handle(get(target)).what, resource::stream) << target;
  for (const char* target : {"/?action=snapshot", "/?action=snapshot&1700000000000", "/?action=snapshot_0",
                             "/?action=snapshot_0&n=3"})
    EXPECT_EQ(handle(get(target)).what, resource::snapshot) << target;
  // No action: the page, whatever else the query says (a cache buster on the page).
  EXPECT_EQ(handle(get("/?1700000000000")).what, resource::page);
  // Actions we do not have, or an input we do not have: 404, as mjpg-streamer answers.
  for (const char* target : {"/?action=stream_1", "/?action=take", "/?action=", "/?action=streamx"})
    EXPECT_EQ(handle(get(target)).code, status::not_found) << target;
}

TEST(Route, NamedCamerasHaveTheirOwnUrls) {
  http::route_options options;
  options.cameras = {"front", "back", "door_2"};
  const auto expect = [&](const std::string& target, resource what, std::size_t camera) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.what, what) << target;
    EXPECT_EQ(r.camera, camera) << target;
  };
  expect("/back/stream", resource::stream, 1);
  expect("/back/stream?fps=2&_=1", resource::stream, 1);
  expect("/door_2/snapshot", resource::snapshot, 2);
  expect("/front/", resource::page, 0);
  expect("/stream", resource::stream, 0);
  expect("/snapshot", resource::snapshot, 0);
  expect("/", resource::page, 0);
  expect("/cameras", resource::cameras, 0);
  expect("/?action=stream_2", resource::stream, 2);
  expect("/?action=snapshot_1&1700000000000", resource::snapshot, 1);
  expect("/back/stats", resource::stats, 1);
  EXPECT_TRUE(handle({get("/back/")}, options).one_camera);
  EXPECT_TRUE(handle({get("/back/stats")}, options).one_camera) << "that camera's own counters";
  EXPECT_FALSE(handle({get("/stats")}, options).one_camera) << "the server's";
  EXPECT_FALSE(handle({get("/")}, options).one_camera);
  // Unknown cameras and inputs: 404, with the reason in the body where it helps.
  for (const char* target :
       {"/side/stream", "/Front/stream", "/front/streamx", "/front", "/?action=stream_3",
        "/?action=stream_01", "/?action=snapshot_99999", "/front/stream/x", "//stream"}) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.code, status::not_found) << target;
  }
  EXPECT_NE(handle({get("/side/stream")}, options).reason.find("/cameras lists them"), std::string::npos);
  EXPECT_NE(handle({get("/?action=stream_3")}, options).reason.find("numbered 0 to 2"), std::string::npos);
  // Without named cameras, none of this exists.
  EXPECT_EQ(handle(get("/cameras")).code, status::not_found);
  EXPECT_EQ(handle(get("/front/stream")).code, status::not_found);
}

// ?fps=N is held to the rate of the camera the URL names: each camera has its own (its section).
TEST(Route, FpsCapsAreHeldToEachCamerasOwnRate) {
  http::route_options options;
  options.cameras = {"fast", "slow"};
  options.camera_rates = {30, 5};
  for (const char* target : {"/fast/stream?fps=10", "/?action=stream_0&fps=10", "/stream?fps=10"}) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.what, resource::stream) << target;
    EXPECT_EQ(r.max_fps, 10u) << target;
  }
  for (const char* target : {"/slow/stream?fps=10", "/?action=stream_1&fps=10", "/slow/?fps=6"}) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.code, status::bad_request) << target;
    EXPECT_NE(r.reason.find("from 1 to 5 (the camera's rate)"), std::string::npos)
        << target << ": " << r.reason;
  }
  EXPECT_EQ(handle({get("/slow/stream?fps=5")}, options).max_fps, 5u);
}

TEST(Route, CameraNames) {
  for (const char* good : {"a", "front", "door_2", "cam-1", "0", "abcdefghijklmnopqrstuvwxyz012345"})
    EXPECT_TRUE(http::valid_camera_name(good)) << good;
  for (const char* bad : {"", "Front", "a b", "a/b", "a?b", "a.b", "abcdefghijklmnopqrstuvwxyz0123456", "é"})
    EXPECT_FALSE(http::valid_camera_name(bad)) << bad;
}

http::route_options camera_at(double fps) {
  http::route_options options;
  options.camera_rates = {fps};
  return options;
}

TEST(Route, FpsCapsOneViewersStream) {
  const auto options = camera_at(30);
  for (const auto& [target, fps] :
       std::vector<std::pair<std::string, unsigned>>{{"/stream", 0},
                                                     {"/stream?fps=1", 1},
                                                     {"/stream?fps=2", 2},
                                                     {"/stream?fps=30", 30},
                                                     {"/stream?fps=002", 2},
                                                     {"/stream?_=1700000000000&fps=5", 5},
                                                     {"/?action=stream&fps=3", 3},
                                                     {"/?action=stream_0&1700000000000&fps=10", 10}}) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.what, resource::stream) << target;
    EXPECT_EQ(r.max_fps, fps) << target;
  }
  // The page takes it too (and passes it on to its stream); other resources ignore it.
  EXPECT_EQ(handle({get("/?fps=4")}, options).max_fps, 4u);
  EXPECT_EQ(handle({get("/snapshot?fps=0")}, options).what, resource::snapshot);
  EXPECT_EQ(handle({get("/stats?fps=x")}, options).what, resource::stats);
}

TEST(Route, BadFpsIs400WithTheReason) {
  const auto options = camera_at(30);
  for (const char* target :
       {"/stream?fps=0", "/stream?fps=-1", "/stream?fps=abc", "/stream?fps=", "/stream?fps=31",
        "/stream?fps=2.5", "/stream?fps=1e1", "/stream?fps=99999999999", "/stream?fps=+2",
        "/stream?fps=2&fps=0", "/?action=stream&fps=0", "/?fps=31", "/?mode=snapshot&fps=0"}) {
    const auto r = handle({get(target)}, options);
    EXPECT_EQ(r.what, resource::error) << target;
    EXPECT_EQ(r.code, status::bad_request) << target;
    EXPECT_EQ(r.reason, "fps must be a whole number of frames per second from 1 to 30 (the camera's rate)")
        << target;
  }
  // The camera's rate is the ceiling, rounded down; a camera slower than 1 fps still allows 1.
  EXPECT_EQ(handle({get("/stream?fps=7")}, camera_at(7.5)).max_fps, 7u);
  EXPECT_EQ(handle({get("/stream?fps=8")}, camera_at(7.5)).code, status::bad_request);
  EXPECT_EQ(handle({get("/stream?fps=1")}, camera_at(0.5)).max_fps, 1u);
}

TEST(Route, PageModeIsStreamOrSnapshot) {
  EXPECT_EQ(handle(get("/?mode=snapshot")).what, resource::page);
  EXPECT_EQ(handle(get("/?mode=stream")).what, resource::page);
  EXPECT_EQ(handle(get("/?mode=snapshot&fps=2")).max_fps, 2u);
  for (const char* target : {"/?mode=video", "/?mode=", "/?mode=Snapshot"}) {
    const auto r = handle(get(target));
    EXPECT_EQ(r.code, status::bad_request) << target;
    EXPECT_EQ(r.reason, "mode must be stream or snapshot") << target;
  }
}

TEST(Route, StreamTypeIsMultipartOrOctetStream) {
  using http::stream_type;
  for (const auto& [target, type] : std::vector<std::pair<std::string, stream_type>>{
           {"/stream", stream_type::multipart},
           {"/stream?type=multipart", stream_type::multipart},
           {"/stream?type=octet-stream", stream_type::octet_stream},
           {"/stream?fps=2&type=octet-stream&_=1700000000000", stream_type::octet_stream},
           {"/?action=stream&type=octet-stream", stream_type::octet_stream}}) {
    const auto r = handle({get(target)}, camera_at(30));
    EXPECT_EQ(r.what, resource::stream) << target;
    EXPECT_EQ(r.type, type) << target;
  }
  EXPECT_EQ(handle({get("/stream?fps=2&type=octet-stream")}, camera_at(30)).max_fps, 2u);
  EXPECT_EQ(handle(get("/snapshot?type=nonsense")).what, resource::snapshot);
  for (const char* target :
       {"/stream?type=", "/stream?type=octet", "/stream?type=Multipart",
        "/stream?type=octet-stream&type=jpeg", "/?action=stream&type=text", "/?type=x"}) {
    const auto r = handle(get(target));
    EXPECT_EQ(r.code, status::bad_request) << target;
    EXPECT_EQ(r.reason, "type must be multipart or octet-stream") << target;
  }
}

TEST(Route, AuthSchemeIsCaseInsensitiveAndToleratesSpaces) {
  const http::route_options options = with_auth("alice:secret");
  const auto with = [&](const std::string& value) {
    return handle({"GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + "\r\n\r\n"}, options);
  };
  for (const char* value :
       {"Basic YWxpY2U6c2VjcmV0", "basic YWxpY2U6c2VjcmV0", "BASIC YWxpY2U6c2VjcmV0",
        "bAsIc    YWxpY2U6c2VjcmV0", "Basic\tYWxpY2U6c2VjcmV0", "Basic YWxpY2U6c2VjcmV0  "}) {
    const auto r = with(value);
    EXPECT_EQ(r.what, resource::stream) << value;
    EXPECT_EQ(r.login, http::credentials::right) << value;
  }
  for (const char* value :
       {"Bearer YWxpY2U6c2VjcmV0", "Basic", "Basic ", "BasicYWxpY2U6c2VjcmV0", "Basic YWxpY2U6c2VjcmV0x",
        "Basic YWxpY2U6c2VjcmV", "Basic YWxpY2U6d3Jvbmc=", "Basic !!!!",
        // Unpadded, with a short last group: once a stack overflow in the decoder (the fuzzer's find).
        "basic   dXNlcjpzZkkkkkkkkalhoct"}) {
    const auto r = with(value);
    EXPECT_EQ(r.code, status::unauthorized) << value;
    EXPECT_EQ(r.login, http::credentials::wrong) << value;
  }
  EXPECT_EQ(handle({get("/stream")}, options).login, http::credentials::missing);
  EXPECT_EQ(handle({get("/stream")}).login, http::credentials::not_checked);
  EXPECT_TRUE(http::same_credentials("basic YWxpY2U6c2VjcmV0", "Basic YWxpY2U6c2VjcmV0"));
  EXPECT_FALSE(http::same_credentials("Basic YWxpY2U6c2VjcmV0", ""));
}

TEST(Route, HostIsCheckedBeforeCredentials) {
  // A DNS-rebinding page gets 421 before its guesses reach the password check.
  http::route_options options = with_auth("alice:secret");
  options.loopback_only = true;
  const auto r =
      handle({"GET /stream HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\n\r\n"},
             options);
  EXPECT_EQ(r.code, status::misdirected_request);
  EXPECT_EQ(r.login, http::credentials::not_checked);
}

TEST(Writers, TooManyRequestsCarriesRetryAfter) {
  const std::string text = http::error_response(status::too_many_requests, 42);
  EXPECT_EQ(text.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u) << text;
  EXPECT_NE(text.find("\r\nRetry-After: 42\r\n"), std::string::npos) << text;
  EXPECT_EQ(
      http::error_response(status::misdirected_request).rfind("HTTP/1.1 421 Misdirected Request\r\n", 0), 0u);
}

TEST(Writers, StreamPreambleGoldenBytes) {
  EXPECT_EQ(http::stream_preamble(http::stream_type::multipart),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: multipart/x-mixed-replace;boundary=mjpegconcurrencyframe\r\n"
            "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
            "Pragma: no-cache\r\n"
            "Connection: close\r\n"
            "\r\n"
            "--mjpegconcurrencyframe\r\n");
  // ?type=octet-stream: only the Content-Type differs; it still names the boundary.
  EXPECT_EQ(http::stream_preamble(http::stream_type::octet_stream),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/octet-stream;boundary=mjpegconcurrencyframe\r\n"
            "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n"
            "Pragma: no-cache\r\n"
            "Connection: close\r\n"
            "\r\n"
            "--mjpegconcurrencyframe\r\n");
  EXPECT_EQ(http::stream_head(http::stream_type::octet_stream) + "--mjpegconcurrencyframe\r\n",
            http::stream_preamble(http::stream_type::octet_stream));
}

TEST(Writers, ErrorResponsesGoldenBytes) {
  EXPECT_EQ(http::error_response(status::not_found),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\nNot Found\n");
  EXPECT_EQ(
      http::error_response(status::method_not_allowed),
      "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n"
      "Allow: GET, HEAD\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nMethod Not Allowed\n");
  EXPECT_EQ(
      http::error_response(status::service_unavailable),
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n"
      "Retry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nService Unavailable\n");
  EXPECT_EQ(
      http::error_response(status::bad_request, 1, "mode must be stream or snapshot"),
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 45\r\n"
      "Cache-Control: no-store\r\nConnection: close\r\n\r\nBad Request: mode must be stream or snapshot\n");
  EXPECT_NE(http::error_response(status::unauthorized).find("\r\nWWW-Authenticate: Basic realm=\"mjpeg\""),
            std::string::npos);
  for (const auto code : {status::bad_request, status::request_timeout, status::uri_too_long,
                          status::request_header_fields_too_large, status::http_version_not_supported}) {
    const std::string text = http::error_response(code);
    EXPECT_EQ(text.rfind("HTTP/1.1 " + std::to_string(static_cast<int>(code)) + " ", 0), 0u) << text;
    EXPECT_NE(text.find("\r\nConnection: close\r\n"), std::string::npos);
  }
}

TEST(Writers, SnapshotHeadGoldenBytes) {
  const mjpeg::frame f{
      9, mjpeg::wall_clock::time_point{std::chrono::microseconds{1'000'000}}, {0xFF, 0xD8, 0xFF, 0xD9}};
  EXPECT_EQ(http::snapshot_head(f),
            "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\nX-Timestamp: 1.000000\r\n"
            "X-Frame-Seq: 9\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
}

TEST(Writers, DocumentResponse) {
  EXPECT_EQ(http::document_response("application/json", "{}", false),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n{}");
  const std::string head_only = http::document_response("application/json", "{}", true);
  EXPECT_EQ(head_only.substr(head_only.size() - 4), "\r\n\r\n") << "HEAD: length of the body, but no body";
}

// The one URL parser, used by the relay, the load generator and the launcher.
TEST(Url, EveryPartOfAFullUrl) {
  const auto u = http::parse_url("http://user:p@ss@cam.example:8081/stream?fps=5");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->userinfo, "user:p@ss") << "the last @ before the path ends the userinfo";
  EXPECT_EQ(u->host, "cam.example");
  EXPECT_EQ(u->port, "8081");
  EXPECT_EQ(u->target, "/stream?fps=5");
}

TEST(Url, DefaultsForPortAndTarget) {
  const auto u = http::parse_url("http://127.0.0.1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->userinfo, "");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->target, "/");
}

TEST(Url, Ipv6HostsInBrackets) {
  const auto u = http::parse_url("http://[::1]:8080/snapshot");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/snapshot");
  const auto no_port = http::parse_url("http://a:b@[fe80::1]/");
  ASSERT_TRUE(no_port);
  EXPECT_EQ(no_port->userinfo, "a:b");
  EXPECT_EQ(no_port->host, "fe80::1");
  EXPECT_EQ(no_port->port, "80");
}

TEST(Url, RefusesWhatIsNotAnHttpUrlWithAHost) {
  for (const char* bad : {"https://host/", "rtsp://cam/", "host:8080/stream", "http://", "http:///stream",
                          "http://host:/stream", "http://[::1/", "http://[::1]x/", "http://user@/", ""})
    EXPECT_FALSE(http::parse_url(bad)) << bad;
}

}  // namespace
