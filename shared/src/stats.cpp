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
  // Exponential moving average of the instantaneous rate, over roughly the last 16 frames.
  const auto ns = now.time_since_epoch().count();
  const auto prev = last_capture_ns_.exchange(ns, relaxed);
  if (prev != 0 && ns > prev) {
    const double rate = 1e9 / static_cast<double>(ns - prev);
    const double old = capture_fps_.load(relaxed);
    capture_fps_.store(old == 0 ? rate : old + (rate - old) / 16, relaxed);
  }
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

std::uint64_t server_stats::server_viewers() const {
  if (!workers_) return viewers_now();
  std::uint64_t total = 0;
  for (const auto& r : workers_())
    total += r.counters.viewers_now;
  return total;
}

stats_counters server_stats::counters() const {
  stats_counters c;
  c.viewers_now = viewers_now();
  c.viewers_total = viewers_total_.load(relaxed);
  c.frames_sent = frames_sent_.load(relaxed);
  c.bytes_sent = bytes_sent_.load(relaxed);
  c.frames_skipped = frames_skipped_.load(relaxed);
  c.rejected = rejected_.load(relaxed);
  c.bad_requests = bad_requests_.load(relaxed);
  return c;
}

void server_stats::set_publish(std::vector<std::string> endpoints) {
  std::lock_guard lock{mutex_};
  publish_ = std::move(endpoints);
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

  // With worker processes the totals are the sum of every worker's row (asked before locking:
  // the rows include this process's own counters).
  std::vector<worker_row> rows;
  if (workers_) rows = workers_();
  stats_counters total;
  for (const auto& r : rows) {
    total.viewers_now += r.counters.viewers_now;
    total.viewers_total += r.counters.viewers_total;
    total.frames_sent += r.counters.frames_sent;
    total.bytes_sent += r.counters.bytes_sent;
    total.frames_skipped += r.counters.frames_skipped;
    total.rejected += r.counters.rejected;
    total.bad_requests += r.counters.bad_requests;
  }

  std::lock_guard lock{mutex_};
  if (!workers_) {
    total.viewers_now = viewers_.size();
    total.viewers_total = viewers_total_.load(relaxed);
    total.frames_sent = frames_sent_.load(relaxed);
    total.bytes_sent = bytes_sent_.load(relaxed);
    total.frames_skipped = frames_skipped_.load(relaxed);
    total.rejected = rejected_.load(relaxed);
    total.bad_requests = bad_requests_.load(relaxed);
  }
  const auto counter_fields = [](json_writer& w, const stats_counters& c) {
    w.number("viewers_now", c.viewers_now).number("viewers_total", c.viewers_total);
    w.number("frames_sent", c.frames_sent).number("bytes_sent", c.bytes_sent);
    w.number("frames_skipped", c.frames_skipped);
    w.number("rejected", c.rejected).number("bad_requests", c.bad_requests);
  };
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
  j.number("fps_target", rounded(fps_)).number("fps_capture", rounded(capture_fps_.load(relaxed)));
  j.number("frame_seq", frame_seq).number("frame_bytes", frame_bytes);
  counter_fields(j, total);
  j.number("frames_captured", frames_captured_.load(relaxed));
  j.begin_array("publish");
  for (const auto& endpoint : publish_)
    j.string({}, endpoint);
  j.end_array();
  if (workers_) {
    j.begin_array("workers");
    for (const auto& r : rows) {
      j.begin_object().number("index", r.index).number("pid", r.pid).number("restarts", r.restarts);
      counter_fields(j, r.counters);
      j.end_object();
    }
    j.end_array();
  }
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
