#include "mjpeg/stats.hpp"

#include <algorithm>
#include <cmath>

#include "mjpeg/json.hpp"

#include <boost/asio/error.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/version.hpp"

namespace mjpeg {

using std::chrono::steady_clock;
constexpr auto relaxed = std::memory_order_relaxed;

namespace {

constexpr const char* end_reason_names[] = {"closed", "send_timeout", "shutdown", "error"};
constexpr const char* end_reason_text[] = {"closed by viewer", "send timeout", "shutdown", "error"};

const char* source_state_name(source_state s) {
  return s == source_state::up ? "up" : s == source_state::down ? "down" : "idle";
}

const char* reject_reason_name(reject_reason r) {
  switch (r) {
    case reject_reason::capacity:
      break;
  }
  return "capacity";
}

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

void server_stats::connection_rejected(reject_reason why) {
  rejected_.fetch_add(1, relaxed);
  std::lock_guard lock{mutex_};
  ++rejected_by_reason_[why];
}

void server_stats::bad_request(unsigned status) {
  bad_requests_.fetch_add(1, relaxed);
  std::lock_guard lock{mutex_};
  ++bad_by_status_[status];
}

void server_stats::set_metric_labels(std::string labels) {
  std::lock_guard lock{mutex_};
  metric_labels_ = std::move(labels);
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

namespace {

// The whole server's counters: the sum of every worker's row.
stats_counters sum_of(const std::vector<worker_row>& rows) {
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
  return total;
}

}  // namespace

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
  // With worker processes the totals are the sum of every worker's row (asked before locking:
  // the rows include this process's own counters).
  std::vector<worker_row> rows;
  if (workers_) rows = workers_();
  stats_counters total = sum_of(rows);

  std::lock_guard lock{mutex_};
  if (!workers_) total = counters_locked();
  const auto counter_fields = [](json_writer& w, const stats_counters& c) {
    w.number("viewers_now", c.viewers_now).number("viewers_total", c.viewers_total);
    w.number("frames_sent", c.frames_sent).number("bytes_sent", c.bytes_sent);
    w.number("frames_skipped", c.frames_skipped);
    w.number("rejected", c.rejected).number("bad_requests", c.bad_requests);
  };
  json_writer j;
  j.begin_object().string("variant", variant_).number("uptime_s", seconds(started_));
  j.string("source", source_).boolean("source_up", source_state_ == source_state::up);
  j.string("source_state", source_state_name(source_state_));
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

std::string server_stats::to_prometheus(std::uint64_t frame_seq, std::size_t frame_bytes) const {
  const double fps_capture = capture_fps();  // before the lock: it takes mutex_ itself
  // With worker processes the server-wide series are the sum of every worker's row (asked before
  // locking: the rows include this process's own counters), and each worker has series of its own.
  std::vector<worker_row> rows;
  if (workers_) rows = workers_();
  stats_counters total = sum_of(rows);
  std::lock_guard lock{mutex_};
  if (!workers_) total = counters_locked();
  std::string out;
  out.reserve(4096);
  // One family: HELP, TYPE, then its samples; `labels` are this sample's own, metric_labels_ the
  // process's (a worker's number).
  const auto family = [&](const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  const auto sample = [&](const std::string& name, const std::string& labels, const std::string& value) {
    out += name;
    std::string all = metric_labels_;
    if (!labels.empty()) all += (all.empty() ? "" : ",") + labels;
    if (!all.empty()) out += "{" + all + "}";
    out += ' ';
    out += value;
    out += '\n';
  };
  const auto u = [](std::uint64_t v) { return std::to_string(v); };
  const auto num = [](double v) {
    char text[64];
    std::snprintf(text, sizeof text, "%.6g", v);
    return std::string{text};
  };
  const auto escape = [](std::string_view text) {  // label values: backslash, quote, newline
    std::string e;
    for (const char c : text) {
      if (c == '\\' || c == '"') e += '\\';
      if (c == '\n') {
        e += "\\n";
        continue;
      }
      e += c;
    }
    return e;
  };

  family("mjpeg_build_info", "gauge", "Always 1; the labels name the server variant and version.");
  sample("mjpeg_build_info", "variant=\"" + escape(variant_) + "\",version=\"" + escape(version) + "\"", "1");
  family("mjpeg_uptime_seconds", "gauge", "Seconds since the server started.");
  sample("mjpeg_uptime_seconds", "",
         num(std::chrono::duration<double>(steady_clock::now() - started_).count()));

  family("mjpeg_source_up", "gauge", "1 while the source delivers frames, 0 while it is down or idle.");
  sample("mjpeg_source_up", "", source_state_ == source_state::up ? "1" : "0");
  family("mjpeg_source_state", "gauge",
         "1 for the source's current state (up, down, idle), 0 for the others.");
  for (const auto s : {source_state::up, source_state::down, source_state::idle})
    sample("mjpeg_source_state", std::string{"state=\""} + source_state_name(s) + "\"",
           s == source_state_ ? "1" : "0");
  family("mjpeg_capture_fps", "gauge", "Measured capture rate, frames per second.");
  sample("mjpeg_capture_fps", "", num(fps_capture));
  family("mjpeg_target_fps", "gauge", "Configured frame rate (--fps).");
  sample("mjpeg_target_fps", "", num(fps_));
  family("mjpeg_frame_seq", "gauge", "Sequence number of the latest frame.");
  sample("mjpeg_frame_seq", "", u(frame_seq));
  family("mjpeg_frame_bytes", "gauge", "JPEG size of the latest frame in bytes.");
  sample("mjpeg_frame_bytes", "", u(frame_bytes));

  family("mjpeg_frames_captured_total", "counter", "Frames captured and published.");
  sample("mjpeg_frames_captured_total", "", u(frames_captured_.load(relaxed)));
  family("mjpeg_frames_sent_total", "counter", "Frames written to viewers (one per viewer per frame).");
  sample("mjpeg_frames_sent_total", "", u(total.frames_sent));
  family("mjpeg_frames_skipped_total", "counter",
         "Frames a viewer missed because it was still taking an earlier one.");
  sample("mjpeg_frames_skipped_total", "", u(total.frames_skipped));
  family("mjpeg_sent_bytes_total", "counter", "Bytes written to viewers, part headers included.");
  sample("mjpeg_sent_bytes_total", "", u(total.bytes_sent));

  family("mjpeg_viewers", "gauge", "Viewers streaming now.");
  sample("mjpeg_viewers", "", u(total.viewers_now));
  family("mjpeg_viewers_total", "counter", "Viewers that started a stream.");
  sample("mjpeg_viewers_total", "", u(total.viewers_total));
  family("mjpeg_viewers_ended_total", "counter", "Streams that ended, by reason.");
  for (std::size_t r = 0; r < ended_.size(); ++r)
    sample("mjpeg_viewers_ended_total", std::string{"reason=\""} + end_reason_names[r] + "\"",
           u(ended_[r].load(relaxed)));

  family("mjpeg_connections_accepted_total", "counter",
         "TCP connections accepted (including those then turned away).");
  sample("mjpeg_connections_accepted_total", "", u(accepted_.load(relaxed)));
  family("mjpeg_connections_rejected_total", "counter",
         "Connections turned away before they were served, by reason.");
  std::map<reject_reason, std::uint64_t> rejected = rejected_by_reason_;
  rejected.try_emplace(reject_reason::capacity, 0);
  for (const auto& [reason, count] : rejected)
    sample("mjpeg_connections_rejected_total", std::string{"reason=\""} + reject_reason_name(reason) + "\"",
           u(count));
  family("mjpeg_bad_requests_total", "counter", "Requests answered with an error status, by status.");
  for (const auto& [status, count] : bad_by_status_)
    sample("mjpeg_bad_requests_total", "status=\"" + u(status) + "\"", u(count));

  family("mjpeg_frame_age_seconds", "histogram",
         "Age of each frame when it was written to a viewer (send time minus capture time).");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < age_counts_.size(); ++i) {
    cumulative += age_counts_[i].load(relaxed);
    sample("mjpeg_frame_age_seconds_bucket",
           "le=\"" + (i < age_buckets.size() ? num(age_buckets[i]) : std::string{"+Inf"}) + "\"",
           u(cumulative));
  }
  sample("mjpeg_frame_age_seconds_sum", "", num(static_cast<double>(age_sum_us_.load(relaxed)) / 1e6));
  sample("mjpeg_frame_age_seconds_count", "", u(cumulative));

  if (workers_) {
    const auto per_worker = [&](const char* name, const char* type, const char* help, auto value) {
      family(name, type, help);
      for (const auto& r : rows)
        sample(name, "worker=\"" + std::to_string(r.index) + "\"", u(value(r)));
    };
    per_worker("mjpeg_worker_viewers", "gauge", "Viewers streaming now, per worker process.",
               [](const worker_row& r) { return r.counters.viewers_now; });
    per_worker("mjpeg_worker_frames_sent_total", "counter", "Frames written to viewers, per worker process.",
               [](const worker_row& r) { return r.counters.frames_sent; });
    per_worker("mjpeg_worker_sent_bytes_total", "counter", "Bytes written to viewers, per worker process.",
               [](const worker_row& r) { return r.counters.bytes_sent; });
    per_worker("mjpeg_worker_restarts_total", "counter", "Times the parent restarted this worker process.",
               [](const worker_row& r) { return r.restarts; });
  }
  return out;
}

}  // namespace mjpeg
