/// Around the servers, never in them: start a server binary and read its URL line, and watch a
/// process from /proc. The one launcher and the one sampler of the tests and the benchmark.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mjpeg {

/// Starts `argv[0]` (searched in PATH) with `argv`: stdin from /dev/null, stdout to `stdout_fd`,
/// stderr to the file `stderr_path` (inherited when empty), in a process group of its own when
/// `own_group`. Throws std::runtime_error on failure.
pid_t spawn_process(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path,
                    bool own_group = false);

/// Waits up to `timeout` for `pid` to exit: its exit code, 128 + signal if killed, -1 on timeout.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout);

/// A server binary started as a child for a test or a benchmark run.
///
/// `--port 0` is added unless the arguments name a port, and the server's one line
/// "… listening on http://HOST:PORT/" is read from its stdout. Killed (SIGKILL) when destroyed
/// if still running; stop() is the polite way.
class launched_server {
 public:
  /// Starts `program` with `args`; stderr goes to `stderr_path` (inherited when empty). Throws
  /// std::runtime_error, with what the server said, if it prints no URL within `timeout`. With
  /// `await_url` false it returns at once without reading the URL (port() is then 0).
  launched_server(const std::string& program, std::vector<std::string> args,
                  const std::string& stderr_path = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds{30}, bool await_url = true);
  ~launched_server();
  launched_server(const launched_server&) = delete;
  launched_server& operator=(const launched_server&) = delete;

  /// The URL the server printed, e.g. "http://127.0.0.1:41234/".
  const std::string& url() const { return url_; }
  /// Its port.
  unsigned short port() const { return port_; }
  /// Its process id.
  pid_t pid() const { return pid_; }
  /// Sends `signal`.
  void signal(int signal) const;
  /// Waits up to `timeout` for exit: the exit code, 128 + signal, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  /// SIGTERM, then SIGKILL if it has not exited within `grace`; the exit code as wait() gives it.
  int stop(std::chrono::milliseconds grace);

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string url_;
  unsigned short port_ = 0;
};

/// One reading of a process from /proc.
struct process_sample {
  double cpu_seconds = 0;       ///< User + system CPU time so far (clock-tick resolution).
  std::uint64_t rss_bytes = 0;  ///< Resident set size.
  int threads = 0;              ///< Number of threads.
};

/// Reads /proc/<pid>/stat; nullopt when the process is gone (or a zombie).
std::optional<process_sample> sample_process(pid_t pid);

/// Open file descriptors of a process (/proc/<pid>/fd), or -1 when it is gone.
int open_fds(pid_t pid);

/// Nanosecond CPU run time of each live thread of a process (/proc/<pid>/task/*/sched,
/// se.sum_exec_runtime), in seconds keyed by thread id; empty when unavailable. Finer than the
/// clock ticks of sample_process, but threads that exited are missing.
std::map<int, double> thread_runtimes(pid_t pid);

/// CPU seconds a process used between two readings: the per-thread run times where they are
/// complete, the coarse tick counts where threads exited in between (the ticks exceed them).
double cpu_between(const process_sample& before, const std::map<int, double>& threads_before,
                   const process_sample& after, const std::map<int, double>& threads_after);

/// CPU time (user + system) this process has used so far.
double own_cpu_seconds() noexcept;

}  // namespace mjpeg
