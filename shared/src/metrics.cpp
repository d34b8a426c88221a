#include "mjpeg/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <string_view>

#include "mjpeg/json.hpp"
#include "mjpeg/version.hpp"

namespace mjpeg {
namespace {

constexpr const char* end_reason_names[] = {"closed", "send_timeout", "shutdown", "error"};

// Seconds and rates to the millisecond: more digits would only be noise.
double rounded(double v) {
  return std::round(v * 1000) / 1000;
}

void counter_fields_of(json_writer& w, const stats_counters& c) {
  for (const auto& field : counter_fields)
    w.number(field.name, c.*field.value);
}

}  // namespace

const char* source_state_name(source_state s) noexcept {
  return s == source_state::up ? "up" : s == source_state::down ? "down" : "idle";
}

std::string render_json(const stats_snapshot& s) {
  json_writer j;
  j.begin_object().string("variant", s.variant);
  if (!s.name.empty()) j.string("name", s.name);  // /NAME/stats: one camera's own
  j.number("uptime_s", rounded(s.uptime_s));
  j.string("source", s.source).boolean("source_up", s.state == source_state::up);
  j.string("source_state", source_state_name(s.state));
  if (s.camera) {
    // What the camera agreed to, beside what was asked: they differ when the camera cannot comply.
    const auto& c = *s.camera;
    j.begin_object("camera").string("device", c.device).string("pixel_format", c.pixel_format);
    j.number("width", c.width).number("height", c.height);
    if (c.fps > 0)
      j.number("fps", rounded(c.fps));
    else
      j.string("fps", "unknown");  // the driver cannot say (no G_PARM/S_PARM)
    j.string("mode", c.passthrough ? "passthrough" : "encode").string("why_encode", c.why_encode);
    j.begin_object("requested").number("width", c.requested_width).number("height", c.requested_height);
    j.number("fps", rounded(c.requested_fps)).end_object();
    j.number("bad_frames", s.bad_frames).end_object();
  } else {
    j.null("camera");
  }
  j.number("width", s.width).number("height", s.height);
  j.number("fps_target", rounded(s.fps_target)).number("fps_capture", rounded(s.fps_capture));
  j.number("frame_seq", s.frame_seq).number("frame_bytes", s.frame_bytes);
  if (!s.name.empty()) {
    if (s.frame_age_s >= 0)
      j.number("frame_age_s", rounded(s.frame_age_s));
    else
      j.null("frame_age_s");
  }
  counter_fields_of(j, s.total);
  j.number("frames_captured", s.frames_captured).number("times_replaced", s.times_replaced);
  j.begin_array("publish");
  for (const auto& endpoint : s.publish)
    j.string({}, endpoint);
  j.end_array();
  if (!s.cameras.empty()) {
    // Several cameras: one row each; the counters above are their totals.
    j.begin_array("cameras");
    for (const auto& c : s.cameras) {
      j.begin_object().string("name", c.name).string("source", c.source);
      j.string("source_state", source_state_name(c.state));
      j.number("width", c.width).number("height", c.height).number("fps_target", rounded(c.fps_target));
      j.number("fps_capture", rounded(c.fps_capture));
      j.number("frames_captured", c.frames_captured).number("frame_seq", c.frame_seq);
      j.number("frame_bytes", c.frame_bytes);
      if (c.frame_age_s >= 0)
        j.number("frame_age_s", rounded(c.frame_age_s));
      else
        j.null("frame_age_s");
      counter_fields_of(j, c.counters);
      j.end_object();
    }
    j.end_array();
  }
  if (s.workers) {
    j.begin_array("workers");
    for (const auto& r : *s.workers) {
      j.begin_object().number("index", r.index).number("pid", r.pid).number("restarts", r.restarts);
      counter_fields_of(j, r.counters);
      j.boolean("stale", r.stale).end_object();
    }
    j.end_array();
  }
  j.begin_array("viewers");
  for (const auto& v : s.viewers) {
    j.begin_object().number("id", v.id).string("peer", v.peer).number("seconds", rounded(v.seconds));
    j.number("last_seq", v.last_seq).number("frames_sent", v.frames_sent);
    j.number("frames_skipped", v.frames_skipped).number("bytes_sent", v.bytes_sent);
    j.end_object();
  }
  j.end_array().end_object();
  return j.str();
}

namespace {

// The Prometheus text format, one family (HELP, TYPE) and sample at a time.
class exposition {
 public:
  exposition() { out_.reserve(4096); }
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help);
    out_.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view name, const std::string& labels, const std::string& value) {
    out_.append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    out_.append(" ").append(value).append("\n");
  }
  std::string str() && { return std::move(out_); }

 private:
  std::string out_;
};

std::string u(std::uint64_t v) {
  return std::to_string(v);
}

std::string num(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

// A label value: backslash, quote and newline escaped.
std::string escape(std::string_view text) {
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
}

}  // namespace

std::string render_prometheus(const stats_snapshot& s) {
  exposition e;
  e.family("mjpeg_build_info", "gauge", "Always 1; the labels name the server variant and version.");
  e.sample("mjpeg_build_info", "variant=\"" + escape(s.variant) + "\",version=\"" + escape(version) + "\"",
           "1");
  e.family("mjpeg_uptime_seconds", "gauge", "Seconds since the server started.");
  e.sample("mjpeg_uptime_seconds", "", num(s.uptime_s));

  // With several cameras, each camera's series carry its name as a label, camera="NAME"; with one
  // camera they have no label, as before cameras had names.
  const auto per_camera = [&](const char* name, const char* type, const char* help, auto value) {
    e.family(name, type, help);
    if (s.cameras.empty())
      return e.sample(name, "",
                      value(camera_row{"", s.source, s.state, s.fps_capture, s.frames_captured, s.frame_seq,
                                       s.frame_bytes, -1, s.total, s.width, s.height, s.fps_target}));
    for (const auto& c : s.cameras)
      e.sample(name, "camera=\"" + escape(c.name) + "\"", value(c));
  };
  per_camera("mjpeg_source_up", "gauge", "1 while the source delivers frames, 0 while it is down or idle.",
             [](const camera_row& c) { return std::string{c.state == source_state::up ? "1" : "0"}; });
  e.family("mjpeg_source_state", "gauge",
           "1 for the source's current state (up, down, idle), 0 for the others.");
  const auto states = [&](std::string_view labels, source_state now) {
    for (const auto state : {source_state::up, source_state::down, source_state::idle})
      e.sample("mjpeg_source_state", std::string{labels} + "state=\"" + source_state_name(state) + "\"",
               state == now ? "1" : "0");
  };
  if (s.cameras.empty()) states("", s.state);
  for (const auto& c : s.cameras)
    states("camera=\"" + escape(c.name) + "\",", c.state);
  per_camera("mjpeg_capture_fps", "gauge", "Measured capture rate, frames per second.",
             [](const camera_row& c) { return num(c.fps_capture); });
  per_camera("mjpeg_target_fps", "gauge", "Configured frame rate (--fps).",
             [](const camera_row& c) { return num(c.fps_target); });
  per_camera("mjpeg_frame_seq", "gauge", "Sequence number of the latest frame.",
             [](const camera_row& c) { return u(c.frame_seq); });
  per_camera("mjpeg_frame_bytes", "gauge", "JPEG size of the latest frame in bytes.",
             [](const camera_row& c) { return u(c.frame_bytes); });

  per_camera("mjpeg_frames_captured_total", "counter", "Frames captured and published.",
             [](const camera_row& c) { return u(c.frames_captured); });
  e.family("mjpeg_source_times_replaced_total", "counter",
           "Forwarded frames whose capture time was over an hour from now, replaced with the arrival time.");
  e.sample("mjpeg_source_times_replaced_total", "", u(s.times_replaced));
  per_camera("mjpeg_frames_sent_total", "counter", "Frames written to viewers (one per viewer per frame).",
             [](const camera_row& c) { return u(c.counters.frames_sent); });
  per_camera("mjpeg_frames_skipped_total", "counter",
             "Frames a viewer missed because it was still taking an earlier one.",
             [](const camera_row& c) { return u(c.counters.frames_skipped); });
  per_camera("mjpeg_sent_bytes_total", "counter", "Bytes written to viewers, part headers included.",
             [](const camera_row& c) { return u(c.counters.bytes_sent); });

  per_camera("mjpeg_viewers", "gauge", "Viewers streaming now.",
             [](const camera_row& c) { return u(c.counters.viewers_now); });
  per_camera("mjpeg_viewers_total", "counter", "Viewers that started a stream.",
             [](const camera_row& c) { return u(c.counters.viewers_total); });
  e.family("mjpeg_viewers_ended_total", "counter", "Streams that ended, by reason.");
  for (std::size_t r = 0; r < s.ended.size(); ++r)
    e.sample("mjpeg_viewers_ended_total", std::string{"reason=\""} + end_reason_names[r] + "\"",
             u(s.ended[r]));

  e.family("mjpeg_connections_accepted_total", "counter",
           "TCP connections accepted (including those then turned away).");
  e.sample("mjpeg_connections_accepted_total", "", u(s.accepted));
  e.family("mjpeg_connections_rejected_total", "counter",
           "Connections turned away before they were served, by reason.");
  e.sample("mjpeg_connections_rejected_total", "reason=\"capacity\"", u(s.rejected_here));
  e.family("mjpeg_bad_requests_total", "counter", "Requests answered with an error status, by status.");
  for (const auto& [status, count] : s.bad_by_status)
    e.sample("mjpeg_bad_requests_total", "status=\"" + u(status) + "\"", u(count));

  e.family("mjpeg_frame_age_seconds", "histogram",
           "Age of each frame when it was written to a viewer (send time minus capture time).");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < s.age_counts.size(); ++i) {
    cumulative += s.age_counts[i];
    e.sample("mjpeg_frame_age_seconds_bucket",
             "le=\"" + (i < age_buckets.size() ? num(age_buckets[i]) : std::string{"+Inf"}) + "\"",
             u(cumulative));
  }
  e.sample("mjpeg_frame_age_seconds_sum", "", num(s.age_sum_s));
  e.sample("mjpeg_frame_age_seconds_count", "", u(cumulative));

  if (s.workers) {
    const auto per_worker = [&](const char* name, const char* type, const char* help, auto value) {
      e.family(name, type, help);
      for (const auto& r : *s.workers)
        e.sample(name, "worker=\"" + std::to_string(r.index) + "\"", u(value(r)));
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
  return std::move(e).str();
}

}  // namespace mjpeg
