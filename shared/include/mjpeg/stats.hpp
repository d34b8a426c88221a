/// The counters behind /stats: server-wide, and per viewer.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>

#include "mjpeg/camera_info.hpp"
#include "mjpeg/trace.hpp"

namespace mjpeg {

class frame;

/// Why a viewer's stream ended, as the leave line and /metrics report it.
enum class end_reason {
  closed,        ///< The viewer closed or reset the connection.
  send_timeout,  ///< The viewer took nothing for --send-timeout.
  shutdown,      ///< The server is stopping.
  error,         ///< Anything else (an I/O error, an exception).
};

/// The reason behind the error that ended a stream loop: a closed or reset connection is the
/// viewer's doing, timed_out the send timeout, operation_aborted (or no error: the hub closed)
/// shutdown.
end_reason end_reason_of(const boost::system::error_code& ec);

/// One viewer's subscription: what it has seen and been sent.
///
/// Written by the thread (or coroutine) serving the viewer, read by /stats from another thread,
/// hence relaxed atomics. Where it lives is each variant's lesson: a local, a thread_local, or the
/// coroutine frame.
struct viewer_state {
  std::uint64_t id = 0;                          ///< Unique per viewer, never reused.
  std::string peer;                              ///< "address:port" of the viewer.
  std::uint16_t port = 0;                        ///< Its port, set only with --trace (the trace's viewer).
  std::chrono::steady_clock::time_point since;   ///< When the stream started.
  std::atomic<std::uint64_t> last_seq{0};        ///< Sequence number of the last frame sent.
  std::atomic<std::uint64_t> frames_sent{0};     ///< Frames written to this viewer.
  std::atomic<std::uint64_t> frames_skipped{0};  ///< Frames published while it was busy.
  std::atomic<std::uint64_t> bytes_sent{0};      ///< Bytes written, headers included.
  end_reason ended = end_reason::error;          ///< Set by the stream loop as it ends.
};

/// What the capture side is doing, as /stats reports it.
enum class source_state {
  up,    ///< Delivering frames.
  down,  ///< Failed or ended; being reopened with backoff (viewers keep the last frame).
  idle,  ///< Closed by --idle-stop because nobody watches; reopened by the next viewer.
};

/// Upper bounds in seconds of the frame-age histogram in /metrics (plus +Inf).
inline constexpr std::array<double, 10> age_buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

/// The counters one process adds to a server's totals (a worker's row in /stats).
struct stats_counters {
  std::uint64_t viewers_now = 0;     ///< Viewers streaming now.
  std::uint64_t viewers_total = 0;   ///< Viewers since start.
  std::uint64_t frames_sent = 0;     ///< Frames written to viewers.
  std::uint64_t bytes_sent = 0;      ///< Bytes written to viewers.
  std::uint64_t frames_skipped = 0;  ///< Frames viewers missed while busy.
  std::uint64_t rejected = 0;        ///< Connections refused with 503.
  std::uint64_t bad_requests = 0;    ///< Requests answered with 4xx.
};

/// One field of stats_counters: its /stats key and where it lives.
struct counter_field {
  std::string_view name;                 ///< The key in /stats ("frames_sent").
  std::uint64_t stats_counters::*value;  ///< The field.
};

/// Every field of stats_counters, in /stats order: the one list that sums, copies into a worker's
/// slot and writes them, so a new counter is added here and nowhere else.
inline constexpr std::array<counter_field, 7> counter_fields{{
    {"viewers_now", &stats_counters::viewers_now},
    {"viewers_total", &stats_counters::viewers_total},
    {"frames_sent", &stats_counters::frames_sent},
    {"bytes_sent", &stats_counters::bytes_sent},
    {"frames_skipped", &stats_counters::frames_skipped},
    {"rejected", &stats_counters::rejected},
    {"bad_requests", &stats_counters::bad_requests},
}};

/// One worker process as /stats lists it.
struct worker_row {
  int index = 0;               ///< Worker slot, 0..N-1.
  std::int64_t pid = 0;        ///< Its process id (0 while it restarts).
  std::uint64_t restarts = 0;  ///< How often the parent restarted this slot.
  bool stale = false;          ///< Its heartbeat stopped: the counters are its last word, not live.
  stats_counters counters;     ///< What it reported last.
};

/// The whole server's counters: the sum of every worker's row, field by field.
stats_counters sum_of(const std::vector<worker_row>& rows);

/// One viewer as /stats lists it.
struct viewer_row {
  std::uint64_t id = 0;              ///< The viewer's id.
  std::string peer;                  ///< "address:port".
  double seconds = 0;                ///< How long it has been watching.
  std::uint64_t last_seq = 0;        ///< Sequence number of the last frame sent.
  std::uint64_t frames_sent = 0;     ///< Frames written to it.
  std::uint64_t frames_skipped = 0;  ///< Frames published while it was busy.
  std::uint64_t bytes_sent = 0;      ///< Bytes written to it.
};

/// One camera of a server with --camera, as /stats and /metrics list it.
struct camera_row {
  std::string name;                         ///< --camera NAME.
  std::string source;                       ///< Its source's description.
  source_state state = source_state::down;  ///< What its source is doing.
  double fps_capture = 0;                   ///< Its measured capture rate.
  std::uint64_t frames_captured = 0;        ///< Frames it captured and published.
  std::uint64_t frame_seq = 0;              ///< Sequence number of its latest frame.
  std::uint64_t frame_bytes = 0;            ///< JPEG size of its latest frame.
  double frame_age_s = -1;                  ///< Age of its latest frame in seconds; -1 before the first.
  stats_counters counters;                  ///< Its viewers and what they were sent.
  int width = 0;                            ///< Its configured width.
  int height = 0;                           ///< Its configured height.
  double fps_target = 0;                    ///< Its configured rate.
};

/// Everything /stats and /metrics show, taken at one moment: plain data for the renderers.
struct stats_snapshot {
  std::string variant;                              ///< The variant's name.
  double uptime_s = 0;                              ///< Seconds since start.
  std::string source;                               ///< The source's description.
  source_state state = source_state::down;          ///< What the source is doing.
  std::optional<camera_info> camera;                ///< What a camera negotiated.
  std::uint64_t bad_frames = 0;                     ///< Broken frames the source dropped.
  std::uint64_t times_replaced = 0;                 ///< Implausible forwarded capture times replaced.
  int width = 0;                                    ///< Configured width.
  int height = 0;                                   ///< Configured height.
  double fps_target = 0;                            ///< --fps.
  double fps_capture = 0;                           ///< Measured capture rate.
  std::uint64_t frame_seq = 0;                      ///< Sequence number of the latest frame.
  std::uint64_t frame_bytes = 0;                    ///< JPEG size of the latest frame.
  stats_counters total;                             ///< The whole server's counters.
  std::uint64_t frames_captured = 0;                ///< Frames captured and published.
  std::uint64_t accepted = 0;                       ///< Connections accepted (this process).
  std::uint64_t rejected_here = 0;                  ///< Connections turned away (this process).
  std::vector<std::string> publish;                 ///< Bus endpoints published on.
  std::optional<std::vector<worker_row>> workers;   ///< One row per worker, with --workers.
  std::vector<viewer_row> viewers;                  ///< This process's viewers (at most 100).
  std::array<std::uint64_t, 4> ended{};             ///< Streams ended, by end_reason.
  std::map<unsigned, std::uint64_t> bad_by_status;  ///< Error statuses answered, by code.
  std::array<std::uint64_t, age_buckets.size() + 1> age_counts{};  ///< Frame ages per bucket, +Inf last.
  double age_sum_s = 0;                                            ///< Sum of the frame ages.
  std::vector<camera_row> cameras;  ///< One row per camera with --camera (the totals above sum them).
  std::string name;                 ///< /NAME/stats: the camera's name; empty in the server's /stats.
  double frame_age_s = -1;          ///< /NAME/stats: age of its latest frame (-1 before the first).
};

/// One camera's own snapshot, with its name and the age of its latest frame (-1 before the first):
/// what /NAME/stats shows (see camera_view), and a row of /stats.
struct camera_snapshot {
  std::string name;         ///< --camera NAME.
  stats_snapshot snapshot;  ///< Its counters (the first camera's also hold the server's).
  double frame_age_s = -1;  ///< Age of its latest frame.
};

/// The snapshot of a server with several cameras: the first camera's (which holds the server-wide
/// counters: connections, bad requests), with one row per camera, and the viewer counters, the
/// frames captured, the streams ended, the frame-age histogram and the viewer list summed over
/// every camera.
stats_snapshot combine_cameras(std::vector<camera_snapshot> cameras);

/// One camera's snapshot as /NAME/stats shows it: its own counters, viewers, capture state and
/// configured size and rate, with its name and frame age.
stats_snapshot camera_view(camera_snapshot camera);

/// Server-wide counters behind /stats (JSON) and /metrics (Prometheus text format).
class server_stats {
 public:
  /// Starts the clock for uptime.
  explicit server_stats(std::string variant);

  /// Records one frame published at `now` (for the measured capture rate).
  void frame_captured(std::chrono::steady_clock::time_point now);
  /// Records the source and what it is doing (and, when it goes down, since when).
  void set_source(std::string description, source_state state);
  /// How long the source has been down at `now` (failed and being reopened); zero while it is up
  /// or idle. What the health check (/healthz, --max-source-down) compares.
  std::chrono::steady_clock::duration source_down_for(std::chrono::steady_clock::time_point now) const;
  /// Records what a camera source negotiated (after each open).
  void set_camera(camera_info camera);
  /// Records how many broken frames the source has dropped so far.
  void set_bad_frames(std::uint64_t count) { bad_frames_.store(count, std::memory_order_relaxed); }
  /// Records how many implausible forwarded capture times the source has replaced so far.
  void set_times_replaced(std::uint64_t count) { times_replaced_.store(count, std::memory_order_relaxed); }
  /// Records the configured stream settings shown by /stats and the viewer page.
  void set_config(int width, int height, double fps);
  /// A connection accepted from the listening socket (served or turned away after).
  void connection_accepted() { accepted_.fetch_add(1, std::memory_order_relaxed); }
  /// A connection turned away before it was served (over capacity: 503).
  void connection_rejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }
  /// A request answered with an error status (4xx, 5xx).
  void bad_request(unsigned status);

  /// Starts a viewer: resets `v`, gives it a new id, lists it and logs it (the `__enter__` half).
  void viewer_started(viewer_state& v, std::string peer);
  /// Records a frame sent to `v`: `seq` is its sequence number, gaps are skipped frames.
  void frame_sent(viewer_state& v, std::uint64_t seq, std::size_t bytes);
  /// Records `f` sent to `v`, and its age (now minus capture time) in the frame-age histogram.
  void frame_sent(viewer_state& v, const frame& f);
  /// Ends a viewer: unlists it and logs its leave line with `v.ended` (the `__exit__` half).
  void viewer_stopped(viewer_state& v);

  /// Viewers streaming now.
  std::uint64_t viewers_now() const;
  /// Measured capture rate at `now`: the frames published in the last two seconds (or two and a
  /// half frame intervals, if longer) over the time they took, so jitter cannot inflate it (the
  /// mean of per-frame rates would), and a source that stalls counts down towards 0.
  double capture_fps(std::chrono::steady_clock::time_point now) const;
  /// The same, now.
  double capture_fps() const { return capture_fps(std::chrono::steady_clock::now()); }
  /// Viewers of the whole server: every worker's with --workers (what --idle-stop watches in the
  /// parent), else viewers_now().
  std::uint64_t server_viewers() const;
  /// This process's counters.
  stats_counters counters() const;
  /// With worker processes: returns every worker's row (this one's included), so /stats
  /// answers for the whole server whichever worker is asked. Set before serving.
  void on_workers(std::function<std::vector<worker_row>()> rows) { workers_ = std::move(rows); }
  /// Records viewer events into `trace` (--trace; null: off, the default). Set before serving.
  void set_trace(trace_log* trace) { trace_ = trace; }
  /// Records `e` for the viewer on client port `port` if --trace is on; one branch when off.
  void trace(trace_event e, std::uint16_t port, std::uint64_t value = 0) {
    if (trace_ != nullptr) trace_->record(e, port, value);
  }
  /// True with --trace.
  bool tracing() const { return trace_ != nullptr; }
  /// Frame-bus endpoints this server publishes on, shown in /stats.
  void set_publish(std::vector<std::string> endpoints);
  /// Everything /stats and /metrics show, taken once under the locks; `frame_seq` and
  /// `frame_bytes` describe the latest frame.
  stats_snapshot snapshot(std::uint64_t frame_seq, std::size_t frame_bytes) const;

 private:
  // counters() with mutex_ held.
  stats_counters counters_locked() const;
  // capture_fps() with published_mutex_ held, for a --fps of `target`.
  double capture_fps_locked(std::chrono::steady_clock::time_point now, double target) const;
  std::string variant_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::uint64_t> viewers_total_{0};
  std::atomic<std::uint64_t> frames_captured_{0};
  std::atomic<std::uint64_t> frames_sent_{0};
  std::atomic<std::uint64_t> frames_skipped_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> bad_requests_{0};
  std::atomic<std::uint64_t> bad_frames_{0};
  std::atomic<std::uint64_t> times_replaced_{0};
  std::array<std::atomic<std::uint64_t>, 4> ended_{};                            // by end_reason
  std::array<std::atomic<std::uint64_t>, age_buckets.size() + 1> age_counts_{};  // last one: +Inf
  std::atomic<std::uint64_t> age_sum_us_{0};

  // When the last frames were published: a ring long enough for two seconds at the highest --fps.
  static constexpr std::size_t published_kept = 512;
  mutable std::mutex published_mutex_;  // guards the two fields below
  std::array<std::chrono::steady_clock::time_point, published_kept> published_{};
  std::uint64_t published_count_ = 0;

  mutable std::mutex mutex_;  // guards the fields below
  std::list<viewer_state*> viewers_;
  std::map<unsigned, std::uint64_t> bad_by_status_;
  std::string source_;
  source_state source_state_ = source_state::down;
  std::chrono::steady_clock::time_point source_down_since_{};  // when source_state_ became down
  std::optional<camera_info> camera_;
  int width_ = 0;
  int height_ = 0;
  double fps_ = 0;
  std::vector<std::string> publish_;
  std::function<std::vector<worker_row>()> workers_;
  trace_log* trace_ = nullptr;  // set before serving, then only read
};

/// The `__enter__`/`__exit__` pair of one viewer: viewer_started on construction, viewer_stopped
/// on destruction.
class viewer_scope {
 public:
  /// Starts `viewer` in `stats`.
  viewer_scope(server_stats& stats, viewer_state& viewer, std::string peer) : stats_{stats}, viewer_{viewer} {
    stats_.viewer_started(viewer_, std::move(peer));
  }
  /// Stops it.
  ~viewer_scope() { stats_.viewer_stopped(viewer_); }
  viewer_scope(const viewer_scope&) = delete;
  viewer_scope& operator=(const viewer_scope&) = delete;

 private:
  server_stats& stats_;
  viewer_state& viewer_;
};

}  // namespace mjpeg
