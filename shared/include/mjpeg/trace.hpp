/// --trace FILE: what each thread did for which viewer, and when, for the tutorial's timelines.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mjpeg {

/// One kind of record in a trace. Server side: accept, stream, frame, left, reject; the load
/// generator's side (bench/load --trace) adds connect, open, status and close.
enum class trace_event : std::uint8_t {
  accept,   ///< The server took the connection from the listen queue.
  stream,   ///< Its stream started (value: the server's viewer id).
  frame,    ///< A frame was sent (value: its sequence number; gaps are skipped frames).
  left,     ///< The stream ended (value: the end_reason).
  reject,   ///< Turned away with 503 (over capacity).
  connect,  ///< Client: the connect went out.
  open,     ///< Client: the connection is established (the kernel's handshake, not the server's accept).
  status,   ///< Client: the response head arrived (value: its HTTP status).
  close,    ///< Client: the connection ended.
};

/// The event's name in the file ("frame").
std::string_view trace_event_name(trace_event e);

/// The port in "address:port" or "[v6]:port"; 0 if there is none.
std::uint16_t port_of(std::string_view peer);

/// Records per-viewer events in memory and appends them to a file when destroyed.
///
/// A viewer is named by the client's port (the server's peer port), so the load generator's
/// records and the server's join. Each thread appends to a buffer of its own, found through a
/// thread_local, so recording takes no lock and threads never share a cache line; buffers are
/// written out at the end, after the serving threads are gone. Off (no file), nothing is ever
/// recorded: callers hold a null pointer and test it, one branch.
///
/// File format, one record a line, '#' lines are comments:
///   seconds(CLOCK_MONOTONIC, µs) side(S|C) pid tid viewer(port) event value
/// Worker processes append to the same file (O_APPEND, whole lines per write).
class trace_log {
 public:
  /// A trace written to `path` with `side` 'S' (server) or 'C' (client).
  explicit trace_log(std::string path, char side = 'S');
  /// Writes every record (see flush).
  ~trace_log();
  trace_log(const trace_log&) = delete;
  trace_log& operator=(const trace_log&) = delete;

  /// Records `e` for viewer `port` at `at` by the calling thread. Never blocks on another thread.
  void record(trace_event e, std::uint16_t port, std::uint64_t value = 0,
              std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now()) noexcept;
  /// Appends every record so far to the file (sorted by time) and forgets them. Call only when no
  /// thread records any more. Returns false (and logs once) if the file cannot be written.
  bool flush();
  /// Records dropped because a thread's buffer was full.
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  /// At most this many records per thread (about 24 MB); beyond it records are counted, not kept.
  static constexpr std::size_t max_per_thread = 1'000'000;

 private:
  struct entry {
    std::int64_t t_ns;
    std::uint64_t value;
    std::uint16_t port;
    trace_event event;
  };
  struct buffer {
    pid_t tid;
    std::vector<entry> entries;
  };
  buffer& mine();

  std::string path_;
  char side_;
  std::uint64_t id_;  // tells this trace's buffers from an earlier one's in the thread_local cache
  std::atomic<std::uint64_t> dropped_{0};
  std::mutex mutex_;           // guards buffers_ (the list, not what a buffer holds)
  std::list<buffer> buffers_;  // one per recording thread; a list so pointers stay valid
};

}  // namespace mjpeg
