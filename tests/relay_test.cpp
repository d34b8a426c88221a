// The HTTP relay: --source http://HOST:PORT/PATH forwards another MJPEG server's JPEG bytes as they
// are. Upstreams: one of ours (X-Timestamp and X-Frame-Seq kept), and a fake that frames its stream
// like other servers do (its own boundary, no X-Timestamp, chunked, parts without Content-Length).

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <thread>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using mjpeg::test::EveryVariant;

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stats_field;
using mjpeg::test::stream_reader;

TEST_P(EveryVariant, RelaysOurStreamByteForByte) {
  server_process origin{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  // mjpg-streamer's spelling of the stream URL works too.
  server_process edge{
      binary(),
      small_frames({"--source", "http://127.0.0.1:" + std::to_string(origin.port()) + "/?action=stream"})};
  const auto [from_edge, from_origin] = mjpeg::test::read_relayed(origin.port(), edge.port(), 20);
  ASSERT_GE(from_edge.size(), 10u) << edge.error_output();
  EXPECT_GE(mjpeg::test::same_parts(from_edge, from_origin), 5)
      << "the relay keeps the upstream's X-Frame-Seq";
}

// A stand-in for another MJPEG server on a loopback port: sends `frames` in a loop at ~20 fps in
// the framing it was told, to every connection in turn.
class fake_upstream {
 public:
  struct framing {
    std::string boundary;
    bool chunked = false;
    bool content_length = true;
    bool boundary_with_dashes = false;  // declares "--boundary" in Content-Type, as some cameras do
  };

  /// What the fake does with one connection, as real upstreams misbehave.
  enum class conduct {
    stream,                ///< Streams until the test ends.
    stream_3s_then_wedge,  ///< Streams 3 s, then stays connected and sends nothing more.
    never_answer,          ///< Accepts, reads the request, never answers, keeps it open.
    one_frame_then_close,  ///< Sends the head and one frame, then closes.
  };
  /// Decides the conduct of the n-th connection (from 0).
  using script = std::function<conduct(std::size_t)>;

  fake_upstream(std::vector<std::string> frames, framing how, script conduct_of = {})
      : frames_{std::move(frames)}, how_{std::move(how)}, conduct_of_{std::move(conduct_of)} {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread{[this] { run(); }};
  }
  ~fake_upstream() {
    stop_ = true;
    thread_.join();
    for (const int c : held_)
      ::close(c);
    ::close(fd_);
  }
  unsigned short port() const { return port_; }
  /// Connections accepted so far.
  std::size_t connections() const { return connections_.load(); }

 private:
  bool send_all(int c, const std::string& bytes) {
    std::string out = bytes;
    if (how_.chunked) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
      out = size + bytes + "\r\n";
    }
    return ::send(c, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size());
  }
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const std::size_t n = connections_.fetch_add(1);
      const auto how = conduct_of_ ? conduct_of_(n) : conduct::stream;
      char request[4096];
      ::recv(c, request, sizeof request, 0);
      if (how == conduct::never_answer) {
        held_.push_back(c);
        continue;
      }
      const auto wedge_at = std::chrono::steady_clock::now() + 3s;
      bool c_held = false;
      const std::string declared = (how_.boundary_with_dashes ? "--" : "") + how_.boundary;
      std::string head =
          "HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Type: multipart/x-mixed-replace; boundary=\"" +
          declared + "\"\r\n";
      head += how_.chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
      ::send(c, head.data(), head.size(), MSG_NOSIGNAL);
      for (std::size_t i = 0; !stop_; ++i) {
        const std::string& jpeg = frames_[i % frames_.size()];
        std::string part = "--" + how_.boundary + "\r\nContent-Type: image/jpeg\r\n";
        if (how_.content_length) part += "Content-Length: " + std::to_string(jpeg.size()) + "\r\n";
        part += "\r\n" + jpeg + "\r\n";
        if (!send_all(c, part)) break;
        if (how == conduct::one_frame_then_close) break;
        if (how == conduct::stream_3s_then_wedge && std::chrono::steady_clock::now() >= wedge_at) {
          held_.push_back(c);
          c_held = true;
          break;
        }
        std::this_thread::sleep_for(50ms);
      }
      if (!c_held) ::close(c);
    }
  }

  std::vector<std::string> frames_;
  framing how_;
  script conduct_of_;
  std::atomic<std::size_t> connections_{0};
  std::vector<int> held_;  // connections kept open and silent
  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<std::string> distinct_jpegs() {
  std::vector<std::string> out;
  for (int i = 0; i < 4; ++i) {
    cv::Mat image(120, 160, CV_8UC3, cv::Scalar(40 * i, 255 - 50 * i, 100));
    cv::putText(image, std::to_string(i), {60, 80}, cv::FONT_HERSHEY_SIMPLEX, 2, {255, 255, 255}, 3);
    std::vector<std::uint8_t> bytes;
    cv::imencode(".jpg", image, bytes);
    out.emplace_back(bytes.begin(), bytes.end());
  }
  return out;
}

struct framing_case {
  const char* name;
  fake_upstream::framing how;
  friend void PrintTo(const framing_case& c, std::ostream* os) { *os << c.name; }
};

class ForeignFraming : public testing::TestWithParam<framing_case> {};

TEST_P(ForeignFraming, RelaysTheUpstreamsJpegBytesUnchanged) {
  const auto jpegs = distinct_jpegs();
  fake_upstream upstream{jpegs, GetParam().how};
  server_process edge{
      mjpeg::test::variant_binary("mjpeg_async"),
      small_frames({"--source", "http://127.0.0.1:" + std::to_string(upstream.port()) + "/?action=stream"})};
  stream_reader viewer{edge.port()};
  ASSERT_EQ(viewer.open(), 200) << edge.error_output();
  std::uint64_t last_seq = 0;
  for (int i = 0; i < 8; ++i) {
    const auto part = viewer.next();
    ASSERT_TRUE(part) << edge.error_output();
    EXPECT_NE(std::find(jpegs.begin(), jpegs.end(), part->body), jpegs.end())
        << "part " << i << " is not one of the upstream's JPEGs byte for byte";
    const auto seq = std::stoull(part->headers.at("x-frame-seq"));
    EXPECT_GT(seq, last_seq);
    last_seq = seq;
    // No X-Timestamp upstream: the relay stamps the time it received the frame.
    const double stamp = std::stod(part->headers.at("x-timestamp"));
    EXPECT_NEAR(stamp, static_cast<double>(mjpeg::test::now_us()) / 1e6, 1.0);
  }
  EXPECT_EQ(stats_field(get(edge.port(), "/stats").body, "source_state"), "up");
}

INSTANTIATE_TEST_SUITE_P(
    Framings, ForeignFraming,
    testing::Values(framing_case{"mjpg_streamer", {"boundarydonotcross", false, true, false}},
                    framing_case{"chunked_without_lengths", {"frame", true, false, false}},
                    framing_case{"declared_with_dashes", {"myboundary", false, true, true}}),
    [](const testing::TestParamInfo<framing_case>& p) { return std::string{p.param.name}; });

TEST(Relay, RelaysTheOctetStreamFormOfOurStream) {
  // /stream?type=octet-stream (the page's form for WebKit) is the same parts under another type.
  server_process origin{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  server_process edge{mjpeg::test::variant_binary("mjpeg_async"),
                      small_frames({"--source", "http://127.0.0.1:" + std::to_string(origin.port()) +
                                                    "/stream?type=octet-stream"})};
  const auto [from_edge, from_origin] = mjpeg::test::read_relayed(origin.port(), edge.port(), 10);
  ASSERT_GE(from_edge.size(), 5u) << edge.error_output();
  EXPECT_GE(mjpeg::test::same_parts(from_edge, from_origin), 3);
}

TEST(Relay, AnUpstreamThatIsNotAStreamIsAClearErrorAtStart) {
  server_process plain{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  // /stats answers JSON, not a multipart stream.
  const std::string url = "http://127.0.0.1:" + std::to_string(plain.port()) + "/stats";
  const auto r =
      run_command(mjpeg::test::variant_binary("mjpeg_async"), {"--port", "0", "--source", url}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--source " + url + ": "), std::string::npos) << r.err;
}

TEST(Relay, AnUnreachableUpstreamAtStartIsAClearError) {
  // A port nobody listens on: bind one, then close it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/stream";
  const auto r =
      run_command(mjpeg::test::variant_binary("mjpeg_async"), {"--port", "0", "--source", url}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot connect to " + url), std::string::npos) << r.err;
}

// G2's reproduction: the first connection streams 3 s and wedges, the second is accepted and never
// answered (a host gone behind a NAT, a wedged camera server), later ones are healthy. The relay
// gives up on the silent one at its response-head deadline, backs off and is back within 15 s.
TEST(Relay, RecoversFromAReconnectThatIsNeverAnswered) {
  using conduct = fake_upstream::conduct;
  fake_upstream upstream{
      distinct_jpegs(), {"boundarydonotcross", false, true, false}, [](std::size_t n) {
        return n == 0 ? conduct::stream_3s_then_wedge : n == 1 ? conduct::never_answer : conduct::stream;
      }};
  server_process edge{
      mjpeg::test::variant_binary("mjpeg_async"),
      small_frames({"--source", "http://127.0.0.1:" + std::to_string(upstream.port()) + "/"})};
  ASSERT_TRUE(mjpeg::test::eventually([&] { return upstream.connections() >= 2; }, 10s))
      << edge.error_output();
  const auto silent_reconnect = std::chrono::steady_clock::now();
  EXPECT_EQ(stats_field(get(edge.port(), "/stats").body, "source_state"), "down");
  ASSERT_TRUE(mjpeg::test::eventually(
      [&] { return stats_field(get(edge.port(), "/stats").body, "source_state") == "up"; }, 15s))
      << "still " << upstream.connections() << " connections\n"
      << edge.error_output();
  EXPECT_LT(std::chrono::steady_clock::now() - silent_reconnect, 15s);
  EXPECT_GE(upstream.connections(), 3u);
  EXPECT_NE(edge.error_output().find("no response within"), std::string::npos) << edge.error_output();
  // And viewers get new frames again.
  stream_reader viewer{edge.port()};
  ASSERT_EQ(viewer.open(), 200);
  const auto first = viewer.next();
  ASSERT_TRUE(first);
  std::optional<mjpeg::test::part> later;
  for (int i = 0; i < 5; ++i)
    later = viewer.next();
  ASSERT_TRUE(later);
  EXPECT_GT(std::stoull(later->headers.at("x-frame-seq")), std::stoull(first->headers.at("x-frame-seq")));
}

// The health check a load balancer asks: 200 while the source delivers, 503 once it has been down
// longer than --max-source-down (HAProxy then takes the edge out), 200 again when it is back.
TEST(Relay, HealthCheckFailsOnceTheSourceHasBeenDownTooLong) {
  using conduct = fake_upstream::conduct;
  std::atomic<bool> answer{true};
  fake_upstream upstream{
      distinct_jpegs(), {"boundarydonotcross", false, true, false}, [&](std::size_t n) {
        return n == 0 ? conduct::stream_3s_then_wedge : answer ? conduct::stream : conduct::never_answer;
      }};
  answer = false;
  server_process edge{mjpeg::test::variant_binary("mjpeg_async"),
                      small_frames({"--source", "http://127.0.0.1:" + std::to_string(upstream.port()) + "/",
                                    "--max-source-down", "2"})};
  EXPECT_EQ(get(edge.port(), "/healthz").status, 200);
  EXPECT_EQ(mjpeg::test::request(edge.port(), "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status,
            200);
  ASSERT_TRUE(mjpeg::test::eventually(
      [&] { return stats_field(get(edge.port(), "/stats").body, "source_state") == "down"; }, 10s));
  EXPECT_EQ(get(edge.port(), "/healthz").status, 200) << "down for less than 2 s";
  ASSERT_TRUE(mjpeg::test::eventually([&] { return get(edge.port(), "/healthz").status == 503; }, 5s));
  const auto failed = get(edge.port(), "/healthz");
  EXPECT_NE(failed.body.find("source down for"), std::string::npos) << failed.body;
  EXPECT_EQ(mjpeg::test::request(edge.port(), "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status,
            503);
  answer = true;
  EXPECT_TRUE(mjpeg::test::eventually([&] { return get(edge.port(), "/healthz").status == 200; }, 15s))
      << edge.error_output();
}

// G7: an upstream that closes after every frame. Each good frame used to reset the backoff: four
// reconnects a second and a log line pair for each. The backoff now grows until the source stays
// up a while, and the flapping is logged once.
TEST(Relay, AFlappingUpstreamIsRetriedWithGrowingBackoffAndLoggedOnce) {
  using conduct = fake_upstream::conduct;
  fake_upstream upstream{distinct_jpegs(), {"boundarydonotcross", false, true, false}, [](std::size_t) {
                           return conduct::one_frame_then_close;
                         }};
  const std::string url = "http://127.0.0.1:" + std::to_string(upstream.port()) + "/";
  server_process edge{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--source", url})};
  std::this_thread::sleep_for(8s);
  // 250 ms doubling: about 6 connections in 8 s (32 when every frame reset the backoff).
  EXPECT_LE(upstream.connections(), 8u) << edge.error_output();
  EXPECT_GE(upstream.connections(), 4u) << edge.error_output();
  const std::string log = edge.error_output();
  std::size_t lines = 0;
  for (auto at = log.find("source " + url); at != std::string::npos; at = log.find("source " + url, at + 1))
    ++lines;
  EXPECT_LE(lines, 3u) << log;
  EXPECT_NE(log.find("flapping"), std::string::npos) << log;
}

}  // namespace
