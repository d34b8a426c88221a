// The capture side seen from outside: a source that stops delivering and comes back, a source
// closed while nobody watches (--idle-stop), and a relayed source's credentials, which never show.
// Real binaries, real sockets.

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <thread>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::eventually;
using mjpeg::test::EveryVariant;
using mjpeg::test::get;
using mjpeg::test::lines_of;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;

std::string binary() {
  return mjpeg::test::variant_binary("mjpeg_single_thread");
}

// Polls /stats until `needle` shows up or `timeout` passes.
bool stats_show(unsigned short port, const std::string& needle, std::chrono::seconds timeout) {
  return eventually([&] { return get(port, "/stats", 2s).body.find(needle) != std::string::npos; }, timeout);
}

// A relay reads another server's stream as its source. Killing the upstream is a source that
// stops delivering; restarting it on the same port is the source coming back.
TEST(SourceLoss, ViewersStayConnectedAndTheStreamResumes) {
  auto upstream = std::make_unique<server_process>(binary(), small_frames());
  const std::string port = std::to_string(upstream->port());
  server_process relay{binary(), small_frames({"--source", "http://127.0.0.1:" + port + "/stream"})};

  auto viewer = std::make_unique<stream_reader>(relay.port());
  ASSERT_EQ(viewer->open(), 200) << relay.error_output();
  const auto before = viewer->next(10s);
  ASSERT_TRUE(before) << relay.error_output();

  // The source goes away: the viewer stays connected and simply gets nothing new.
  upstream->signal(SIGTERM);
  ASSERT_EQ(upstream->wait(5s), 0);
  upstream.reset();
  std::this_thread::sleep_for(1s);
  while (viewer->next(1500ms)) {
  }  // frames already in flight
  EXPECT_FALSE(viewer->conn().closed()) << "viewers keep their connection while the source is down";

  // It comes back on the same port: the relay reopens it and the stream resumes.
  upstream = std::make_unique<server_process>(binary(), small_frames({"--port", port}));
  const auto after = viewer->next(15s);
  ASSERT_TRUE(after) << relay.error_output();
  EXPECT_GT(std::stoull(after->headers.at("x-frame-seq")), std::stoull(before->headers.at("x-frame-seq")));
  viewer.reset();

  // /stats tells the two states apart (asked without a viewer: this server serves one at a time).
  EXPECT_TRUE(stats_show(relay.port(), "\"source_state\":\"up\"", 10s));
  upstream.reset();  // killed
  EXPECT_TRUE(stats_show(relay.port(), "\"source_state\":\"down\"", 10s));
  const std::string log = relay.error_output();
  EXPECT_NE(log.find("stopped delivering"), std::string::npos) << log;
  EXPECT_NE(log.find("is delivering"), std::string::npos) << log;
}

TEST(IdleStop, ClosesTheSourceWithoutViewersAndReopensForTheNext) {
  server_process server{binary(), small_frames({"--idle-stop", "0.5"})};
  ASSERT_TRUE(stats_show(server.port(), "\"source_state\":\"idle\"", 10s)) << server.error_output();
  // Idle means no capture: the frame count stands still.
  const auto count = [&] {
    const std::string body = get(server.port(), "/stats").body;
    const auto at = body.find("\"frames_captured\":") + 18;
    return std::stoull(body.substr(at));
  };
  const auto idle_count = count();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(count(), idle_count);

  // A viewer arrives: capture restarts and fresh frames flow.
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  bool fresh = false;
  for (int i = 0; i < 60 && !fresh; ++i) {
    const auto part = viewer.next(5s);
    ASSERT_TRUE(part);
    const double age =
        static_cast<double>(mjpeg::test::now_us()) / 1e6 - std::stod(part->headers.at("x-timestamp"));
    fresh = age < 0.5;
  }
  EXPECT_TRUE(fresh) << "frames captured after the viewer arrived";
}

TEST(IdleStop, OffByDefault) {
  server_process server{binary(), small_frames()};
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(stats_show(server.port(), "\"source_state\":\"up\"", 2s));
}

// A relayed source's credentials never show (in /stats, the page or the log), and each reconnect
// is one line of ours.
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

}  // namespace
