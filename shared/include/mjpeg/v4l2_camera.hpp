/// A V4L2 camera read directly (mmap buffers, DQBUF → copy → QBUF), its own MJPEG passed through.
#pragma once

#include <memory>
#include <string>

#include "mjpeg/frame_source.hpp"

namespace mjpeg {

/// What a device is, as far as choosing how to capture from it goes.
struct v4l2_device_kind {
  bool mjpeg = false;  ///< The device offers MJPEG (or JPEG) frames.
};

/// Opens `device` (any path: /dev/videoN, a /dev/v4l/by-id/… link), asks VIDIOC_QUERYCAP and
/// VIDIOC_ENUM_FMT, and closes it again. Throws std::runtime_error naming the device and the reason
/// when it cannot be opened or is no video capture device (/dev/null, a regular file, a directory,
/// a metadata node).
v4l2_device_kind probe_v4l2_device(const std::string& device);

/// A camera read through the V4L2 API directly, as ustreamer and mjpg-streamer do: S_FMT MJPEG at
/// the requested size, S_PARM for the rate where the driver has it, mmap buffers, poll with a
/// timeout, each JPEG copied out (zero padding after its EOI dropped) and its buffer queued again
/// at once, the driver's timestamp as capture time and its sequence number as the frame's. A
/// truncated JPEG is dropped and counted; EAGAIN and EIO are retried; ENODEV (unplugged) ends the
/// read, and capture reopens the path (a by-id link included) with backoff when it comes back.
std::unique_ptr<frame_source> make_v4l2_camera(std::string device, const source_config& config);

}  // namespace mjpeg
