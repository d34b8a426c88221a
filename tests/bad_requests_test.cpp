// Bad input over every variant: junk, malformed and oversized requests, a request dribbled in
// pieces, junk pipelined after a good request, and wrong credentials. Each gets its clear status
// and the connection is closed, while a viewer (where the model serves two at once) keeps
// receiving and the next client is served normally.

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

struct bad_case {
  const char* name;
  std::string raw;
  int status;
};

std::vector<bad_case> bad_cases() {
  return {
      {"binary junk", std::string("\x00\x01\x02\xff\xfe\x80junk\x7f", 11) + "\r\n\r\n", 400},
      {"malformed request line", "GET\r\n\r\n", 400},
      {"not HTTP at all", "hello there\r\n\r\n", 400},
      {"header line without colon", "GET /snapshot HTTP/1.1\r\nHost localhost\r\n\r\n", 400},
      {"body on GET", "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", 400},
      {"chunked body on GET", "GET /snapshot HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"unsupported version", "GET /snapshot HTTP/2.0\r\nHost: localhost\r\n\r\n", 505},
      {"future version", "GET /stream HTTP/3.0\r\n\r\n", 505},
      {"over-long target", "GET /" + std::string(4000, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"oversized headers", "GET /snapshot HTTP/1.1\r\nX-Big: " + std::string(10000, 'b') + "\r\n\r\n", 431},
      {"many headers",
       [] {
         std::string r = "GET /snapshot HTTP/1.1\r\n";
         for (int i = 0; i < 500; ++i)
           r += "X-" + std::to_string(i) + ": 0123456789\r\n";
         return r + "\r\n";
       }(),
       431},
      {"unknown path", "GET /etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n", 404},
      {"fps=0", "GET /stream?fps=0 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"negative fps", "GET /stream?fps=-2 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"non-numeric fps", "GET /?action=stream&fps=lots HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"fps above the camera's", "GET /stream?fps=31 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"unknown page mode", "GET /?mode=video HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
      {"other method", "PUT /stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
      {"POST", "POST /stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
      {"DELETE", "DELETE / HTTP/1.1\r\n\r\n", 405},
      {"head never finished", "GET /stream HTTP/1.1\r\nHost", 408},  // after --header-timeout
  };
}

TEST_P(EveryVariant, BadRequestsGetTheirStatusWhileAViewerKeepsReceiving) {
  server_process server{binary(), small_frames({"--header-timeout", "1"})};
  // A viewer watches throughout, where the model lets two connections be served at once.
  std::unique_ptr<stream_reader> viewer;
  std::uint64_t last_seq = 0;
  const auto viewer_still_receives = [&](const std::string& after) {
    if (!viewer) return;
    const auto part = viewer->next();
    ASSERT_TRUE(part) << "viewer lost after " << after << ": " << server.error_output();
    EXPECT_GT(seq_of(*part), last_seq) << after;
    last_seq = seq_of(*part);
  };
  if (!one_at_a_time()) {
    viewer = std::make_unique<stream_reader>(server.port());
    ASSERT_EQ(viewer->open(), 200);
    viewer_still_receives("start");
  }

  for (const auto& c : bad_cases()) {
    const auto r = request(server.port(), c.raw);
    EXPECT_EQ(r.status, c.status) << c.name;
    if (std::string{c.name}.find("fps") != std::string::npos) {
      EXPECT_NE(r.body.find("fps must be a whole number of frames per second from 1 to 30"),
                std::string::npos)
          << c.name << ": the reason in the body: " << r.body;
    }
    if (c.status == 405) {
      EXPECT_EQ(header(r, "allow"), "GET, HEAD") << c.name;
    }
    // The server answers the next client normally (single_thread: it took the bad one and moved on).
    EXPECT_TRUE(good_snapshot(get(server.port(), "/snapshot"))) << "after " << c.name;
    viewer_still_receives(c.name);
  }

  // A request dribbled in three-byte writes with pauses is still one request (well inside the
  // header timeout, which covers the whole head).
  {
    connection slow{server.port()};
    const std::string raw = "GET /snapshot HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dribble\r\n\r\n";
    for (std::size_t at = 0; at < raw.size(); at += 3) {
      ASSERT_TRUE(slow.send(raw.substr(at, 3)));
      std::this_thread::sleep_for(10ms);
    }
    const auto r = parse_response(slow.read_all(5s));
    EXPECT_TRUE(good_snapshot(r)) << "dribbled request: status " << r.status;
    viewer_still_receives("dribbled request");
  }

  // Junk pipelined after a good request: the good one is answered in full, the junk ignored.
  {
    const auto r =
        request(server.port(), "GET /snapshot HTTP/1.1\r\nHost: localhost\r\n\r\n" +
                                   std::string("\x00\xff garbage\r\n\r\nDELETE / HTTP/1.1\r\n\r\n", 35));
    EXPECT_TRUE(good_snapshot(r)) << "pipelined junk: status " << r.status;
    viewer_still_receives("pipelined junk");
  }
  EXPECT_EQ(server.wait(0ms), -1) << "the server died: " << server.error_output();
}

TEST_P(EveryVariant, AuthRequiresTheRightCredentialsOnEveryEndpoint) {
  server_process server{binary(), small_frames({"--auth", "watcher:s3cret"})};
  for (const char* path : {"/stream", "/snapshot", "/stats", "/"}) {
    const auto anonymous = get(server.port(), path);
    EXPECT_EQ(anonymous.status, 401) << path;
    EXPECT_EQ(header(anonymous, "www-authenticate").rfind("Basic ", 0), 0u)
        << path << ": " << header(anonymous, "www-authenticate");
  }
  // "watcher:wrong" and a right password for the wrong user, base64-encoded.
  for (const char* wrong : {"d2F0Y2hlcjp3cm9uZw==", "YWRtaW46czNjcmV0", "garbage"}) {
    const auto r = request(
        server.port(),
        std::string{"GET /stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic "} + wrong + "\r\n\r\n");
    EXPECT_EQ(r.status, 401) << wrong;
  }
  const std::string right = "Authorization: Basic d2F0Y2hlcjpzM2NyZXQ=\r\n";  // watcher:s3cret
  {
    stream_reader viewer{server.port(), "/stream", right};
    ASSERT_EQ(viewer.open(), 200);
    for (int i = 0; i < 3; ++i) {
      const auto part = viewer.next();
      ASSERT_TRUE(part) << "frame " << i;
      EXPECT_TRUE(is_jpeg(part->body));
    }
  }
  EXPECT_TRUE(good_snapshot(
      request(server.port(), "GET /snapshot HTTP/1.1\r\nHost: localhost\r\n" + right + "\r\n")));
}

}  // namespace
