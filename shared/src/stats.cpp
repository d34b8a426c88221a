#include "mjpeg/stats.hpp"

#include <algorithm>
#include <cstdio>

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

double server_stats::capture_fps() const {
  return capture_fps_.load(relaxed);
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string server_stats::to_json(std::uint64_t frame_seq, std::size_t frame_bytes) const {
  // The listing is capped so /stats stays small with thousands of viewers.
  constexpr std::size_t max_listed = 100;
  const auto now = steady_clock::now();
  const auto seconds = [&](steady_clock::time_point t) {
    return std::chrono::duration<double>(now - t).count();
  };
  char number[64];
  const auto num = [&](double v) {
    std::snprintf(number, sizeof number, "%.3f", v);
    return std::string{number};
  };
  const auto u = [](std::uint64_t v) { return std::to_string(v); };

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
  std::string j = "{";
  j += "\"variant\":\"" + json_escape(variant_) + "\"";
  j += ",\"uptime_s\":" + num(seconds(started_));
  j += ",\"source\":\"" + json_escape(source_) + "\"";
  j += std::string{",\"source_up\":"} + (source_state_ == source_state::up ? "true" : "false");
  j += std::string{",\"source_state\":\""} +
       (source_state_ == source_state::up     ? "up"
        : source_state_ == source_state::down ? "down"
                                              : "idle") +
       "\"";
  if (camera_) {
    // What the camera agreed to, beside what was asked: they differ when the camera cannot comply.
    const auto& c = *camera_;
    j += ",\"camera\":{\"device\":\"" + json_escape(c.device) + "\",\"pixel_format\":\"" +
         json_escape(c.pixel_format) + "\"";
    j += ",\"width\":" + std::to_string(c.width) + ",\"height\":" + std::to_string(c.height) +
         ",\"fps\":" + num(c.fps);
    j += std::string{",\"mode\":\""} + (c.passthrough ? "passthrough" : "encode") + "\"";
    j += ",\"why_encode\":\"" + json_escape(c.why_encode) + "\"";
    j += ",\"requested\":{\"width\":" + std::to_string(c.requested_width) +
         ",\"height\":" + std::to_string(c.requested_height) + ",\"fps\":" + num(c.requested_fps) + "}";
    j += ",\"bad_frames\":" + u(bad_frames_.load(relaxed)) + "}";
  } else {
    j += ",\"camera\":null";
  }
  j += ",\"bad_frames\":" + u(bad_frames_.load(relaxed));
  j += ",\"width\":" + std::to_string(width_) + ",\"height\":" + std::to_string(height_);
  j += ",\"fps_target\":" + num(fps_) + ",\"fps_capture\":" + num(capture_fps_.load(relaxed));
  j += ",\"frame_seq\":" + u(frame_seq) + ",\"frame_bytes\":" + u(frame_bytes);
  const auto counter_fields = [&](const stats_counters& c) {
    return "\"viewers_now\":" + u(c.viewers_now) + ",\"viewers_total\":" + u(c.viewers_total) +
           ",\"frames_sent\":" + u(c.frames_sent) + ",\"bytes_sent\":" + u(c.bytes_sent) +
           ",\"frames_skipped\":" + u(c.frames_skipped) + ",\"rejected\":" + u(c.rejected) +
           ",\"bad_requests\":" + u(c.bad_requests);
  };
  j += "," + counter_fields(total);
  j += ",\"frames_captured\":" + u(frames_captured_.load(relaxed));
  j += ",\"publish\":[";
  for (std::size_t i = 0; i < publish_.size(); ++i)
    j += (i ? ",\"" : "\"") + json_escape(publish_[i]) + "\"";
  j += "]";
  if (workers_) {
    j += ",\"workers\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i != 0) j += ',';
      j += "{\"index\":" + std::to_string(rows[i].index) + ",\"pid\":" + std::to_string(rows[i].pid) +
           ",\"restarts\":" + u(rows[i].restarts) + "," + counter_fields(rows[i].counters) + "}";
    }
    j += "]";
  }
  j += ",\"viewers\":[";
  std::size_t listed = 0;
  for (const viewer_state* v : viewers_) {
    if (listed == max_listed) break;
    if (listed++ != 0) j += ',';
    j += "{\"id\":" + u(v->id) + ",\"peer\":\"" + json_escape(v->peer) + "\"";
    j += ",\"seconds\":" + num(seconds(v->since));
    j += ",\"last_seq\":" + u(v->last_seq.load(relaxed));
    j += ",\"frames_sent\":" + u(v->frames_sent.load(relaxed));
    j += ",\"frames_skipped\":" + u(v->frames_skipped.load(relaxed));
    j += ",\"bytes_sent\":" + u(v->bytes_sent.load(relaxed)) + "}";
  }
  j += "]}";
  return j;
}

}  // namespace mjpeg
