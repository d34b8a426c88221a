/// Worker processes behind one port (--workers N): the parent captures and publishes on the bus,
/// N re-executed copies of this binary subscribe and serve, and the parent restarts any that dies.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "mjpeg/server.hpp"
#include "mjpeg/stats.hpp"

namespace mjpeg::workers {

/// The bus endpoint workers subscribe to, inside the parent's private directory.
std::string bus_endpoint(const std::string& dir);

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
  /// Writes worker `index`'s pid (parent, at each start; 0 once it is gone).
  void set_pid(int index, std::int64_t pid) noexcept;
  /// Counts a restart of slot `index` (parent).
  void count_restart(int index) noexcept;
  /// Writes worker `index`'s counters (the worker itself).
  void store(int index, const stats_counters& c) noexcept;
  /// Every slot as /stats lists it.
  std::vector<worker_row> rows() const;

 private:
  struct layout;
  layout* map_ = nullptr;
  std::size_t size_ = 0;
};

/// Worker side: copies this process's counters into its slot every 100 ms until destroyed.
class reporter {
 public:
  /// Starts reporting `stats` into slot `index` of `shared`.
  reporter(region& shared, int index, server_stats& stats);
  /// Stops the thread.
  ~reporter();
  reporter(const reporter&) = delete;
  reporter& operator=(const reporter&) = delete;

 private:
  region& shared_;
  int index_;
  server_stats& stats_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Parent side: starts `count` workers by re-executing this binary with the same arguments plus
/// the hidden worker flags, waits until each is listening, then supervises: a worker that exits
/// is restarted at once; on shutdown every worker gets SIGTERM, stragglers SIGKILL after 900 ms.
/// Returns once all are gone. Throws if the first start fails.
class supervisor {
 public:
  /// Remembers the command line and the private directory.
  supervisor(int argc, const char* const* argv, std::string dir, region& shared);
  /// Starts every worker and waits for its "listening" line (up to 10 s each).
  void start();
  /// Restarts dead workers until `shutdown` triggers, then stops them all.
  void run(const shutdown_signal& shutdown);

 private:
  struct child {
    pid_t pid = -1;
    int out = -1;  // the worker's stdout, read for its "listening" line, then drained
  };
  child spawn(int index);
  void stop_all();

  std::vector<std::string> args_;
  std::string dir_;
  region& shared_;
  std::vector<child> children_;
};

}  // namespace mjpeg::workers
