// The OpenCV module (libmjpeg-opencv.so): the sources that need pixels, through cv::VideoCapture.
// The server opens it with dlopen only when a source needs it (opencv_module.hpp), so the serving
// core, passthrough cameras, ready JPEGs, the relay and the bus never load OpenCV, FFmpeg or
// GStreamer. This file is all of OpenCV the servers use.
//
// Most webcams compress in hardware. Asking them for raw pixels caps a USB 2 camera at a few fps
// above 640x480, and decoding plus re-encoding costs a large share of a small machine's CPU; so a
// camera that offers MJPEG is read directly (v4l2_camera.cpp) and its JPEG bytes published as they
// are, as ustreamer and mjpg-streamer do. OpenCV's V4L2 backend keeps what it does well: cameras
// without MJPEG (raw YUYV, decoded once and encoded at --quality) and --encode (a different
// quality). Video files and network streams (RTSP) go to its FFmpeg backend.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/videoio.hpp>

#include "mjpeg/opencv_module.hpp"

namespace mjpeg {
namespace {

namespace fs = std::filesystem;

// The server's log levels, as opencv_request::log takes them (log::level's values).
constexpr int log_warning = 1;
constexpr int log_info = 2;

void log_line(const opencv_request& request, int level, const char* format, ...)
    __attribute__((format(printf, 3, 4)));
void log_line(const opencv_request& request, int level, const char* format, ...) {
  if (request.log == nullptr) return;
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  request.log(level, line);
}

// OpenCV's frame (CV_8UC3, BGR) into the server's picture type: one copy, row by row in case the
// Mat is a view with padding.
bool to_image(const cv::Mat& mat, image& out) {
  if (mat.empty() || mat.type() != CV_8UC3) return false;
  out.resize(mat.cols, mat.rows);
  const auto row_bytes = static_cast<std::size_t>(mat.cols) * 3;
  for (int y = 0; y < mat.rows; ++y)
    std::memcpy(out.bgr.data() + static_cast<std::size_t>(y) * row_bytes, mat.ptr(y), row_bytes);
  return true;
}

// OpenCV, and FFmpeg and GStreamer beneath it, print a dozen warnings each time a network source
// fails to open (and would print a URL's credentials with them); the capture loop logs one line of
// its own instead. Settings a user made in the environment, for debugging, are left alone.
void quiet_video_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (std::getenv("OPENCV_LOG_LEVEL") == nullptr)
      cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);  // AV_LOG_QUIET, read when OpenCV loads FFmpeg
    ::setenv("GST_DEBUG", "0", 0);
  });
}

// "scheme://…": a network stream rather than a file or a pipeline.
bool is_url(std::string_view spec) {
  const auto separator = spec.find("://");
  return separator != std::string_view::npos && separator > 0 &&
         std::isalpha(static_cast<unsigned char>(spec[0])) &&
         std::all_of(spec.begin(), spec.begin() + static_cast<std::ptrdiff_t>(separator),
                     [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '-' || c == '.'; });
}

// A video file or a network stream: whatever cv::VideoCapture opens.
class opencv_source final : public frame_source {
 public:
  explicit opencv_source(opencv_request request) : request_{std::move(request)} { quiet_video_backends(); }
  void open() override {
    // Files and network streams go to FFmpeg first (fast, and it covers RTSP and HTTP); for files
    // and pipelines, other backends (GStreamer, image sequences) get their turn if it fails. A URL
    // FFmpeg cannot open is a stream that is down: the others would only fail again, noisily.
    // Timeouts keep a network source that hangs from stalling capture (and shutdown) for long;
    // at start-up the open watchdog (source_open_timeout) speaks first, a second earlier.
    const auto& spec = request_.spec;
    // A path that does not exist (and is no GStreamer pipeline, "a ! b") fails at once: probing
    // every backend for it (GStreamer's plugins, gphoto2's camera drivers) takes seconds.
    if (std::error_code ec; !is_url(spec) && spec.find('!') == std::string::npos && !fs::exists(spec, ec))
      throw std::runtime_error("cannot open source '" + request_.shown + "': no such file");
    const std::vector<int> timeouts{cv::CAP_PROP_OPEN_TIMEOUT_MSEC,
                                    static_cast<int>(source_open_timeout.count()) + 1000,
                                    cv::CAP_PROP_READ_TIMEOUT_MSEC, 2000};
    const bool ok =
        capture_.open(spec, cv::CAP_FFMPEG, timeouts) || (!is_url(spec) && capture_.open(spec, cv::CAP_ANY));
    if (!ok || !capture_.isOpened()) {
      std::error_code ec;
      const char* why = is_url(spec)                    ? ""
                        : !fs::exists(spec, ec)         ? ": no such file"
                        : fs::is_regular_file(spec, ec) ? ": not a video file OpenCV can read"
                                                        : ": neither a video file nor a camera";
      throw std::runtime_error("cannot open source '" + request_.shown + "'" + why);
    }
  }
  bool read(source_image& out) override {
    out.jpeg.clear();
    return capture_.read(buffer_) && to_image(buffer_, out.pixels);
  }
  void close() override { capture_.release(); }
  std::string describe() const override { return request_.shown; }

 private:
  opencv_request request_;
  cv::VideoCapture capture_;
  cv::Mat buffer_;
};

std::string fourcc_text(double value) {
  const auto code = static_cast<std::uint32_t>(value);
  std::string text;
  for (int i = 0; i < 4; ++i) {
    const auto c = static_cast<char>((code >> (8 * i)) & 0xFF);
    text += (c >= 0x20 && c < 0x7F) ? c : '?';
  }
  return code == 0 ? "unknown" : text;
}

// A V4L2 camera through OpenCV's V4L2 backend: pixels to encode.
class camera_source final : public frame_source {
 public:
  explicit camera_source(opencv_request request) : request_{std::move(request)} {
    const auto& config = request_.config;
    info_.device = request_.spec;
    info_.requested_width = config.width;
    info_.requested_height = config.height;
    info_.requested_fps = config.fps;
  }

  void open() override {
    const auto& config = request_.config;
    if (!capture_.open(info_.device, cv::CAP_V4L2) || !capture_.isOpened())
      throw std::runtime_error("cannot open camera " + info_.device);
    // MJPEG first, even to re-encode: over USB it is what gives full size at full rate.
    // OpenCV may accept the request and still stream the camera's own format: read it back.
    capture_.set(cv::CAP_PROP_FOURCC, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'));
    const auto format = fourcc_text(capture_.get(cv::CAP_PROP_FOURCC));
    const bool mjpeg = format == "MJPG" || format == "JPEG";
    capture_.set(cv::CAP_PROP_FRAME_WIDTH, config.width);
    capture_.set(cv::CAP_PROP_FRAME_HEIGHT, config.height);
    capture_.set(cv::CAP_PROP_FPS, config.fps);
    info_.passthrough = false;
    info_.why_encode = config.encode && mjpeg ? "--encode" : "camera offers no MJPEG";
    info_.pixel_format = fourcc_text(capture_.get(cv::CAP_PROP_FOURCC));
    info_.width = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_WIDTH));
    info_.height = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_HEIGHT));
    info_.fps = std::max(0.0, capture_.get(cv::CAP_PROP_FPS));  // -1: the driver does not say (unknown)

    // --width/--height/--fps are requests; say so when the camera gives something else.
    const bool same = info_.width == config.width && info_.height == config.height &&
                      (info_.fps <= 0 || std::abs(info_.fps - config.fps) < 0.5);
    char rate[32] = "an unknown rate";
    if (info_.fps > 0) std::snprintf(rate, sizeof rate, "%.3g fps", info_.fps);
    log_line(request_, log_info, "camera %s: %s %dx%d at %s, encode (%s)", info_.device.c_str(),
             info_.pixel_format.c_str(), info_.width, info_.height, rate, info_.why_encode.c_str());
    if (!same)
      log_line(request_, log_warning, "camera %s: asked for %dx%d at %.3g fps, the camera gives %dx%d at %s",
               info_.device.c_str(), config.width, config.height, config.fps, info_.width, info_.height,
               rate);
  }

  bool read(source_image& out) override {
    out.jpeg.clear();
    return capture_.read(buffer_) && to_image(buffer_, out.pixels);
  }

  void close() override { capture_.release(); }
  std::string describe() const override { return "camera " + info_.device; }
  bool self_paced() const override { return true; }
  std::optional<camera_info> camera() const override { return info_; }

 private:
  opencv_request request_;
  camera_info info_;
  cv::VideoCapture capture_;
  cv::Mat buffer_;
};

}  // namespace
}  // namespace mjpeg

/// The module's entry point (opencv_make_source_fn): a new, unopened source for `request`.
extern "C" __attribute__((visibility("default"))) mjpeg::frame_source* mjpeg_opencv_make_source(
    int abi, const mjpeg::opencv_request& request) {
  if (abi != mjpeg::opencv_module_abi) return nullptr;
  if (request.what == mjpeg::opencv_request::kind::camera) return new mjpeg::camera_source{request};
  return new mjpeg::opencv_source{request};
}
