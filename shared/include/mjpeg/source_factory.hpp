/// The one place that turns a --source spec into a frame source: a plain function of
/// source_config, one branch per kind.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mjpeg/frame_source.hpp"

namespace mjpeg {

/// Picks the source for a spec: "pattern"; a number or a /dev/video* path is a V4L2 camera; a
/// folder or a .jpg/.jpeg file is replayed without re-encoding; "zmq+tcp://…" or "zmq+ipc://…"
/// subscribes to the frame bus; "http://…" relays another MJPEG server's stream without
/// re-encoding; anything else goes to cv::VideoCapture (file, RTSP) in the OpenCV module.
std::unique_ptr<frame_source> make_source(const source_config& config);

/// The kind of source make_source would pick for `spec`, as /cameras names it: "bus", "relay",
/// "pattern", "device", "jpegs" or "opencv".
std::string_view source_kind(const std::string& spec);

}  // namespace mjpeg
