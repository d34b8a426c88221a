/// The blocking I/O machinery of the thread-based models: deadlines by poll(), graceful close, accept.
#pragma once

/// The blocking I/O machinery of the thread-based models: deadlines by poll(), graceful close, accept.
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "mjpeg/frame_hub.hpp"
#include "mjpeg/rate_cap.hpp"
#include "mjpeg/server.hpp"
#include "mjpeg/socket.hpp"
#include "mjpeg/stats.hpp"

/// Blocking socket I/O with deadlines, shared by the three thread-based variants.
///
/// Asio's blocking calls ignore SO_RCVTIMEO/SO_SNDTIMEO, so every wait here is a poll() on the
/// socket and the shutdown eventfd: a stalled peer costs at most its timeout, and shutdown wakes
/// every thread at once.
namespace mjpeg::blocking {

/// A socket as a Beast/Asio SyncReadStream and SyncWriteStream whose waits end at a deadline
/// (error timed_out) or at shutdown (error operation_aborted).
class deadline_stream {
 public:
  using clock = std::chrono::steady_clock;

  /// Wraps `socket` (switched to non-blocking mode) and watches `shutdown`.
  deadline_stream(boost::asio::ip::tcp::socket& socket, const shutdown_signal& shutdown);

  /// The socket's descriptor.
  int native_handle() const noexcept { return fd_; }

  /// Reads must complete by `deadline` (the whole request head shares one deadline).
  void read_deadline(clock::time_point deadline) noexcept { read_deadline_ = deadline; }
  /// Each write may wait at most `timeout` for the peer to take more bytes.
  void write_timeout(clock::duration timeout) noexcept { write_timeout_ = timeout; }
  /// At most `fps` frames a second to this viewer (/stream?fps=N), 0 for no cap; see wait_newer.
  void max_fps(unsigned fps) noexcept { pace_.set(fps); }

  /// Waits until the kernel has room for more (what was sent before is nearly all gone).
  void wait_writable(boost::system::error_code& ec);
  /// Sends what the peer has room for, then closes the connection so the last response still
  /// arrives even if the peer sent bytes we never read.
  void close_gracefully();

  /// SyncReadStream: reads some bytes, waiting up to the read deadline.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    iovec iov[max_iov];
    return recv_some(iov, fill(iov, buffers), ec);
  }
  /// SyncReadStream, throwing.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error{ec};
    return n;
  }
  /// SyncWriteStream: sends some bytes in one gather write, waiting up to the write timeout.
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    iovec iov[max_iov];
    return send_some(iov, fill(iov, buffers), ec);
  }
  /// SyncWriteStream, throwing.
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& buffers) {
    boost::system::error_code ec;
    const auto n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error{ec};
    return n;
  }

 private:
  static constexpr std::size_t max_iov = 16;

  template <class Buffers>
  static std::size_t fill(iovec (&iov)[max_iov], const Buffers& buffers) {
    std::size_t n = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && n < max_iov; ++it) {
      const boost::asio::const_buffer b{*it};
      if (b.size() == 0) continue;
      iov[n++] = {const_cast<void*>(b.data()), b.size()};
    }
    return n;
  }
  std::size_t recv_some(iovec* iov, std::size_t count, boost::system::error_code& ec);
  std::size_t send_some(const iovec* iov, std::size_t count, boost::system::error_code& ec);
  bool wait(short events, clock::time_point deadline, boost::system::error_code& ec);
  friend frame_ptr wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);

  int fd_;
  int shutdown_fd_;
  clock::time_point read_deadline_ = clock::time_point::max();
  clock::duration write_timeout_ = std::chrono::seconds{10};
  rate_cap pace_;
};

/// frame_hub::wait_newer for a viewer on `stream`: the newest frame once its seq is above `seen`
/// and the viewer's rate cap lets it have one, or null at shutdown or once the viewer has left
/// (looked at while no frames flow).
frame_ptr wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream);

/// Waits for the next connection and notes when it came. Returns false on shutdown. Errors such
/// as EMFILE are logged and retried after a pause, so running out of descriptors cannot spin the CPU.
bool accept_next(server_context& ctx, connection& c);

/// Serves one connection from request to close. Stream viewers are accounted in `viewer`: where
/// that object lives (a local, a thread_local) is the calling variant's choice and lesson.
void serve_client(server_context& ctx, connection c, viewer_state& viewer);

}  // namespace mjpeg::blocking
