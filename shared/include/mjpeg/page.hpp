/// The HTML viewer page served at "/".
#pragma once

#include <string>
#include <string_view>

namespace mjpeg {

/// The HTML viewer served at "/": the live stream and a status line (variant, fps, viewers)
/// refreshed from /stats. Plain HTML and JavaScript, no external assets.
std::string viewer_page(std::string_view variant, int width, int height, double fps);

}  // namespace mjpeg
