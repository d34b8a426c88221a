#include "mjpeg/workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "mjpeg/log.hpp"

namespace mjpeg::workers {
namespace {

using std::chrono::steady_clock;
constexpr auto relaxed = std::memory_order_relaxed;
constexpr int max_workers = 64;

// Counters shared between processes must never fall back to a lock.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

}  // namespace

struct region::layout {
  std::atomic<std::uint32_t> port;
  std::uint32_t count;
  struct slot {
    std::atomic<std::int64_t> pid;
    std::atomic<std::uint64_t> restarts;
    std::atomic<std::uint64_t> values[7];  // stats_counters, field by field
  } slots[max_workers];
};

std::string bus_endpoint(const std::string& dir) {
  return "ipc://" + dir + "/bus";
}

region::region(const std::string& dir, int count, bool create) : size_{sizeof(layout)} {
  const std::string path = dir + "/stats";
  const int fd = ::open(path.c_str(), (create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR) | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error{errno, std::system_category(), "worker stats " + path};
  if (create && ::ftruncate(fd, static_cast<off_t>(size_)) != 0) {
    ::close(fd);
    throw std::system_error{errno, std::system_category(), "worker stats " + path};
  }
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::system_error{errno, std::system_category(), "mmap " + path};
  map_ = static_cast<layout*>(p);  // zero-filled by ftruncate: every atomic starts at 0
  if (create) map_->count = static_cast<std::uint32_t>(std::min(count, max_workers));
}

region::~region() {
  ::munmap(map_, size_);
}

int region::count() const noexcept {
  return static_cast<int>(map_->count);
}

unsigned short region::port() const noexcept {
  return static_cast<unsigned short>(map_->port.load(relaxed));
}

void region::set_port(unsigned short port) noexcept {
  map_->port.store(port, relaxed);
}

void region::set_pid(int index, std::int64_t pid) noexcept {
  map_->slots[index].pid.store(pid, relaxed);
}

void region::count_restart(int index) noexcept {
  map_->slots[index].restarts.fetch_add(1, relaxed);
}

void region::store(int index, const stats_counters& c) noexcept {
  auto& v = map_->slots[index].values;
  v[0].store(c.viewers_now, relaxed);
  v[1].store(c.viewers_total, relaxed);
  v[2].store(c.frames_sent, relaxed);
  v[3].store(c.bytes_sent, relaxed);
  v[4].store(c.frames_skipped, relaxed);
  v[5].store(c.rejected, relaxed);
  v[6].store(c.bad_requests, relaxed);
}

std::vector<worker_row> region::rows() const {
  std::vector<worker_row> rows;
  for (int i = 0; i < count(); ++i) {
    const auto& s = map_->slots[i];
    worker_row r;
    r.index = i;
    r.pid = s.pid.load(relaxed);
    r.restarts = s.restarts.load(relaxed);
    r.counters = {s.values[0].load(relaxed), s.values[1].load(relaxed), s.values[2].load(relaxed),
                  s.values[3].load(relaxed), s.values[4].load(relaxed), s.values[5].load(relaxed),
                  s.values[6].load(relaxed)};
    rows.push_back(r);
  }
  return rows;
}

reporter::reporter(region& shared, int index, server_stats& stats)
    : shared_{shared}, index_{index}, stats_{stats} {
  if (index < 0 || index >= shared.count()) throw std::runtime_error("--worker-index out of range");
  thread_ = std::thread{[this] {
    while (!stop_.load(relaxed)) {
      shared_.store(index_, stats_.counters());
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
  }};
}

reporter::~reporter() {
  stop_.store(true, relaxed);
  thread_.join();
  shared_.store(index_, {});  // this worker's viewers are gone
}

supervisor::supervisor(int argc, const char* const* argv, std::string dir, region& shared)
    : dir_{std::move(dir)}, shared_{shared} {
  for (int i = 1; i < argc; ++i)
    args_.emplace_back(argv[i]);
  children_.resize(static_cast<std::size_t>(shared.count()));
}

supervisor::child supervisor::spawn(int index) {
  // Everything the child needs is prepared before fork: between fork and exec a child of a
  // multi-threaded process may only make system calls (no allocation, no locks).
  std::vector<std::string> all{"mjpeg-worker"};
  all.insert(all.end(), args_.begin(), args_.end());
  all.insert(all.end(), {"--worker-of", dir_, "--worker-index", std::to_string(index)});
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::system_error{errno, std::system_category(), "pipe"};
  const pid_t parent = ::getpid();
  sigset_t none;
  sigemptyset(&none);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::system_error{errno, std::system_category(), "fork"};
  }
  if (pid == 0) {
    // The worker dies with its parent (SIGTERM, so it still stops cleanly), even after kill -9.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears close-on-exec on the copy
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);  // the supervisor drains it between other duties
  shared_.set_pid(index, pid);
  return {pid, out[0]};
}

void supervisor::start() {
  for (int i = 0; i < shared_.count(); ++i) {
    child c = spawn(i);
    children_[static_cast<std::size_t>(i)] = c;
    // Wait for its URL line: then it listens, and the parent's own URL line means "ready".
    std::string line;
    const auto until = steady_clock::now() + std::chrono::seconds{10};
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady_clock::now());
      pollfd p{c.out, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[256];
      const auto n = ::read(c.out, buf, sizeof buf);
      if (n < 0 && errno == EAGAIN) continue;
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    if (line.find("listening on") == std::string::npos) {
      stop_all();
      throw std::runtime_error("worker " + std::to_string(i) + " did not start");
    }
  }
}

void supervisor::run(const shutdown_signal& shutdown) {
  while (!shutdown.triggered()) {
    // Drain the workers' stdout (a restarted worker prints its URL line again) and tick.
    std::vector<pollfd> fds;
    for (const child& c : children_)
      if (c.out >= 0) fds.push_back({c.out, POLLIN, 0});
    fds.push_back({shutdown.fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 50);
    for (child& c : children_) {
      char buf[256];
      if (c.out >= 0 && ::read(c.out, buf, sizeof buf) == 0) {
        ::close(c.out);
        c.out = -1;
      }
    }
    if (shutdown.triggered()) break;
    // Restart every worker that exited, whatever the reason: the others never noticed.
    for (std::size_t i = 0; i < children_.size(); ++i) {
      child& c = children_[i];
      int status = 0;
      if (c.pid <= 0 || ::waitpid(c.pid, &status, WNOHANG) != c.pid) continue;
      log::write(log::level::warning, "workers: worker %zu (pid %d) %s %d; restarting", i,
                 static_cast<int>(c.pid), WIFSIGNALED(status) ? "killed by signal" : "exited with",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      if (c.out >= 0) ::close(c.out);
      shared_.set_pid(static_cast<int>(i), 0);
      shared_.store(static_cast<int>(i), {});
      shared_.count_restart(static_cast<int>(i));
      try {
        c = spawn(static_cast<int>(i));
      } catch (const std::exception& e) {
        log::write(log::level::error, "workers: %s; retrying", e.what());
        c = {};
      }
    }
    for (std::size_t i = 0; i < children_.size(); ++i)
      if (children_[i].pid <= 0) try {
          children_[i] = spawn(static_cast<int>(i));
        } catch (const std::exception&) {
        }
  }
  stop_all();
}

void supervisor::stop_all() {
  for (const child& c : children_)
    if (c.pid > 0) ::kill(c.pid, SIGTERM);
  const auto until = steady_clock::now() + std::chrono::milliseconds{900};
  for (child& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    while (::waitpid(c.pid, &status, WNOHANG) == 0) {
      if (steady_clock::now() >= until) {
        ::kill(c.pid, SIGKILL);
        ::waitpid(c.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    if (c.out >= 0) ::close(c.out);
    c = {};
  }
}

}  // namespace mjpeg::workers
