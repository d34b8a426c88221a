#include "mjpeg/app.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "mjpeg/capture.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/page.hpp"

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
    case resource::metrics: {
      const frame_ptr latest = ctx.hub.latest();
      return {http::document_response(
                  "text/plain; version=0.0.4; charset=utf-8",
                  ctx.stats.to_prometheus(latest ? latest->seq() : 0, latest ? latest->jpeg().size() : 0),
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
  ctx.stats.bad_request(static_cast<unsigned>(plan.code));
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

// Opens, binds and listens on --host:--port, or adopts `fd`, the socket systemd passed (if not -1).
void open_listener(boost::asio::ip::tcp::acceptor& acceptor, const options& opts, int fd) {
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
  const boost::asio::ip::tcp::endpoint endpoint{address, static_cast<unsigned short>(opts.port)};
  acceptor.open(endpoint.protocol());
  acceptor.set_option(boost::asio::socket_base::reuse_address{true});
  acceptor.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + url_host(opts.host) + ":" + std::to_string(opts.port) +
                             ": " + ec.message());
  acceptor.listen(4096);  // room for a burst of connects; the kernel caps it at somaxconn
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

}  // namespace

int run_variant(int argc, const char* const* argv, const variant_info& info, const serve_function& serve) {
  auto parsed = parse_options(argc, argv, info);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const options& opts = std::get<options>(parsed);
  std::string name = "mjpeg-" + std::string{info.name};
  std::replace(name.begin(), name.end(), '_', '-');

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

    // Open the source first: a camera that is not there is an error at start, not a blank page.
    capture camera{make_source({opts.source, opts.width, opts.height, opts.fps, opts.encode}),
                   {opts.fps, opts.quality, opts.idle_stop},
                   hub,
                   stats};

    // Listen once the first frame exists, so the URL line means "ready" (a snapshot works at once).
    if (!hub.wait_newer_for(0, std::chrono::seconds{10}))
      log::write(log::level::warning, "no frame from the source yet; serving anyway");

    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor{io};
    open_listener(acceptor, opts, inherited);

    server_context ctx{info.name, opts, hub, stats, shutdown, {}, io, acceptor};
    if (!opts.auth.empty()) ctx.routes.expected_authorization = http::basic_authorization(opts.auth);

    // The one line scripts read to find the server.
    const auto local = acceptor.local_endpoint();
    std::printf("%s listening on http://%s:%u/\n", name.c_str(),
                url_host(local.address().to_string()).c_str(), static_cast<unsigned>(local.port()));
    std::fflush(stdout);

    std::thread watcher{[&] { watch_signals(shutdown, opts.duration); }};
    try {
      serve(ctx);
    } catch (...) {
      shutdown.trigger();
      watcher.join();
      throw;
    }
    shutdown.trigger();
    watcher.join();
    log::flush_dropped();
    return 0;
  } catch (const std::exception& e) {
    log::write(log::level::error, "%s", e.what());
    return 1;
  }
}

}  // namespace mjpeg
