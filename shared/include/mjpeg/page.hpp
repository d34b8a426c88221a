/// The HTML viewer page served at "/".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mjpeg {

/// One tile of the viewer's grid: a camera's name and its URLs, relative to the page.
struct page_camera {
  std::string name;      ///< Shown on the tile; empty for a server's only camera.
  std::string stream;    ///< Its multipart stream ("stream").
  std::string snapshot;  ///< Its single JPEG ("snapshot").
  int width = 0;         ///< Its configured width, for the tile's shape; 0: the page's.
  int height = 0;        ///< Its configured height; 0: the page's.
};

/// The HTML viewer served at "/": a grid with one tile per camera (each reconnecting on its own
/// with backoff, dropped while the tab is hidden, or polling snapshots with ?mode=snapshot) and a
/// status line (variant, fps, viewers) refreshed from /stats. Plain HTML and JavaScript, no
/// external assets.
std::string viewer_page(std::string_view variant, int width, int height, double fps,
                        const std::vector<page_camera>& cameras = {{"", "stream", "snapshot"}});

}  // namespace mjpeg
