#include "mjpeg/async.hpp"

#include <poll.h>

#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "mjpeg/log.hpp"

namespace mjpeg::async {
namespace {

namespace asio = boost::asio;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

// How often the watchdog looks at every connection.
constexpr auto watchdog_period = 100ms;

// A viewer that has waited this long for a frame gets its socket looked at by the watchdog, so
// one who left while no frames flow frees its slot. While frames flow nobody waits this long:
// the check costs nothing then.
constexpr auto peer_check_after = 1s;

}  // namespace

bool sessions::try_admit(int max) {
  std::lock_guard lock{mutex_};
  if (stopping_ || (max > 0 && admitted_ >= static_cast<std::size_t>(max))) return false;
  ++admitted_;
  return true;
}

bool sessions::stopping() const {
  std::lock_guard lock{mutex_};
  return stopping_;
}

awaitable<void> sessions::watchdog() {
  asio::steady_timer tick{co_await asio::this_coro::executor};
  while (!stopping()) {
    tick.expires_after(watchdog_period);
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(use_awaitable, ec));
    pass();
  }
}

void sessions::pass() {
  const auto now = steady_clock::now();
  const auto check_before = (now - peer_check_after).time_since_epoch().count();
  std::vector<pollfd> waiting;
  std::vector<deadline_stream*> waiting_streams;
  // A shutdown() from here is safe while the socket is listed, and a connection leaves the list
  // before its socket closes.
  std::lock_guard lock{mutex_};
  for (deadline_stream* s : streams_) {
    if (s->waiting_since_.load(deadline_stream::relaxed) <= check_before) {
      waiting.push_back({s->fd_, POLLRDHUP, 0});
      waiting_streams.push_back(s);
    }
    if (s->deadline_.load(deadline_stream::relaxed) > now.time_since_epoch().count()) continue;
    s->deadline_.store(deadline_stream::never, deadline_stream::relaxed);
    s->expired_.store(true, deadline_stream::relaxed);
    ::shutdown(s->fd_, s->how_.load(deadline_stream::relaxed));
  }
  // Viewers waiting long for a frame: one poll() for all of them; those whose peer has closed or
  // reset leave the hub with null, and their coroutines end.
  if (waiting.empty() || ::poll(waiting.data(), waiting.size(), 0) <= 0) return;
  for (std::size_t i = 0; i < waiting.size(); ++i)
    if ((waiting[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0)
      for (frame_hub* hub : hubs_)  // it waits in its camera's hub; cancel is a no-op in the others
        hub->cancel(*waiting_streams[i]);
}

void sessions::stop() {
  std::lock_guard lock{mutex_};
  stopping_ = true;
  for (deadline_stream* s : streams_)
    ::shutdown(s->fd_, SHUT_RDWR);
}

void sessions::join(deadline_stream& s) {
  std::lock_guard lock{mutex_};
  s.at_ = streams_.insert(streams_.end(), &s);
  if (stopping_) ::shutdown(s.fd_, SHUT_RDWR);
}

void sessions::leave(deadline_stream& s) {
  std::lock_guard lock{mutex_};
  streams_.erase(s.at_);
  --admitted_;
}

deadline_stream::deadline_stream(tcp::socket& socket, sessions& all)
    : socket_{socket}, all_{all}, fd_{socket.native_handle()} {
  all_.join(*this);
}

deadline_stream::~deadline_stream() {
  all_.leave(*this);
}

void deadline_stream::arm(steady_clock::time_point deadline, int how) noexcept {
  how_.store(how, relaxed);
  expired_.store(false, relaxed);
  waiting_since_.store(never, relaxed);
  deadline_.store(deadline.time_since_epoch().count(), relaxed);
}

void deadline_stream::wake(frame_ptr f) noexcept {
  // Hand the frame to the coroutine's executor and return. Resuming through the executor's queue
  // spreads the viewers woken by one frame over the --threads. The handler leaves resume_ before
  // the post: once posted, the coroutine may resume on another thread and park again.
  waiting_since_.store(never, relaxed);
  resume_handler resume = std::move(*resume_);
  resume_.reset();
  auto executor = asio::get_associated_executor(resume);
  asio::post(executor, [resume = std::move(resume), f = std::move(f)]() mutable { resume(std::move(f)); });
}

awaitable<void> deadline_stream::wait_writable(error_code& ec) {
  ec = {};
  // True when the kernel has room for more right now (TCP_NOTSENT_LOWAT: the previous frame is
  // nearly all gone). One poll() answers the usual case; asking the io_context to wait would
  // cost an epoll registration and a trip through its queue for every frame to every viewer.
  pollfd p{fd_, POLLOUT, 0};
  if (::poll(&p, 1, 0) == 1 && p.revents == POLLOUT) co_return;
  arm(steady_clock::now() + write_timeout_, SHUT_RDWR);
  co_await socket_.async_wait(tcp::socket::wait_write, asio::redirect_error(use_awaitable, ec));
  if (timed_out()) ec = asio::error::timed_out;  // the watchdog shut it: the peer took too long
}

awaitable<void> deadline_stream::close_gracefully() {
  // Half-close, then drain briefly: closing with unread input would send a reset that can
  // destroy the response before the peer reads it.
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  read_deadline(steady_clock::now() + 200ms);
  char sink[4096];
  for (std::size_t drained = 0; !ec && drained < 64 * 1024;)
    drained += co_await socket_.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
}

// Parks the coroutine in the hub until a frame newer than `seen` (or null).
awaitable<frame_ptr> park(frame_hub& hub, std::uint64_t seen, deadline_stream& stream) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(frame_ptr)>(
      [&hub, seen, &stream](deadline_stream::resume_handler resume) {
        stream.resume_.emplace(std::move(resume));
        hub.async_wait_newer(seen, stream);
      },
      use_awaitable);
}

// A viewer with a rate cap (?fps=N): sit out the rest of the period on a timer (at most a
// second), then take the newest frame; those published meanwhile are skipped at the hub.
awaitable<frame_ptr> paced(frame_hub& hub, std::uint64_t seen, deadline_stream& stream) {
  if (stream.pace_.due() > steady_clock::now()) {
    asio::steady_timer pause{co_await asio::this_coro::executor, stream.pace_.due()};
    error_code ec;
    co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  frame_ptr f = co_await park(hub, seen, stream);
  stream.pace_.took(steady_clock::now());
  co_return f;
}

awaitable<frame_ptr> wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream) {
  // Waiting for the camera is not the peer's fault: no deadline, but the watchdog looks at the
  // socket if the wait grows long (a capped viewer's pause included).
  stream.deadline_.store(deadline_stream::never, deadline_stream::relaxed);
  stream.waiting_since_.store(steady_clock::now().time_since_epoch().count(), deadline_stream::relaxed);
  // Without a cap, no coroutine frame of its own: the hub resumes the caller directly.
  return stream.pace_.active() ? paced(hub, seen, stream) : park(hub, seen, stream);
}

awaitable<bool> accept_next(server_context& ctx, sessions& all, connection& c) {
  asio::steady_timer pause{co_await asio::this_coro::executor};
  bool told = false;
  for (;;) {
    error_code ec;
    co_await ctx.acceptor.async_accept(c.socket, asio::redirect_error(use_awaitable, ec));
    if (all.stopping()) co_return false;
    if (ec == asio::error::connection_aborted) continue;
    if (ec) {
      // Out of descriptors or memory: the pending connection stays queued and would fail again
      // at once. Pause instead of spinning, and say so once.
      if (!told) log::write(log::level::error, "accept: %s; pausing", ec.message().c_str());
      told = true;
      pause.expires_after(100ms);
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    c.accepted = steady_clock::now();
    count_accepted(ctx.stats, c.socket.native_handle());
    // Over --max-clients: 503 at once (reject_busy never waits), never a queue.
    if (all.try_admit(ctx.opts.max_clients)) co_return true;
    reject_busy(ctx.stats, std::move(c.socket));
    c.socket = tcp::socket{ctx.io};
  }
}

}  // namespace mjpeg::async
