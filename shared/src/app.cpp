#include "mjpeg/app.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <future>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "mjpeg/bus.hpp"
#include "mjpeg/capture.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/workers.hpp"

namespace mjpeg {

shutdown_signal::shutdown_signal() : fd_{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)} {
  if (fd_ < 0) throw std::system_error{errno, std::system_category(), "eventfd"};
}

shutdown_signal::~shutdown_signal() {
  ::close(fd_);
}

void shutdown_signal::trigger() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock{mutex_};
    if (triggered_.exchange(true, std::memory_order_acq_rel)) return;
    callbacks.swap(callbacks_);
  }
  // The counter is never read back, so the fd stays readable: every later poll wakes at once.
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof one);
  for (auto& callback : callbacks)
    callback();
}

void shutdown_signal::on_trigger(std::function<void()> callback) {
  {
    std::lock_guard lock{mutex_};
    if (!triggered()) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

namespace {

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// systemd socket activation (mjpeg-concurrency.socket): the listening socket arrives as fd 3, with
// LISTEN_PID naming this process. Returns the fd, or -1 when there is none to adopt. The variables
// are cleared so a process started later does not think the socket is its own; call it before
// any thread starts (it edits the environment).
int inherited_listener() {
  constexpr int first_fd = 3;  // SD_LISTEN_FDS_START
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const bool ours = pid != nullptr && fds != nullptr && std::atol(pid) == ::getpid() && std::atoi(fds) >= 1;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!ours) return -1;
  int listening = 0;
  socklen_t size = sizeof listening;
  if (::getsockopt(first_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening == 0)
    throw std::runtime_error("LISTEN_FDS: fd 3 is not a listening socket");
  ::fcntl(first_fd, F_SETFD, FD_CLOEXEC);
  return first_fd;
}

using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// Opens and binds --host:`port` (with SO_REUSEPORT when `share_port`: worker processes bind one
// port together), or adopts `fd`, the socket systemd passed (if not -1). The caller listens.
void open_listener(boost::asio::ip::tcp::acceptor& acceptor, const options& opts, int fd, unsigned short port,
                   bool share_port) {
  if (fd >= 0) {
    sockaddr_storage address{};
    socklen_t size = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    acceptor.assign(address.ss_family == AF_INET6 ? boost::asio::ip::tcp::v6() : boost::asio::ip::tcp::v4(),
                    fd);
    log::write(log::level::info, "using the listening socket from systemd; --host and --port do not apply");
    return;
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(opts.host, ec);
  if (ec) throw std::runtime_error("--host " + opts.host + ": not an IP address");
  const boost::asio::ip::tcp::endpoint endpoint{address, port};
  acceptor.open(endpoint.protocol());
  acceptor.set_option(boost::asio::socket_base::reuse_address{true});
  if (share_port) acceptor.set_option(reuse_port{true});
  acceptor.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + url_host(opts.host) + ":" + std::to_string(port) + ": " +
                             ec.message());
}

// Waits for SIGINT/SIGTERM (blocked in every thread, so they queue here) or the --duration
// deadline, whichever comes first, or for a shutdown triggered elsewhere.
void watch_signals(shutdown_signal& shutdown, double duration) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const auto deadline = duration > 0 ? std::chrono::steady_clock::now() + seconds(duration)
                                     : std::chrono::steady_clock::time_point::max();
  while (!shutdown.triggered()) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    const timespec tick{0, 50'000'000};  // also notice a trigger from elsewhere
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  shutdown.trigger();
}

// The parent's private directory for --workers: the bus socket and the shared counters, open to
// this user only; removed when the parent ends.
class private_dir {
 public:
  private_dir() {
    char path[] = "/tmp/mjpeg-workers-XXXXXX";
    if (::mkdtemp(path) == nullptr) throw std::system_error{errno, std::system_category(), "mkdtemp"};
    path_ = path;
  }
  ~private_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  private_dir(const private_dir&) = delete;
  private_dir& operator=(const private_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Opens `source` on a thread of its own and waits until it is open, until shutdown, or for
// source_open_timeout. True when open, false on shutdown; throws the source's own error. A source
// stuck in its driver can be neither interrupted nor joined: on a timeout (or a signal) during
// such an open, say so in one line and leave the process at once.
bool open_source(frame_source& source, const shutdown_signal& shutdown) {
  std::promise<void> opened;
  std::future<void> result = opened.get_future();
  std::thread opener{[&] {
    try {
      source.open();
      opened.set_value();
    } catch (...) {
      opened.set_exception(std::current_exception());
    }
  }};
  const auto until = std::chrono::steady_clock::now() + source_open_timeout;
  while (result.wait_for(std::chrono::milliseconds{20}) != std::future_status::ready) {
    if (!shutdown.triggered() && std::chrono::steady_clock::now() < until) continue;
    if (!shutdown.triggered())
      log::write(
          log::level::error, "source '%s' did not open within %lld s", source.describe().c_str(),
          static_cast<long long>(std::chrono::ceil<std::chrono::seconds>(source_open_timeout).count()));
    std::fflush(nullptr);
    std::_Exit(shutdown.triggered() ? 0 : 1);
  }
  opener.join();
  result.get();  // the source's own error, if it failed
  return !shutdown.triggered();
}

}  // namespace

int run_variant(int argc, const char* const* argv, const variant_info& info, const serve_function& serve) {
  auto parsed = parse_options(argc, argv, info);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const options& opts = std::get<options>(parsed);
  const std::string name = binary_name(info);
  if (!opts.bus_keygen.empty()) {
    try {
      bus::generate_keys(opts.bus_keygen);
    } catch (const std::exception& e) {
      log::write(log::level::error, "%s", e.what());
      return 1;
    }
    std::printf(
        "%s: keys written to %s: the publisher needs server.secret and authorized/, each "
        "subscriber server.pub, client.pub and client.secret\n",
        name.c_str(), opts.bus_keygen.c_str());
    return 0;
  }
  // With --workers this process is the parent: it captures and supervises, the workers serve.
  const bool worker = !opts.worker_of.empty();
  const bool parent = opts.workers > 0 && !worker;
  if (worker) {
    // "ps" shows which process is which: a worker runs /proc/self/exe, which would say "exe".
    const std::string title = "mjpeg-worker-" + std::to_string(opts.worker_index);
    ::prctl(PR_SET_NAME, title.c_str());
  }

  // Signals are blocked before any thread starts, so every thread inherits the mask and only
  // the watcher receives them. A viewer that vanishes must never kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    // Before any thread starts: this edits the environment.
    const int inherited = inherited_listener();
    server_stats stats{std::string{info.name}};
    stats.set_config(opts.width, opts.height, opts.fps);
    frame_hub hub;
    shutdown_signal shutdown;
    shutdown.on_trigger([&hub] { hub.close(); });

    // The signal watcher starts first, so SIGINT/SIGTERM stop the server at every stage, start-up
    // included; whatever way we leave, it is told to stop and joined.
    // A worker stops when its parent says so (SIGTERM), not by --duration on its own.
    std::thread watcher{[&] { watch_signals(shutdown, worker ? 0 : opts.duration); }};
    const struct stop_watcher {
      shutdown_signal& shutdown;
      std::thread& watcher;
      ~stop_watcher() {
        shutdown.trigger();
        watcher.join();
      }
    } stop_watcher{shutdown, watcher};

    std::optional<private_dir> dir;
    std::optional<workers::region> shared;
    if (parent) {
      dir.emplace();
      shared.emplace(dir->path(), opts.workers, true);
      // --idle-stop in the parent watches the workers' viewers.
      stats.on_workers([&shared] { return shared->rows(); });
    } else if (worker) {
      shared.emplace(opts.worker_of, 0, false);
      if (opts.worker_index < 0 || opts.worker_index >= shared->count())
        throw std::runtime_error("--worker-index out of range");
      // /stats answers for the whole server: every worker's row, this one's read fresh. Set
      // before the capture thread starts (its --idle-stop asks for the same sum).
      stats.on_workers([&shared, &stats, index = static_cast<std::size_t>(opts.worker_index)] {
        auto rows = shared->rows();
        rows[index].counters = stats.counters();
        return rows;
      });
    }

    // The frame bus: every --publish endpoint, and the parent's private one for its workers.
    std::vector<std::string> endpoints;
    if (!worker)
      for (const auto& p : opts.publish)
        endpoints.push_back(bus::publish_endpoint(p));
    if (parent) endpoints.push_back(workers::bus_endpoint(dir->path()));
    const auto keys = opts.bus_keys.empty() ? std::nullopt : std::optional<bus::key_files>{{opts.bus_keys}};
    std::optional<bus::publisher> publisher;
    capture::frame_sink sink;
    if (!endpoints.empty()) {
      publisher.emplace(endpoints, keys);
      stats.set_publish(publisher->endpoints());
      sink = [&publisher](const frame& f) { publisher->send(f); };
    }

    // Open the source first: a camera that is not there is an error at start, not a blank page.
    // A worker's source is its parent's bus.
    source_config config{opts.source, opts.width, opts.height, opts.fps, opts.encode, opts.bus_keys};
    if (worker)
      config = {"zmq+" + workers::bus_endpoint(opts.worker_of), opts.width, opts.height, opts.fps, false, {}};
    auto source = make_source(config);
    if (!open_source(*source, shutdown)) return 0;
    // Another server's frames may not flow yet (an origin that starts later): do not wait long.
    const auto first_frame_wait = source->forwards() ? std::chrono::seconds{1} : std::chrono::seconds{10};
    capture camera{std::move(source), {opts.fps, opts.quality, opts.idle_stop}, hub, stats, sink};
    // On the way out: a capture thread stuck in its source's driver cannot be joined; leave
    // without it rather than hang past the promised second.
    const struct stop_capture {
      capture& camera;
      ~stop_capture() {
        if (camera.stop_within(std::chrono::milliseconds{500})) return;
        log::write(log::level::error, "the source does not return; leaving without it");
        std::fflush(nullptr);
        std::_Exit(0);
      }
    } stop_capture{camera};

    // Listen once the first frame exists, so the URL line means "ready" (a snapshot works at once).
    // A signal closes the hub and ends this wait too.
    if (!hub.wait_newer_for(0, first_frame_wait) && !shutdown.triggered())
      log::write(log::level::warning, "no frame from the source yet; serving anyway");
    if (shutdown.triggered()) return 0;

    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor{io};
    // Workers all bind the port their parent reserved; SO_REUSEPORT lets the kernel spread
    // connections over their listening sockets.
    const auto port = worker ? shared->port() : static_cast<unsigned short>(opts.port);
    open_listener(acceptor, opts, inherited, port, parent || worker);
    // The one line scripts read to find the server.
    const auto url_line = [&] {
      const auto local = acceptor.local_endpoint();
      std::printf("%s listening on http://%s:%u/\n", name.c_str(),
                  url_host(local.address().to_string()).c_str(), static_cast<unsigned>(local.port()));
      std::fflush(stdout);
    };
    if (parent) {
      // The parent only reserves the port (bound, never listening, so it takes no connections),
      // then starts the workers that serve it and restarts any that dies.
      shared->set_port(acceptor.local_endpoint().port());
      workers::supervisor workers{argc, argv, dir->path(), *shared};
      workers.start();
      url_line();
      workers.run(shutdown);
      return 0;
    }
    acceptor.listen(4096);  // room for a burst of connects; the kernel caps it at somaxconn
    std::optional<workers::reporter> report;
    if (worker) report.emplace(*shared, opts.worker_index, stats);

    login_limiter logins;
    server_context ctx{info.name, name, opts, hub, stats, shutdown, {}, io, acceptor, logins};
    if (!opts.auth.empty()) ctx.routes.expected_authorization = http::basic_authorization(opts.auth);
    // Bound to loopback, only this machine can connect, but a web page it visits can reach us
    // through DNS rebinding: its requests then name the attacker's host, so Host must be ours.
    const auto address = acceptor.local_endpoint().address();
    ctx.routes.loopback_only = address.is_loopback() || (address.is_v6() && address.to_v6().is_v4_mapped() &&
                                                         address.to_v6().to_v4().is_loopback());
    ctx.routes.allowed_hosts = opts.allow_hosts;
    ctx.routes.camera_fps = opts.fps;  // the most a viewer may ask for with ?fps=N
    url_line();

    try {
      serve(ctx);
    } catch (...) {
      shutdown.trigger();  // wake whatever still waits before the io_context goes away
      throw;
    }
    log::flush_dropped();
    return 0;
  } catch (const std::exception& e) {
    log::write(log::level::error, "%s", e.what());
    return 1;
  }
}

}  // namespace mjpeg
