#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "mjpeg/process.hpp"

namespace mjpeg::test {

using namespace std::chrono_literals;

/// True in a sanitizer build, where servers run several times slower: waits widen, assertions do not.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

/// How long a server may take from SIGTERM to exit: one second, as promised. A sanitizer's
/// exit-time work (LeakSanitizer scanning the heap) is not the server's shutdown, so under the
/// sanitizers the bound is relaxed and the plain build measures the promise.
inline constexpr std::chrono::milliseconds stop_bound = sanitized ? 5s : 1s;

/// Server arguments for light tests (small frames on a 2-core machine): 320x240 at 30 fps,
/// followed by `extra`.
std::vector<std::string> small_frames(std::vector<std::string> extra = {});

/// Server arguments for tests that must fill socket buffers quickly (stalled readers, resets
/// mid-frame): 640x480 at 30 fps, followed by `extra`.
std::vector<std::string> large_frames(std::vector<std::string> extra = {});

/// The server's open descriptors once they have come back to at most `target`, or after
/// `timeout` whatever they are.
int fds_settled(pid_t pid, int target, std::chrono::milliseconds timeout = 10s);

/// Path of a variant's binary by key ("mjpeg_single_thread"), from the build's list.
std::string variant_binary(const std::string& key);
/// Keys of every variant binary the build produced.
std::vector<std::string> variant_keys();

/// What a started process is waited for before the constructor returns.
enum class ready_when {
  url_line,  ///< Our servers: "--port 0" is added unless given, then the URL line is awaited.
  started,   ///< Any other program (nginx, prometheus): args as given, nothing awaited.
};

/// A server binary started for one test, with `--port 0` unless `args` name a port; killed in
/// the destructor if still alive. The test face of mjpeg::launched_server, with stderr kept.
class server_process {
 public:
  /// Starts `binary` with `args` (plus "--port 0") and waits for its URL line; or, with
  /// ready_when::started, just starts it.
  server_process(const std::string& binary, std::vector<std::string> args,
                 ready_when ready = ready_when::url_line);
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  /// The port the server printed.
  unsigned short port() const { return server_.port(); }
  /// The process id.
  pid_t pid() const { return server_.pid(); }
  /// Sends `signal`.
  void signal(int signal) const { server_.signal(signal); }
  /// Waits up to `timeout` for exit; returns the exit code, or -1 on timeout, or 128+signal.
  int wait(std::chrono::milliseconds timeout) { return server_.wait(timeout); }
  /// What the server wrote to stderr so far (for failure messages).
  std::string error_output() const;

 private:
  std::string stderr_path_;
  mjpeg::launched_server server_;
};

/// A helper program (a browser, a WebDriver) run in the background in its own process group for
/// one test; the whole group is killed in the destructor.
class background_process {
 public:
  /// Starts `binary` with `args`; stdout and stderr go to a file (see output()).
  background_process(const std::string& binary, const std::vector<std::string>& args);
  ~background_process();
  background_process(const background_process&) = delete;
  background_process& operator=(const background_process&) = delete;
  /// What it wrote so far (stdout and stderr).
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::string output_path_;
};

/// The sanitizer runtime this test binary runs with ("" in a plain build): it must come first in
/// LD_PRELOAD, before the fake camera, and the servers (built alike) need the same one.
std::string sanitizer_runtime();

/// Runs `binary args…` to completion (up to `timeout`); returns exit code and stderr.
struct run_result {
  int exit_code = -1;  ///< Exit code, or -1 on timeout.
  std::string out;     ///< Standard output.
  std::string err;     ///< Standard error.
};
/// The non-empty lines of `text` (a program's output), in order.
std::vector<std::string> lines_of(const std::string& text);

/// Runs a command to completion with a time cap.
run_result run_command(const std::string& binary, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout);

/// Which of `candidates` (processes sharing a port, such as --workers) holds the server end of the
/// loopback TCP connection `client_fd`: read from /proc/net/tcp and each candidate's /proc/PID/fd.
/// 0 when none does.
long serving_process(int client_fd, const std::vector<long>& candidates);

/// A fresh folder under /tmp for one test, removed with everything in it by the destructor.
class scratch_dir {
 public:
  /// Creates /tmp/mjpeg-test-XXXXXX.
  scratch_dir();
  ~scratch_dir();
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  /// Writes `text` to the file `name` in the folder; returns its path.
  std::string write(const std::string& name, const std::string& text) const;
  /// The folder.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace mjpeg::test
