#include "mjpeg/capture.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>

#include "mjpeg/clock.hpp"
#include "mjpeg/log.hpp"

namespace mjpeg {

capture::capture(std::unique_ptr<frame_source> source, capture_config config, frame_hub& hub,
                 server_stats& stats, frame_sink sink)
    : source_{std::move(source)}, config_{config}, hub_{hub}, stats_{stats}, sink_{std::move(sink)} {
  if (auto camera = source_->camera()) stats_.set_camera(std::move(*camera));
  stats_.set_source(source_->describe(), source_state::up);
  thread_ = std::thread{[this] { run(); }};
}

capture::~capture() {
  stop();
  if (thread_.joinable()) thread_.join();
}

bool capture::stop_within(std::chrono::milliseconds timeout) {
  std::unique_lock lock{mutex_};
  stopping_ = true;
  wake_.notify_all();
  source_->interrupt();  // a bus or relay source waiting for its upstream returns at once
  if (!wake_.wait_for(lock, timeout, [this] { return finished_; })) return false;
  lock.unlock();
  thread_.join();
  return true;
}

void capture::stop() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  source_->interrupt();
}

bool capture::sleep_until(std::chrono::steady_clock::time_point t) {
  std::unique_lock lock{mutex_};
  return !wake_.wait_until(lock, t, [this] { return stopping_; });
}

bool capture::wait_for_viewer() {
  // Polling a counter ten times a second costs nothing and keeps viewers unaware of capture.
  while (stats_.server_viewers() == 0)
    if (!sleep_until(std::chrono::steady_clock::now() + std::chrono::milliseconds{100})) return false;
  return true;
}

void capture::run() {
  using std::chrono::steady_clock;
  const auto interval = seconds(1.0 / config_.fps);
  constexpr std::chrono::milliseconds first_backoff{250};
  constexpr std::chrono::milliseconds max_backoff{5000};
  // The backoff starts over only once the source has stayed up for `steady_after`: a source that
  // delivers a frame and fails again (an upstream that closes after each frame) is flapping, and
  // is retried at the growing backoff, with one line when it starts flapping and one when it is
  // steady again, instead of a line pair per reconnect.
  constexpr std::chrono::seconds steady_after{10};
  auto backoff = first_backoff;
  auto state = source_state::up;
  auto up_since = steady_clock::now();
  bool flapping = false;
  bool recovered = false;  // up again after a failure: a second failure soon after is flapping
  const auto set_state = [&](source_state s, const char* message) {
    if (state == s) return;
    const auto now = steady_clock::now();
    if (s == source_state::down && state == source_state::up && recovered && now - up_since < steady_after &&
        !flapping) {
      flapping = true;
      log::write(log::level::warning,
                 "source %s is flapping: it stopped again %.1f s after it came up; "
                 "reopening with backoff up to %.0f s, quiet until it stays up %lld s",
                 source_->describe().c_str(), std::chrono::duration<double>(now - up_since).count(),
                 std::chrono::duration<double>(max_backoff).count(),
                 static_cast<long long>(steady_after.count()));
    } else if (!flapping) {
      log::write(s == source_state::up ? log::level::info : log::level::warning, "source %s %s",
                 source_->describe().c_str(), message);
    }
    if (s == source_state::up) {
      up_since = now;
      recovered = state == source_state::down;
    }
    state = s;
    stats_.set_source(source_->describe(), s);
  };
  std::uint64_t seq = 0;
  source_image image;
  auto due = steady_clock::now();
  auto watched = steady_clock::now();

  // A camera sets its own pace: read every frame it has (so its buffers never hold stale ones)
  // and publish those that are due. Everything else is read only when a frame is due.
  const bool forwards = source_->forwards();
  const bool self_paced = source_->self_paced() || forwards;
  // A camera that runs no faster than --fps is not paced down here: each frame it delivers is
  // published, even one that arrives a little early (pacing would drop it and leave a hole).
  const auto camera_within_rate = [&] {
    const auto camera = source_->camera();
    return camera && camera->fps > 0 && camera->fps <= config_.fps + 0.5;
  };
  bool unpaced = forwards || camera_within_rate();
  std::uint64_t seq_offset = 0;  // keeps seq growing when a forwarded origin restarts from 1
  while (sleep_until(self_paced ? steady_clock::now() : due)) {
    if (config_.idle_stop > 0) {
      const auto now = steady_clock::now();
      if (stats_.server_viewers() != 0) watched = now;
      if (now - watched >= seconds(config_.idle_stop)) {
        // Nobody has watched for a while: release the device until somebody does.
        source_->close();
        set_state(source_state::idle, "closed while nobody watches");
        if (!wait_for_viewer()) break;
        watched = due = steady_clock::now();
        try {
          source_->open();
          if (auto camera = source_->camera()) stats_.set_camera(std::move(*camera));
          unpaced = forwards || camera_within_rate();
        } catch (const std::exception& e) {
          log::write(log::level::warning, "source: %s", e.what());
        }
      }
    }
    image.seq = 0;
    image.captured.reset();
    const bool got = source_->read(image);
    stats_.set_bad_frames(source_->bad_frames());
    stats_.set_times_replaced(source_->times_replaced());
    if (!got && !sleep_until(steady_clock::now())) break;  // interrupted for shutdown: no failure
    if (!got) {
      // The source failed or ended: viewers keep the last frame while we reopen with backoff.
      set_state(source_state::down, "stopped delivering; reopening");
      source_->close();
      if (!sleep_until(steady_clock::now() + backoff)) break;
      backoff = std::min(backoff * 2, max_backoff);
      try {
        source_->open();
        if (auto camera = source_->camera()) stats_.set_camera(std::move(*camera));
        unpaced = forwards || camera_within_rate();
      } catch (const std::exception& e) {
        log::write(log::level::warning, "source: %s", e.what());
      }
      due = steady_clock::now();
      continue;
    }
    set_state(source_state::up, "is delivering");
    const auto now = steady_clock::now();
    if (now - up_since >= steady_after && (backoff != first_backoff || flapping)) {
      backoff = first_backoff;
      if (flapping) log::write(log::level::info, "source %s is steady again", source_->describe().c_str());
      flapping = false;
    }
    if (now < due && !unpaced) continue;  // only a self-paced source gets here early: drop it
    // Keep the cadence without bursting to catch up after a stall.
    due = std::max(due + interval, now);

    // Encode once here; every viewer sends these same bytes.
    // A forwarded frame keeps the origin's seq and capture time, so X-Timestamp measures its age
    // end to end and X-Frame-Seq gaps count frames skipped anywhere along the way.
    const auto captured = image.captured.value_or(wall_clock::now());
    if (image.seq != 0) {
      if (image.seq + seq_offset <= seq) seq_offset = seq + 1 - image.seq;
      seq = image.seq + seq_offset;
    } else {
      ++seq;
    }
    auto jpeg = image.jpeg.empty() ? encode_jpeg(image.pixels, config_.quality) : std::move(image.jpeg);
    auto published = std::make_shared<const frame>(seq, captured, std::move(jpeg));
    hub_.publish(published);
    if (sink_) sink_(*published);
    stats_.frame_captured(steady_clock::now());
  }
  source_->close();
  {
    std::lock_guard lock{mutex_};
    finished_ = true;
  }
  wake_.notify_all();
}

}  // namespace mjpeg
