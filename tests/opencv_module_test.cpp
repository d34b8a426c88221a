// OpenCV only where pixels are: no server binary links OpenCV, a server on the test card, a folder
// of ready JPEGs or another server's stream never loads it (nor needs the module at all), and a
// source that needs pixels without the module installed is one clear line naming the package.
// (The module's own sources, a raw camera and a video file, are tested in camera_test and
// frame_test.) Real binaries, real sockets.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "client.hpp"
#include "eventually.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;

std::string maps_of(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/maps"};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

// MJPEG_MODULE_DIR set for the servers this test starts (they inherit it), unset at the end.
class without_module {
 public:
  explicit without_module(const std::string& dir) { ::setenv("MJPEG_MODULE_DIR", dir.c_str(), 1); }
  ~without_module() { ::unsetenv("MJPEG_MODULE_DIR"); }
  without_module(const without_module&) = delete;
  without_module& operator=(const without_module&) = delete;
};

TEST(OpenCvModule, NoServerBinaryLinksOpenCv) {
  for (const auto& key : mjpeg::test::variant_keys()) {
    const auto binary = mjpeg::test::variant_binary(key);
    const auto ldd = run_command("/usr/bin/ldd", {binary}, 20s);
    ASSERT_EQ(ldd.exit_code, 0) << ldd.err;
    EXPECT_NE(ldd.out.find("libturbojpeg"), std::string::npos) << binary << " encodes the test card itself";
    EXPECT_EQ(ldd.out.find("libopencv"), std::string::npos) << binary << ":\n" << ldd.out;
  }
}

TEST(OpenCvModule, PatternFolderAndRelayServeWithoutItAndNeverLoadOpenCv) {
  const scratch_dir empty;
  const without_module no_module{empty.path()};
  const std::string binary = mjpeg::test::variant_binary("mjpeg_async");

  server_process card{binary, small_frames()};
  const auto snapshot = get(card.port(), "/snapshot", 5s);
  ASSERT_EQ(snapshot.status, 200) << card.error_output();
  ASSERT_TRUE(mjpeg::test::is_jpeg(snapshot.body));

  const scratch_dir folder;
  folder.write("frame.jpg", snapshot.body);
  server_process replay{binary, small_frames({"--source", folder.path()})};
  EXPECT_EQ(get(replay.port(), "/snapshot", 5s).body, snapshot.body) << replay.error_output();

  server_process relay{
      binary, small_frames({"--source", "http://127.0.0.1:" + std::to_string(replay.port()) + "/stream"})};
  EXPECT_TRUE(
      mjpeg::test::eventually([&] { return get(relay.port(), "/snapshot", 2s).body == snapshot.body; }, 10s))
      << relay.error_output();

  for (const auto* server : {&card, &replay, &relay})
    EXPECT_EQ(maps_of(server->pid()).find("libopencv"), std::string::npos) << "OpenCV mapped in a server";
}

TEST(OpenCvModule, APixelSourceWithoutItNamesThePackage) {
  const scratch_dir empty;
  const without_module no_module{empty.path()};
  const std::string video = empty.write("clip.mp4", "a video the missing module would have opened");
  const auto r = run_command(mjpeg::test::variant_binary("mjpeg_single_thread"),
                             {"--source", video, "--port", "0"}, 20s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const auto lines = mjpeg::test::lines_of(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("needs the OpenCV module"), std::string::npos) << r.err;
  EXPECT_NE(lines[0].find(empty.path() + "/libmjpeg-opencv.so"), std::string::npos) << r.err;
  EXPECT_NE(lines[0].find("apt install mjpeg-concurrency-opencv"), std::string::npos) << r.err;
}

}  // namespace
