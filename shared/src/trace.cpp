#include "mjpeg/trace.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "mjpeg/log.hpp"

namespace mjpeg {
namespace {

std::atomic<std::uint64_t> next_trace_id{1};

// The calling thread's buffer of the trace it last recorded into.
struct thread_cache {
  std::uint64_t trace = 0;
  void* buffer = nullptr;
};
thread_local thread_cache cache;

// Writes all of `text` with O_APPEND writes of whole lines, so processes sharing the file never
// split each other's lines.
bool append_all(int fd, std::string_view text) {
  while (!text.empty()) {
    std::size_t n = std::min<std::size_t>(text.size(), 1 << 16);
    if (n < text.size()) n = text.rfind('\n', n - 1) + 1;  // lines are far shorter than 64 KiB
    const ssize_t w = ::write(fd, text.data(), n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(w));
  }
  return true;
}

}  // namespace

std::string_view trace_event_name(trace_event e) {
  constexpr std::string_view names[] = {"accept",  "stream", "frame",  "left", "reject",
                                        "connect", "open",   "status", "close"};
  return names[static_cast<std::size_t>(e)];
}

std::uint16_t port_of(std::string_view peer) {
  const auto colon = peer.rfind(':');
  if (colon == std::string_view::npos) return 0;
  unsigned port = 0;
  const char* first = peer.data() + colon + 1;
  const char* last = peer.data() + peer.size();
  const auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc{} || end != last || port > 65535) return 0;
  return static_cast<std::uint16_t>(port);
}

trace_log::trace_log(std::string path, char side)
    : path_{std::move(path)}, side_{side}, id_{next_trace_id.fetch_add(1, std::memory_order_relaxed)} {}

trace_log::~trace_log() {
  flush();
}

trace_log::buffer& trace_log::mine() {
  if (cache.trace != id_) {
    std::lock_guard lock{mutex_};  // once per thread and trace
    buffer& b = buffers_.emplace_back(buffer{::gettid(), {}});
    b.entries.reserve(4096);
    cache = {id_, &b};
  }
  return *static_cast<buffer*>(cache.buffer);
}

void trace_log::record(trace_event e, std::uint16_t port, std::uint64_t value,
                       std::chrono::steady_clock::time_point at) noexcept {
  try {
    buffer& b = mine();
    if (b.entries.size() >= max_per_thread) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    b.entries.push_back({at.time_since_epoch() / std::chrono::nanoseconds{1}, value, port, e});
  } catch (const std::bad_alloc&) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool trace_log::flush() {
  std::lock_guard lock{mutex_};
  struct line {
    std::int64_t t_ns;
    pid_t tid;
    const entry* e;
  };
  std::vector<line> lines;
  for (const buffer& b : buffers_)
    for (const entry& e : b.entries)
      lines.push_back({e.t_ns, b.tid, &e});
  if (lines.empty() && dropped() == 0) return true;
  std::stable_sort(lines.begin(), lines.end(), [](const line& a, const line& b) { return a.t_ns < b.t_ns; });
  std::string text;
  text.reserve(lines.size() * 48 + 128);
  char row[128];
  const int pid = ::getpid();
  std::snprintf(
      row, sizeof row,
      "# mjpeg trace: seconds side pid tid viewer event value (pid %d: %zu records, %llu dropped)\n", pid,
      lines.size(), static_cast<unsigned long long>(dropped()));
  text += row;
  for (const line& l : lines) {
    const int n = std::snprintf(
        row, sizeof row, "%lld.%06lld %c %d %d %u %.*s %llu\n",
        static_cast<long long>(l.t_ns / 1'000'000'000), static_cast<long long>(l.t_ns % 1'000'000'000 / 1000),
        side_, pid, static_cast<int>(l.tid), static_cast<unsigned>(l.e->port),
        static_cast<int>(trace_event_name(l.e->event).size()), trace_event_name(l.e->event).data(),
        static_cast<unsigned long long>(l.e->value));
    text.append(row, static_cast<std::size_t>(n));
  }
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const bool ok = fd >= 0 && append_all(fd, text);
  if (fd >= 0) ::close(fd);
  if (!ok) log::write(log::level::error, "cannot write trace %s: %s", path_.c_str(), std::strerror(errno));
  for (buffer& b : buffers_)
    b.entries.clear();
  dropped_.store(0, std::memory_order_relaxed);
  return ok;
}

}  // namespace mjpeg
