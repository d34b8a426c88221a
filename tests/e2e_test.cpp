// End-to-end tests: the real binaries, started with --port 0, spoken to over real sockets.
// Every variant runs the common suite; each model's own lesson has its own tests below.

#include <gtest/gtest.h>

#include <csignal>
#include <opencv2/imgcodecs.hpp>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;

bool decodes(const std::string& bytes, int width, int height) {
  const std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  const cv::Mat image = cv::imdecode(data, cv::IMREAD_COLOR);
  return !image.empty() && image.cols == width && image.rows == height;
}

class EveryVariant : public testing::TestWithParam<std::string> {
 protected:
  std::string binary() const { return mjpeg::test::variant_binary(GetParam()); }
};

TEST_P(EveryVariant, StreamDeliversValidFramesInOrder) {
  server_process server{binary(), small_frames()};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200) << server.error_output();
  EXPECT_EQ(viewer.head().headers.at("content-type"),
            "multipart/x-mixed-replace;boundary=mjpegconcurrencyframe");
  EXPECT_NE(viewer.head().headers.at("cache-control").find("no-store"), std::string::npos);
  std::uint64_t last_seq = 0;
  double last_stamp = 0;
  for (int i = 0; i < 5; ++i) {
    const auto part = viewer.next();
    ASSERT_TRUE(part) << "part " << i;
    EXPECT_EQ(part->headers.at("content-type"), "image/jpeg");
    EXPECT_EQ(std::stoul(part->headers.at("content-length")), part->body.size());
    ASSERT_GE(part->body.size(), 4u);
    EXPECT_EQ(static_cast<unsigned char>(part->body[0]), 0xFF);
    EXPECT_EQ(static_cast<unsigned char>(part->body[1]), 0xD8);
    EXPECT_EQ(static_cast<unsigned char>(part->body[part->body.size() - 2]), 0xFF);
    EXPECT_EQ(static_cast<unsigned char>(part->body.back()), 0xD9);
    EXPECT_TRUE(decodes(part->body, 320, 240));
    const auto seq = std::stoull(part->headers.at("x-frame-seq"));
    EXPECT_GT(seq, last_seq);
    last_seq = seq;
    // The first part is the newest frame at connect time, so it is fresh; later ones may have
    // waited in this slow test reader's own socket buffer, but never go back in time.
    const double stamp = std::stod(part->headers.at("x-timestamp"));
    if (i == 0) {
      EXPECT_NEAR(stamp, static_cast<double>(mjpeg::test::now_us()) / 1e6, 1.0);
    }
    EXPECT_GT(stamp, last_stamp);
    last_stamp = stamp;
  }
}

TEST_P(EveryVariant, SnapshotIsOneDecodableJpeg) {
  server_process server{binary(), small_frames()};
  for (const char* path : {"/snapshot", "/?action=snapshot"}) {
    const auto r = get(server.port(), path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.headers.at("content-type"), "image/jpeg");
    EXPECT_EQ(std::stoul(r.headers.at("content-length")), r.body.size());
    EXPECT_TRUE(decodes(r.body, 320, 240)) << path;
  }
}

TEST_P(EveryVariant, PageAndStats) {
  server_process server{binary(), small_frames()};
  const auto page = get(server.port(), "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<img id=\"stream\" src=\"stream\""), std::string::npos);
  const std::string variant = GetParam().substr(std::string{"mjpeg_"}.size());
  EXPECT_NE(page.body.find(variant), std::string::npos);

  std::this_thread::sleep_for(300ms);  // let a few frames be captured
  const auto stats = get(server.port(), "/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.headers.at("content-type"), "application/json");
  for (const std::string& field :
       {"\"variant\":\"" + variant + "\"", std::string{"\"source_up\":true"},
        std::string{"\"viewers_now\":0"}, std::string{"\"frames_captured\":"}, std::string{"\"rejected\":0"}})
    EXPECT_NE(stats.body.find(field), std::string::npos) << field << " in " << stats.body;
}

TEST_P(EveryVariant, BadRequestsGetTheirStatus) {
  server_process server{binary(), small_frames({"--header-timeout", "0.5"})};
  const auto status = [&](const std::string& raw) { return mjpeg::test::request(server.port(), raw).status; };
  EXPECT_EQ(status("GET /nope HTTP/1.1\r\n\r\n"), 404);
  EXPECT_EQ(status("POST /stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405);
  EXPECT_EQ(status("hello there\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /stream HTTP/3.0\r\n\r\n"), 505);
  EXPECT_EQ(status("GET /" + std::string(3000, 'a') + " HTTP/1.1\r\n\r\n"), 414);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nX: " + std::string(9000, 'b') + "\r\n\r\n"), 431);
  EXPECT_EQ(status("GET /stream HTTP/1.1\r\nHost"), 408);  // never finishes its header
  const auto allow = mjpeg::test::request(server.port(), "DELETE / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(allow.headers.at("allow"), "GET, HEAD");
  // And the server still serves.
  EXPECT_EQ(get(server.port(), "/snapshot").status, 200);
}

TEST_P(EveryVariant, SigtermWithAViewerExitsZeroWithinASecond) {
  server_process server{binary(), small_frames()};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  ASSERT_TRUE(viewer.next());
  const auto start = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(2s), 0) << server.error_output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, mjpeg::test::stop_bound);
}

TEST_P(EveryVariant, SigintExitsZero) {
  server_process server{binary(), small_frames()};
  server.signal(SIGINT);
  EXPECT_EQ(server.wait(2s), 0) << server.error_output();
}

TEST_P(EveryVariant, DurationStopsByItself) {
  server_process server{binary(), small_frames({"--duration", "0.5"})};
  EXPECT_EQ(server.wait(3s), 0) << server.error_output();
}

INSTANTIATE_TEST_SUITE_P(Variants, EveryVariant, testing::ValuesIn(mjpeg::test::variant_keys()),
                         [](const auto& param_info) { return param_info.param; });

// single_thread's lesson: while viewer one watches, viewer two is connected but gets nothing;
// once viewer one leaves, viewer two's stream starts.
TEST(SingleThread, SecondViewerWaitsForTheFirst) {
  server_process server{mjpeg::test::variant_binary("mjpeg_single_thread"), small_frames()};
  auto first = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(first->open(), 200);
  ASSERT_TRUE(first->next());
  stream_reader second{server.port()};
  EXPECT_EQ(second.open(1s), 0) << "viewer two must receive nothing while viewer one is served";
  ASSERT_TRUE(first->next()) << "viewer one keeps receiving";
  first.reset();  // viewer one leaves
  ASSERT_EQ(second.open(5s), 200);
  EXPECT_TRUE(second.next());
}

}  // namespace
