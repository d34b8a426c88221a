#include "server_process.hpp"

#include "eventually.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

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

// --width W --height H --fps 30, then `extra`.
std::vector<std::string> frames_of(const char* width, const char* height, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--width", width, "--height", height, "--fps", "30"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

std::vector<std::string> small_frames(std::vector<std::string> extra) {
  return frames_of("320", "240", std::move(extra));
}

std::vector<std::string> large_frames(std::vector<std::string> extra) {
  return frames_of("640", "480", std::move(extra));
}

int fds_settled(pid_t pid, int target, std::chrono::milliseconds timeout) {
  int now = open_fds(pid);
  eventually([&] { return (now = open_fds(pid)) <= target; }, timeout);
  return now;
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
    : stderr_path_{temp_path("stderr")},
      server_{binary, std::move(args), stderr_path_, std::chrono::seconds{20},
              ready == ready_when::url_line} {}

server_process::~server_process() {
  ::unlink(stderr_path_.c_str());
}

std::string server_process::error_output() const {
  return slurp(stderr_path_);
}

background_process::background_process(const std::string& binary, const std::vector<std::string>& args)
    : output_path_{temp_path("output")} {
  const int out_fd = ::open(output_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  try {
    pid_ = mjpeg::spawn_process(argv, out_fd, output_path_ + ".err", true);
  } catch (...) {
    ::close(out_fd);
    throw;
  }
  ::close(out_fd);
}

background_process::~background_process() {
  ::kill(-pid_, SIGTERM);
  if (mjpeg::wait_exit(pid_, std::chrono::seconds{3}) == -1) {
    ::kill(-pid_, SIGKILL);
    mjpeg::wait_exit(pid_, std::chrono::seconds{5});
  }
  ::kill(-pid_, SIGKILL);  // whatever else is left in the group (a browser's helpers, Xvfb)
  ::unlink(output_path_.c_str());
  ::unlink((output_path_ + ".err").c_str());
}

std::string background_process::output() const {
  return slurp(output_path_) + slurp(output_path_ + ".err");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

run_result run_command(const std::string& binary, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout) {
  const std::string out_path = temp_path("stdout");
  const std::string err_path = temp_path("stderr");
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = mjpeg::spawn_process(argv, out_fd, err_path);
  ::close(out_fd);
  run_result result;
  result.exit_code = mjpeg::wait_exit(pid, timeout);
  if (result.exit_code == -1) {
    ::kill(pid, SIGKILL);
    mjpeg::wait_exit(pid, std::chrono::seconds{5});
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

std::string sanitizer_runtime() {
  std::ifstream maps{"/proc/self/maps"};
  for (std::string line; std::getline(maps, line);) {
    const auto at = line.find('/');
    if (at == std::string::npos) continue;
    const std::string path = line.substr(at);
    const auto name = std::filesystem::path{path}.filename().string();
    if (name.starts_with("libasan.so") || name.starts_with("libtsan.so")) return path;
  }
  return {};
}

long serving_process(int client_fd, const std::vector<long>& candidates) {
  sockaddr_in ours{};
  sockaddr_in theirs{};
  socklen_t length = sizeof ours;
  if (::getsockname(client_fd, reinterpret_cast<sockaddr*>(&ours), &length) != 0) return 0;
  length = sizeof theirs;
  if (::getpeername(client_fd, reinterpret_cast<sockaddr*>(&theirs), &length) != 0) return 0;
  // The server's end: local port theirs, remote port ours ("0100007F:1F90 0100007F:D431 ..." in hex).
  char wanted[32];
  std::snprintf(wanted, sizeof wanted, ":%04X %08X:%04X", ntohs(theirs.sin_port), ours.sin_addr.s_addr,
                ntohs(ours.sin_port));
  std::ifstream table{"/proc/net/tcp"};
  std::string inode;
  for (std::string line; inode.empty() && std::getline(table, line);) {
    if (line.find(wanted) == std::string::npos) continue;
    std::istringstream fields{line};
    std::string field;
    for (int i = 0; i < 10 && fields >> field; ++i)  // sl local rem st queues tr retrnsmt uid timeout inode
      if (i == 9) inode = field;
  }
  if (inode.empty()) return 0;
  const std::string target = "socket:[" + inode + "]";
  for (const long pid : candidates) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it{"/proc/" + std::to_string(pid) + "/fd", ec}, end;
         !ec && it != end; it.increment(ec))
      if (std::filesystem::read_symlink(it->path(), ec) == target) return pid;
  }
  return 0;
}

}  // namespace mjpeg::test
