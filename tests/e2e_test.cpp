// End-to-end tests: the real binaries, started with --port 0, spoken to over real sockets.
// What every variant serves: the stream, the snapshot, the page and /stats. The other
// cross-variant behaviours have a file each (bad requests, slow clients, floods, disconnects,
// shutdown, soak); each model's own lesson has its own file.

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::EveryVariant;
using mjpeg::test::get;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;

bool decodes(const std::string& bytes, int width, int height) {
  const std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  const cv::Mat image = cv::imdecode(data, cv::IMREAD_COLOR);
  return !image.empty() && image.cols == width && image.rows == height;
}

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

}  // namespace
