// mjpeg-async: thousands of viewers on a few threads.
//
// Boost.Asio with C++20 coroutines. Each connection is a coroutine that reads like the blocking
// serve_client line for line, but every wait (for a request, a frame, a writable socket) suspends
// the coroutine instead of a thread. One io_context runs them all on --threads threads (default 1).
// The capture thread wakes waiting viewers through the hub's publish hook; no thread ever blocks on
// the hub's condition variable.

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "mjpeg/app.hpp"
#include "mjpeg/log.hpp"

namespace {

namespace asio = boost::asio;
using namespace mjpeg;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Every live connection, and every viewer waiting for its next frame.
class sessions {
 public:
  // One connection as the watchdog sees it: when its current wait must end and how to end it.
  // Timeouts are one watchdog pass every 100 ms rather than a timer per wait: a per-frame timer
  // would cost a timer-queue insertion and cancellation for every frame sent to every viewer.
  class entry {
   public:
    entry(sessions& all, tcp::socket& socket) : all_{all}, fd_{socket.native_handle()} { all_.join(*this); }
    ~entry() { all_.leave(*this); }
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;

    // Reads must complete by `deadline`; then the read side is shut and the read ends.
    void read_deadline(clock_type::time_point deadline) { arm(deadline, SHUT_RD); }
    // Each write (and wait for room) may take at most `timeout`.
    void write_timeout(clock_type::duration timeout) { write_timeout_ = timeout; }
    // A write starts: the peer has write_timeout to take it, then the socket is shut.
    void writing() { arm(clock_type::now() + write_timeout_, SHUT_RDWR); }
    // Waiting for the camera is not the peer's fault: no deadline.
    void idle() { deadline_.store(clock_type::time_point::max().time_since_epoch().count(), relaxed); }
    // True once the watchdog ended a wait of this connection.
    bool expired() const { return expired_.load(relaxed); }

   private:
    friend class sessions;
    static constexpr auto relaxed = std::memory_order_relaxed;
    void arm(clock_type::time_point deadline, int how) {
      how_.store(how, relaxed);
      expired_.store(false, relaxed);
      deadline_.store(deadline.time_since_epoch().count(), relaxed);
    }
    sessions& all_;
    int fd_;
    std::atomic<clock_type::rep> deadline_{clock_type::time_point::max().time_since_epoch().count()};
    std::atomic<int> how_{SHUT_RDWR};
    std::atomic<bool> expired_{false};
    clock_type::duration write_timeout_ = 10s;
    std::list<entry*>::iterator at_;
  };

  sessions(asio::io_context& io, frame_ptr latest) : io_{io}, latest_{std::move(latest)} {}

  // Counts a new connection unless the server is full (max 0: no limit) or stopping.
  bool try_admit(int max) {
    std::lock_guard lock{mutex_};
    if (stopping_ || (max > 0 && admitted_ >= static_cast<std::size_t>(max))) return false;
    ++admitted_;
    return true;
  }
  bool stopping() const {
    std::lock_guard lock{mutex_};
    return stopping_;
  }

  // The asynchronous twin of frame_hub::wait_newer: completes with the newest frame once its seq
  // is above `seen`, or with null at shutdown. The coroutine's continuation is parked here and
  // resumed by publish(), so a waiting viewer costs no thread and no timer. (Parked viewers hold
  // no work on the io_context: the pending accept keeps it running until stop() resumes them.)
  awaitable<frame_ptr> async_wait_newer(std::uint64_t seen) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(frame_ptr)>(
        [this, seen](continuation resume) {
          std::unique_lock lock{mutex_};
          if (!stopping_ && !(latest_ && latest_->seq() > seen)) {
            parked_.push_back(std::move(resume));
            return;
          }
          frame_ptr now = stopping_ ? nullptr : latest_;
          lock.unlock();
          resume_later(std::move(resume), std::move(now));
        },
        use_awaitable);
  }

  // The hub's publish hook, on the capture thread: one post hands every parked viewer to the
  // io_context. Posting under the lock means no post can follow stop().
  void publish(const frame_ptr& f) {
    std::lock_guard lock{mutex_};
    if (stopping_) return;
    latest_ = f;
    if (parked_.empty()) return;
    asio::post(io_, [waiting = std::move(parked_), f]() mutable {
      for (continuation& resume : waiting)
        resume_later(std::move(resume), f);
    });
    parked_.clear();
  }

  // The watchdog's pass: ends every wait whose deadline has passed. A shutdown() from here is
  // safe while the socket is listed, and a connection leaves the list before its socket closes.
  void shut_expired() {
    const auto now = clock_type::now().time_since_epoch().count();
    std::lock_guard lock{mutex_};
    for (entry* e : entries_) {
      if (e->deadline_.load(entry::relaxed) > now) continue;
      e->idle();
      e->expired_.store(true, entry::relaxed);
      ::shutdown(e->fd_, e->how_.load(entry::relaxed));
    }
  }

  // Shutdown: every parked viewer resumes with null and every socket's I/O ends at once, so each
  // coroutine unwinds; connections that arrive later end at once too.
  void stop() {
    std::vector<continuation> waiting;
    {
      std::lock_guard lock{mutex_};
      stopping_ = true;
      for (entry* e : entries_)
        ::shutdown(e->fd_, SHUT_RDWR);
      waiting.swap(parked_);
    }
    for (continuation& resume : waiting)
      resume_later(std::move(resume), nullptr);
  }

 private:
  // What a coroutine suspended in async_wait_newer leaves behind: calling it resumes the coroutine.
  using continuation = asio::async_result<asio::use_awaitable_t<>, void(frame_ptr)>::handler_type;

  // Resumes a parked viewer through the io_context's queue, so that with --threads the viewers
  // woken by one frame spread over the threads.
  static void resume_later(continuation resume, frame_ptr f) {
    auto executor = asio::get_associated_executor(resume);
    asio::post(executor, [resume = std::move(resume), f = std::move(f)]() mutable { resume(std::move(f)); });
  }

  void join(entry& e) {
    std::lock_guard lock{mutex_};
    e.at_ = entries_.insert(entries_.end(), &e);
    if (stopping_) ::shutdown(e.fd_, SHUT_RDWR);
  }
  void leave(entry& e) {
    std::lock_guard lock{mutex_};
    entries_.erase(e.at_);
    --admitted_;
  }

  asio::io_context& io_;
  mutable std::mutex mutex_;  // guards everything below
  frame_ptr latest_;
  bool stopping_ = false;
  std::size_t admitted_ = 0;
  std::list<entry*> entries_;
  std::vector<continuation> parked_;
};

// True when the kernel has room for more right now (TCP_NOTSENT_LOWAT: the previous frame is
// nearly all gone). One poll() answers the usual case; asking the io_context to wait would cost
// an epoll registration and a trip through its queue for every frame to every viewer.
bool writable_now(tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && p.revents == POLLOUT;
}

// Sends what the peer has room for, then closes, so the last response still arrives even if the
// peer sent bytes we never read.
awaitable<void> close_gracefully(tcp::socket& socket, sessions::entry& watch) {
  // Half-close, then drain briefly: closing with unread input would send a reset that can
  // destroy the response before the peer reads it.
  error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  watch.read_deadline(clock_type::now() + 200ms);
  char sink[4096];
  for (std::size_t drained = 0; !ec && drained < 64 * 1024;)
    drained += co_await socket.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
}

// The stream: preamble, then whatever frame is newest each time the viewer can take one.
awaitable<void> stream_frames(server_context& ctx, sessions& all, tcp::socket& socket, sessions::entry& watch,
                              viewer_state& viewer, std::string peer) {
  const viewer_scope scope{ctx.stats, viewer, std::move(peer)};
  error_code ec;
  const std::string preamble = http::stream_preamble();
  watch.writing();
  co_await asio::async_write(socket, asio::buffer(preamble), asio::redirect_error(use_awaitable, ec));
  while (!ec) {
    watch.idle();
    frame_ptr f = co_await all.async_wait_newer(viewer.last_seq.load(std::memory_order_relaxed));
    if (!f) break;  // shutdown
    // Wait until the kernel has taken the previous frame, then send the newest one: frames
    // published meanwhile are skipped rather than queued, so a slow viewer sees fresh frames.
    watch.writing();
    if (!writable_now(socket))
      co_await socket.async_wait(tcp::socket::wait_write, asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    f = ctx.hub.latest();
    co_await asio::async_write(socket, f->buffers(), asio::redirect_error(use_awaitable, ec));
    if (!ec) ctx.stats.frame_sent(viewer, *f);
  }
  viewer.ended = watch.expired()  ? end_reason::send_timeout
                 : all.stopping() ? end_reason::shutdown
                                  : end_reason_of(ec);
}

awaitable<void> serve_client(server_context& ctx, sessions& all, tcp::socket socket) {
  tune_for_streaming(socket.native_handle());
  sessions::entry watch{all, socket};
  // Per-viewer state lives in this coroutine's frame. thread_local, the tool of the
  // thread-per-client chapter, is wrong here: one thread takes turns serving thousands of
  // viewers, so a thread_local would be shared by all of them (and with --threads, a coroutine
  // may even resume on another thread than it started on).
  viewer_state viewer;

  // Read the request head; a client that dawdles past --header-timeout gets 408.
  boost::beast::flat_buffer buffer;
  http::request_parser parser;
  error_code ec;
  watch.read_deadline(clock_type::now() + seconds(ctx.opts.header_timeout));
  co_await boost::beast::http::async_read_header(socket, buffer, parser,
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec && watch.expired()) ec = asio::error::timed_out;
  const auto plan = ec ? http::route_error(ec, parser) : http::route(http::head_of(parser), ctx.routes);

  // Answer it; a viewer that stops taking bytes is dropped after --send-timeout.
  watch.write_timeout(seconds(ctx.opts.send_timeout));
  if (plan.what == http::resource::none) co_return;
  if (plan.what == http::resource::stream && !plan.head_only) {
    co_await stream_frames(ctx, all, socket, watch, viewer, peer_name(socket));
    co_return;
  }
  const reply r = make_reply(plan, ctx);
  watch.writing();
  co_await asio::async_write(socket, r.buffers(), asio::redirect_error(use_awaitable, ec));
  if (!ec) co_await close_gracefully(socket, watch);
}

// Accepts connections until the acceptor is closed, and starts a coroutine for each.
awaitable<void> accept_loop(server_context& ctx, sessions& all) {
  asio::steady_timer pause{co_await asio::this_coro::executor};
  bool told = false;
  for (;;) {
    tcp::socket socket{ctx.io};
    error_code ec;
    co_await ctx.acceptor.async_accept(socket, asio::redirect_error(use_awaitable, ec));
    if (all.stopping()) co_return;
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
    ctx.stats.connection_accepted();
    // Over --max-clients: 503 at once (reject_busy never waits), never a queue.
    if (!all.try_admit(ctx.opts.max_clients)) {
      reject_busy(ctx, std::move(socket));
      continue;
    }
    // A session that fails (out of memory) ends alone; the server keeps serving.
    asio::co_spawn(ctx.io, serve_client(ctx, all, std::move(socket)), [](std::exception_ptr e) {
      try {
        if (e) std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log::write(log::level::error, "session: %s", x.what());
      }
    });
  }
}

// Every 100 ms, ends the waits that passed their deadline (--header-timeout, --send-timeout).
awaitable<void> watchdog(sessions& all) {
  asio::steady_timer tick{co_await asio::this_coro::executor};
  while (!all.stopping()) {
    tick.expires_after(100ms);
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(use_awaitable, ec));
    all.shut_expired();
  }
}

void serve(server_context& ctx) {
  // The capture thread wakes viewers through the hub's hook. The hook owns `all`, so a publish
  // still in flight at shutdown never touches a destroyed object.
  auto all = std::make_shared<sessions>(ctx.io, ctx.hub.latest());
  ctx.hub.on_publish([all](const frame_ptr& f) { all->publish(f); });

  // The acceptor is used by the accept loop and by the stop below, which may run on different
  // threads: a strand takes them in turn. Sessions need no strand: each is a single chain of
  // operations, one at a time, and what they share (`all`, the hub, the stats) has its own lock.
  const auto control = asio::make_strand(ctx.io);
  asio::co_spawn(control, accept_loop(ctx, *all), asio::detached);
  asio::co_spawn(control, watchdog(*all), asio::detached);

  // On SIGINT/SIGTERM: stop accepting, wake every waiting viewer and end every socket's I/O; the
  // coroutines unwind and io_context::run returns once nothing is left to do.
  ctx.shutdown.on_trigger([all, control, &acceptor = ctx.acceptor] {
    all->stop();
    asio::post(control, [&acceptor] {
      error_code ignored;
      acceptor.close(ignored);
    });
  });

  // One io_context, run by --threads threads; this thread is one of them.
  std::vector<std::thread> threads;
  for (int i = 1; i < ctx.opts.threads; ++i)
    threads.emplace_back([&io = ctx.io] { io.run(); });
  ctx.io.run();
  for (auto& t : threads)
    t.join();
  ctx.hub.on_publish({});
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(
      argc, argv,
      {"async", "MJPEG server: Boost.Asio C++20 coroutines, many viewers on a few threads", {1, {}, 10000}},
      serve);
}
