/// mjpeg-load's viewer engine: simulated viewers on a few io_context threads, each reading the
/// stream with readiness-based reads into its thread's one buffer and the shared multipart reader.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "mjpeg/multipart.hpp"
#include "mjpeg/trace.hpp"

namespace mjpeg::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using http::multipart_listener;
using http::multipart_parser;
using http::part_info;
using http::response_head;

/// Command-line settings.
struct config {
  std::string url;              ///< Stream URL.
  std::string host;             ///< Host part of the URL.
  std::string port;             ///< Port part of the URL.
  std::string target;           ///< Path part of the URL.
  int viewers = 1;              ///< Viewers reading at full speed.
  double duration = 10;         ///< Seconds the whole run lasts.
  double ramp = 1;              ///< Seconds over which viewers connect.
  bool burst = false;           ///< Connect every viewer at once.
  double warmup = 1;            ///< Seconds after the ramp before metrics count.
  int slow = 0;                 ///< Extra viewers that read slowly.
  double slow_rate = 100'000;   ///< Bytes per second a slow viewer reads.
  int slow_rcvbuf = 16 * 1024;  ///< SO_RCVBUF of a slow viewer; 0 keeps the system's autotuned default.
  int idle = 0;                 ///< Connections that never send a request.
  int threads = 1;              ///< Load generator threads.
  double stall_ms = 500;        ///< A gap between frames longer than this is a stall.
  int server_pid = 0;           ///< The server to sample from /proc (0: none).
  std::string json;             ///< Where the JSON report goes ("" : nowhere).
  std::string label;            ///< Free text copied into the report.
  bool per_viewer = true;       ///< List every viewer in the report.
  std::string launch;           ///< Server command to start (--launch).
  std::vector<std::string> source_addresses;  ///< Loopback addresses viewers connect from, in turn.
  std::vector<std::string> paths;  ///< Paths viewers ask for, viewer i the (i mod n)-th; empty: target.
  std::string trace;               ///< Write every viewer's events here (--trace); "" : off.
};

/// The phases of a run, shared by every thread.
struct timeline {
  steady::time_point start;         ///< When the first connection goes out.
  steady::time_point window_start;  ///< Metrics count from here (after ramp and warm-up) …
  steady::time_point end;           ///< … to here, when everything stops.
  double viewers_at_s = 0;          ///< Seconds after start when the first viewer connects.
  double ramp_s = 0;                ///< The ramp used (0 with --burst).
  /// Seconds from window_start to end.
  double window_s() const { return std::chrono::duration<double>(end - window_start).count(); }
};

/// What a simulated connection does.
enum class kind {
  normal = 0,  ///< Reads the stream as fast as it comes.
  slow = 1,    ///< Reads --slow-rate bytes per second.
  idle = 2,    ///< Never sends a request (slowloris).
};

/// "normal", "slow" or "idle".
const char* kind_name(kind k);

/// Milliseconds from `a` to `b`.
double ms_between(steady::time_point a, steady::time_point b);

class worker;

/// One simulated viewer (or, for kind::idle, one connection that never sends a request).
class viewer final : public multipart_listener {
 public:
  /// Viewer `id` of kind `k`, connecting at `start_at`.
  viewer(worker& w, int id, kind k, steady::time_point start_at);
  /// Arms its connect timer.
  void start();
  /// The stream's response head arrived.
  void on_response(const response_head& head) override;
  /// One frame arrived.
  void on_part(const part_info& part) override;

  int id_;
  kind kind_;
  steady::time_point start_at_;
  steady::time_point connect_started_{};
  std::optional<steady::time_point> first_frame_;
  std::optional<steady::time_point> last_frame_;
  std::optional<steady::time_point> closed_at_;
  int status_ = 0;
  bool connected_ = false;
  bool finished_ = false;
  bool disconnected_ = false;  // the server ended a stream (or closed an idle connection)
  std::string error_;
  std::uint64_t frames_total_ = 0;
  std::uint64_t frames_window_ = 0;
  std::uint64_t bytes_window_ = 0;
  std::uint64_t skipped_ = 0;
  std::uint64_t stalls_ = 0;
  double max_gap_ms_ = 0;
  double age_sum_ms_ = 0;
  double age_max_ms_ = 0;
  std::uint64_t age_count_ = 0;
  std::optional<std::uint64_t> last_seq_;
  std::uint16_t port_ = 0;  // the local port once connected: the viewer's name in a trace
  multipart_parser parser_;

 private:
  void on_connect(const error_code& ec);
  void wait_readable();
  void on_readable(const error_code& ec);
  void slow_tick();
  void consume(std::size_t n);
  void finish(const error_code& ec);

  worker& w_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string request_;
  double credit_ = 0;  // bytes a slow viewer may still read
};

/// One thread: an io_context, its viewers and the read buffer they share.
class worker {
 public:
  /// A worker for `cfg`, connecting to `endpoint`.
  worker(const config& cfg, const timeline& tl, tcp::endpoint endpoint, trace_log* trace = nullptr)
      : cfg_{cfg}, tl_{tl}, endpoint_{endpoint}, buffer_(256 * 1024), trace_{trace} {}

  /// Places a viewer of kind `k` that connects at `start_at`.
  void add(int id, kind k, steady::time_point start_at) {
    viewers_.push_back(std::make_unique<viewer>(*this, id, k, start_at));
  }
  /// Runs every viewer until the timeline's end.
  void run();

  asio::io_context io_{1};
  const config& cfg_;
  const timeline& tl_;
  tcp::endpoint endpoint_;
  std::vector<char> buffer_;
  trace_log* trace_;                // --trace, or null
  std::vector<double> ages_ms_[2];  // by kind: normal, slow
  std::int64_t now_wall_us_ = 0;    // receive time of the bytes being parsed
  std::int64_t now_raw_us_ = 0;     // the same on CLOCK_MONOTONIC_RAW (ustreamer's grab clock)
  steady::time_point now_ = {};
  std::vector<std::unique_ptr<viewer>> viewers_;  // after io_: sockets close before it goes
};

/// The phases of a run of `cfg` that starts now.
timeline plan_timeline(const config& cfg);

/// `cfg.threads` workers with every connection placed: idle ones first, so a slowloris is in
/// place before the viewers arrive, then the viewers over the ramp, slow ones among the fast.
std::vector<std::unique_ptr<worker>> place_viewers(const config& cfg, const timeline& tl,
                                                   tcp::endpoint endpoint, trace_log* trace = nullptr);

}  // namespace mjpeg::bench
