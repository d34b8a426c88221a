#include "mjpeg/uring.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

namespace mjpeg::uring {

ring::ring(unsigned entries) {
  // liburing returns -errno. ENOSYS: a kernel without io_uring or a seccomp filter that denies
  // it (Docker's default profile); EPERM: kernel.io_uring_disabled or a filter that says so.
  if (const int rc = io_uring_queue_init(entries, &ring_, 0); rc < 0) {
    const std::string why = std::strerror(-rc);
    throw std::runtime_error("io_uring is not available here (" + why +
                             "): the kernel, a seccomp filter or kernel.io_uring_disabled refuses it");
  }
}

ring::~ring() {
  io_uring_queue_exit(&ring_);
}

io_uring_sqe& ring::prepare(std::uint64_t user_data) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // The queue is full: hand it to the kernel now (completions wait in the completion queue).
    ++enters_;
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data64(sqe, user_data);
  return *sqe;
}

void ring::submit_and_wait() {
  for (;;) {
    ++enters_;
    const int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc >= 0 || (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)) return;
  }
}

hub_bell::hub_bell(frame_hub& hub) : hub_{hub}, fd_{::eventfd(0, EFD_CLOEXEC)} {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

hub_bell::~hub_bell() {
  // publish wakes the waiters it took after unlocking, so a wake may still be on its way when
  // cancel finds nothing parked: wait for it (an eventfd write, it never blocks) before closing.
  hub_.cancel(*this);
  while (waking_.load(std::memory_order_acquire) > 0)
    std::this_thread::yield();
  ::close(fd_);
}

void hub_bell::arm(ring& r, std::uint64_t user_data, std::uint64_t seen) {
  io_uring_prep_read(&r.prepare(user_data), fd_, &rung_, sizeof rung_, 0);
  waking_.fetch_add(1, std::memory_order_relaxed);
  hub_.async_wait_newer(seen, *this);
}

void hub_bell::wake(frame_ptr) noexcept {
  // The frame itself is not handed on: the ring's side asks the hub for the latest one when it
  // reads the bell, and a frame published meanwhile is simply the newer one it gets.
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof one);
  waking_.fetch_sub(1, std::memory_order_release);
}

bool request_reader::received(int result, boost::beast::error_code& ec) {
  namespace bhttp = boost::beast::http;
  if (result < 0) {
    ec = {-result, boost::system::system_category()};
    return true;
  }
  if (result == 0) {
    // As Beast's read: nothing at all is end_of_stream, half a head is partial_message.
    if (!parser_.got_some()) {
      ec = bhttp::error::end_of_stream;
    } else {
      http::request_parser& p = parser_;
      p.put_eof(ec);
      if (!ec) ec = bhttp::error::partial_message;
    }
    return true;
  }
  buffer_.commit(static_cast<std::size_t>(result));
  while (!parser_.is_header_done()) {
    const std::size_t used = parser_.put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return true;
    if (used == 0) return false;
  }
  return true;
}

void gather::prepare(io_uring_sqe& sqe, int fd) noexcept {
  msg_ = {};
  msg_.msg_iov = iov_.data() + first_;
  msg_.msg_iovlen = count_ - first_;
  io_uring_prep_sendmsg(&sqe, fd, &msg_, MSG_NOSIGNAL);
}

bool gather::advance(std::size_t sent) noexcept {
  while (first_ < count_ && sent >= iov_[first_].iov_len) {
    sent -= iov_[first_].iov_len;
    ++first_;
  }
  if (first_ == count_) return true;
  iov_[first_].iov_base = static_cast<char*>(iov_[first_].iov_base) + sent;
  iov_[first_].iov_len -= sent;
  return false;
}

}  // namespace mjpeg::uring
