/// The HTTP relay source: another MJPEG server's stream, forwarded without re-encoding.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mjpeg/frame_source.hpp"

namespace mjpeg {

/// True for "http://…" sources, which are relayed as MJPEG (rtsp:// and files go to OpenCV).
bool is_http_relay(std::string_view spec) noexcept;

/// Reads `url`'s multipart/x-mixed-replace stream with the shared multipart reader (boundary from
/// its Content-Type; chunked or unframed parts work) and forwards each JPEG as it is, keeping the
/// upstream's X-Timestamp and X-Frame-Seq when it sends them. An upstream silent for
/// max(2 s, 3 frame intervals at `fps`) is a source loss.
std::unique_ptr<frame_source> make_http_relay(const std::string& url, double fps);

}  // namespace mjpeg
