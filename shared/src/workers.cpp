#include "mjpeg/workers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "mjpeg/bus.hpp"
#include "mjpeg/listener.hpp"
#include "mjpeg/log.hpp"

namespace mjpeg::workers {
namespace {

using std::chrono::steady_clock;
constexpr auto relaxed = std::memory_order_relaxed;
constexpr int max_workers = 64;

// CLOCK_MONOTONIC in milliseconds: one clock for every process on the machine.
std::int64_t monotonic_ms() noexcept {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

// Counters shared between processes must never fall back to a lock.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

}  // namespace

struct region::layout {
  std::atomic<std::uint32_t> port;
  std::uint32_t count;
  struct slot {
    std::atomic<std::int64_t> pid;
    std::atomic<std::int64_t> heartbeat;  // monotonic_ms() of the last write
    std::atomic<std::uint64_t> restarts;
    std::atomic<std::uint64_t> values[counter_fields.size()];  // stats_counters, as counter_fields lists them
    std::atomic<std::uint64_t> viewers_by_camera[max_cameras];  // each camera's viewers_now, in order
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
  map_->slots[index].heartbeat.store(monotonic_ms(), relaxed);
  map_->slots[index].pid.store(pid, relaxed);
}

std::chrono::milliseconds region::silent_for(int index) const noexcept {
  return std::chrono::milliseconds{monotonic_ms() - map_->slots[index].heartbeat.load(relaxed)};
}

void region::count_restart(int index) noexcept {
  map_->slots[index].restarts.fetch_add(1, relaxed);
}

void region::store(int index, const stats_counters& c,
                   std::span<const std::uint64_t> viewers_by_camera) noexcept {
  auto& v = map_->slots[index].values;
  for (std::size_t i = 0; i < counter_fields.size(); ++i)
    v[i].store(c.*counter_fields[i].value, relaxed);
  auto& cameras = map_->slots[index].viewers_by_camera;
  for (std::size_t i = 0; i < max_cameras; ++i)
    cameras[i].store(i < viewers_by_camera.size() ? viewers_by_camera[i] : 0, relaxed);
  map_->slots[index].heartbeat.store(monotonic_ms(), relaxed);
}

std::vector<worker_row> region::rows(std::size_t camera) const {
  std::vector<worker_row> rows;
  for (int i = 0; i < count(); ++i) {
    const auto& s = map_->slots[i];
    worker_row r;
    r.index = i;
    r.pid = s.pid.load(relaxed);
    r.restarts = s.restarts.load(relaxed);
    r.stale = silent_for(i) > stale_after;
    for (std::size_t f = 0; f < counter_fields.size(); ++f)
      r.counters.*counter_fields[f].value = s.values[f].load(relaxed);
    if (camera != 0 && camera < max_cameras)
      r.counters.viewers_now = s.viewers_by_camera[camera].load(relaxed);
    rows.push_back(r);
  }
  return rows;
}

reporter::reporter(region& shared, int index, std::vector<server_stats*> cameras)
    : shared_{shared}, index_{index}, cameras_{std::move(cameras)} {
  if (index < 0 || index >= shared.count()) throw std::runtime_error("--worker-index out of range");
  thread_ = std::thread{[this] {
    std::vector<std::uint64_t> viewers(cameras_.size());
    while (!stop_.load(relaxed)) {
      for (std::size_t i = 0; i < cameras_.size(); ++i)
        viewers[i] = cameras_[i]->viewers_now();
      shared_.store(index_, cameras_.front()->counters(), viewers);
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
  child c;
  c.pid = pid;
  c.out = out[0];
  return c;
}

void supervisor::start() {
  for (int i = 0; i < shared_.count(); ++i) {
    child& c = children_[static_cast<std::size_t>(i)];
    c = spawn(i);
    // Wait for its URL line: then it listens, and the parent's own URL line means "ready".
    const auto until = steady_clock::now() + std::chrono::seconds{10};
    while (!c.serving && c.out >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady_clock::now());
      pollfd p{c.out, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      read_output(c, i);
    }
    if (!c.serving) {
      stop_all();
      throw std::runtime_error("worker " + std::to_string(i) + " did not start");
    }
  }
}

void supervisor::read_output(child& c, int index) {
  char buf[256];
  const auto n = ::read(c.out, buf, sizeof buf);
  if (n < 0) return;  // EAGAIN: nothing yet
  if (n == 0) {
    ::close(c.out);
    c.out = -1;
    return;
  }
  if (c.serving) return;  // drained: only the URL line matters
  c.line.append(buf, static_cast<std::size_t>(n));
  if (c.line.find("listening on") == std::string::npos || c.line.find('\n') == std::string::npos) return;
  c.serving = true;
  c.serving_since = steady_clock::now();
  c.line.clear();
  if (c.failing)
    log::write(log::level::info, "workers: worker %d (pid %d) serving again after %d restarts", index,
               static_cast<int>(c.pid), c.restarts_while_failing);
  c.failing = false;
}

// The restart policy of one slot whose worker ended with `status`.
void supervisor::reap(child& c, int index, int status) {
  constexpr std::chrono::milliseconds first_backoff{250};  // capture's backoff
  constexpr std::chrono::milliseconds max_backoff{5000};
  constexpr std::chrono::seconds healthy_after{10};  // serving this long resets the backoff
  const auto now = steady_clock::now();
  const bool healthy = c.serving && now - c.serving_since >= healthy_after;
  if (healthy) c.backoff = std::chrono::milliseconds{0};
  // One line per change of state: the first failure says so, the retries that follow are quiet.
  if (!c.failing)
    log::write(log::level::warning, "workers: worker %d (pid %d) %s %d; restarting", index,
               static_cast<int>(c.pid), WIFSIGNALED(status) ? "killed by signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  if (!c.failing) {
    c.failing = true;
    c.down_since = now;
    c.restarts_while_failing = 0;
  }
  if (c.out >= 0) ::close(c.out);
  shared_.set_pid(index, 0);
  shared_.store(index, {});
  shared_.count_restart(index);
  const auto delay = c.backoff;
  c.backoff = std::min(std::max(c.backoff * 2, first_backoff), max_backoff);
  child next;  // a slot with no worker, until restart_at
  next.failing = true;
  next.down_since = c.down_since;
  next.restart_at = now + delay;
  next.backoff = c.backoff;
  next.restarts_while_failing = c.restarts_while_failing;
  c = std::move(next);
}

bool supervisor::run(const shutdown_signal& shutdown) {
  bool gave_up = false;
  while (!shutdown.triggered() && !gave_up) {
    // Drain the workers' stdout (a restarted worker prints its URL line again) and tick.
    std::vector<pollfd> fds;
    for (const child& c : children_)
      if (c.out >= 0) fds.push_back({c.out, POLLIN, 0});
    fds.push_back({shutdown.fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 50);
    for (std::size_t i = 0; i < children_.size(); ++i)
      if (children_[i].out >= 0) read_output(children_[i], static_cast<int>(i));
    if (shutdown.triggered()) break;
    const auto now = steady_clock::now();
    for (std::size_t i = 0; i < children_.size(); ++i) {
      child& c = children_[i];
      const int index = static_cast<int>(i);
      int status = 0;
      if (c.pid > 0 && ::waitpid(c.pid, &status, WNOHANG) == c.pid) {
        reap(c, index, status);
      } else if (c.pid > 0 && c.serving && !c.hung && shared_.silent_for(index) > hung_after) {
        // Serving but silent (stopped, or stuck in a way that stops its reporter too): the kernel
        // keeps handing it new connections, so it goes, and the loop restarts it when reaped. (A
        // worker that hangs before it serves leaves its slot empty: give_up_after covers it.)
        log::write(log::level::warning,
                   "workers: worker %d (pid %d) made no progress for %lld ms; killing it", index,
                   static_cast<int>(c.pid), static_cast<long long>(shared_.silent_for(index).count()));
        ::kill(c.pid, SIGKILL);
        c.hung = true;
        c.serving = false;  // a hung worker is no reason to reset the backoff
      }
      if (c.failing && now - c.down_since > give_up_after) {
        log::write(
            log::level::error, "workers: worker %d has not been serving for %lld s; giving up", index,
            static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(give_up_after).count()));
        gave_up = true;
        break;
      }
      if (c.pid <= 0 && now >= c.restart_at) {
        try {
          const child previous = c;
          c = spawn(index);
          c.failing = previous.failing;
          c.down_since = previous.down_since;
          c.backoff = previous.backoff;
          c.restarts_while_failing = previous.restarts_while_failing + 1;
        } catch (const std::exception& e) {
          log::write(log::level::error, "workers: %s; retrying", e.what());
          c.restart_at = now + std::max(c.backoff, std::chrono::milliseconds{250});
        }
      }
    }
  }
  stop_all();
  return !gave_up;
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

// The parent's private directory for --workers: the bus socket and the shared counters, open to
// this user only; removed when the parent ends. A parent killed by SIGKILL cannot remove it, so
// each directory holds a lock file the parent keeps locked (flock, released by the kernel however
// the process ends), and every new parent first removes this user's directories whose lock is free.
class role::private_dir {
 public:
  private_dir() {
    remove_stale();
    char path[] = "/tmp/mjpeg-workers-XXXXXX";
    if (::mkdtemp(path) == nullptr) throw std::system_error{errno, std::system_category(), "mkdtemp"};
    path_ = path;
    lock_ = ::open((path_ + "/lock").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock_ < 0 || ::flock(lock_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
      throw std::system_error{error, std::system_category(), "lock " + path_};
    }
  }
  ~private_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
    ::close(lock_);
  }
  private_dir(const private_dir&) = delete;
  private_dir& operator=(const private_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  // True when `dir` belongs to no running parent: its lock file is free, or (a directory from a
  // version without one, at least a minute old) nobody listens on its bus socket any more.
  static bool stale(const std::string& dir, const struct stat& info) {
    const int fd = ::open((dir + "/lock").c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
      ::close(fd);  // releases the lock again if we took it
      return free;
    }
    if (::time(nullptr) - info.st_mtime < 60) return false;  // maybe a parent between mkdtemp and lock
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string socket_path = dir + "/bus";
    if (socket_path.size() >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return false;
    const bool refused = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
                         (errno == ECONNREFUSED || errno == ENOENT);
    ::close(probe);
    return refused;
  }

  static void remove_stale() {
    DIR* tmp = ::opendir("/tmp");
    if (tmp == nullptr) return;
    while (const dirent* entry = ::readdir(tmp)) {
      const std::string name = entry->d_name;
      if (!name.starts_with("mjpeg-workers-")) continue;
      const std::string dir = "/tmp/" + name;
      struct stat info {};
      if (::lstat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid()) continue;
      if (!stale(dir, info)) continue;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      if (!ec)
        log::write(log::level::info, "workers: removed %s, left behind by a parent that was killed",
                   dir.c_str());
    }
    ::closedir(tmp);
  }

  std::string path_;
  int lock_ = -1;
};

role::role(const options& opts)
    : opts_{opts}, worker_{!opts.worker_of.empty()}, parent_{opts.workers > 0 && !worker_} {
  if (parent_) {
    dir_ = std::make_unique<private_dir>();
    shared_.emplace(dir_->path(), opts.workers, true);
  } else if (worker_) {
    shared_.emplace(opts.worker_of, 0, false);
    if (opts.worker_index < 0 || opts.worker_index >= shared_->count())
      throw std::runtime_error("--worker-index out of range");
  }
}

role::~role() = default;

void role::set_process_title() const {
  // "ps" shows which process is which: a worker runs /proc/self/exe, which would say "exe".
  if (!worker_) return;
  const std::string title = "mjpeg-worker-" + std::to_string(opts_.worker_index);
  ::prctl(PR_SET_NAME, title.c_str());
}

double role::duration() const noexcept {
  return worker_ ? 0 : opts_.duration;
}

std::vector<std::string> role::publish_endpoints() const {
  std::vector<std::string> endpoints;
  if (!worker_)
    for (const auto& p : opts_.publish)
      endpoints.push_back(bus::publish_endpoint(p));
  if (parent_) endpoints.push_back(bus_endpoint(dir_->path()));
  return endpoints;
}

source_config role::source(const camera_spec& camera) const {
  if (worker_) {
    // The parent publishes each camera under its name (the unnamed one without a topic).
    std::string spec = std::string{bus::scheme_prefix} + bus_endpoint(opts_.worker_of);
    if (!camera.name.empty()) spec += bus::topic_separator + camera.name;
    return {spec, camera.width, camera.height, camera.fps, false, {}};
  }
  return {camera.source, camera.width, camera.height, camera.fps, opts_.encode, opts_.bus_keys};
}

unsigned short role::port() const noexcept {
  return worker_ ? shared_->port() : static_cast<unsigned short>(opts_.port);
}

std::unique_ptr<reporter> role::share(const std::vector<server_stats*>& cameras) {
  if ((parent_ || worker_) && cameras.size() > max_cameras)
    throw std::runtime_error("--workers serves at most " + std::to_string(max_cameras) + " cameras, not " +
                             std::to_string(cameras.size()));
  server_stats& stats = *cameras.front();
  if (parent_) {
    // --idle-stop of each camera in the parent watches the workers' viewers of that camera.
    for (std::size_t i = 0; i < cameras.size(); ++i)
      cameras[i]->on_workers([this, i] { return shared_->rows(i); });
  } else if (worker_) {
    // /stats answers for the whole server: every worker's row, this one's read fresh. Set
    // before the capture thread starts (its --idle-stop asks for the same sum).
    stats.on_workers([this, &stats, index = static_cast<std::size_t>(opts_.worker_index)] {
      auto rows = shared_->rows();
      rows[index].counters = stats.counters();
      rows[index].stale = false;
      return rows;
    });
    return std::make_unique<reporter>(*shared_, opts_.worker_index, cameras);
  }
  return nullptr;
}

int role::supervise(boost::asio::ip::tcp::acceptor& acceptor, const shutdown_signal& shutdown,
                    std::string_view name, int argc, const char* const* argv) {
  // The parent only reserves the port (bound, never listening, so it takes no connections),
  // then starts the workers that serve it and restarts any that dies.
  shared_->set_port(acceptor.local_endpoint().port());
  supervisor workers{argc, argv, dir_->path(), *shared_};
  workers.start();
  listener::print_url_line(name, acceptor);
  return workers.run(shutdown) ? 0 : 1;
}

}  // namespace mjpeg::workers
