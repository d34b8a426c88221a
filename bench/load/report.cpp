#include "report.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

#include "mjpeg/json.hpp"
#include "stats.hpp"

namespace mjpeg::bench {
namespace {

void write_summary(json_writer& j, std::string_view key, const summary& s, bool with_low) {
  j.begin_object(key).number("count", s.count).number("mean", s.mean);
  if (with_low) j.number("min", s.min).number("p5", s.p5);
  j.number("p50", s.p50)
      .number("p90", s.p90)
      .number("p99", s.p99)
      .number("p999", s.p999)
      .number("max", s.max);
  j.end_object();
}

group_report build_group(const std::vector<std::unique_ptr<worker>>& workers, kind k, const timeline& tl,
                         double window_s, double stall_ms) {
  group_report g;
  for (const auto& w : workers) {
    if (k != kind::idle) {
      const auto& ages = w->ages_ms_[static_cast<int>(k)];
      g.ages_ms.insert(g.ages_ms.end(), ages.begin(), ages.end());
    }
    for (const auto& v : w->viewers_) {
      if (v->kind_ != k) continue;
      ++g.requested;
      if (v->connected_) ++g.connected;
      if (v->status_ != 0) ++g.statuses[v->status_];
      if (!v->error_.empty()) ++g.errors[v->error_];
      if (k == kind::idle) {
        if (v->closed_at_) g.close_after_s.push_back(ms_between(v->connect_started_, *v->closed_at_) / 1000);
        if (v->disconnected_) ++g.disconnected;
        if (v->connected_ && !v->finished_) ++g.streaming_at_end;
        continue;
      }
      const bool ok = v->status_ == 200;
      if (ok) ++g.ok;
      if (!ok && (v->finished_ || !v->connected_)) ++g.refused;
      if (ok && v->frames_window_ == 0) ++g.starved;
      if (ok && v->disconnected_) ++g.disconnected;
      if (ok && !v->finished_) ++g.streaming_at_end;
      if (v->connected_ && v->status_ == 0 && !v->finished_) ++g.waiting;
      g.frames += v->frames_window_;
      g.bytes += v->bytes_window_;
      g.skipped += v->skipped_;
      // A viewer left without frames for the rest of the run is stalled too.
      std::uint64_t stalls = v->stalls_;
      double max_gap = v->max_gap_ms_;
      if (ok && v->last_frame_) {
        const double tail =
            ms_between(std::max(*v->last_frame_, tl.window_start), v->closed_at_.value_or(tl.end));
        max_gap = std::max(max_gap, tail);
        if (tail > stall_ms) ++stalls;
      }
      g.stalls += stalls;
      g.max_gap_ms = std::max(g.max_gap_ms, max_gap);
      // Everyone that asked counts in fps, refused and starved viewers as 0: fairness over all.
      g.fps.push_back(static_cast<double>(v->frames_window_) / window_s);
      if (v->first_frame_) g.ttff_ms.push_back(ms_between(v->connect_started_, *v->first_frame_));
      const auto& e = v->parser_.errors();
      g.parse.bad_headers += e.bad_headers;
      g.parse.missing_length += e.missing_length;
      g.parse.length_mismatches += e.length_mismatches;
    }
  }
  return g;
}

void write_group(json_writer& j, std::string_view key, const group_report& g, double window_s) {
  j.begin_object(key);
  j.number("requested", g.requested).number("connected", g.connected).number("ok", g.ok);
  j.number("refused", g.refused).number("starved", g.starved).number("disconnected", g.disconnected);
  j.number("streaming_at_end", g.streaming_at_end).number("waiting", g.waiting);
  j.begin_object("statuses");
  for (const auto& [code, n] : g.statuses)
    j.number(std::to_string(code), n);
  j.end_object();
  j.begin_object("errors");
  for (const auto& [what, n] : g.errors)
    j.number(what, n);
  j.end_object();
  write_summary(j, "fps", summarize(g.fps), true);
  write_summary(j, "frame_age_ms", summarize(g.ages_ms), false);
  write_summary(j, "ttff_ms", summarize(g.ttff_ms), false);
  j.number("jain_fps", jain_index(g.fps));
  j.number("frames", g.frames).number("skipped", g.skipped);
  const double offered = static_cast<double>(g.frames + g.skipped);
  j.number("skipped_ratio", offered > 0 ? static_cast<double>(g.skipped) / offered : 0);
  j.number("stalls", g.stalls).number("max_gap_ms", g.max_gap_ms);
  j.number("mbytes_per_s", static_cast<double>(g.bytes) / window_s / 1e6);
  j.begin_object("parse_errors")
      .number("bad_headers", g.parse.bad_headers)
      .number("missing_length", g.parse.missing_length)
      .number("length_mismatches", g.parse.length_mismatches)
      .end_object();
  j.end_object();
}

void write_idle(json_writer& j, const group_report& g) {
  j.begin_object("idle");
  j.number("requested", g.requested).number("connected", g.connected);
  j.number("closed_by_server", g.disconnected).number("open_at_end", g.streaming_at_end);
  j.begin_object("statuses");
  for (const auto& [code, n] : g.statuses)
    j.number(std::to_string(code), n);
  j.end_object();
  const auto closes = summarize(g.close_after_s);
  j.begin_object("closed_after_s").number("count", closes.count);
  j.number("min", closes.min).number("p50", closes.p50).number("max", closes.max).end_object();
  j.end_object();
}

}  // namespace

double run_report::server_cpu_percent() const {
  return seen.server_cpu() / window_s * 100;
}

double run_report::cpu_us_per_frame() const {
  const auto frames = static_cast<double>(normal.frames + slow.frames);
  return frames > 0 ? seen.server_cpu() * 1e6 / frames : std::numeric_limits<double>::quiet_NaN();
}

run_report gather(const std::vector<std::unique_ptr<worker>>& workers, const config& cfg, const timeline& tl,
                  observation seen) {
  run_report r;
  r.window_s = tl.window_s();
  r.normal = build_group(workers, kind::normal, tl, r.window_s, cfg.stall_ms);
  r.slow = build_group(workers, kind::slow, tl, r.window_s, cfg.stall_ms);
  r.idle = build_group(workers, kind::idle, tl, r.window_s, cfg.stall_ms);
  r.seen = std::move(seen);
  return r;
}

std::string json_report(const run_report& r, const config& cfg, const timeline& tl,
                        const std::vector<std::unique_ptr<worker>>& workers) {
  json_writer j;
  j.begin_object();
  j.string("tool", "mjpeg-load").string("label", cfg.label).string("url", cfg.url);
  j.begin_object("config")
      .number("viewers", cfg.viewers)
      .number("slow", cfg.slow)
      .number("slow_rate", cfg.slow_rate)
      .number("slow_rcvbuf", cfg.slow_rcvbuf)
      .number("idle", cfg.idle)
      .boolean("burst", cfg.burst)
      .number("ramp_s", tl.ramp_s)
      .number("warmup_s", cfg.warmup)
      .number("duration_s", cfg.duration)
      .number("threads", cfg.threads)
      .number("stall_ms", cfg.stall_ms)
      .end_object();
  const double window_s = r.window_s;
  const observation& server = r.seen;
  j.number("window_s", window_s);
  write_group(j, "viewers", r.normal, window_s);
  if (cfg.slow > 0) write_group(j, "slow", r.slow, window_s);
  if (cfg.idle > 0) write_idle(j, r.idle);
  j.number("load_cpu_percent", server.own_cpu / window_s * 100);
  if (cfg.server_pid > 0) {
    j.begin_object("server")
        .number("pid", cfg.server_pid)
        .boolean("alive_at_end", server.alive && server.at_end);
    if (server.at_window_start && server.at_end) {
      j.number("cpu_percent", r.server_cpu_percent()).number("cpu_us_per_viewer_frame", r.cpu_us_per_frame());
      j.number("rss_mb_end", static_cast<double>(server.at_end->rss_bytes) / 1e6);
      j.number("threads_end", server.at_end->threads);
    }
    j.number("rss_mb_max", static_cast<double>(server.rss_max) / 1e6)
        .number("threads_max", server.threads_max);
    j.end_object();
  }
  if (cfg.per_viewer) {
    j.begin_array("per_viewer");
    for (const auto& w : workers)
      for (const auto& v : w->viewers_) {
        if (v->kind_ == kind::idle) continue;
        j.begin_object()
            .number("id", v->id_)
            .string("kind", kind_name(v->kind_))
            .number("status", v->status_);
        j.number("frames", v->frames_window_)
            .number("fps", static_cast<double>(v->frames_window_) / window_s);
        j.number("ttff_ms", v->first_frame_ ? ms_between(v->connect_started_, *v->first_frame_)
                                            : std::numeric_limits<double>::quiet_NaN());
        j.number("skipped", v->skipped_).number("stalls", v->stalls_);
        j.number("max_gap_ms", v->max_gap_ms_);
        j.number("age_mean_ms", v->age_count_ ? v->age_sum_ms_ / static_cast<double>(v->age_count_)
                                              : std::numeric_limits<double>::quiet_NaN());
        j.number("age_max_ms", v->age_max_ms_).boolean("disconnected", v->disconnected_);
        if (!v->error_.empty()) j.string("error", v->error_);
        j.end_object();
      }
    j.end_array();
  }
  j.end_object();

  return j.str();
}

void print_summary(const run_report& r, const config& cfg) {
  const double window_s = r.window_s;
  const group_report& normal = r.normal;
  const auto fps = summarize(normal.fps);
  const auto age = summarize(normal.ages_ms);
  const auto ttff = summarize(normal.ttff_ms);
  std::printf("mjpeg-load %s: %d viewers%s for %.1f s (window %.1f s)\n", cfg.url.c_str(), cfg.viewers,
              cfg.burst ? " in a burst" : "", cfg.duration, window_s);
  std::printf("  viewers   %d ok, %d refused, %d waiting, %d starved (0 frames), %d disconnected, statuses:",
              normal.ok, normal.refused, normal.waiting, normal.starved, normal.disconnected);
  for (const auto& [code, n] : normal.statuses)
    std::printf(" %d×%d", n, code);
  std::printf("\n  fps       mean %.2f  min %.2f  p5 %.2f  max %.2f  Jain %.3f\n", fps.mean, fps.min, fps.p5,
              fps.max, jain_index(normal.fps));
  std::printf("  age ms    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", age.p50, age.p90, age.p99,
              age.p999, age.max);
  std::printf("  ttff ms   p50 %.1f  p99 %.1f  max %.1f (%zu got a frame)\n", ttff.p50, ttff.p99, ttff.max,
              ttff.count);
  std::printf("  frames    %llu, skipped %llu, stalls %llu (>%.0f ms), %.1f MB/s\n",
              static_cast<unsigned long long>(normal.frames), static_cast<unsigned long long>(normal.skipped),
              static_cast<unsigned long long>(normal.stalls), cfg.stall_ms,
              static_cast<double>(normal.bytes) / window_s / 1e6);
  if (cfg.slow > 0) {
    const auto sfps = summarize(r.slow.fps);
    const auto sage = summarize(r.slow.ages_ms);
    std::printf("  slow      %d viewers at %.0f B/s: fps mean %.2f, age p50 %.1f ms p99 %.1f ms\n", cfg.slow,
                cfg.slow_rate, sfps.mean, sage.p50, sage.p99);
  }
  if (cfg.idle > 0)
    std::printf("  idle      %d connected, %d closed by the server, %d still open\n", r.idle.connected,
                r.idle.disconnected, r.idle.streaming_at_end);
  std::printf("  load gen  %.1f%% CPU\n", r.seen.own_cpu / window_s * 100);
  if (cfg.server_pid > 0)
    std::printf("  server    %.1f%% CPU, %.1f µs per viewer-frame, RSS max %.1f MB, threads max %d%s\n",
                r.server_cpu_percent(), r.cpu_us_per_frame(), static_cast<double>(r.seen.rss_max) / 1e6,
                r.seen.threads_max, r.seen.alive ? "" : " (exited)");
}

}  // namespace mjpeg::bench
