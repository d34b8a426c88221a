#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

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
/// the destructor if still alive.
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
  unsigned short port() const { return port_; }
  /// The process id.
  pid_t pid() const { return pid_; }
  /// Sends `signal`.
  void signal(int signal) const;
  /// Waits up to `timeout` for exit; returns the exit code, or -1 on timeout, or 128+signal.
  int wait(std::chrono::milliseconds timeout);
  /// What the server wrote to stderr so far (for failure messages).
  std::string error_output() const;

 private:
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::string stderr_path_;
  bool exited_ = false;
};

/// Runs `binary args…` to completion (up to `timeout`); returns exit code and stderr.
struct run_result {
  int exit_code = -1;  ///< Exit code, or -1 on timeout.
  std::string out;     ///< Standard output.
  std::string err;     ///< Standard error.
};
/// Runs a command to completion with a time cap.
run_result run_command(const std::string& binary, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout);

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
