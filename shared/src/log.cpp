#include "mjpeg/log.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace mjpeg::log {
namespace {

// systemd sets JOURNAL_STREAM to "device:inode" of the stream it connected to stderr; it only
// counts if stderr is still that stream (not redirected by a child's caller).
bool stderr_is_journal() {
  const char* value = std::getenv("JOURNAL_STREAM");
  if (value == nullptr) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (std::sscanf(value, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == device &&
         static_cast<unsigned long long>(st.st_ino) == inode;
}

// sd-daemon(3) priorities: err, warning, info, debug.
constexpr int journal_priority[] = {3, 4, 6, 7};
constexpr const char* level_names[] = {"error", "warning", "info", "debug"};

struct state {
  std::mutex mutex;  // guards everything below, and keeps lines whole
  std::string program = "mjpeg";
  double tokens = burst_lines;
  std::chrono::steady_clock::time_point refilled = std::chrono::steady_clock::now();
  unsigned long long dropped = 0;
};

state& the_state() {
  static state s;
  return s;
}

std::atomic<int> lowest_level{static_cast<int>(level::info)};
const bool journal = stderr_is_journal();

// "2026-11-24T00:31:02.123Z "
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[40];
  const auto n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%03dZ ", static_cast<int>(ms));
  return text;
}

std::string prefix(level l, const std::string& program) {
  const int index = static_cast<int>(l);
  if (journal) return "<" + std::to_string(journal_priority[index]) + ">";
  std::string out = timestamp() + program + ": ";
  if (l != level::info) out += std::string{level_names[index]} + ": ";
  return out;
}

}  // namespace

std::optional<level> parse_level(std::string_view name) {
  for (int i = 0; i < 4; ++i)
    if (name == level_names[i]) return static_cast<level>(i);
  return std::nullopt;
}

void set_program(std::string_view program) {
  state& s = the_state();
  std::lock_guard lock{s.mutex};
  s.program = std::string{program};
}

void set_level(level lowest) {
  lowest_level.store(static_cast<int>(lowest), std::memory_order_relaxed);
}

bool enabled(level l) {
  return static_cast<int>(l) <= lowest_level.load(std::memory_order_relaxed);
}

bool to_journal() {
  return journal;
}

void write(level l, const char* format, ...) {
  if (!enabled(l)) return;
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof message, format, args);
  va_end(args);

  state& s = the_state();
  std::lock_guard lock{s.mutex};
  // Token bucket: a burst of burst_lines, then lines_per_second.
  const auto now = std::chrono::steady_clock::now();
  s.tokens = std::min(burst_lines,
                      s.tokens + std::chrono::duration<double>(now - s.refilled).count() * lines_per_second);
  s.refilled = now;
  if (s.tokens < 1) {
    ++s.dropped;
    return;
  }
  s.tokens -= 1;
  std::string line;
  if (s.dropped != 0) {
    line = prefix(level::warning, s.program) + std::to_string(s.dropped) +
           " log lines dropped by the rate limit\n";
    s.dropped = 0;
  }
  line += prefix(l, s.program);
  line += message;
  line += '\n';
  // One write per line, so lines from different threads never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void flush_dropped() {
  state& s = the_state();
  std::lock_guard lock{s.mutex};
  if (s.dropped == 0) return;
  const std::string line = prefix(level::warning, s.program) + std::to_string(s.dropped) +
                           " log lines dropped by the rate limit\n";
  s.dropped = 0;
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace mjpeg::log
