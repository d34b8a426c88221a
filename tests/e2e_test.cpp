// End-to-end tests: the real binaries, started with --port 0, spoken to over real sockets.
// What every variant serves: the stream (at mjpg-streamer's URLs too), the snapshot, the page and
// /stats, whose capture rate stays true under a CPU hog. The other
// cross-variant behaviours have a file each (bad requests, slow clients, floods, disconnects,
// shutdown, soak); each model's own lesson has its own file.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::EveryVariant;
using mjpeg::test::get;
using mjpeg::test::seq_of;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;
using steady = std::chrono::steady_clock;

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
    // When it came, not after the checks below: the process's first decode loads OpenCV's codecs,
    // which under TSan (symbolizing the libgdal reports it suppresses) takes over a second.
    const double received = static_cast<double>(mjpeg::test::now_us()) / 1e6;
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
      EXPECT_NEAR(stamp, received, 1.0);
    }
    EXPECT_GT(stamp, last_stamp);
    last_stamp = stamp;
  }
}

// /stream?type=octet-stream (for WebKit's fetch(), which refuses a multipart body): the same parts
// under another Content-Type. A frame that reaches a multipart viewer and an octet-stream viewer
// arrives as the same part in both, header and JPEG.
TEST_P(EveryVariant, StreamAsOctetStreamCarriesTheSameParts) {
  server_process server{binary(), small_frames()};
  std::unique_ptr<stream_reader> multipart;
  if (!one_at_a_time()) {
    multipart = std::make_unique<stream_reader>(server.port());
    ASSERT_EQ(multipart->open(), 200) << server.error_output();
  }
  stream_reader octets{server.port(), "/stream?type=octet-stream"};
  ASSERT_EQ(octets.open(), 200) << server.error_output();
  EXPECT_EQ(octets.head().headers.at("content-type"),
            "application/octet-stream;boundary=mjpegconcurrencyframe");
  EXPECT_NE(octets.head().headers.at("cache-control").find("no-store"), std::string::npos);
  const auto part = octets.next();
  ASSERT_TRUE(part);
  EXPECT_EQ(part->headers.at("content-type"), "image/jpeg");
  EXPECT_EQ(std::stoul(part->headers.at("content-length")), part->body.size());
  EXPECT_TRUE(decodes(part->body, 320, 240));
  EXPECT_FALSE(part->headers.at("x-timestamp").empty());
  if (!multipart) return;
  // The multipart viewer came first, so it reaches these frames too (one of the first few, should
  // a loaded machine make the server skip one for either viewer).
  std::optional<mjpeg::test::part> octet = part, same;
  for (int tries = 0; tries < 5 && !(same && seq_of(*same) == seq_of(*octet)); ++tries) {
    if (tries > 0) ASSERT_TRUE(octet = octets.next());
    while (!same || seq_of(*same) < seq_of(*octet))
      ASSERT_TRUE(same = multipart->next()) << "the multipart viewer stopped before frame " << seq_of(*octet);
  }
  ASSERT_EQ(seq_of(*same), seq_of(*octet)) << "no frame reached both viewers";
  EXPECT_EQ(same->headers, octet->headers);
  EXPECT_EQ(same->body, octet->body);
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
  // The page's grid is built from the server's camera list: one camera, at "stream".
  EXPECT_NE(page.body.find(R"(const cameras = [{"name":"","stream":"stream","snapshot":"snapshot"}];)"),
            std::string::npos);
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

// mjpg-streamer's URLs as its clients send them: the input number (there is one input, so _7 is
// 404) and further parameters, such as OctoPrint's cache buster.
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

// The capture rate /stats shows while a CPU hog makes the capture thread's wake-ups late and
// bunched: never above the frames published over the same time, nor above the target.
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

// /stream?fps=N: at most N frames a second to that viewer, the newest each time (skipped at the
// hub), while another viewer gets the camera's rate.
TEST_P(EveryVariant, FpsCapsOneViewerBySkippingFrames) {
  server_process server{binary(), small_frames()};  // a 30 fps camera
  stream_reader capped{server.port(), "/stream?fps=2"};
  ASSERT_EQ(capped.open(), 200) << server.error_output();
  // 11 frames at 2 fps: 5 s between the first and the last.
  std::vector<std::chrono::steady_clock::time_point> arrived;
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 11; ++i) {
    const auto part = capped.next(3s);
    ASSERT_TRUE(part) << "frame " << i;
    arrived.push_back(std::chrono::steady_clock::now());
    seqs.push_back(mjpeg::test::seq_of(*part));
  }
  const double seconds = std::chrono::duration<double>(arrived.back() - arrived.front()).count();
  const double fps = static_cast<double>(arrived.size() - 1) / seconds;
  EXPECT_NEAR(fps, 2.0, 0.2) << "frames over " << seconds << " s";
  // The newest frame each time: about 15 camera frames skipped between two sent ones.
  for (std::size_t i = 1; i < seqs.size(); ++i)
    EXPECT_GE(seqs[i] - seqs[i - 1], 8u) << "frame " << i << " was not the newest";
  if (one_at_a_time()) return;
  // The cap is this viewer's alone: another viewer at the same time gets the camera's rate.
  stream_reader full{server.port()};
  ASSERT_EQ(full.open(), 200);
  const auto first = full.next();
  ASSERT_TRUE(first);
  const auto start = std::chrono::steady_clock::now();
  std::optional<mjpeg::test::part> last;
  for (int i = 0; i < 30; ++i)
    ASSERT_TRUE(last = full.next()) << "uncapped frame " << i;
  const double full_fps =
      30.0 / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(full_fps, 15.0) << "an uncapped viewer beside a capped one";
}

}  // namespace
