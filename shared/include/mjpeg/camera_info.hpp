/// What a camera agreed to deliver after negotiation, as logs, /stats and the viewer page show it.
#pragma once

#include <string>

namespace mjpeg {

/// The outcome of asking a V4L2 camera for a format, a size and a rate.
struct camera_info {
  std::string device;        ///< Device path, e.g. "/dev/video0".
  std::string pixel_format;  ///< FourCC the camera delivers: "MJPG", "YUYV", …
  int width = 0;             ///< Width the camera delivers.
  int height = 0;            ///< Height the camera delivers.
  double fps = 0;            ///< Frame rate the camera reports; 0 when it cannot say ("unknown").
  bool passthrough = false;  ///< True: the camera's JPEG bytes are published as they are.
  int requested_width = 0;   ///< Width asked for (--width).
  int requested_height = 0;  ///< Height asked for (--height).
  double requested_fps = 0;  ///< Rate asked for (--fps).
  std::string why_encode;    ///< Why frames are re-encoded ("--encode", "no MJPEG"); empty in passthrough.
};

}  // namespace mjpeg
