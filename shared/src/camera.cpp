// A V4L2 camera through OpenCV's V4L2 backend, passing the camera's own MJPEG through.
//
// Most webcams compress in hardware. Asking them for raw pixels caps a USB 2 camera at a few fps
// above 640x480, and decoding plus re-encoding costs a large share of a small machine's CPU; so
// we ask for MJPEG with OpenCV's conversion off and publish each buffer's JPEG bytes as they are,
// as ustreamer and mjpg-streamer do. Pixels + encode remain for cameras without MJPEG and for
// --encode (a different quality).

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <opencv2/videoio.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"

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
    // Raw buffers (the JPEG bytes) instead of decoded pixels: the whole point of passthrough.
    info_.passthrough = mjpeg && !config_.encode && capture_.set(cv::CAP_PROP_CONVERT_RGB, 0);
    info_.why_encode = info_.passthrough ? "" : config_.encode ? "--encode" : "camera offers no MJPEG";
    info_.pixel_format = fourcc_text(capture_.get(cv::CAP_PROP_FOURCC));
    info_.width = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_WIDTH));
    info_.height = static_cast<int>(capture_.get(cv::CAP_PROP_FRAME_HEIGHT));
    info_.fps = capture_.get(cv::CAP_PROP_FPS);

    // --width/--height/--fps are requests; say so when the camera gives something else.
    const bool same = info_.width == config_.width && info_.height == config_.height &&
                      std::abs(info_.fps - config_.fps) < 0.5;
    std::fprintf(stderr, "camera %s: %s %dx%d at %.3g fps, %s%s%s%s\n", info_.device.c_str(),
                 info_.pixel_format.c_str(), info_.width, info_.height, info_.fps,
                 info_.passthrough ? "passthrough" : "encode", info_.passthrough ? "" : " (",
                 info_.why_encode.c_str(), info_.passthrough ? "" : ")");
    if (!same)
      std::fprintf(stderr, "camera %s: asked for %dx%d at %.3g fps, the camera gives %dx%d at %.3g fps\n",
                   info_.device.c_str(), config_.width, config_.height, config_.fps, info_.width,
                   info_.height, info_.fps);
  }

  bool read(source_image& out) override {
    // A camera sends a broken JPEG now and then: drop it, count it, take the next one. Only a
    // camera that sends nothing else for a while counts as failed (and gets reopened).
    constexpr int max_bad_in_a_row = 30;
    for (int bad_in_a_row = 0; bad_in_a_row < max_bad_in_a_row; ++bad_in_a_row) {
      if (!capture_.read(buffer_) || buffer_.empty()) return false;
      if (!info_.passthrough) {
        if (buffer_.type() != CV_8UC3) return false;  // not pixels the encoder can take
        out.jpeg.clear();
        cv::swap(out.pixels, buffer_);
        return true;
      }
      if (buffer_.rows != 1 || !buffer_.isContinuous()) return false;
      const std::span<const std::uint8_t> bytes{buffer_.ptr<std::uint8_t>(),
                                                buffer_.total() * buffer_.elemSize()};
      std::size_t length = 0;
      if (plausible_camera_jpeg(bytes, info_.width, info_.height, length)) {
        out.pixels.release();
        out.jpeg.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length));
        return true;
      }
      const auto bad = ++bad_;
      if ((bad & (bad - 1)) == 0)  // 1, 2, 4, 8, …: visible without flooding the log
        std::fprintf(stderr, "camera %s: dropped a broken JPEG of %zu bytes (%llu so far)\n",
                     info_.device.c_str(), bytes.size(), static_cast<unsigned long long>(bad));
    }
    return false;
  }

  void close() override { capture_.release(); }
  std::string describe() const override { return "camera " + info_.device; }
  bool self_paced() const override { return true; }
  std::optional<camera_info> camera() const override { return info_; }
  std::uint64_t bad_frames() const override { return bad_; }

 private:
  source_config config_;
  camera_info info_;
  cv::VideoCapture capture_;
  cv::Mat buffer_;
  std::uint64_t bad_ = 0;
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
  return std::make_unique<camera_source>(std::move(device), config);
}

}  // namespace mjpeg
