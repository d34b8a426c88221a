#include "mjpeg/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "mjpeg/url.hpp"

extern char** environ;

namespace mjpeg {
namespace {

using steady = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, {}};
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// The port of "http://HOST:PORT/…" (HOST may be "[v6]"), or 0.
unsigned short port_of(const std::string& url) {
  const auto parts = http::parse_url(url);
  if (!parts) return 0;
  try {
    return static_cast<unsigned short>(std::stoi(parts->port));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

pid_t spawn_process(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path,
                    bool own_group) {
  if (argv.empty()) throw std::runtime_error("no program to start");
  std::vector<std::string> words = argv;
  std::vector<char*> pointers;
  for (auto& w : words)
    pointers.push_back(w.data());
  pointers.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  if (!stderr_path.empty())
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  if (own_group) {
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, pointers[0], &actions, &attributes, pointers.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = steady::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return decode_status(status);
    if (steady::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
}

launched_server::launched_server(const std::string& program, std::vector<std::string> args,
                                 const std::string& stderr_path, std::chrono::milliseconds timeout,
                                 bool await_url) {
  if (!await_url) {  // any program: args as given, stdout discarded, nothing awaited
    args.insert(args.begin(), program);
    const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    try {
      pid_ = spawn_process(args, null_fd, stderr_path);
    } catch (...) {
      ::close(null_fd);
      throw;
    }
    ::close(null_fd);
    return;
  }
  if (std::find(args.begin(), args.end(), "--port") == args.end()) args.insert(args.end(), {"--port", "0"});
  args.insert(args.begin(), program);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  try {
    pid_ = spawn_process(args, out[1], stderr_path);
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);

  // The one line every server prints: "mjpeg-<name> listening on http://HOST:PORT/".
  std::string text;
  std::string::size_type at = std::string::npos;
  const auto until = steady::now() + timeout;
  while ((at = text.find("listening on http://")) == std::string::npos ||
         text.find('\n', at) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
    pollfd p{out[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[512];
    const auto n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);  // the servers ignore SIGPIPE and print nothing more
  if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
    at += std::string_view{"listening on "}.size();
    url_ = text.substr(at, text.find_first_of(" \r\n", at) - at);
    port_ = port_of(url_);
  }
  if (port_ == 0) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, std::chrono::seconds{5});
    exited_ = true;
    std::string why = program + " printed no URL line; stdout: '" + text + "'";
    if (!stderr_path.empty()) why += " stderr: '" + slurp(stderr_path) + "'";
    throw std::runtime_error(why);
  }
}

launched_server::~launched_server() {
  if (exited_) return;
  ::kill(pid_, SIGKILL);
  wait_exit(pid_, std::chrono::seconds{5});
}

void launched_server::signal(int sig) const {
  if (!exited_) ::kill(pid_, sig);
}

int launched_server::wait(std::chrono::milliseconds timeout) {
  const int code = wait_exit(pid_, timeout);
  if (code != -1) exited_ = true;
  return code;
}

int launched_server::stop(std::chrono::milliseconds grace) {
  if (exited_) return -1;
  signal(SIGTERM);
  if (const int code = wait(grace); code != -1) return code;
  signal(SIGKILL);
  return wait(std::chrono::seconds{5});
}

std::optional<process_sample> sample_process(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields{stat.substr(close + 2)};
  std::string field;
  process_sample s;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After the name: state(3) ... utime(14) stime(15) ... num_threads(20), rss pages (24).
  for (int index = 3; fields >> field; ++index) {
    if (index == 3 && field == "Z") return std::nullopt;  // a zombie has exited
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
    if (index == 20) s.threads = std::stoi(field);
    if (index == 24) {
      s.rss_bytes = std::stoull(field) * static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE));
      break;
    }
  }
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  if (s.threads == 0) return std::nullopt;
  return s;
}

int open_fds(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::map<int, double> thread_runtimes(pid_t pid) {
  std::map<int, double> runtimes;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (std::filesystem::directory_iterator it{tasks, ec}, end; !ec && it != end; it.increment(ec)) {
    std::ifstream sched{it->path() / "sched"};
    // "se.sum_exec_runtime   :   1234.567890" in milliseconds, a few lines down.
    for (std::string line; std::getline(sched, line);) {
      if (!line.starts_with("se.sum_exec_runtime")) continue;
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        try {
          runtimes[std::stoi(it->path().filename().string())] = std::stod(line.substr(colon + 1)) / 1000.0;
        } catch (const std::exception&) {
        }
      }
      break;
    }
  }
  return runtimes;
}

double cpu_between(const process_sample& before, const std::map<int, double>& threads_before,
                   const process_sample& after, const std::map<int, double>& threads_after) {
  const double ticks = after.cpu_seconds - before.cpu_seconds;
  if (threads_after.empty()) return ticks;
  // New threads count from zero; threads gone since `before` are lost here, so the tick counts
  // win when they exceed this by more than their own resolution (two ticks).
  double precise = 0;
  for (const auto& [tid, runtime] : threads_after) {
    const auto old = threads_before.find(tid);
    precise += runtime - (old == threads_before.end() ? 0.0 : old->second);
  }
  const double resolution = 2.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return ticks - precise > resolution ? ticks : precise;
}

double own_cpu_seconds() noexcept {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace mjpeg
