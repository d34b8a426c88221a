// mjpeg-camera-capture: CPU per captured frame of a camera's MJPEG, read directly (the project's
// V4L2 source) against read through OpenCV's V4L2 backend with its conversion off (the way the
// servers captured a camera before), and whether each frame read is the one the camera filled.
//
// Run it with the fake camera preloaded (bench/camera-capture does): its folder of JPEGs is what
// the camera fills, frame n of the stream being file n % count, so the direct path is checked frame
// by frame through the driver's sequence number; OpenCV hands over no sequence, so its frames are
// checked against the whole set (a frame is intact when it is byte for byte one of the files).
// CPU is the reading thread's own (CLOCK_THREAD_CPUTIME_ID): the fake driver's thread, which
// stands for the camera's hardware, is not counted. One JSON object per run on stdout.

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <opencv2/videoio.hpp>

#include "mjpeg/frame_source.hpp"
#include "mjpeg/v4l2_camera.hpp"

namespace {

namespace fs = std::filesystem;

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

std::vector<std::vector<std::uint8_t>> load_folder(const std::string& folder) {
  std::vector<fs::path> names;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.path().extension() == ".jpg") names.push_back(entry.path());
  std::sort(names.begin(), names.end());
  std::vector<std::vector<std::uint8_t>> out;
  for (const auto& name : names) {
    std::ifstream in{name, std::ios::binary};
    out.emplace_back(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
  }
  return out;
}

struct tally {
  std::uint64_t frames = 0;
  std::uint64_t intact = 0;  // byte for byte the frame the camera filled
  std::uint64_t broken = 0;  // anything else (dropped by the source, or not the camera's bytes)
  double cpu = 0;
  double wall = 0;
};

tally run_direct(const std::string& device, int width, int height, double seconds,
                 const std::vector<std::vector<std::uint8_t>>& files) {
  mjpeg::source_config config;
  config.spec = device;
  config.width = width;
  config.height = height;
  auto source = mjpeg::make_v4l2_camera(device, config);
  source->open();
  mjpeg::source_image image;
  tally t;
  const auto start = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  while (std::chrono::steady_clock::now() - start < std::chrono::duration<double>{seconds}) {
    if (!source->read(image)) break;
    ++t.frames;
    if (image.jpeg == files[(image.seq - 1) % files.size()]) ++t.intact;
  }
  t.cpu = thread_cpu_seconds() - cpu0;
  t.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  t.broken = source->bad_frames() + (t.frames - t.intact);
  return t;
}

// As the servers' camera source did before the direct path: OpenCV's V4L2 backend asked for MJPG
// with CONVERT_RGB off; each buffer's bytes are copied out as the frame.
tally run_opencv(const std::string& device, int width, int height, double seconds,
                 const std::vector<std::vector<std::uint8_t>>& files) {
  cv::VideoCapture capture;
  if (!capture.open(device, cv::CAP_V4L2)) throw std::runtime_error("OpenCV cannot open " + device);
  capture.set(cv::CAP_PROP_FOURCC, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'));
  capture.set(cv::CAP_PROP_FRAME_WIDTH, width);
  capture.set(cv::CAP_PROP_FRAME_HEIGHT, height);
  capture.set(cv::CAP_PROP_FPS, 30);
  capture.set(cv::CAP_PROP_CONVERT_RGB, 0);
  std::set<std::vector<std::uint8_t>> known(files.begin(), files.end());
  cv::Mat buffer;
  std::vector<std::uint8_t> jpeg;
  tally t;
  const auto start = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  while (std::chrono::steady_clock::now() - start < std::chrono::duration<double>{seconds}) {
    if (!capture.read(buffer) || buffer.empty()) break;
    const auto* p = buffer.ptr<std::uint8_t>();
    jpeg.assign(p, p + buffer.total() * buffer.elemSize());
    std::size_t length = 0;
    ++t.frames;
    // The server's check (SOI, EOI, padding stripped) decides what it publishes; the set lookup,
    // outside the CPU count, whether that was the camera's frame.
    const bool plausible = mjpeg::plausible_camera_jpeg(jpeg, width, height, length);
    const double pause = thread_cpu_seconds();
    if (plausible) jpeg.resize(length);
    if (plausible && known.count(jpeg)) ++t.intact;
    t.cpu -= thread_cpu_seconds() - pause;
  }
  t.cpu += thread_cpu_seconds() - cpu0;
  t.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  t.broken = t.frames - t.intact;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "direct";
  std::string device = "/dev/video-test";
  std::string folder;
  int width = 640;
  int height = 480;
  double seconds = 10;
  CLI::App app{
      "mjpeg-camera-capture: CPU per captured frame, direct V4L2 against OpenCV (fake camera preloaded)"};
  app.add_option("--path", path, "direct or opencv")->check(CLI::IsMember({"direct", "opencv"}));
  app.add_option("--device", device, "Camera device");
  app.add_option("--frames", folder, "The folder of JPEGs the fake camera serves (FAKE_V4L2_JPEGS)")
      ->required();
  app.add_option("--width", width, "Frame width")->check(CLI::Range(16, 7680));
  app.add_option("--height", height, "Frame height")->check(CLI::Range(16, 4320));
  app.add_option("--seconds", seconds, "How long to capture")->check(CLI::Range(1.0, 600.0));
  CLI11_PARSE(app, argc, argv);
  try {
    const auto files = load_folder(folder);
    if (files.empty()) throw std::runtime_error("no .jpg files in " + folder);
    const tally t = path == "direct" ? run_direct(device, width, height, seconds, files)
                                     : run_opencv(device, width, height, seconds, files);
    std::printf(
        "{\"path\":\"%s\",\"size\":\"%dx%d\",\"seconds\":%.2f,\"frames\":%llu,\"fps\":%.2f,\"intact\":%llu,"
        "\"broken\":%llu,\"cpu_s\":%.4f,\"cpu_us_per_frame\":%.1f}\n",
        path.c_str(), width, height, t.wall, static_cast<unsigned long long>(t.frames),
        static_cast<double>(t.frames) / t.wall, static_cast<unsigned long long>(t.intact),
        static_cast<unsigned long long>(t.broken), t.cpu,
        t.frames ? t.cpu * 1e6 / static_cast<double>(t.frames) : 0.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mjpeg-camera-capture: %s\n", e.what());
    return 1;
  }
}
