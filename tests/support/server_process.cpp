#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace mjpeg::test {
namespace {

std::string temp_path(const char* what) {
  static int counter = 0;
  return "/tmp/mjpeg-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" + what;
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Spawns with stdout to a pipe (returned in out_fd) or a file, stderr to a file.
pid_t spawn(const std::string& binary, const std::vector<std::string>& args, int stdout_fd,
            const std::string& err) {
  std::vector<std::string> all{binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + binary);
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (std::chrono::steady_clock::now() >= until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
}

}  // namespace

std::vector<std::string> small_frames(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--width", "320", "--height", "240", "--fps", "30"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> variant_keys() {
  std::vector<std::string> keys;
  std::stringstream list{MJPEG_VARIANT_BINARIES_LIST};
  for (std::string item; std::getline(list, item, ',');)
    keys.push_back(item.substr(0, item.find('=')));
  return keys;
}

std::string variant_binary(const std::string& key) {
  std::stringstream list{MJPEG_VARIANT_BINARIES_LIST};
  for (std::string item; std::getline(list, item, ',');)
    if (item.substr(0, item.find('=')) == key) return item.substr(item.find('=') + 1);
  throw std::runtime_error("no binary for " + key);
}

server_process::server_process(const std::string& binary, std::vector<std::string> args, ready_when ready)
    : stderr_path_{temp_path("stderr")} {
  if (ready == ready_when::started) {
    const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_ = spawn(binary, args, null_fd, stderr_path_);
    ::close(null_fd);
    return;
  }
  if (std::find(args.begin(), args.end(), "--port") == args.end()) {
    args.push_back("--port");
    args.push_back("0");
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  pid_ = spawn(binary, args, pipe_fds[1], stderr_path_);
  ::close(pipe_fds[1]);

  // Read stdout until the "listening on http://host:port/" line (or the process dies).
  std::string out;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  const std::regex url{R"(listening on http://[^ ]+:(\d+)/)"};
  std::smatch match;
  while (!std::regex_search(out, match, url)) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[512];
    const auto n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  if (match.empty()) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_, std::chrono::seconds{5});
    exited_ = true;
    throw std::runtime_error("server did not print its URL; stdout: " + out +
                             " stderr: " + slurp(stderr_path_));
  }
  port_ = static_cast<unsigned short>(std::stoi(match[1].str()));
}

server_process::~server_process() {
  if (!exited_) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_, std::chrono::seconds{5});
  }
  ::unlink(stderr_path_.c_str());
}

void server_process::signal(int sig) const {
  ::kill(pid_, sig);
}

int server_process::wait(std::chrono::milliseconds timeout) {
  const int code = wait_for(pid_, timeout);
  if (code != -1) exited_ = true;
  return code;
}

std::string server_process::error_output() const {
  return slurp(stderr_path_);
}

run_result run_command(const std::string& binary, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout) {
  const std::string out_path = temp_path("stdout");
  const std::string err_path = temp_path("stderr");
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = spawn(binary, args, out_fd, err_path);
  ::close(out_fd);
  run_result result;
  result.exit_code = wait_for(pid, timeout);
  if (result.exit_code == -1) {
    ::kill(pid, SIGKILL);
    wait_for(pid, std::chrono::seconds{5});
  }
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return result;
}

scratch_dir::scratch_dir() {
  std::string pattern = "/tmp/mjpeg-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
  path_ = pattern;
}

scratch_dir::~scratch_dir() {
  run_command("/bin/rm", {"-rf", path_}, std::chrono::seconds{30});
}

std::string scratch_dir::write(const std::string& name, const std::string& text) const {
  const std::string file = path_ + "/" + name;
  std::ofstream{file} << text;
  return file;
}

}  // namespace mjpeg::test
