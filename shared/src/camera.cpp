// A V4L2 camera: which way to capture it, and the OpenCV way for cameras that need pixels.
//
// Most webcams compress in hardware. Asking them for raw pixels caps a USB 2 camera at a few fps
// above 640x480, and decoding plus re-encoding costs a large share of a small machine's CPU; so a
// camera that offers MJPEG is read directly (v4l2_camera.cpp) and its JPEG bytes published as they
// are, as ustreamer and mjpg-streamer do. OpenCV's V4L2 backend keeps what it does well: cameras
// without MJPEG (raw YUYV, decoded once and encoded at --quality) and --encode (a different
// quality).

#include <cmath>
#include <stdexcept>

#include <opencv2/videoio.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/v4l2_camera.hpp"

namespace mjpeg {
namespace {

std::string fourcc_text(double value) {
  const auto code = static_cast<std::uint32_t>(value);
  std::string text;
  for (int i = 0; i < 4; ++i) {
    const auto c = static_cast<char>((code >> (8 * i)) & 0xFF);
    text += (c >= 0x20 && c < 0x7F) ? c : '?';
  }
  return code == 0 ? "unknown" : text;
}

class camera_source final : public frame_source {
 public:
  camera_source(std::string device, const source_config& config) : config_{config} {
    info_.device = std::move(device);
    info_.requested_width = config.width;
    info_.requested_height = config.height;
    info_.requested_fps = config.fps;
  }

  void open() override {
    if (!capture_.open(info_.device, cv::CAP_V4L2) || !capture_.isOpened())
      throw std::runtime_error("cannot open camera " + info_.device);
    // MJPEG first, even to re-encode: over USB it is what gives full size at full rate.
    // OpenCV may accept the request and still stream the camera's own format: read it back.
    capture_.set(cv::CAP_PROP_FOURCC, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'));
    const auto format = fourcc_text(capture_.get(cv::CAP_PROP_FOURCC));
    const bool mjpeg = format == "MJPG" || format == "JPEG";
    capture_.set(cv::CAP_PROP_FRAME_WIDTH, config_.width);
    capture_.set(cv::CAP_PROP_FRAME_HEIGHT, config_.height);
    capture_.set(cv::CAP_PROP_FPS, config_.fps);
    info_.passthrough = false;
    info_.why_encode = config_.encode && mjpeg ? "--encode" : "camera offers no MJPEG";
    info_.pixel_format = fourcc_text(capture_.get(cv::CAP_PROP_FOURCC));
    info_.width = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_WIDTH));
    info_.height = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_HEIGHT));
    info_.fps = std::max(0.0, capture_.get(cv::CAP_PROP_FPS));  // -1: the driver does not say (unknown)

    // --width/--height/--fps are requests; say so when the camera gives something else.
    const bool same = info_.width == config_.width && info_.height == config_.height &&
                      (info_.fps <= 0 || std::abs(info_.fps - config_.fps) < 0.5);
    char rate[32] = "an unknown rate";
    if (info_.fps > 0) std::snprintf(rate, sizeof rate, "%.3g fps", info_.fps);
    log::write(log::level::info, "camera %s: %s %dx%d at %s, encode (%s)", info_.device.c_str(),
               info_.pixel_format.c_str(), info_.width, info_.height, rate, info_.why_encode.c_str());
    if (!same)
      log::write(log::level::warning, "camera %s: asked for %dx%d at %.3g fps, the camera gives %dx%d at %s",
                 info_.device.c_str(), config_.width, config_.height, config_.fps, info_.width, info_.height,
                 rate);
  }

  bool read(source_image& out) override {
    if (!capture_.read(buffer_) || buffer_.empty() || buffer_.type() != CV_8UC3) return false;
    out.jpeg.clear();
    cv::swap(out.pixels, buffer_);
    return true;
  }

  void close() override { capture_.release(); }
  std::string describe() const override { return "camera " + info_.device; }
  bool self_paced() const override { return true; }
  std::optional<camera_info> camera() const override { return info_; }

 private:
  source_config config_;
  camera_info info_;
  cv::VideoCapture capture_;
  cv::Mat buffer_;
};

}  // namespace

bool plausible_camera_jpeg(std::span<const std::uint8_t> bytes, int width, int height, std::size_t& length) {
  // Some cameras pad a buffer after the EOI marker with zeros; the JPEG ends at the marker.
  length = bytes.size();
  while (length > 0 && bytes[length - 1] == 0)
    --length;
  // The smallest valid baseline JPEG is about 125 bytes; none is larger than raw RGB plus headers.
  constexpr std::size_t min_jpeg = 125;
  const auto max_jpeg =
      static_cast<std::size_t>(std::max(width, 16)) * static_cast<std::size_t>(std::max(height, 16)) * 3 +
      65536;
  return length >= min_jpeg && length <= max_jpeg && bytes[2] == 0xFF && looks_like_jpeg(bytes.first(length));
}

std::unique_ptr<frame_source> make_camera_source(std::string device, const source_config& config) {
  // Not a capture device (/dev/null, a regular file, a metadata node): the probe says why.
  const auto kind = probe_v4l2_device(device);
  if (kind.mjpeg && !config.encode) return make_v4l2_camera(std::move(device), config);
  return std::make_unique<camera_source>(std::move(device), config);
}

}  // namespace mjpeg
