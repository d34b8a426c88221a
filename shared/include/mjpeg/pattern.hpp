/// The synthetic test card: the default source, drawn in plain C++ and encoded without a camera.
#pragma once

#include <cstdint>
#include <memory>

#include "mjpeg/frame_source.hpp"
#include "mjpeg/image.hpp"

namespace mjpeg {

/// The test card as a source: `width`×`height` pixels, a new picture on every read.
std::unique_ptr<frame_source> make_pattern_source(int width, int height);

/// Draws test-card frame `n`, stamped with the current wall-clock time, into `out`.
void draw_pattern(image& out, const image& background, std::uint64_t n);

/// The static, textured part of the test card, drawn once per size.
image pattern_background(int width, int height);

}  // namespace mjpeg
