#include "mjpeg/pattern.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include "mjpeg/frame.hpp"

namespace mjpeg {
namespace {

// The synthetic test card: colour bars and a textured backdrop (so JPEG sizes resemble a real
// webcam's), a ball that bounces, a sweep bar, the frame number and the wall-clock time. Drawn
// with a few loops over BGR bytes, so the default source needs no imaging library.
class pattern_source final : public frame_source {
 public:
  pattern_source(int width, int height) : width_{width}, height_{height} {}
  void open() override {
    if (background_.empty()) background_ = pattern_background(width_, height_);
  }
  bool read(source_image& out) override {
    out.jpeg.clear();
    draw_pattern(out.pixels, background_, ++count_);
    return true;
  }
  void close() override {}
  std::string describe() const override { return "pattern"; }

 private:
  int width_;
  int height_;
  image background_;
  std::uint64_t count_ = 0;
};

struct bgr {
  std::uint8_t b, g, r;
};

void fill_rect(image& out, int x, int y, int w, int h, bgr colour) {
  const int x0 = std::clamp(x, 0, out.width), x1 = std::clamp(x + w, 0, out.width);
  const int y0 = std::clamp(y, 0, out.height), y1 = std::clamp(y + h, 0, out.height);
  for (int row = y0; row < y1; ++row) {
    auto* p = out.bgr.data() + (static_cast<std::size_t>(row) * static_cast<std::size_t>(out.width) +
                                static_cast<std::size_t>(x0)) *
                                   3;
    for (int col = x0; col < x1; ++col, p += 3) {
      p[0] = colour.b;
      p[1] = colour.g;
      p[2] = colour.r;
    }
  }
}

void fill_circle(image& out, int cx, int cy, int r, bgr colour) {
  for (int dy = -r; dy <= r; ++dy) {
    int dx = 0;
    while ((dx + 1) * (dx + 1) + dy * dy <= r * r)
      ++dx;
    fill_rect(out, cx - dx, cy + dy, 2 * dx + 1, 1, colour);
  }
}

// A 5×7 bitmap font with just the characters the card writes; each row is 5 bits, high bit left.
struct glyph {
  char c;
  std::array<std::uint8_t, 7> rows;
};
constexpr glyph font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}}, {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}}, {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}},
    {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}}, {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'f', {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}}, {'g', {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
    {'j', {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}}, {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}}, {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'u', {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}}, {'x', {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}},
    {'y', {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
};

// Writes `text` with its top-left corner at (x, y), each font pixel a `scale`×`scale` square.
void put_text(image& out, std::string_view text, int x, int y, int scale, bgr colour) {
  for (const char c : text) {
    const auto* g = std::find_if(std::begin(font), std::end(font), [c](const glyph& f) { return f.c == c; });
    if (g != std::end(font))
      for (int row = 0; row < 7; ++row)
        for (int col = 0; col < 5; ++col)
          if (g->rows[static_cast<std::size_t>(row)] & (0x10 >> col))
            fill_rect(out, x + col * scale, y + row * scale, scale, scale, colour);
    x += 6 * scale;  // unknown characters (space) leave a gap
  }
}

}  // namespace

std::unique_ptr<frame_source> make_pattern_source(int width, int height) {
  return std::make_unique<pattern_source>(width, height);
}

image pattern_background(int width, int height) {
  // Blurred noise gives JPEG about as much detail as a real room; colour bars make it a test card.
  // The noise is a fixed xorshift sequence, near-normal (a sum of four uniforms) around 128.
  image noise;
  noise.resize(width, height);
  std::uint64_t state = 0x6d6a706567;
  for (auto& byte : noise.bgr) {
    int sum = 0;
    for (int i = 0; i < 4; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      sum += static_cast<int>(state & 0xFF);
    }
    byte = static_cast<std::uint8_t>(std::clamp(128 + (sum - 510) * 40 / 147, 0, 255));
  }
  // A 3×3 box blur (about GaussianBlur's sigma 1), edges clamped.
  image out;
  out.resize(width, height);
  const auto at = [&](int x, int y, int ch) {
    x = std::clamp(x, 0, width - 1);
    y = std::clamp(y, 0, height - 1);
    return noise
        .bgr[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x)) *
                 3 +
             static_cast<std::size_t>(ch)];
  };
  constexpr bgr bars[] = {{192, 192, 192}, {0, 192, 192}, {192, 192, 0}, {0, 192, 0},
                          {192, 0, 192},   {0, 0, 192},   {192, 0, 0}};
  const int bar_w = std::max(1, width / 7);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const bgr bar = bars[std::min(6, x / bar_w)];
      const int card[] = {bar.b, bar.g, bar.r};
      for (int ch = 0; ch < 3; ++ch) {
        int blurred = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx)
            blurred += at(x + dx, y + dy, ch);
        // 0.6 card + 0.4 noise, as the card always was.
        out.bgr[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                 static_cast<std::size_t>(x)) *
                    3 +
                static_cast<std::size_t>(ch)] =
            static_cast<std::uint8_t>((card[ch] * 6 + blurred * 4 / 9) / 10);
      }
    }
  return out;
}

void draw_pattern(image& out, const image& background, std::uint64_t n) {
  out = background;  // same size: the vector's storage is reused
  const int w = out.width;
  const int h = out.height;
  const int scale = std::max(1, h / 240);  // font pixels: 2 at 480 lines, 3 at 720

  // A ball bouncing around the card and a bar sweeping across it: motion you can see.
  const int r = std::max(4, h / 12);
  const auto period = [](std::uint64_t t, int span) {
    const auto p = static_cast<int>(t % static_cast<std::uint64_t>(2 * span));
    return p < span ? p : 2 * span - p;
  };
  const int bx = r + period(n * 7, std::max(1, w - 2 * r));
  const int by = r + period(n * 5, std::max(1, h - 2 * r));
  fill_circle(out, bx, by, r, {255, 255, 255});
  fill_circle(out, bx, by, r / 2, {0, 0, 255});
  const int sweep = static_cast<int>(n * 4 % static_cast<std::uint64_t>(std::max(1, w)));
  fill_rect(out, sweep, h - h / 10, std::max(2, w / 40), h / 10, {255, 255, 255});

  // Frame number and wall-clock time, so a viewer can see both progress and latency by eye.
  const auto now = wall_clock::now();
  const std::time_t secs = wall_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&secs, &tm);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char clock_text[32];
  std::snprintf(clock_text, sizeof clock_text, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms));
  const int band = 35 * scale;
  fill_rect(out, 0, 0, w, band, {0, 0, 0});
  constexpr bgr white{255, 255, 255};
  put_text(out, "frame " + std::to_string(n), 5 * scale, 5 * scale, 2 * scale, white);
  put_text(out, clock_text, 5 * scale, 20 * scale, 2 * scale, white);
  put_text(out, "mjpeg-concurrency " + std::to_string(w) + "x" + std::to_string(h), w / 2, 5 * scale, scale,
           white);
}

}  // namespace mjpeg
