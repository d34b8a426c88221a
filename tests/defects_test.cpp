// Issue 15, end to end over every variant binary: the defects found by trying the servers as
// users and attackers would, each fixed once in shared/. Item numbers are the issue's.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using mjpeg::test::EveryVariant;

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::request;
using mjpeg::test::response;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;
using steady = std::chrono::steady_clock;

// GET `target` with the given Host header (or none) and extra header lines.
std::string get_request(const std::string& target, const std::string& host, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\n" + (host.empty() ? "" : "Host: " + host + "\r\n") + extra + "\r\n";
}

// Sends `raw` from the local address `source` (another loopback address than the usual
// 127.0.0.1, to be another client) and reads the response until close.
response request_from(const char* source, unsigned short port, const std::string& raw) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  response r;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return r;
  }
  ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string text;
  char chunk[65536];
  for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;)
    text.append(chunk, static_cast<std::size_t>(n));
  ::close(fd);
  const auto head = mjpeg::test::parse_head(text, r);
  if (head != 0) r.body = text.substr(head);
  return r;
}

// "Authorization: Basic …" for `user_colon_pass`, with the scheme spelled `scheme`.
std::string basic(const std::string& user_colon_pass, const std::string& scheme = "Basic ") {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (const char c : user_colon_pass) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    count += 8;
    while (count >= 6)
      out += alphabet[(bits >> (count -= 6)) & 63];
  }
  if (count > 0) out += alphabet[(bits << (6 - count)) & 63];
  while (out.size() % 4 != 0)
    out += '=';
  return "Authorization: " + scheme + out + "\r\n";
}

// Waits up to `timeout` for `done()`, checking every 50 ms.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds timeout) {
  const auto until = steady::now() + timeout;
  while (!done()) {
    if (steady::now() >= until) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// --- 2 and the "also noticed": a relayed source's credentials never show; one line per reconnect

TEST_P(EveryVariant, SourceCredentialsNeverShowAndReconnectsLogOneLineEach) {
  auto upstream = std::make_unique<server_process>(binary(), small_frames());
  const std::string url = "http://watcher:s3cret-pass@127.0.0.1:" + std::to_string(upstream->port()) +
                          "/stream?access_token=tok-9f8e&fps=30";
  server_process relay{binary(), small_frames({"--source", url})};

  const auto stats = get(relay.port(), "/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_NE(stats.body.find("\"source\":\"http://***@127.0.0.1:"), std::string::npos) << stats.body;
  EXPECT_NE(stats.body.find("access_token=***&fps=30"), std::string::npos) << stats.body;
  const auto page = get(relay.port(), "/");
  for (const std::string& shown : {stats.body, page.body}) {
    EXPECT_EQ(shown.find("s3cret-pass"), std::string::npos) << shown;
    EXPECT_EQ(shown.find("tok-9f8e"), std::string::npos) << shown;
  }

  // The upstream goes away: the relay reconnects with backoff (250 ms, 500 ms, 1 s, …).
  upstream->signal(SIGTERM);
  EXPECT_EQ(upstream->wait(5s), 0);
  upstream.reset();
  const auto reconnects = [&] {
    const std::string log = relay.error_output();
    std::size_t n = 0;
    for (auto at = log.find("source: cannot"); at != std::string::npos;
         at = log.find("source: cannot", at + 1))
      ++n;
    return n;
  };
  ASSERT_TRUE(eventually([&] { return reconnects() >= 3; }, 15s)) << relay.error_output();
  const auto down = get(relay.port(), "/stats");
  EXPECT_NE(down.body.find("\"source_state\":\"down\""), std::string::npos) << down.body;
  EXPECT_EQ(down.body.find("s3cret-pass"), std::string::npos) << down.body;

  const std::string log = relay.error_output();
  EXPECT_EQ(log.find("s3cret-pass"), std::string::npos) << log;
  EXPECT_EQ(log.find("tok-9f8e"), std::string::npos) << log;
  // Our own lines only: no OpenCV, FFmpeg or GStreamer warnings around them.
  for (const std::string& line : lines_of(log))
    EXPECT_NE(line.find(": warning: source"), std::string::npos)
        << "not one of ours: " << line << "\n--- whole log:\n"
        << log;
  relay.signal(SIGTERM);
  EXPECT_EQ(relay.wait(5s), 0);
}

// --- 3: exactly one valid Host; a loopback bind answers loopback names only ----------------------

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

// --- 4: no empty credentials, credentials out of ps, and guessing is limited per address ---------

TEST_P(EveryVariant, EmptyCredentialsAreRefusedWithOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--auth", ":"}, {"--auth", "user:"}, {"--auth", ":pass"}}) {
    const auto result = mjpeg::test::run_command(binary(), args, 10s);
    EXPECT_EQ(result.exit_code, 2) << args[1] << ": " << result.err;
    EXPECT_EQ(lines_of(result.err).size(), 1u) << result.err;
    EXPECT_NE(result.err.find("--auth"), std::string::npos) << result.err;
  }
  const std::string file =
      std::filesystem::temp_directory_path() / ("mjpeg-empty-auth-" + std::to_string(::getpid()));
  std::ofstream{file} << "user:\n";
  const auto from_file = mjpeg::test::run_command(binary(), {"--auth-file", file}, 10s);
  std::filesystem::remove(file);
  EXPECT_EQ(from_file.exit_code, 2) << from_file.err;
  EXPECT_EQ(lines_of(from_file.err).size(), 1u) << from_file.err;
}

// The password given by file or environment is not on the command line, where ps shows it.
void expect_guarded(const server_process& server, const std::string& password) {
  std::ifstream in{"/proc/" + std::to_string(server.pid()) + "/cmdline"};
  const std::string cmdline{std::istreambuf_iterator<char>{in}, {}};
  EXPECT_EQ(cmdline.find(password), std::string::npos) << cmdline;
  EXPECT_EQ(request(server.port(), get_request("/snapshot", "localhost")).status, 401);
  EXPECT_EQ(request(server.port(), get_request("/snapshot", "localhost", basic("viewer:" + password))).status,
            200);
}

TEST_P(EveryVariant, CredentialsFromAFileOrTheEnvironment) {
  const std::string file =
      std::filesystem::temp_directory_path() / ("mjpeg-auth-" + std::to_string(::getpid()));
  std::ofstream{file} << "viewer:from-file-42\n";
  {
    server_process server{binary(), small_frames({"--auth-file", file})};
    expect_guarded(server, "from-file-42");
  }
  std::filesystem::remove(file);
  ::setenv("MJPEG_AUTH", "viewer:from-env-42", 1);
  server_process server{binary(), small_frames()};
  ::unsetenv("MJPEG_AUTH");
  expect_guarded(server, "from-env-42");
}

TEST_P(EveryVariant, RepeatedWrongCredentialsLockOutThatAddressOnly) {
  server_process server{binary(), small_frames({"--auth", "viewer:right-one"})};
  const auto port = server.port();
  const std::string wrong = get_request("/snapshot", "localhost", basic("viewer:guess"));
  const std::string right = get_request("/snapshot", "localhost", basic("viewer:right-one"));
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

// --- 5: mjpg-streamer URL variants -------------------------------------------------------------

TEST_P(EveryVariant, MjpgStreamerUrlVariantsAreServed) {
  server_process server{binary(), small_frames()};
  for (const char* target :
       {"/?action=stream&1700000000000", "/?action=stream_0", "/?action=stream_0&n=1&x"}) {
    stream_reader viewer{server.port(), target};
    ASSERT_EQ(viewer.open(), 200) << target;
    EXPECT_TRUE(viewer.next().has_value()) << target;
  }
  for (const char* target :
       {"/?action=snapshot&1700000000000", "/?action=snapshot_0", "/?action=snapshot&a=b"}) {
    const auto r = get(server.port(), target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(header(r, "content-type"), "image/jpeg") << target;
  }
  EXPECT_EQ(get(server.port(), "/?action=stream_7").status, 404) << "an input we do not have";
}

// --- 6: the auth scheme in any case, spaces after it ------------------------------------------

TEST_P(EveryVariant, AuthSchemeIsCaseInsensitive) {
  server_process server{binary(), small_frames({"--auth", "viewer:right-one"})};
  for (const char* scheme : {"basic ", "BASIC ", "bAsIc    ", "Basic\t"})
    EXPECT_EQ(request(server.port(), get_request("/snapshot", "localhost", basic("viewer:right-one", scheme)))
                  .status,
              200)
        << "'" << scheme << "'";
}

// --- 8: the capture rate under a CPU hog is what was published --------------------------------

TEST_P(EveryVariant, CaptureFpsUnderACpuHogIsWhatWasPublished) {
  server_process server{binary(), small_frames()};
  const auto number = [](const std::string& json, const std::string& name) {
    const auto at = json.find("\"" + name + "\":");
    return at == std::string::npos ? -1.0 : std::stod(json.substr(at + name.size() + 3));
  };
  // Busy threads on every core make the capture thread's wake-ups late and bunched.
  std::atomic<bool> stop{false};
  std::vector<std::thread> hogs;
  for (unsigned i = 0; i < 3 * std::max(1U, std::thread::hardware_concurrency()); ++i)
    hogs.emplace_back([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  // The server measures over the last two seconds: sample only once that window lies wholly
  // inside the period the truth is measured over.
  std::this_thread::sleep_for(300ms);
  const auto first = get(server.port(), "/stats");
  const auto t0 = steady::now();
  std::this_thread::sleep_for(2200ms);
  std::vector<double> shown;
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(300ms);
    shown.push_back(number(get(server.port(), "/stats").body, "fps_capture"));
  }
  const auto last = get(server.port(), "/stats");
  const double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
  stop = true;
  for (auto& t : hogs)
    t.join();

  // The truth: frames published over the time it took, from the server's own counter.
  const double published =
      (number(last.body, "frames_captured") - number(first.body, "frames_captured")) / elapsed;
  ASSERT_GT(published, 0);
  for (const double fps : shown) {
    EXPECT_LE(fps, published * 1.2 + 1) << "published " << published << " a second";
    EXPECT_LE(fps, 30 * 1.1) << "above the target";
    EXPECT_GT(fps, 0);
  }
}

// --- 10: malformed request lines are 400; absolute-form targets are served ---------------------

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

}  // namespace
