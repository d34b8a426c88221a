// A V4L2 camera: which way to capture it.
//
// Most webcams compress in hardware. Asking them for raw pixels caps a USB 2 camera at a few fps
// above 640x480, and decoding plus re-encoding costs a large share of a small machine's CPU; so a
// camera that offers MJPEG is read directly (v4l2_camera.cpp) and its JPEG bytes published as they
// are, as ustreamer and mjpg-streamer do. Cameras without MJPEG (raw YUYV) and --encode go to
// OpenCV's V4L2 backend, in the OpenCV module (opencv_sources.cpp), loaded only then.

#include <algorithm>

#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/opencv_module.hpp"
#include "mjpeg/v4l2_camera.hpp"

namespace mjpeg {

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
  opencv_request request;
  request.what = opencv_request::kind::camera;
  request.shown = device;
  request.spec = std::move(device);
  request.config = config;
  return make_module_source(std::move(request));
}

}  // namespace mjpeg
