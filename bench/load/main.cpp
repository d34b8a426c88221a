// mjpeg-load: simulated viewers for an MJPEG-over-HTTP server.
//
// Opens N viewers against a stream URL, reads multipart/x-mixed-replace, parses only part headers
// and skips the JPEG bodies, and reports per-viewer fps, frame age (receive time − X-Timestamp),
// skipped frames, stalls, statuses and fairness. Readiness-based reads into one large buffer per
// thread keep it cheaper than the server it drives: a viewer costs a socket and a small parser,
// not a read buffer. Bounded by --duration; loopback only.

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "json.hpp"
#include "mjpeg/multipart.hpp"
#include "stats.hpp"

extern char** environ;

namespace mjpeg::bench {
namespace {

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
  std::string url;
  std::string host;
  std::string port;
  std::string target;
  int viewers = 1;
  double duration = 10;
  double ramp = 1;
  bool burst = false;
  double warmup = 1;
  int slow = 0;
  double slow_rate = 100'000;
  int idle = 0;
  int threads = 1;
  double stall_ms = 500;
  int server_pid = 0;
  std::string json;
  std::string label;
  bool per_viewer = true;
  std::string launch;
  std::vector<std::string> source_addresses;  // loopback addresses viewers connect from, in turn
};

/// The phases of a run, shared by every thread.
struct timeline {
  steady::time_point start;
  steady::time_point window_start;  // metrics count from here (after ramp and warm-up) …
  steady::time_point end;           // … to here, when everything stops
};

enum class kind { normal = 0, slow = 1, idle = 2 };

const char* kind_name(kind k) {
  return k == kind::normal ? "normal" : k == kind::slow ? "slow" : "idle";
}

double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

class worker;

/// One simulated viewer (or, for kind::idle, one connection that never sends a request).
class viewer final : public multipart_listener {
 public:
  viewer(worker& w, int id, kind k, steady::time_point start_at);
  void start();
  void on_response(const response_head& head) override;
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
  worker(const config& cfg, const timeline& tl, tcp::endpoint endpoint)
      : cfg_{cfg}, tl_{tl}, endpoint_{endpoint}, buffer_(256 * 1024) {}

  void add(int id, kind k, steady::time_point start_at) {
    viewers_.push_back(std::make_unique<viewer>(*this, id, k, start_at));
  }
  void run() {
    for (auto& v : viewers_)
      v->start();
    asio::steady_timer stop{io_, tl_.end};
    stop.async_wait([this](const error_code&) { io_.stop(); });
    io_.run();
  }

  asio::io_context io_{1};
  const config& cfg_;
  const timeline& tl_;
  tcp::endpoint endpoint_;
  std::vector<char> buffer_;
  std::vector<double> ages_ms_[2];  // by kind: normal, slow
  std::int64_t now_wall_us_ = 0;    // receive time of the bytes being parsed
  std::int64_t now_raw_us_ = 0;     // the same on CLOCK_MONOTONIC_RAW (ustreamer's grab clock)
  steady::time_point now_ = {};
  std::vector<std::unique_ptr<viewer>> viewers_;  // after io_: sockets close before it goes
};

viewer::viewer(worker& w, int id, kind k, steady::time_point start_at)
    : id_{id}, kind_{k}, start_at_{start_at}, w_{w}, socket_{w.io_}, timer_{w.io_} {}

void viewer::start() {
  timer_.expires_at(start_at_);
  timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    connect_started_ = steady::now();
    error_code ignored;
    socket_.open(w_.endpoint_.protocol(), ignored);
    // A slow viewer models a slow network: a small receive buffer pushes back on the server
    // soon, instead of the kernel soaking up megabytes on its behalf.
    if (kind_ == kind::slow) socket_.set_option(asio::socket_base::receive_buffer_size{16 * 1024}, ignored);
    // Several source addresses: each has its own ~28,000 ephemeral ports toward one server port.
    if (!w_.cfg_.source_addresses.empty()) {
      static std::atomic<std::size_t> turn{0};
      const auto& from = w_.cfg_.source_addresses[turn++ % w_.cfg_.source_addresses.size()];
      const int one = 1;
      ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      socket_.bind({asio::ip::make_address(from, ignored), 0}, ignored);
    }
    socket_.async_connect(w_.endpoint_, [this](const error_code& e) { on_connect(e); });
  });
}

void viewer::on_connect(const error_code& ec) {
  if (ec) {
    error_ = "connect: " + ec.message();
    finished_ = true;
    return;
  }
  connected_ = true;
  error_code ignored;
  socket_.set_option(tcp::no_delay{true}, ignored);
  socket_.non_blocking(true, ignored);
  if (kind_ == kind::idle) {  // slowloris: never send a request, just see what the server does
    wait_readable();
    return;
  }
  request_ = "GET " + w_.cfg_.target + " HTTP/1.1\r\nHost: " + w_.cfg_.host + ":" + w_.cfg_.port +
             "\r\nUser-Agent: mjpeg-load\r\nAccept: multipart/x-mixed-replace, */*\r\n\r\n";
  asio::async_write(socket_, asio::buffer(request_), [this](const error_code& e, std::size_t) {
    if (e) return finish(e);
    if (kind_ == kind::slow) {
      slow_tick();
    } else {
      wait_readable();
    }
  });
}

void viewer::wait_readable() {
  socket_.async_wait(tcp::socket::wait_read, [this](const error_code& ec) { on_readable(ec); });
}

void viewer::on_readable(const error_code& ec) {
  if (ec) return finish(ec);
  // Drain what is there with few, large reads; the buffer is shared, so parse before the next.
  for (int round = 0; round < 8; ++round) {
    error_code rec;
    const std::size_t n = socket_.read_some(asio::buffer(w_.buffer_), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) break;
    if (rec) return finish(rec);
    consume(n);
    if (finished_) return;
    if (n < w_.buffer_.size()) break;
  }
  wait_readable();
}

void viewer::slow_tick() {
  // Every 50 ms a slow viewer may read rate × 50 ms bytes; unused credit carries over a little.
  constexpr double tick = 0.05;
  credit_ = std::min(credit_ + w_.cfg_.slow_rate * tick, w_.cfg_.slow_rate * tick * 4);
  const auto allowed = std::min(static_cast<std::size_t>(credit_), w_.buffer_.size());
  if (allowed > 0) {
    error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(w_.buffer_.data(), allowed), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return finish(ec);
    if (!ec) {
      credit_ -= static_cast<double>(n);
      consume(n);
      if (finished_) return;
    }
  }
  timer_.expires_after(std::chrono::milliseconds{50});
  timer_.async_wait([this](const error_code& ec) {
    if (!ec) slow_tick();
  });
}

void viewer::consume(std::size_t n) {
  w_.now_ = steady::now();
  w_.now_wall_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  timespec raw{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &raw);
  w_.now_raw_us_ = static_cast<std::int64_t>(raw.tv_sec) * 1000000 + raw.tv_nsec / 1000;
  if (w_.now_ >= w_.tl_.window_start) bytes_window_ += n;
  parser_.feed({w_.buffer_.data(), n}, *this);
  const auto state = parser_.current();
  if (state == multipart_parser::state::failed) {
    error_ = "bad response: " + parser_.failure();
    finish({});
  } else if (state == multipart_parser::state::done && kind_ != kind::idle) {
    // A non-stream answer (503, 404 …) or the closing boundary: this viewer is over.
    if (status_ == 200) disconnected_ = true;
    finish({});
  }
}

void viewer::finish(const error_code& ec) {
  if (ec == asio::error::operation_aborted || finished_) return;
  finished_ = true;
  closed_at_ = steady::now();
  if (ec && ec != asio::error::eof && error_.empty()) error_ = ec.message();
  if (status_ == 0 && kind_ != kind::idle && error_.empty()) error_ = "closed before a response";
  // The server closed on us: a stream that ended, or an idle connection it timed out.
  if ((status_ == 200 && kind_ != kind::idle) || kind_ == kind::idle) disconnected_ = true;
  error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
}

void viewer::on_response(const response_head& head) {
  status_ = head.status;
}

void viewer::on_part(const part_info& part) {
  const auto now = w_.now_;
  ++frames_total_;
  if (!first_frame_) first_frame_ = now;
  const bool in_window = now >= w_.tl_.window_start && now < w_.tl_.end;
  if (in_window) {
    ++frames_window_;
    if (part.timestamp_us || part.grab_raw_us) {
      // Age from the capture time: ustreamer states it only on its own clock (its X-Timestamp is
      // the send time, which would leave its queueing out); ours is X-Timestamp.
      const double age_ms = part.grab_raw_us
                                ? static_cast<double>(w_.now_raw_us_ - *part.grab_raw_us) / 1000.0
                                : static_cast<double>(w_.now_wall_us_ - *part.timestamp_us) / 1000.0;
      w_.ages_ms_[static_cast<int>(kind_)].push_back(age_ms);
      age_sum_ms_ += age_ms;
      age_max_ms_ = std::max(age_max_ms_, age_ms);
      ++age_count_;
    }
    if (part.seq && last_seq_ && *part.seq > *last_seq_ + 1) skipped_ += *part.seq - *last_seq_ - 1;
    if (last_frame_) {
      const double gap = ms_between(*last_frame_, now);
      max_gap_ms_ = std::max(max_gap_ms_, gap);
      if (gap > w_.cfg_.stall_ms) ++stalls_;
    }
  }
  if (part.seq) last_seq_ = part.seq;
  last_frame_ = now;
}

// ---- report ------------------------------------------------------------------------------

struct server_watch {
  std::optional<process_sample> at_window_start;
  std::optional<process_sample> at_end;
  std::map<int, double> threads_at_window_start;
  std::map<int, double> threads_at_end;
  std::uint64_t rss_max = 0;
  int threads_max = 0;
  bool alive = true;
};

void write_summary(json_writer& j, std::string_view key, const summary& s, bool with_low) {
  j.begin_object(key).number("count", static_cast<double>(s.count)).number("mean", s.mean);
  if (with_low) j.number("min", s.min).number("p5", s.p5);
  j.number("p50", s.p50)
      .number("p90", s.p90)
      .number("p99", s.p99)
      .number("p999", s.p999)
      .number("max", s.max);
  j.end_object();
}

/// Aggregates of one group of viewers.
struct group_report {
  int requested = 0;
  int connected = 0;
  int ok = 0;  // got 200
  int refused = 0;
  int starved = 0;  // 200 but no frame in the window
  int disconnected = 0;
  int streaming_at_end = 0;
  int waiting = 0;  // connected, no response yet (in a backlog or a queue)
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
  std::uint64_t skipped = 0;
  std::uint64_t stalls = 0;
  double max_gap_ms = 0;
  std::map<int, int> statuses;
  std::map<std::string, int> errors;
  std::vector<double> fps;
  std::vector<double> ttff_ms;
  std::vector<double> ages_ms;
  std::vector<double> close_after_s;  // idle: when the server closed them
  http::multipart_errors parse;
};

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
  j.number("frames", static_cast<double>(g.frames)).number("skipped", static_cast<double>(g.skipped));
  const double offered = static_cast<double>(g.frames + g.skipped);
  j.number("skipped_ratio", offered > 0 ? static_cast<double>(g.skipped) / offered : 0);
  j.number("stalls", static_cast<double>(g.stalls)).number("max_gap_ms", g.max_gap_ms);
  j.number("mbytes_per_s", static_cast<double>(g.bytes) / window_s / 1e6);
  j.begin_object("parse_errors")
      .number("bad_headers", static_cast<double>(g.parse.bad_headers))
      .number("missing_length", static_cast<double>(g.parse.missing_length))
      .number("length_mismatches", static_cast<double>(g.parse.length_mismatches))
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
  j.begin_object("closed_after_s").number("count", static_cast<double>(closes.count));
  j.number("min", closes.min).number("p50", closes.p50).number("max", closes.max).end_object();
  j.end_object();
}

// ---- main --------------------------------------------------------------------------------

/// A server started by --launch: its URL line is read, and it is stopped (SIGTERM, then
/// SIGKILL after 5 s) when this object goes.
class launched_server {
 public:
  explicit launched_server(const std::string& command) {
    std::istringstream words{command};
    std::vector<std::string> args{std::istream_iterator<std::string>{words}, {}};
    if (args.empty()) throw std::runtime_error("--launch: empty command");
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    const int rc = posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("--launch: cannot start " + args[0]);
    }
    // The one line every server prints: "mjpeg-<name> listening on http://HOST:PORT/".
    std::string text;
    const auto until = steady::now() + std::chrono::seconds{30};
    while (text.find('\n') == std::string::npos && steady::now() < until) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const auto n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);  // the server ignores SIGPIPE, and prints nothing more
    const auto at = text.find("http://");
    if (at == std::string::npos) {
      stop();
      throw std::runtime_error("--launch: no URL line from the server (got '" + text + "')");
    }
    url_ = text.substr(at, text.find_first_of(" \r\n", at) - at);
  }
  ~launched_server() { stop(); }
  launched_server(const launched_server&) = delete;
  launched_server& operator=(const launched_server&) = delete;

  /// The URL the server printed, e.g. "http://127.0.0.1:41234/".
  const std::string& url() const { return url_; }
  /// Its process id.
  pid_t pid() const { return pid_; }

 private:
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  pid_t pid_ = -1;
  std::string url_;
};

bool parse_url(config& cfg) {
  std::string_view u = cfg.url;
  if (!u.starts_with("http://")) return false;
  u.remove_prefix(7);
  const auto slash = u.find('/');
  const std::string_view authority = u.substr(0, slash);
  cfg.target = slash == std::string_view::npos ? "/" : std::string{u.substr(slash)};
  std::string_view host = authority;
  cfg.port = "80";
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') cfg.port = authority.substr(close + 2);
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    cfg.port = authority.substr(colon + 1);
  }
  cfg.host = host;
  return !cfg.host.empty() && !cfg.port.empty();
}

int run(const config& cfg) {
  // Loopback only: this tool opens thousands of connections and must never aim them elsewhere.
  asio::io_context resolver_io;
  tcp::resolver resolver{resolver_io};
  error_code ec;
  const auto results = resolver.resolve(cfg.host, cfg.port, ec);
  if (ec || results.empty()) {
    std::fprintf(stderr, "mjpeg-load: cannot resolve %s: %s\n", cfg.host.c_str(), ec.message().c_str());
    return 2;
  }
  const tcp::endpoint endpoint = *results.begin();
  if (!endpoint.address().is_loopback()) {
    std::fprintf(stderr, "mjpeg-load: %s is not a loopback address; refusing\n", cfg.host.c_str());
    return 2;
  }

  // Each connection is a descriptor: take the whole hard limit, and say so if it is not enough.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  const auto needed = static_cast<rlim_t>(cfg.viewers + cfg.slow + cfg.idle + 64);
  if (needed > limit.rlim_cur) {
    std::fprintf(stderr, "mjpeg-load: %llu connections need more descriptors than the limit %llu\n",
                 static_cast<unsigned long long>(needed), static_cast<unsigned long long>(limit.rlim_cur));
    return 2;
  }

  timeline tl;
  tl.start = steady::now() + std::chrono::milliseconds{50};
  const auto secs = [](double s) {
    return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>{s});
  };
  // Idle connections go first, so a slowloris is in place before the real viewers arrive.
  const double viewers_at = cfg.idle > 0 ? 0.2 : 0.0;
  const double ramp = cfg.burst ? 0.0 : cfg.ramp;
  tl.end = tl.start + secs(cfg.duration);
  tl.window_start = tl.start + secs(std::min(viewers_at + ramp + cfg.warmup, cfg.duration / 2));
  const double window_s = std::chrono::duration<double>(tl.end - tl.window_start).count();

  std::vector<std::unique_ptr<worker>> workers;
  for (int t = 0; t < cfg.threads; ++t)
    workers.push_back(std::make_unique<worker>(cfg, tl, endpoint));
  int id = 0;
  const auto add = [&](kind k, steady::time_point at) {
    workers[static_cast<std::size_t>(id % cfg.threads)]->add(id, k, at);
    ++id;
  };
  for (int i = 0; i < cfg.idle; ++i)
    add(kind::idle, tl.start);
  const int streaming = cfg.viewers + cfg.slow;
  for (int i = 0; i < streaming; ++i) {
    // Spread the slow viewers among the fast ones rather than all at the end of the ramp.
    const bool slow = cfg.slow > 0 && (i * cfg.slow) / streaming != ((i + 1) * cfg.slow) / streaming;
    const double offset = streaming > 1 ? ramp * i / (streaming - 1) : 0.0;
    add(slow ? kind::slow : kind::normal, tl.start + secs(viewers_at + offset));
  }

  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([&w] { w->run(); });

  // This thread watches the clock, our own CPU and the server's /proc entries.
  server_watch server;
  const auto observe = [&]() -> std::optional<process_sample> {
    if (cfg.server_pid <= 0) return std::nullopt;
    auto s = sample_process(cfg.server_pid);
    if (!s) {
      server.alive = false;
      return s;
    }
    server.rss_max = std::max(server.rss_max, s->rss_bytes);
    server.threads_max = std::max(server.threads_max, s->threads);
    return s;
  };
  while (steady::now() < tl.window_start) {
    observe();
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  server.at_window_start = observe();
  if (cfg.server_pid > 0) server.threads_at_window_start = thread_runtimes(cfg.server_pid);
  const double own_cpu_start = own_cpu_seconds();
  while (steady::now() < tl.end) {
    std::this_thread::sleep_until(std::min(tl.end, steady::now() + std::chrono::milliseconds{200}));
    observe();
  }
  server.at_end = observe();
  if (cfg.server_pid > 0) server.threads_at_end = thread_runtimes(cfg.server_pid);
  const double own_cpu = own_cpu_seconds() - own_cpu_start;
  for (auto& t : threads)
    t.join();

  const auto normal = build_group(workers, kind::normal, tl, window_s, cfg.stall_ms);
  const auto slow = build_group(workers, kind::slow, tl, window_s, cfg.stall_ms);
  const auto idle = build_group(workers, kind::idle, tl, window_s, cfg.stall_ms);
  const double frames = static_cast<double>(normal.frames + slow.frames);

  json_writer j;
  j.begin_object();
  j.string("tool", "mjpeg-load").string("label", cfg.label).string("url", cfg.url);
  j.begin_object("config")
      .number("viewers", cfg.viewers)
      .number("slow", cfg.slow)
      .number("slow_rate", cfg.slow_rate)
      .number("idle", cfg.idle)
      .boolean("burst", cfg.burst)
      .number("ramp_s", ramp)
      .number("warmup_s", cfg.warmup)
      .number("duration_s", cfg.duration)
      .number("threads", cfg.threads)
      .number("stall_ms", cfg.stall_ms)
      .end_object();
  j.number("window_s", window_s);
  write_group(j, "viewers", normal, window_s);
  if (cfg.slow > 0) write_group(j, "slow", slow, window_s);
  if (cfg.idle > 0) write_idle(j, idle);
  j.number("load_cpu_percent", own_cpu / window_s * 100);
  double cpu_us_per_frame = std::numeric_limits<double>::quiet_NaN();
  double server_cpu_percent = std::numeric_limits<double>::quiet_NaN();
  if (cfg.server_pid > 0) {
    j.begin_object("server")
        .number("pid", cfg.server_pid)
        .boolean("alive_at_end", server.alive && server.at_end);
    if (server.at_window_start && server.at_end) {
      const double cpu = cpu_between(*server.at_window_start, server.threads_at_window_start, *server.at_end,
                                     server.threads_at_end);
      server_cpu_percent = cpu / window_s * 100;
      if (frames > 0) cpu_us_per_frame = cpu * 1e6 / frames;
      j.number("cpu_percent", server_cpu_percent).number("cpu_us_per_viewer_frame", cpu_us_per_frame);
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
        j.number("frames", static_cast<double>(v->frames_window_))
            .number("fps", static_cast<double>(v->frames_window_) / window_s);
        j.number("ttff_ms", v->first_frame_ ? ms_between(v->connect_started_, *v->first_frame_)
                                            : std::numeric_limits<double>::quiet_NaN());
        j.number("skipped", static_cast<double>(v->skipped_))
            .number("stalls", static_cast<double>(v->stalls_));
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

  if (!cfg.json.empty()) {
    std::ofstream out{cfg.json};
    out << j.str() << '\n';
    if (!out) std::fprintf(stderr, "mjpeg-load: cannot write %s\n", cfg.json.c_str());
  }

  // The human summary.
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
    const auto sfps = summarize(slow.fps);
    const auto sage = summarize(slow.ages_ms);
    std::printf("  slow      %d viewers at %.0f B/s: fps mean %.2f, age p50 %.1f ms p99 %.1f ms\n", cfg.slow,
                cfg.slow_rate, sfps.mean, sage.p50, sage.p99);
  }
  if (cfg.idle > 0)
    std::printf("  idle      %d connected, %d closed by the server, %d still open\n", idle.connected,
                idle.disconnected, idle.streaming_at_end);
  std::printf("  load gen  %.1f%% CPU\n", own_cpu / window_s * 100);
  if (cfg.server_pid > 0)
    std::printf("  server    %.1f%% CPU, %.1f µs per viewer-frame, RSS max %.1f MB, threads max %d%s\n",
                server_cpu_percent, cpu_us_per_frame, static_cast<double>(server.rss_max) / 1e6,
                server.threads_max, server.alive ? "" : " (exited)");
  return 0;
}

}  // namespace
}  // namespace mjpeg::bench

int main(int argc, char** argv) {
  mjpeg::bench::config cfg;
  CLI::App app{"mjpeg-load: simulated viewers for an MJPEG-over-HTTP stream (loopback only)"};
  app.add_option("url", cfg.url,
                 "Stream URL, e.g. http://127.0.0.1:8080/stream (with --launch: only its path counts; "
                 "default /stream)");
  app.add_option("-n,--viewers", cfg.viewers, "Viewers reading at full speed")->check(CLI::Range(0, 100000));
  app.add_option("-d,--duration", cfg.duration, "Seconds the whole run lasts")
      ->check(CLI::Range(0.5, 86400.0));
  app.add_option("--ramp", cfg.ramp, "Seconds over which viewers connect")->check(CLI::Range(0.0, 3600.0));
  app.add_flag("--burst", cfg.burst, "Connect every viewer at once (no ramp)");
  app.add_option("--warmup", cfg.warmup, "Seconds after the ramp before metrics count")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--slow", cfg.slow, "Extra viewers that read slowly")->check(CLI::Range(0, 100000));
  app.add_option("--slow-rate", cfg.slow_rate, "Bytes per second a slow viewer reads")
      ->check(CLI::Range(1.0, 1e10));
  app.add_option("--idle", cfg.idle, "Connections that never send a request (slowloris)")
      ->check(CLI::Range(0, 100000));
  app.add_option(
         "--source-address", cfg.source_addresses,
         "Loopback address viewers connect from (repeatable: taken in turn; each gives ~28,000 ports)")
      ->check([](const std::string& v) {
        boost::system::error_code ec;
        const auto a = boost::asio::ip::make_address(v, ec);
        return !ec && a.is_loopback() ? std::string{} : std::string{"must be a loopback address"};
      });
  app.add_option("--threads", cfg.threads, "Load generator threads")->check(CLI::Range(1, 64));
  app.add_option("--stall-ms", cfg.stall_ms, "A gap between frames longer than this is a stall")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--server-pid", cfg.server_pid, "Sample this process's CPU, RSS and threads from /proc");
  app.add_option("--json", cfg.json, "Write the full report as JSON to this file");
  app.add_option("--label", cfg.label, "Free text copied into the JSON report");
  app.add_flag("!--no-per-viewer", cfg.per_viewer, "Leave the per-viewer list out of the JSON");
  app.add_option("--launch", cfg.launch,
                 "Start this server command (words split at spaces; add --port 0), read its URL line, "
                 "sample it as --server-pid, and stop it at the end");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::unique_ptr<mjpeg::bench::launched_server> server;
  if (!cfg.launch.empty()) {
    try {
      server = std::make_unique<mjpeg::bench::launched_server>(cfg.launch);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mjpeg-load: %s\n", e.what());
      return 1;
    }
    // Keep the path the user gave (if any); host and port come from the server.
    std::string path = "stream";
    if (const auto scheme = cfg.url.find("://"); scheme != std::string::npos) {
      const auto slash = cfg.url.find('/', scheme + 3);
      if (slash != std::string::npos) path = cfg.url.substr(slash + 1);
    }
    cfg.url = server->url() + path;
    cfg.server_pid = server->pid();
  }
  if (!mjpeg::bench::parse_url(cfg)) {
    std::fprintf(stderr, "mjpeg-load: URL must look like http://127.0.0.1:PORT/stream\n");
    return 2;
  }
  if (cfg.viewers + cfg.slow + cfg.idle == 0) {
    std::fprintf(stderr, "mjpeg-load: nothing to do (no viewers)\n");
    return 2;
  }
  return mjpeg::bench::run(cfg);
}
