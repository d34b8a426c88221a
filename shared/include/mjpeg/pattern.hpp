/// The synthetic test card: the default source, drawn and encoded without a camera.
#pragma once

#include <cstdint>
#include <memory>

#include <opencv2/core/mat.hpp>

#include "mjpeg/frame_source.hpp"

namespace mjpeg {

/// The test card as a source: `width`×`height` pixels, a new picture on every read.
std::unique_ptr<frame_source> make_pattern_source(int width, int height);

/// Draws test-card frame `n`, stamped with the current wall-clock time, into `out`.
void draw_pattern(cv::Mat& out, const cv::Mat& background, std::uint64_t n);

/// The static, textured part of the test card, drawn once per size.
cv::Mat pattern_background(int width, int height);

}  // namespace mjpeg
