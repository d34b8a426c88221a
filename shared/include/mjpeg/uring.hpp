/// The completion-based I/O machinery of the io_uring model: the ring, the hub's bell, reading a
/// request head from completions, a gather send in flight; the twin of blocking.hpp and async.hpp.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>

#include "mjpeg/frame_hub.hpp"
#include "mjpeg/http.hpp"

/// io_uring with liburing: one ring per server, submissions batched, completions reaped together.
///
/// Nothing here waits on a socket: a wait is a submission whose completion arrives later, tagged
/// with the user data that says whose it is. Deadlines are not a timeout per operation: the
/// variant's tick (a timeout completion every 100 ms) shuts the socket of each connection past
/// its deadline, which completes its pending operation with an error, as async's watchdog does.
namespace mjpeg::uring {

/// One io_uring instance: a submission queue and a completion queue shared with the kernel.
class ring {
 public:
  /// A ring with room for `entries` submissions at once. Throws std::runtime_error with one line
  /// saying why when the kernel refuses io_uring (ENOSYS, EPERM: seccomp in containers,
  /// kernel.io_uring_disabled).
  explicit ring(unsigned entries);
  /// Leaves the ring; the kernel cancels what is still pending.
  ~ring();
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;

  /// A free submission entry, tagged with `user_data`; submits what is queued first when the
  /// queue is full, so a burst of sends larger than the ring still goes out.
  io_uring_sqe& prepare(std::uint64_t user_data);
  /// Submits everything queued in one system call and waits until at least one completion is
  /// there; then calls `handle(user_data, result)` for every completion and marks them seen.
  template <class Handler>
  void submit_and_reap(Handler&& handle) {
    submit_and_wait();
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(cqe->user_data, cqe->res);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
  }
  /// System calls that entered the kernel for this ring (io_uring_enter), for the chapter's count.
  std::uint64_t enters() const noexcept { return enters_; }

 private:
  void submit_and_wait();
  io_uring ring_{};
  std::uint64_t enters_ = 0;
};

/// The hub's bell: a hub_waiter whose wake rings an eventfd the ring reads, so a published frame
/// arrives among the completions like any other event.
class hub_bell : private hub_waiter {
 public:
  /// A bell for waits on `hub`.
  explicit hub_bell(frame_hub& hub);
  /// Leaves the hub (if still parked there) and closes the eventfd.
  ~hub_bell() override;
  hub_bell(const hub_bell&) = delete;
  hub_bell& operator=(const hub_bell&) = delete;

  /// Queues on `r` the read of the bell tagged `user_data`, and parks the bell in the hub until
  /// a frame newer than `seen` exists (rung at once if one does, or if the hub is closed).
  void arm(ring& r, std::uint64_t user_data, std::uint64_t seen);

 private:
  void wake(frame_ptr f) noexcept override;
  frame_hub& hub_;
  int fd_;
  std::uint64_t rung_ = 0;      // the read's destination
  std::atomic<int> waking_{0};  // waits armed whose wake has not finished
};

/// A request head read from receive completions: Beast's parser fed by hand, with the same
/// outcomes as http::async_read_header (end_of_stream, partial_message, header_limit, …).
class request_reader {
 public:
  /// Where the next receive puts its bytes (as much room as Beast's own read asks for, so the
  /// parser sees the same pieces and gives the same verdicts).
  boost::asio::mutable_buffer room() { return buffer_.prepare(boost::beast::read_size(buffer_, 65536)); }
  /// Takes the result of a receive into room() (bytes, 0 at end of stream, or -errno). True when
  /// the head is complete or failed (then `ec` says how).
  bool received(int result, boost::beast::error_code& ec);
  /// The parser, for plan_request.
  const http::request_parser& parser() const noexcept { return parser_; }
  /// The bytes received and not parsed, for plan_request.
  const boost::beast::flat_buffer& buffer() const noexcept { return buffer_; }

 private:
  http::request_parser parser_;
  boost::beast::flat_buffer buffer_;
};

/// One gather send in flight: the msghdr and iovecs a sendmsg submission points to (they must
/// stay put until its completion), advanced past what a short send took.
class gather {
 public:
  /// Points at `buffers` (which must outlive the send).
  template <std::size_t N>
  void set(const std::array<boost::asio::const_buffer, N>& buffers) noexcept {
    static_assert(N <= 3);
    count_ = 0;
    for (const auto& b : buffers)
      if (b.size() > 0) iov_[count_++] = {const_cast<void*>(b.data()), b.size()};
    first_ = 0;
  }
  /// Makes `sqe` the sendmsg of what is left, on `fd`.
  void prepare(io_uring_sqe& sqe, int fd) noexcept;
  /// Takes `sent` bytes off the front; true when nothing is left.
  bool advance(std::size_t sent) noexcept;

 private:
  std::array<iovec, 3> iov_{};
  std::size_t first_ = 0;
  std::size_t count_ = 0;
  msghdr msg_{};
};

}  // namespace mjpeg::uring
