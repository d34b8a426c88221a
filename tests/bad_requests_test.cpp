// Bad input over every variant: junk, malformed and oversized requests, a request dribbled in
// pieces, junk pipelined after a good request, and wrong credentials. Each gets its clear status
// and the connection is closed, while a viewer (where the model serves two at once) keeps
// receiving and the next client is served normally. Also: broken request lines and the Host
// header (one valid Host; a loopback bind answers loopback names only), and credentials (from a
// file or the environment, kept out of ps; guessing limited per address; the scheme in any case).

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
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
      {"unknown stream type", "GET /stream?type=jpeg HTTP/1.1\r\nHost: localhost\r\n\r\n", 400},
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
    if (std::string{c.name}.find("stream type") != std::string::npos) {
      EXPECT_NE(r.body.find("type must be multipart or octet-stream"), std::string::npos)
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

// --- Request lines and Host: malformed lines are 400, absolute-form targets are served; exactly
// one valid Host, and a loopback bind answers loopback names only (DNS rebinding) --------------

TEST_P(EveryVariant, BrokenRequestLinesAre400AndAbsoluteFormIsServed) {
  server_process server{binary(), small_frames()};
  const auto status = [&](const std::string& raw) { return request(server.port(), raw).status; };
  EXPECT_EQ(status("GET /snapshot HTTP/1.1\nHost: localhost\n\n"), 400) << "bare LF";
  EXPECT_EQ(status("GET /snap shot HTTP/1.1\r\nHost: localhost\r\n\r\n"), 400) << "a space in the URI";
  EXPECT_EQ(status("GET /snapshot HTTP/1.1 \r\nHost: localhost\r\n\r\n"), 400) << "a space after the version";
  EXPECT_EQ(status("GET /snapshot http/1.1\r\nHost: localhost\r\n\r\n"), 400) << "lower-case version";
  EXPECT_EQ(status("GET /snapshot HTTP/2.0\r\nHost: localhost\r\n\r\n"), 505) << "a version we do not speak";
  const std::string p = std::to_string(server.port());
  const auto absolute =
      request(server.port(), get_request("http://127.0.0.1:" + p + "/snapshot", "127.0.0.1:" + p));
  EXPECT_EQ(absolute.status, 200);
  EXPECT_EQ(header(absolute, "content-type"), "image/jpeg");
  EXPECT_EQ(status(get_request("http://attacker.example/snapshot", "localhost")), 421)
      << "the absolute-form authority is the host asked for";
}

TEST_P(EveryVariant, HostIsCheckedAndALoopbackBindAnswersOnlyLoopbackNames) {
  server_process server{binary(), small_frames()};
  const auto port = server.port();
  const auto status = [&](const std::string& raw) { return request(port, raw).status; };
  const std::string p = ":" + std::to_string(port);

  EXPECT_EQ(status(get_request("/snapshot", "")), 400) << "HTTP/1.1 without Host";
  EXPECT_EQ(status(get_request("/snapshot", "localhost", "Host: localhost\r\n")), 400) << "two Hosts";
  EXPECT_EQ(status(get_request("/snapshot", "local host")), 400) << "an invalid Host";
  EXPECT_EQ(status(get_request("/snapshot", "localhost:port")), 400) << "an invalid port";
  EXPECT_EQ(status("GET /snapshot HTTP/1.0\r\n\r\n"), 200) << "HTTP/1.0 may leave Host out";

  // What a web page reached through DNS rebinding sends: its own name.
  const auto rebound = request(port, get_request("/snapshot", "attacker.example" + p));
  EXPECT_EQ(rebound.status, 421);
  EXPECT_EQ(rebound.body.find("\xFF\xD8"), std::string::npos) << "no image for it";
  EXPECT_EQ(status(get_request("/stats", "attacker.example")), 421);
  EXPECT_EQ(status(get_request("/", "192.168.1.20" + p)), 421);

  for (const std::string& host :
       std::vector<std::string>{"localhost", "localhost" + p, "127.0.0.1" + p, "127.0.0.2", "[::1]" + p,
                                "cam.localhost" + p, "LOCALHOST"})
    EXPECT_EQ(status(get_request("/snapshot", host)), 200) << host;
}

TEST_P(EveryVariant, AllowHostAddsNamesToALoopbackBind) {
  server_process server{binary(), small_frames({"--allow-host", "cam.example", "--allow-host", "10.1.2.3"})};
  const auto status = [&](const std::string& host) {
    return request(server.port(), get_request("/snapshot", host)).status;
  };
  EXPECT_EQ(status("cam.example"), 200);
  EXPECT_EQ(status("cam.example:8443"), 200);
  EXPECT_EQ(status("10.1.2.3"), 200);
  EXPECT_EQ(status("localhost"), 200);
  EXPECT_EQ(status("other.example"), 421);
}

// --- Credentials: from a file or the environment (out of ps), guessing limited per address, the
// scheme in any case ----------------------------------------------------------------------

// The password given by file or environment is not on the command line, where ps shows it.
void expect_guarded(const server_process& server, const std::string& password) {
  std::ifstream in{"/proc/" + std::to_string(server.pid()) + "/cmdline"};
  const std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
  EXPECT_EQ(cmdline.find(password), std::string::npos) << cmdline;
  EXPECT_EQ(request(server.port(), get_request("/snapshot", "localhost")).status, 401);
  EXPECT_EQ(
      request(server.port(), get_request("/snapshot", "localhost", basic_auth("viewer:" + password))).status,
      200);
}

TEST_P(EveryVariant, CredentialsFromAFileOrTheEnvironment) {
  {
    const scratch_dir dir;
    server_process server{binary(),
                          small_frames({"--auth-file", dir.write("auth", "viewer:from-file-42\n")})};
    expect_guarded(server, "from-file-42");
  }
  ::setenv("MJPEG_AUTH", "viewer:from-env-42", 1);
  server_process server{binary(), small_frames()};
  ::unsetenv("MJPEG_AUTH");
  expect_guarded(server, "from-env-42");
}

TEST_P(EveryVariant, RepeatedWrongCredentialsLockOutThatAddressOnly) {
  server_process server{binary(), small_frames({"--auth", "viewer:right-one"})};
  const auto port = server.port();
  const std::string wrong = get_request("/snapshot", "localhost", basic_auth("viewer:guess"));
  const std::string right = get_request("/snapshot", "localhost", basic_auth("viewer:right-one"));
  // Asking without credentials is what every browser does first: it is not a guess.
  for (int i = 0; i < 12; ++i)
    ASSERT_EQ(request(port, get_request("/snapshot", "localhost")).status, 401);
  int refused_after = 0;
  for (int i = 1; i <= 40 && refused_after == 0; ++i)
    if (request(port, wrong).status == 429) refused_after = i;
  EXPECT_EQ(refused_after, 11) << "ten guesses, then refused";
  for (int i = 0; i < 30; ++i)
    EXPECT_EQ(request(port, wrong).status, 429);

  // Refused now even with the right password, so guessing cannot go on; another address may.
  const auto locked = request(port, right);
  EXPECT_EQ(locked.status, 429);
  EXPECT_GE(std::atoi(header(locked, "retry-after").c_str()), 1) << header(locked, "retry-after");
  EXPECT_EQ(request_from("127.0.0.2", port, right).status, 200) << "another address is not affected";
  EXPECT_EQ(request_from("127.0.0.2", port, wrong).status, 401);

  // Logged, but not once per guess.
  const std::string log = server.error_output();
  EXPECT_NE(log.find("wrong credentials in a row from 127.0.0.1; refusing it"), std::string::npos) << log;
  EXPECT_LE(lines_of(log).size(), 4u) << log;
}

TEST_P(EveryVariant, AuthSchemeIsCaseInsensitive) {
  server_process server{binary(), small_frames({"--auth", "viewer:right-one"})};
  for (const char* scheme : {"basic ", "BASIC ", "bAsIc    ", "Basic\t"})
    EXPECT_EQ(
        request(server.port(), get_request("/snapshot", "localhost", basic_auth("viewer:right-one", scheme)))
            .status,
        200)
        << "'" << scheme << "'";
}

}  // namespace
