#include "mjpeg/pattern.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include <opencv2/imgproc.hpp>

#include "mjpeg/frame.hpp"

namespace mjpeg {
namespace {

// The synthetic test card: colour bars and a textured backdrop (so JPEG sizes resemble a real
// webcam's), a ball that bounces, a sweep bar, the frame number and the wall-clock time.
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
  cv::Mat background_;
  std::uint64_t count_ = 0;
};

}  // namespace

std::unique_ptr<frame_source> make_pattern_source(int width, int height) {
  return std::make_unique<pattern_source>(width, height);
}

cv::Mat pattern_background(int width, int height) {
  // Blurred noise gives JPEG about as much detail as a real room; colour bars make it a test card.
  cv::Mat noise(height, width, CV_8UC3);
  cv::RNG rng{0x6d6a706567};
  rng.fill(noise, cv::RNG::NORMAL, cv::Scalar::all(128), cv::Scalar::all(40));
  cv::GaussianBlur(noise, noise, cv::Size{0, 0}, 1.0);
  cv::Mat card(height, width, CV_8UC3);
  const cv::Scalar bars[] = {{192, 192, 192}, {0, 192, 192}, {192, 192, 0}, {0, 192, 0},
                             {192, 0, 192},   {0, 0, 192},   {192, 0, 0}};
  const int bar_w = std::max(1, width / 7);
  for (int i = 0; i < 7; ++i)
    cv::rectangle(card, cv::Rect{i * bar_w, 0, i == 6 ? width - 6 * bar_w : bar_w, height}, bars[i],
                  cv::FILLED);
  cv::Mat out;
  cv::addWeighted(card, 0.6, noise, 0.4, 0, out);
  return out;
}

void draw_pattern(cv::Mat& out, const cv::Mat& background, std::uint64_t n) {
  background.copyTo(out);
  const int w = out.cols;
  const int h = out.rows;
  const double scale = h / 480.0;

  // A ball bouncing around the card and a bar sweeping across it: motion you can see.
  const int r = std::max(4, h / 12);
  const auto period = [](std::uint64_t t, int span) {
    const auto p = static_cast<int>(t % static_cast<std::uint64_t>(2 * span));
    return p < span ? p : 2 * span - p;
  };
  const int bx = r + period(n * 7, std::max(1, w - 2 * r));
  const int by = r + period(n * 5, std::max(1, h - 2 * r));
  cv::circle(out, {bx, by}, r, {255, 255, 255}, cv::FILLED, cv::LINE_AA);
  cv::circle(out, {bx, by}, r / 2, {0, 0, 255}, cv::FILLED, cv::LINE_AA);
  const int sweep = static_cast<int>(n * 4 % static_cast<std::uint64_t>(w));
  cv::rectangle(out, cv::Rect{sweep, h - h / 10, std::max(2, w / 40), h / 10}, {255, 255, 255}, cv::FILLED);

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
  const std::string frame_text = "frame " + std::to_string(n);
  const std::string size_text = std::to_string(w) + "x" + std::to_string(h);
  const int band = static_cast<int>(70 * scale);
  cv::rectangle(out, cv::Rect{0, 0, w, band}, {0, 0, 0}, cv::FILLED);
  const auto put = [&](const std::string& text, int x, int y, double size) {
    cv::putText(out, text, {x, y}, cv::FONT_HERSHEY_SIMPLEX, size * scale, {255, 255, 255},
                std::max(1, static_cast<int>(2 * scale)), cv::LINE_AA);
  };
  put(frame_text, static_cast<int>(10 * scale), static_cast<int>(30 * scale), 0.9);
  put(clock_text, static_cast<int>(10 * scale), static_cast<int>(60 * scale), 0.9);
  put("mjpeg-concurrency " + size_text, w / 2, static_cast<int>(30 * scale), 0.6);
}

}  // namespace mjpeg
