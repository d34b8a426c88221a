// Several cameras behind one server (--camera NAME=SOURCE): every camera at its own URLs and at
// mjpg-streamer's numbered ones, each playing its own source's bytes in every variant; one camera
// failing never disturbs the others; --idle-stop stops each camera on its own; each camera of a
// config file's [camera.NAME] sections captures at its own size and rate, and /NAME/stats counts
// that camera alone.

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "fake_camera.hpp"
#include "mjpeg/capture.hpp"
#include "mjpeg/image.hpp"
#include "mjpeg/pattern.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::eventually;
using mjpeg::test::EveryVariant;
using mjpeg::test::get;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stats_field;
using mjpeg::test::stats_number;
using mjpeg::test::stream_reader;
namespace fs = std::filesystem;

constexpr const char* device = "/dev/video-cameras-test";

// The fake V4L2 camera (tests/support/fake_v4l2.cpp) at `device`, serving the JPEGs in `folder`
// with zero padding after EOI on every third frame, as some USB cameras do: set in the
// environment the next server inherits, and unset again when this goes.
class fake_camera {
 public:
  explicit fake_camera(const fs::path& folder) {
    mjpeg::test::use_fake_camera(env_, device, folder, "320x240");
    env_.set("FAKE_V4L2_PAD_EVERY", "3");
  }

 private:
  mjpeg::test::scoped_env env_;
};

// `count` frames read from `path`, each required to be one of `jpegs` byte for byte.
void expect_frames_from(unsigned short port, const std::string& path, const std::set<std::string>& jpegs,
                        int count) {
  stream_reader viewer{port, path};
  ASSERT_EQ(viewer.open(), 200) << path;
  for (int i = 0; i < count; ++i) {
    const auto part = viewer.next();
    ASSERT_TRUE(part) << path << " part " << i;
    EXPECT_EQ(jpegs.count(part->body), 1u) << path << " part " << i << ": not this camera's bytes";
  }
}

// The "state" /cameras gives the camera `name`, or "" when it is not listed.
std::string state_of(unsigned short port, const std::string& name) {
  const std::string list = get(port, "/cameras", 3s).body;
  const auto at = list.find("{\"name\":\"" + name + "\"");
  if (at == std::string::npos) return "";
  const auto state = list.find("\"state\":\"", at);
  if (state == std::string::npos) return "";
  const auto begin = state + 9;
  return list.substr(begin, list.find('"', begin) - begin);
}

TEST_P(EveryVariant, EveryCameraOfAThreeCameraServerPlaysItsOwnBytes) {
  const scratch_dir dir;
  const auto device_jpegs =
      mjpeg::test::write_test_card_jpegs(fs::path{dir.path()} / "device", 320, 240, 1, 7, 4);
  const auto folder_jpegs =
      mjpeg::test::write_test_card_jpegs(fs::path{dir.path()} / "folder", 320, 240, 100, 7, 4);
  const auto origin_jpegs =
      mjpeg::test::write_test_card_jpegs(fs::path{dir.path()} / "origin", 320, 240, 200, 7, 4);
  // The relayed camera is a second server's stream.
  server_process origin{binary(), small_frames({"--source", dir.path() + "/origin"})};
  const std::string relay = "http://127.0.0.1:" + std::to_string(origin.port()) + "/stream";
  const auto server = [&] {
    const fake_camera camera{fs::path{dir.path()} / "device"};
    return std::make_unique<server_process>(
        binary(), small_frames({"--camera", std::string{"dev="} + device, "--camera",
                                "folder=" + dir.path() + "/folder", "--camera", "relay=" + relay}));
  }();
  const unsigned short port = server->port();

  const std::vector<std::pair<std::string, const std::set<std::string>*>> cameras{
      {"dev", &device_jpegs}, {"folder", &folder_jpegs}, {"relay", &origin_jpegs}};
  for (std::size_t n = 0; n < cameras.size(); ++n) {
    const auto& [name, jpegs] = cameras[n];
    // Its own URLs, and mjpg-streamer's numbered ones (OctoPrint, Mainsail, Home Assistant).
    expect_frames_from(port, "/" + name + "/stream", *jpegs, 3);
    expect_frames_from(port, "/?action=stream_" + std::to_string(n), *jpegs, 1);
    for (const std::string& snapshot : {"/" + name + "/snapshot", "/?action=snapshot_" + std::to_string(n)}) {
      const auto r = get(port, snapshot);
      EXPECT_EQ(r.status, 200) << snapshot;
      EXPECT_EQ(jpegs->count(r.body), 1u) << snapshot << ": not this camera's bytes";
    }
  }
  // The plain URLs are the first camera's.
  expect_frames_from(port, "/stream", device_jpegs, 1);
  // The list the page's grid is made from; the grid itself; unknown cameras.
  const auto list = get(port, "/cameras");
  EXPECT_EQ(list.status, 200);
  for (const char* entry : {R"({"name":"dev","source":"device")", R"({"name":"folder","source":"jpegs")",
                            R"({"name":"relay","source":"relay")"})
    EXPECT_NE(list.body.find(entry), std::string::npos) << list.body;
  const auto page = get(port, "/");
  EXPECT_NE(page.body.find(R"("stream":"relay/stream")"), std::string::npos);
  EXPECT_EQ(get(port, "/relay/").status, 200);
  const auto unknown = get(port, "/porch/stream");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("/cameras lists them"), std::string::npos) << unknown.body;
  EXPECT_EQ(get(port, "/?action=stream_3").status, 404);
}

// The relayed camera's upstream dies: the other camera's viewer keeps getting new frames, and
// the dead one is reported down in /cameras while the healthy one stays up.
TEST(SeveralCameras, OneCameraFailingLeavesTheOthersStreaming) {
  auto origin = std::make_unique<server_process>(mjpeg::test::variant_binary("mjpeg_async"), small_frames());
  const std::string relay = "http://127.0.0.1:" + std::to_string(origin->port()) + "/stream";
  server_process server{mjpeg::test::variant_binary("mjpeg_async"),
                        small_frames({"--camera", "card=pattern", "--camera", "relay=" + relay})};
  stream_reader card{server.port(), "/card/stream"};
  ASSERT_EQ(card.open(), 200);
  ASSERT_TRUE(card.next());
  origin->signal(SIGKILL);
  origin.reset();
  EXPECT_TRUE(eventually([&] { return state_of(server.port(), "relay") == "down"; }, 10s))
      << get(server.port(), "/cameras").body;
  // Meanwhile, and after, the test card flows on at its rate.
  std::uint64_t last = 0;
  for (int i = 0; i < 10; ++i) {
    const auto part = card.next(2s);
    ASSERT_TRUE(part) << "frame " << i << " after the other camera failed";
    EXPECT_GT(mjpeg::test::seq_of(*part), last);
    last = mjpeg::test::seq_of(*part);
  }
  EXPECT_EQ(state_of(server.port(), "card"), "up");
}

// --idle-stop per camera: the camera nobody watches stops capturing, the watched one does not.
TEST(SeveralCameras, IdleStopStopsEachUnwatchedCameraOnItsOwn) {
  server_process server{
      mjpeg::test::variant_binary("mjpeg_async"),
      small_frames({"--idle-stop", "0.5", "--camera", "watched=pattern", "--camera", "alone=pattern"})};
  stream_reader viewer{server.port(), "/watched/stream"};
  ASSERT_EQ(viewer.open(), 200);
  EXPECT_TRUE(eventually([&] { return state_of(server.port(), "alone") == "idle"; }, 10s))
      << get(server.port(), "/cameras").body;
  ASSERT_TRUE(viewer.next());
  EXPECT_EQ(state_of(server.port(), "watched"), "up");
  // A viewer of the idle camera wakes it (its first frame is the last one from before).
  stream_reader second{server.port(), "/alone/stream"};
  ASSERT_EQ(second.open(), 200);
  EXPECT_TRUE(second.next(5s));
  EXPECT_TRUE(second.next(5s));
  EXPECT_TRUE(eventually([&] { return state_of(server.port(), "alone") == "up"; }, 5s));
}

// Width and height of a JPEG, decoded; 0×0 when it is none.
std::pair<int, int> size_of(const std::string& jpeg) {
  const cv::Mat image = cv::imdecode(std::vector<unsigned char>(jpeg.begin(), jpeg.end()), cv::IMREAD_COLOR);
  return {image.cols, image.rows};
}

// Two cameras from config sections, at different sizes and rates: each camera's snapshot has its
// own size, its /NAME/stats its own rate, viewers and frame age, and ?fps=N is held to its rate.
TEST(SeveralCameras, EachConfigSectionsCameraRunsAtItsOwnSizeAndRate) {
  const scratch_dir dir;
  const std::string config = dir.write("cameras.conf",
                                       "[camera.wide]\n"
                                       "source = \"pattern\"\n"
                                       "width = 320\n"
                                       "height = 240\n"
                                       "fps = 20\n"
                                       "\n"
                                       "[camera.small]\n"
                                       "source = \"pattern\"\n"
                                       "width = 160\n"
                                       "height = 96\n"
                                       "fps = 4\n"
                                       "quality = 50\n");
  server_process server{
      mjpeg::test::variant_binary("mjpeg_async"),
      {"--config", config, "--port", "0", "--width", "64", "--height", "48", "--fps", "30"}};
  const unsigned short port = server.port();
  EXPECT_EQ(size_of(get(port, "/wide/snapshot").body), std::make_pair(320, 240));
  EXPECT_EQ(size_of(get(port, "/small/snapshot").body), std::make_pair(160, 96));
  EXPECT_EQ(size_of(get(port, "/?action=snapshot_1").body), std::make_pair(160, 96));
  // A viewer of the small camera: counted there, not at the other.
  stream_reader viewer{port, "/small/stream"};
  ASSERT_EQ(viewer.open(), 200);
  ASSERT_TRUE(viewer.next());
  const auto fps_of = [&](const std::string& name) {
    return std::stod(stats_field(get(port, "/" + name + "/stats").body, "fps_capture"));
  };
  // Measured rates settle within two seconds; a late wake-up only delays them.
  EXPECT_TRUE(eventually([&] { return fps_of("small") > 3 && fps_of("small") < 4.5; }, 10s))
      << get(port, "/small/stats").body;
  EXPECT_TRUE(eventually([&] { return fps_of("wide") > 12 && fps_of("wide") < 21; }, 10s))
      << get(port, "/wide/stats").body;
  const std::string small = get(port, "/small/stats").body;
  EXPECT_EQ(stats_field(small, "name"), "small") << small;
  EXPECT_NE(small.find(R"("width":160,"height":96,"fps_target":4,)"), std::string::npos) << small;
  EXPECT_EQ(stats_number(small, "viewers_now"), 1u) << small;
  EXPECT_NE(stats_field(small, "frame_age_s"), "null") << small;
  const std::string wide = get(port, "/wide/stats").body;
  EXPECT_NE(wide.find(R"("width":320,"height":240,"fps_target":20,)"), std::string::npos) << wide;
  EXPECT_EQ(stats_number(wide, "viewers_now"), 0u) << wide;
  // /stats: the totals, and a row per camera with its own settings; /cameras the same.
  const std::string all = get(port, "/stats").body;
  EXPECT_EQ(stats_number(all, "viewers_now"), 1u) << all;
  EXPECT_NE(
      all.find(
          R"({"name":"small","source":"pattern","source_state":"up","width":160,"height":96,"fps_target":4,)"),
      std::string::npos)
      << all;
  EXPECT_NE(get(port, "/cameras")
                .body.find(R"({"name":"wide","source":"pattern","width":320,"height":240,"fps":20,)"),
            std::string::npos);
  // The grid shapes each tile as its camera's frames.
  EXPECT_NE(get(port, "/").body.find(
                R"("stream":"small/stream","snapshot":"small/snapshot","width":160,"height":96})"),
            std::string::npos);
  // ?fps=N up to each camera's own rate.
  stream_reader capped{port, "/wide/stream?fps=10"};
  EXPECT_EQ(capped.open(), 200);
  stream_reader too_fast{port, "/small/stream?fps=10"};
  EXPECT_EQ(too_fast.open(), 400);
  EXPECT_EQ(get(port, "/porch/stats").status, 404);
}

}  // namespace
