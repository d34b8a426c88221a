/// The asynchronous I/O machinery of the async model: awaiting the hub, deadlines by one watchdog,
/// graceful close, the writability check, accept; the twin of blocking.hpp.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "mjpeg/clock.hpp"
#include "mjpeg/frame_hub.hpp"
#include "mjpeg/rate_cap.hpp"
#include "mjpeg/server.hpp"
#include "mjpeg/socket.hpp"

/// Asynchronous socket I/O with deadlines for coroutines on one io_context, shared by the async
/// variant and the worker processes.
///
/// Every wait suspends a coroutine instead of a thread. Deadlines are not a timer per wait: one
/// watchdog pass every 100 ms shuts the socket of each connection past its deadline, which ends
/// the pending operation with an error the coroutine checks inline. A timer per frame would cost a
/// timer-queue insertion and cancellation for every frame sent to every viewer.
namespace mjpeg::async {

template <class T>
using awaitable = boost::asio::awaitable<T>;

class deadline_stream;

/// Every live connection of a server: the --max-clients count, and the deadlines that one
/// watchdog pass enforces.
class sessions {
 public:
  /// Sessions whose viewers wait on one of `hubs` (one per camera).
  explicit sessions(std::vector<frame_hub*> hubs) : hubs_{std::move(hubs)} {}
  sessions(const sessions&) = delete;
  sessions& operator=(const sessions&) = delete;

  /// Counts a new connection unless the server is full (`max` 0: no limit) or stopping.
  bool try_admit(int max);
  /// True once stop() was called.
  bool stopping() const;
  /// Every 100 ms: ends the waits past their deadline (--header-timeout, --send-timeout) and the
  /// waits for a frame whose viewer has left. Returns after stop().
  awaitable<void> watchdog();
  /// Shutdown: every connection's I/O ends at once, and so does that of any that arrives later.
  /// (Viewers waiting for a frame are woken by the hub's close.)
  void stop();

 private:
  friend class deadline_stream;
  void join(deadline_stream& s);
  void leave(deadline_stream& s);
  void pass();

  std::vector<frame_hub*> hubs_;
  mutable std::mutex mutex_;  // guards everything below
  bool stopping_ = false;
  std::size_t admitted_ = 0;
  std::list<deadline_stream*> streams_;
};

/// A socket as a Beast/Asio AsyncReadStream and AsyncWriteStream whose waits end at a deadline,
/// enforced by the sessions' watchdog: the twin of blocking::deadline_stream. It is also the
/// connection's place in the hub while it waits for a frame.
class deadline_stream : private hub_waiter {
 public:
  /// The executor of the socket, for Beast and Asio.
  using executor_type = boost::asio::ip::tcp::socket::executor_type;

  /// Watches `socket` among `all` (admitted there by accept_next) until destroyed.
  deadline_stream(boost::asio::ip::tcp::socket& socket, sessions& all);
  /// Leaves the watch (and the admission count) before the socket closes.
  ~deadline_stream() override;
  deadline_stream(const deadline_stream&) = delete;
  deadline_stream& operator=(const deadline_stream&) = delete;

  /// Reads must complete by `deadline` (the whole request head shares one deadline); then the
  /// read side is shut, the read ends and timed_out() turns true.
  void read_deadline(steady_clock::time_point deadline) noexcept { arm(deadline, SHUT_RD); }
  /// Each write (and wait for room) may take at most `timeout`; then the socket is shut.
  void write_timeout(steady_clock::duration timeout) noexcept { write_timeout_ = timeout; }
  /// At most `fps` frames a second to this viewer (/stream?fps=N), 0 for no cap; see wait_newer.
  void max_fps(unsigned fps) noexcept { pace_.set(fps); }
  /// True once the watchdog ended a wait of this connection.
  bool timed_out() const noexcept { return expired_.load(relaxed); }

  /// Waits until the kernel has room for more (what was sent before is nearly all gone).
  awaitable<void> wait_writable(boost::system::error_code& ec);
  /// Sends what the peer has room for, then closes the connection so the last response still
  /// arrives even if the peer sent bytes we never read.
  awaitable<void> close_gracefully();

  /// The socket's executor.
  executor_type get_executor() { return socket_.get_executor(); }
  /// The socket's descriptor (for per-socket kernel state such as TCP_INFO).
  int native_handle() noexcept { return socket_.native_handle(); }
  /// AsyncReadStream: reads some bytes (until the read deadline).
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return socket_.async_read_some(buffers, std::forward<Token>(token));
  }
  /// Sends what the kernel takes right now, without waiting or going through the io_context
  /// (one non-blocking sendmsg); returns the bytes sent, 0 when the socket has no room.
  template <class ConstBuffers>
  std::size_t send_now(const ConstBuffers& buffers, boost::system::error_code& ec) {
    if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
    const std::size_t n = ec ? 0 : socket_.write_some(buffers, ec);
    if (ec == boost::asio::error::would_block) ec = {};
    return n;
  }
  /// AsyncWriteStream: sends some bytes; the peer has the write timeout to take them.
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    arm(steady_clock::now() + write_timeout_, SHUT_RDWR);
    return socket_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  friend class sessions;
  friend awaitable<frame_ptr> wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);
  friend awaitable<frame_ptr> park(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);
  friend awaitable<frame_ptr> paced(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);
  using resume_handler =
      boost::asio::async_result<boost::asio::use_awaitable_t<>, void(frame_ptr)>::handler_type;
  static constexpr auto relaxed = std::memory_order_relaxed;
  static constexpr auto never = steady_clock::time_point::max().time_since_epoch().count();

  void arm(steady_clock::time_point deadline, int how) noexcept;
  void wake(frame_ptr f) noexcept override;

  boost::asio::ip::tcp::socket& socket_;
  sessions& all_;
  int fd_;
  std::atomic<steady_clock::rep> deadline_{never};
  std::atomic<steady_clock::rep> waiting_since_{never};  // waiting for a frame since, or never
  std::atomic<int> how_{SHUT_RDWR};
  std::atomic<bool> expired_{false};
  steady_clock::duration write_timeout_ = std::chrono::seconds{10};
  std::optional<resume_handler> resume_;  // the coroutine parked in the hub, if any
  rate_cap pace_;                         // touched only by the coroutine
  std::list<deadline_stream*>::iterator at_;
};

/// The asynchronous twin of frame_hub::wait_newer: completes with the newest frame once its seq
/// is above `seen` and the viewer's rate cap lets it have one, or with null at shutdown or once the viewer on
/// `stream` has left. The coroutine's continuation is parked in the hub and resumed by publish through the
/// coroutine's executor, so a waiting viewer costs no thread and no timer.
awaitable<frame_ptr> wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);

/// Waits for the next connection and admits it: over --max-clients it gets 503 at once (never a
/// queue) and the wait goes on. False at shutdown. Errors such as EMFILE are logged and retried
/// after a pause, so running out of descriptors cannot spin the CPU.
awaitable<bool> accept_next(server_context& ctx, sessions& all, connection& c);

}  // namespace mjpeg::async
