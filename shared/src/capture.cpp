#include "mjpeg/capture.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>

#include <opencv2/imgcodecs.hpp>

namespace mjpeg {

std::vector<std::uint8_t> encode_jpeg(const cv::Mat& pixels, int quality) {
  std::vector<std::uint8_t> jpeg;
  cv::imencode(".jpg", pixels, jpeg, {cv::IMWRITE_JPEG_QUALITY, quality});
  return jpeg;
}

capture::capture(std::unique_ptr<frame_source> source, capture_config config, frame_hub& hub,
                 server_stats& stats)
    : source_{std::move(source)}, config_{config}, hub_{hub}, stats_{stats} {
  source_->open();
  stats_.set_source(source_->describe(), true);
  thread_ = std::thread{[this] { run(); }};
}

capture::~capture() {
  stop();
  thread_.join();
}

void capture::stop() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
}

bool capture::sleep_until(std::chrono::steady_clock::time_point t) {
  std::unique_lock lock{mutex_};
  return !wake_.wait_until(lock, t, [this] { return stopping_; });
}

void capture::run() {
  using std::chrono::steady_clock;
  const auto interval =
      std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>{1.0 / config_.fps});
  constexpr std::chrono::milliseconds first_backoff{250};
  constexpr std::chrono::milliseconds max_backoff{5000};
  auto backoff = first_backoff;
  bool source_up = true;
  std::uint64_t seq = 0;
  source_image image;
  auto due = steady_clock::now();

  // A camera sets its own pace: read every frame it has (so its buffers never hold stale ones)
  // and publish those that are due. Everything else is read only when a frame is due.
  const bool self_paced = source_->self_paced();
  while (sleep_until(self_paced ? steady_clock::now() : due)) {
    if (!source_->read(image)) {
      // The source failed or ended: viewers keep the last frame while we reopen with backoff.
      if (source_up) std::fprintf(stderr, "capture: %s stopped delivering\n", source_->describe().c_str());
      source_up = false;
      stats_.set_source(source_->describe(), false);
      source_->close();
      if (!sleep_until(steady_clock::now() + backoff)) break;
      backoff = std::min(backoff * 2, max_backoff);
      try {
        source_->open();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "capture: %s\n", e.what());
      }
      due = steady_clock::now();
      continue;
    }
    if (!source_up) {
      source_up = true;
      backoff = first_backoff;
      stats_.set_source(source_->describe(), true);
      std::fprintf(stderr, "capture: %s is back\n", source_->describe().c_str());
    }
    const auto now = steady_clock::now();
    if (now < due) continue;  // only a self-paced source gets here early: drop this frame
    // Keep the cadence without bursting to catch up after a stall.
    due = std::max(due + interval, now);

    // Encode once here; every viewer sends these same bytes.
    const auto captured = wall_clock::now();
    auto jpeg = image.jpeg.empty() ? encode_jpeg(image.pixels, config_.quality) : std::move(image.jpeg);
    hub_.publish(std::make_shared<const frame>(++seq, captured, std::move(jpeg)));
    stats_.frame_captured(steady_clock::now());
  }
  source_->close();
}

}  // namespace mjpeg
