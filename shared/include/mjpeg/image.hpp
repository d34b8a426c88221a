/// Pixels in the core: a plain BGR picture and its one JPEG encoder (libjpeg-turbo's TurboJPEG).
#pragma once

#include <cstdint>
#include <vector>

namespace mjpeg {

/// A picture as 8-bit BGR triplets, row after row with no padding (OpenCV's CV_8UC3 order).
struct image {
  int width = 0;                  ///< Pixels per row.
  int height = 0;                 ///< Rows.
  std::vector<std::uint8_t> bgr;  ///< width × height × 3 bytes.

  /// True when there is no picture.
  bool empty() const { return width <= 0 || height <= 0 || bgr.empty(); }
  /// Drops the picture (a source that delivers JPEG bytes instead), as cv::Mat::release does.
  void release() { *this = {}; }
  /// Makes it `w`×`h` (contents unspecified when the size changes).
  void resize(int w, int h) {
    width = w;
    height = h;
    bgr.resize(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3);
  }
};

/// Encodes `pixels` as a baseline JPEG (4:2:0) at `quality` 1..100 with TurboJPEG; throws
/// std::runtime_error with TurboJPEG's reason when it fails.
std::vector<std::uint8_t> encode_jpeg(const image& pixels, int quality);

}  // namespace mjpeg
