#include "mjpeg/stats.hpp"

#include <cmath>

#include "mjpeg/json.hpp"

namespace mjpeg {

using std::chrono::steady_clock;
constexpr auto relaxed = std::memory_order_relaxed;

server_stats::server_stats(std::string variant)
    : variant_{std::move(variant)}, started_{steady_clock::now()} {}

void server_stats::frame_captured(steady_clock::time_point now) {
  frames_captured_.fetch_add(1, relaxed);
  std::lock_guard lock{published_mutex_};
  published_[published_count_++ % published_kept] = now;
}

double server_stats::capture_fps(steady_clock::time_point now) const {
  double target = 0;
  {
    std::lock_guard lock{mutex_};
    target = fps_;
  }
  using seconds_d = std::chrono::duration<double>;
  const seconds_d window = std::max(seconds_d{2.0}, seconds_d{target > 0 ? 2.5 / target : 0.0});
  std::lock_guard lock{published_mutex_};
  const std::uint64_t kept = std::min<std::uint64_t>(published_count_, published_kept);
  if (kept < 2) return 0;
  const steady_clock::time_point newest = published_[(published_count_ - 1) % published_kept];
  // Walk back from the newest frame to the oldest one inside the window.
  std::uint64_t intervals = 0;
  steady_clock::time_point oldest = newest;
  while (intervals + 1 < kept) {
    const auto t = published_[(published_count_ - 2 - intervals) % published_kept];
    if (now - t > window) break;
    oldest = t;
    ++intervals;
  }
  if (intervals == 0) return 0;
  // Frames over the time they took. The interval still in progress counts once it is longer than
  // the mean one, so a source that stops shows a falling rate, never its last one.
  const double span = seconds_d{newest - oldest}.count();
  const double mean = span / static_cast<double>(intervals);
  const double waiting = seconds_d{now - newest}.count();
  const double elapsed = waiting > mean ? span + waiting - mean : span;
  return elapsed > 0 ? static_cast<double>(intervals) / elapsed : 0;
}

void server_stats::set_source(std::string description, source_state state) {
  std::lock_guard lock{mutex_};
  source_ = std::move(description);
  source_state_ = state;
}

void server_stats::set_camera(camera_info camera) {
  std::lock_guard lock{mutex_};
  camera_ = std::move(camera);
}

void server_stats::set_config(int width, int height, double fps) {
  std::lock_guard lock{mutex_};
  width_ = width;
  height_ = height;
  fps_ = fps;
}

void server_stats::viewer_started(viewer_state& v, std::string peer) {
  v.id = next_id_.fetch_add(1, relaxed);
  v.peer = std::move(peer);
  v.since = steady_clock::now();
  v.last_seq.store(0, relaxed);
  v.frames_sent.store(0, relaxed);
  v.frames_skipped.store(0, relaxed);
  v.bytes_sent.store(0, relaxed);
  viewers_total_.fetch_add(1, relaxed);
  std::lock_guard lock{mutex_};
  viewers_.push_back(&v);
}

void server_stats::frame_sent(viewer_state& v, std::uint64_t seq, std::size_t bytes) {
  const auto last = v.last_seq.exchange(seq, relaxed);
  // The first frame a viewer gets is whatever is newest: nothing was skipped for it yet.
  const std::uint64_t skipped = (last != 0 && seq > last + 1) ? seq - last - 1 : 0;
  v.frames_sent.fetch_add(1, relaxed);
  v.bytes_sent.fetch_add(bytes, relaxed);
  frames_sent_.fetch_add(1, relaxed);
  bytes_sent_.fetch_add(bytes, relaxed);
  if (skipped != 0) {
    v.frames_skipped.fetch_add(skipped, relaxed);
    frames_skipped_.fetch_add(skipped, relaxed);
  }
}

void server_stats::viewer_stopped(viewer_state& v) {
  std::lock_guard lock{mutex_};
  viewers_.remove(&v);
}

std::uint64_t server_stats::viewers_now() const {
  std::lock_guard lock{mutex_};
  return viewers_.size();
}

std::string server_stats::to_json(std::uint64_t frame_seq, std::size_t frame_bytes) const {
  // The listing is capped so /stats stays small with thousands of viewers.
  constexpr std::size_t max_listed = 100;
  const auto now = steady_clock::now();
  // Seconds and rates to the millisecond: more digits would only be noise.
  const auto rounded = [](double v) { return std::round(v * 1000) / 1000; };
  const auto seconds = [&](steady_clock::time_point t) {
    return rounded(std::chrono::duration<double>(now - t).count());
  };

  const double fps_capture = capture_fps(now);
  std::lock_guard lock{mutex_};
  json_writer j;
  j.begin_object().string("variant", variant_).number("uptime_s", seconds(started_));
  j.string("source", source_).boolean("source_up", source_state_ == source_state::up);
  j.string("source_state", source_state_ == source_state::up     ? "up"
                           : source_state_ == source_state::down ? "down"
                                                                 : "idle");
  if (camera_) {
    // What the camera agreed to, beside what was asked: they differ when the camera cannot comply.
    const auto& c = *camera_;
    j.begin_object("camera").string("device", c.device).string("pixel_format", c.pixel_format);
    j.number("width", c.width).number("height", c.height).number("fps", rounded(c.fps));
    j.string("mode", c.passthrough ? "passthrough" : "encode").string("why_encode", c.why_encode);
    j.begin_object("requested").number("width", c.requested_width).number("height", c.requested_height);
    j.number("fps", rounded(c.requested_fps)).end_object();
    j.number("bad_frames", bad_frames_.load(relaxed)).end_object();
  } else {
    j.null("camera");
  }
  j.number("bad_frames", bad_frames_.load(relaxed));
  j.number("width", width_).number("height", height_);
  j.number("fps_target", rounded(fps_)).number("fps_capture", rounded(fps_capture));
  j.number("frame_seq", frame_seq).number("frame_bytes", frame_bytes);
  j.number("viewers_now", viewers_.size()).number("viewers_total", viewers_total_.load(relaxed));
  j.number("frames_captured", frames_captured_.load(relaxed));
  j.number("frames_sent", frames_sent_.load(relaxed)).number("bytes_sent", bytes_sent_.load(relaxed));
  j.number("frames_skipped", frames_skipped_.load(relaxed));
  j.number("rejected", rejected_.load(relaxed)).number("bad_requests", bad_requests_.load(relaxed));
  j.begin_array("viewers");
  std::size_t listed = 0;
  for (const viewer_state* v : viewers_) {
    if (listed++ == max_listed) break;
    j.begin_object().number("id", v->id).string("peer", v->peer).number("seconds", seconds(v->since));
    j.number("last_seq", v->last_seq.load(relaxed)).number("frames_sent", v->frames_sent.load(relaxed));
    j.number("frames_skipped", v->frames_skipped.load(relaxed))
        .number("bytes_sent", v->bytes_sent.load(relaxed));
    j.end_object();
  }
  j.end_array().end_object();
  return j.str();
}

}  // namespace mjpeg
