#include "mjpeg/stats.hpp"

#include <algorithm>
#include <cmath>

#include <boost/asio/error.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/log.hpp"

namespace mjpeg {

using std::chrono::steady_clock;
constexpr auto relaxed = std::memory_order_relaxed;

namespace {

constexpr const char* end_reason_text[] = {"closed by viewer", "send timeout", "shutdown", "error"};

// 1234567 -> "1.2 MB": for a person reading the log.
std::string human_bytes(std::uint64_t bytes) {
  char text[32];
  if (bytes < 1000)
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < 1000 * 1000)
    std::snprintf(text, sizeof text, "%.1f kB", static_cast<double>(bytes) / 1e3);
  else if (bytes < 1000ULL * 1000 * 1000)
    std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  else
    std::snprintf(text, sizeof text, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return text;
}

}  // namespace

end_reason end_reason_of(const boost::system::error_code& ec) {
  namespace e = boost::asio::error;
  if (!ec || ec == e::operation_aborted) return end_reason::shutdown;
  if (ec == e::timed_out) return end_reason::send_timeout;
  if (ec == e::eof || ec == e::connection_reset || ec == e::broken_pipe || ec == e::connection_aborted ||
      ec == e::not_connected)
    return end_reason::closed;
  return end_reason::error;
}

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
  std::lock_guard lock{published_mutex_};
  return capture_fps_locked(now, target);
}

double server_stats::capture_fps_locked(steady_clock::time_point now, double target) const {
  using seconds_d = std::chrono::duration<double>;
  const seconds_d window = std::max(seconds_d{2.0}, seconds_d{target > 0 ? 2.5 / target : 0.0});
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

void server_stats::bad_request(unsigned status) {
  bad_requests_.fetch_add(1, relaxed);
  std::lock_guard lock{mutex_};
  ++bad_by_status_[status];
}

void server_stats::set_source(std::string description, source_state state) {
  std::lock_guard lock{mutex_};
  source_ = std::move(description);
  if (state == source_state::down && source_state_ != source_state::down)
    source_down_since_ = std::chrono::steady_clock::now();
  source_state_ = state;
}

std::chrono::steady_clock::duration server_stats::source_down_for(
    std::chrono::steady_clock::time_point now) const {
  std::lock_guard lock{mutex_};
  if (source_state_ != source_state::down) return {};
  return now - std::max(source_down_since_, started_);  // down from the start: counted from then
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
  v.ended = end_reason::error;  // until the stream loop says otherwise
  if (trace_ != nullptr) {
    v.port = port_of(v.peer);
    trace_->record(trace_event::stream, v.port, v.id);
  }
  viewers_total_.fetch_add(1, relaxed);
  std::size_t watching = 0;
  {
    std::lock_guard lock{mutex_};
    viewers_.push_back(&v);
    watching = viewers_.size();
  }
  log::write(log::level::info, "viewer %llu from %s connected (%zu watching)",
             static_cast<unsigned long long>(v.id), v.peer.c_str(), watching);
}

void server_stats::frame_sent(viewer_state& v, std::uint64_t seq, std::size_t bytes) {
  const auto last = v.last_seq.exchange(seq, relaxed);
  // The first frame a viewer gets is whatever is newest: nothing was skipped for it yet.
  const std::uint64_t skipped = (last != 0 && seq > last + 1) ? seq - last - 1 : 0;
  v.frames_sent.fetch_add(1, relaxed);
  v.bytes_sent.fetch_add(bytes, relaxed);
  frames_sent_.fetch_add(1, relaxed);
  bytes_sent_.fetch_add(bytes, relaxed);
  if (trace_ != nullptr) trace_->record(trace_event::frame, v.port, seq);
  if (skipped != 0) {
    v.frames_skipped.fetch_add(skipped, relaxed);
    frames_skipped_.fetch_add(skipped, relaxed);
  }
}

void server_stats::frame_sent(viewer_state& v, const frame& f) {
  frame_sent(v, f.seq(), f.wire_size());
  const auto age = std::chrono::duration<double>(wall_clock::now() - f.captured()).count();
  const auto bucket = std::lower_bound(age_buckets.begin(), age_buckets.end(), age) - age_buckets.begin();
  age_counts_[static_cast<std::size_t>(bucket)].fetch_add(1, relaxed);
  age_sum_us_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, age) * 1e6), relaxed);
}

void server_stats::viewer_stopped(viewer_state& v) {
  std::size_t watching = 0;
  {
    std::lock_guard lock{mutex_};
    viewers_.remove(&v);
    watching = viewers_.size();
  }
  const auto reason = static_cast<std::size_t>(v.ended);
  ended_[reason].fetch_add(1, relaxed);
  if (trace_ != nullptr) trace_->record(trace_event::left, v.port, reason);
  log::write(log::level::info,
             "viewer %llu from %s left after %.1f s: %llu frames sent, %llu skipped, %s; %s (%zu watching)",
             static_cast<unsigned long long>(v.id), v.peer.c_str(),
             std::chrono::duration<double>(steady_clock::now() - v.since).count(),
             static_cast<unsigned long long>(v.frames_sent.load(relaxed)),
             static_cast<unsigned long long>(v.frames_skipped.load(relaxed)),
             human_bytes(v.bytes_sent.load(relaxed)).c_str(), end_reason_text[reason], watching);
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
  std::lock_guard lock{mutex_};
  return counters_locked();
}

stats_counters server_stats::counters_locked() const {
  stats_counters c;
  c.viewers_now = viewers_.size();
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

stats_counters sum_of(const std::vector<worker_row>& rows) {
  stats_counters total;
  for (const auto& r : rows)
    for (const auto& field : counter_fields)
      total.*field.value += r.counters.*field.value;
  return total;
}

stats_snapshot server_stats::snapshot(std::uint64_t frame_seq, std::size_t frame_bytes) const {
  // The listing is capped so /stats stays small with thousands of viewers.
  constexpr std::size_t max_listed = 100;
  stats_snapshot s;
  // With worker processes the totals are the sum of every worker's row (asked before locking:
  // the rows include this process's own counters, which take mutex_).
  if (workers_) {
    s.workers = workers_();
    s.total = sum_of(*s.workers);
  }
  const auto now = steady_clock::now();
  const auto seconds = [&](steady_clock::time_point t) {
    return std::chrono::duration<double>(now - t).count();
  };
  std::scoped_lock lock{mutex_, published_mutex_};
  if (!workers_) s.total = counters_locked();
  s.variant = variant_;
  s.uptime_s = seconds(started_);
  s.source = source_;
  s.state = source_state_;
  s.camera = camera_;
  s.bad_frames = bad_frames_.load(relaxed);
  s.times_replaced = times_replaced_.load(relaxed);
  s.width = width_;
  s.height = height_;
  s.fps_target = fps_;
  s.fps_capture = capture_fps_locked(now, fps_);
  s.frame_seq = frame_seq;
  s.frame_bytes = frame_bytes;
  s.frames_captured = frames_captured_.load(relaxed);
  s.accepted = accepted_.load(relaxed);
  s.rejected_here = rejected_.load(relaxed);
  s.publish = publish_;
  for (const viewer_state* v : viewers_) {
    if (s.viewers.size() == max_listed) break;
    s.viewers.push_back({v->id, v->peer, seconds(v->since), v->last_seq.load(relaxed),
                         v->frames_sent.load(relaxed), v->frames_skipped.load(relaxed),
                         v->bytes_sent.load(relaxed)});
  }
  for (std::size_t r = 0; r < ended_.size(); ++r)
    s.ended[r] = ended_[r].load(relaxed);
  s.bad_by_status = bad_by_status_;
  for (std::size_t i = 0; i < age_counts_.size(); ++i)
    s.age_counts[i] = age_counts_[i].load(relaxed);
  s.age_sum_s = static_cast<double>(age_sum_us_.load(relaxed)) / 1e6;
  return s;
}

stats_snapshot combine_cameras(std::vector<camera_snapshot> cameras) {
  if (cameras.empty()) return {};
  stats_snapshot all = cameras.front().snapshot;
  all.total = {};
  all.frames_captured = 0;
  all.ended = {};
  all.age_counts = {};
  all.age_sum_s = 0;
  all.viewers.clear();
  for (const camera_snapshot& c : cameras) {
    const stats_snapshot& s = c.snapshot;
    all.cameras.push_back({c.name, s.source, s.state, s.fps_capture, s.frames_captured, s.frame_seq,
                           s.frame_bytes, c.frame_age_s, s.total, s.width, s.height, s.fps_target});
    for (const auto& field : counter_fields)
      all.total.*field.value += s.total.*field.value;
    all.frames_captured += s.frames_captured;
    for (std::size_t r = 0; r < all.ended.size(); ++r)
      all.ended[r] += s.ended[r];
    for (std::size_t i = 0; i < all.age_counts.size(); ++i)
      all.age_counts[i] += s.age_counts[i];
    all.age_sum_s += s.age_sum_s;
    for (const viewer_row& v : s.viewers)
      if (all.viewers.size() < 100) all.viewers.push_back(v);
  }
  return all;
}

stats_snapshot camera_view(camera_snapshot camera) {
  stats_snapshot s = std::move(camera.snapshot);
  s.name = std::move(camera.name);
  s.frame_age_s = camera.frame_age_s;
  return s;
}

}  // namespace mjpeg
