#include "mjpeg/app.hpp"

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
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <filesystem>
#include <optional>

#include "mjpeg/bus.hpp"
#include "mjpeg/capture.hpp"
#include "mjpeg/page.hpp"
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

std::array<boost::asio::const_buffer, 2> reply::buffers() const noexcept {
  if (!image) return {boost::asio::buffer(head), boost::asio::const_buffer{}};
  return {boost::asio::buffer(head), boost::asio::buffer(image->jpeg().data(), image->jpeg().size())};
}

reply make_reply(const http::route_result& plan, const server_context& ctx) {
  using http::resource;
  switch (plan.what) {
    case resource::page:
      return {http::document_response("text/html; charset=utf-8",
                                      viewer_page(ctx.variant, ctx.opts.width, ctx.opts.height, ctx.opts.fps),
                                      plan.head_only),
              nullptr};
    case resource::stats: {
      const frame_ptr latest = ctx.hub.latest();
      return {http::document_response(
                  "application/json",
                  ctx.stats.to_json(latest ? latest->seq() : 0, latest ? latest->jpeg().size() : 0),
                  plan.head_only),
              nullptr};
    }
    case resource::snapshot: {
      frame_ptr latest = ctx.hub.latest();
      if (!latest) return {http::error_response(http::status::service_unavailable), nullptr};
      std::string head = http::snapshot_head(*latest);
      if (plan.head_only) latest.reset();
      return {std::move(head), std::move(latest)};
    }
    case resource::stream: {  // only HEAD gets here: the header without the first boundary
      std::string head = http::stream_preamble();
      head.resize(head.find("\r\n\r\n") + 4);
      return {std::move(head), nullptr};
    }
    case resource::error:
    case resource::none:
      break;
  }
  ctx.stats.bad_request();
  return {http::error_response(plan.code), nullptr};
}

void reject_busy(server_context& ctx, boost::asio::ip::tcp::socket socket) {
  ctx.stats.connection_rejected();
  const std::string response = http::error_response(http::status::service_unavailable);
  // One non-blocking attempt: a small response into an empty send buffer always fits, and the
  // acceptor must never wait for a client it is turning away.
  ::send(socket.native_handle(), response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(socket.native_handle(), SHUT_WR);
  char sink[1024];
  while (::recv(socket.native_handle(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

void tune_for_streaming(int native_socket) noexcept {
  const int one = 1;
  ::setsockopt(native_socket, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(native_socket, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent_limit, sizeof unsent_limit);
}

std::string peer_name(const boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "?";
  const auto address = endpoint.address();
  return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(endpoint.port());
}

namespace {

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
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

using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

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

}  // namespace

int run_variant(int argc, const char* const* argv, const variant_info& info, const serve_function& serve) {
  auto parsed = parse_options(argc, argv, info);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const options& opts = std::get<options>(parsed);
  std::string name = "mjpeg-" + std::string{info.name};
  std::replace(name.begin(), name.end(), '_', '-');
  if (!opts.bus_keygen.empty()) {
    try {
      bus::generate_keys(opts.bus_keygen);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
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
    server_stats stats{std::string{info.name}};
    stats.set_config(opts.width, opts.height, opts.fps);
    frame_hub hub;
    shutdown_signal shutdown;
    shutdown.on_trigger([&hub] { hub.close(); });

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
    source_config source{opts.source, opts.width, opts.height, opts.fps, opts.encode, opts.bus_keys};
    if (worker)
      source = {"zmq+" + workers::bus_endpoint(opts.worker_of), opts.width, opts.height, opts.fps, false, {}};
    auto frames = make_source(source);
    // Another server's frames may not flow yet (an origin that starts later): do not wait long.
    const auto first_frame_wait = frames->forwards() ? std::chrono::seconds{1} : std::chrono::seconds{10};
    capture camera{std::move(frames), {opts.fps, opts.quality, opts.idle_stop}, hub, stats, sink};

    // Listen once the first frame exists, so the URL line means "ready" (a snapshot works at once).
    if (!hub.wait_newer_for(0, first_frame_wait))
      std::fprintf(stderr, "%s: no frame from the source yet; serving anyway\n", name.c_str());

    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor{io};
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(opts.host, ec);
    if (ec) throw std::runtime_error("--host " + opts.host + ": not an IP address");
    // Workers all bind the port their parent reserved; SO_REUSEPORT lets the kernel spread
    // connections over their listening sockets.
    const auto port = worker ? shared->port() : static_cast<unsigned short>(opts.port);
    const boost::asio::ip::tcp::endpoint endpoint{address, port};
    acceptor.open(endpoint.protocol());
    acceptor.set_option(boost::asio::socket_base::reuse_address{true});
    if (parent || worker) acceptor.set_option(reuse_port{true});
    acceptor.bind(endpoint, ec);
    if (ec)
      throw std::runtime_error("cannot listen on " + url_host(opts.host) + ":" + std::to_string(port) + ": " +
                               ec.message());
    const auto url_line = [&] {
      std::printf("%s listening on http://%s:%u/\n", name.c_str(), url_host(opts.host).c_str(),
                  static_cast<unsigned>(acceptor.local_endpoint().port()));
      std::fflush(stdout);
    };

    if (parent) {
      // The parent only reserves the port (bound, never listening, so it takes no connections),
      // then starts the workers that serve it and restarts any that dies.
      shared->set_port(acceptor.local_endpoint().port());
      workers::supervisor workers{argc, argv, dir->path(), *shared};
      workers.start();
      url_line();
      std::thread watcher{[&] { watch_signals(shutdown, opts.duration); }};
      workers.run(shutdown);
      shutdown.trigger();
      watcher.join();
      return 0;
    }
    acceptor.listen(4096);  // room for a burst of connects; the kernel caps it at somaxconn
    std::optional<workers::reporter> report;
    if (worker) report.emplace(*shared, opts.worker_index, stats);

    server_context ctx{info.name, opts, hub, stats, shutdown, {}, io, acceptor};
    if (!opts.auth.empty()) ctx.routes.expected_authorization = http::basic_authorization(opts.auth);

    // The one line scripts read to find the server.
    url_line();

    // A worker stops when its parent says so (SIGTERM), not by --duration on its own.
    std::thread watcher{[&] { watch_signals(shutdown, worker ? 0 : opts.duration); }};
    try {
      serve(ctx);
    } catch (...) {
      shutdown.trigger();
      watcher.join();
      throw;
    }
    shutdown.trigger();
    watcher.join();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.what());
    return 1;
  }
}

}  // namespace mjpeg
