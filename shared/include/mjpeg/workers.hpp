/// Worker processes behind one port (--workers N): the parent captures and publishes on the bus,
/// N re-executed copies of this binary subscribe and serve, and the parent restarts any that dies
/// or hangs. The process's role (single, parent or worker) is a type: workers::role.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "mjpeg/frame_source.hpp"
#include "mjpeg/options.hpp"

#include "mjpeg/server.hpp"
#include "mjpeg/stats.hpp"

namespace mjpeg::workers {

/// The bus endpoint workers subscribe to, inside the parent's private directory.
std::string bus_endpoint(const std::string& dir);

/// The most cameras a server with worker processes serves (each worker's slot counts the viewers
/// of each camera, for the parent's --idle-stop).
inline constexpr std::size_t max_cameras = 64;

/// A file in the parent's private directory, mapped shared by the parent and every worker: the
/// port they all bind and one slot of counters per worker. Each worker writes only its own slot
/// (relaxed atomics, lock-free), so any worker can sum them to answer /stats for the server.
class region {
 public:
  /// Creates (parent: `create`, with `count` slots) or maps (worker) `dir`/stats.
  region(const std::string& dir, int count, bool create);
  /// Unmaps it.
  ~region();
  region(const region&) = delete;
  region& operator=(const region&) = delete;

  /// Number of worker slots.
  int count() const noexcept;
  /// The port every worker binds.
  unsigned short port() const noexcept;
  /// Sets the port (parent, before starting workers).
  void set_port(unsigned short port) noexcept;
  /// Writes worker `index`'s pid (parent, at each start; 0 once it is gone) and starts its
  /// heartbeat afresh, so a worker still starting up is not taken for a hung one.
  void set_pid(int index, std::int64_t pid) noexcept;
  /// How long ago worker `index` last wrote its slot (its heartbeat).
  std::chrono::milliseconds silent_for(int index) const noexcept;
  /// Counts a restart of slot `index` (parent).
  void count_restart(int index) noexcept;
  /// Writes worker `index`'s counters, the viewers of each of its cameras (in order; those not
  /// given: none) and its heartbeat (the worker itself).
  void store(int index, const stats_counters& c,
             std::span<const std::uint64_t> viewers_by_camera = {}) noexcept;
  /// Every slot as /stats lists it; a slot silent for more than stale_after is marked stale. With
  /// `camera`, each row's viewers_now is that camera's (what the parent's --idle-stop of that
  /// camera watches); the other counters are the first camera's.
  std::vector<worker_row> rows(std::size_t camera = 0) const;

 private:
  struct layout;
  layout* map_ = nullptr;
  std::size_t size_ = 0;
};

/// A worker whose slot has not been written for this long is marked stale in /stats.
inline constexpr std::chrono::milliseconds stale_after{1000};
/// A worker whose slot has not been written for this long is hung: killed and replaced.
inline constexpr std::chrono::milliseconds hung_after{3000};
/// A slot with no serving worker for this long makes the parent give up (exit 1, so systemd acts).
inline constexpr std::chrono::seconds give_up_after{10};

/// Worker side: copies this process's counters into its slot every 100 ms until destroyed (the
/// heartbeat the supervisor watches).
class reporter {
 public:
  /// Starts reporting into slot `index` of `shared`: the counters of `cameras`' first (the
  /// server's), and the viewers of each.
  reporter(region& shared, int index, std::vector<server_stats*> cameras);
  /// Stops the thread.
  ~reporter();
  reporter(const reporter&) = delete;
  reporter& operator=(const reporter&) = delete;

 private:
  region& shared_;
  int index_;
  std::vector<server_stats*> cameras_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Parent side: starts `count` workers by re-executing this binary with the same arguments plus
/// the hidden worker flags, waits until each is listening, then supervises them in one restart
/// loop: a worker that exits is restarted (at once after a long healthy run, else with capture's
/// backoff, 250 ms doubling to 5 s), a worker whose heartbeat stops for hung_after is killed and
/// replaced, one log line per change of a slot's state, and a slot without a serving worker for
/// give_up_after ends the parent with an error. On shutdown every worker gets SIGTERM, stragglers
/// SIGKILL after 900 ms.
class supervisor {
 public:
  /// Remembers the command line and the private directory.
  supervisor(int argc, const char* const* argv, std::string dir, region& shared);
  /// Starts every worker and waits for its "listening" line (up to 10 s each). Throws if one fails.
  void start();
  /// Restarts dead and hung workers until `shutdown` triggers (true) or a slot stays empty for
  /// give_up_after (false), then stops them all.
  bool run(const shutdown_signal& shutdown);

 private:
  struct child {
    pid_t pid = -1;
    int out = -1;          // the worker's stdout, read for its "listening" line, then drained
    std::string line;      // what it printed so far, until its URL line
    bool serving = false;  // printed its URL line
    bool failing = false;  // the slot is down: its last worker ended before serving long
    bool hung = false;     // killed for a silent heartbeat
    std::chrono::steady_clock::time_point serving_since{};
    std::chrono::steady_clock::time_point down_since{};  // while failing
    std::chrono::steady_clock::time_point restart_at{};  // while pid <= 0
    std::chrono::milliseconds backoff{0};
    int restarts_while_failing = 0;
  };
  child spawn(int index);
  void read_output(child& c, int index);
  void reap(child& c, int index, int status);
  void stop_all();

  std::vector<std::string> args_;
  std::string dir_;
  region& shared_;
  std::vector<child> children_;
};

/// The part this process plays, decided once from its options: a single server, the parent of
/// --workers N (captures, publishes to its workers, supervises; serves nothing) or one of its
/// workers (reads the parent's bus, serves on the shared port, reports into its stats slot).
class role {
 public:
  /// Reads the role from `opts`. A parent makes its private directory (removing any that a parent
  /// killed by SIGKILL left behind) and stats region; a worker maps its parent's.
  explicit role(const options& opts);
  /// Removes the parent's private directory.
  ~role();
  role(const role&) = delete;
  role& operator=(const role&) = delete;

  /// True in the parent of --workers: it supervises instead of serving.
  bool supervises() const noexcept { return parent_; }
  /// Names the process for ps ("mjpeg-worker-2"); a no-op unless this is a worker.
  void set_process_title() const;
  /// --duration as this process keeps it: a worker stops when its parent says so.
  double duration() const noexcept;
  /// The bus endpoints to publish every frame on: --publish, and the parent's private one.
  std::vector<std::string> publish_endpoints() const;
  /// The source to read for `camera`: its own, or for a worker its topic on the parent's bus.
  source_config source(const camera_spec& camera) const;
  /// The port to bind: --port, or for a worker the one its parent reserved.
  unsigned short port() const noexcept;
  /// True when several processes bind the port together (SO_REUSEPORT).
  bool shares_port() const noexcept { return parent_ || worker_; }
  /// Shares each camera's stats (the first is the server's) with the other processes: the
  /// parent's --idle-stop of each camera sees every worker's viewers of it, and every worker's
  /// /stats every worker's row. A worker starts reporting its counters (its heartbeat) into its
  /// slot: the returned reporter does so until destroyed (null unless this is a worker). Throws
  /// with more than max_cameras cameras and workers.
  std::unique_ptr<reporter> share(const std::vector<server_stats*>& cameras);
  /// The parent's life once `acceptor` is bound: reserve its port, start the workers, print the
  /// URL line as `name`, supervise until `shutdown`; `argc`/`argv` are re-executed for each
  /// worker. Returns the exit code (1 when a slot stayed empty).
  int supervise(boost::asio::ip::tcp::acceptor& acceptor, const shutdown_signal& shutdown,
                std::string_view name, int argc, const char* const* argv);

 private:
  class private_dir;
  const options& opts_;
  bool worker_;
  bool parent_;
  std::unique_ptr<private_dir> dir_;
  std::optional<region> shared_;
};

}  // namespace mjpeg::workers
