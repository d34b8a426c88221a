#include "mjpeg/blocking.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "mjpeg/freshness.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/reply.hpp"

namespace mjpeg::blocking {
namespace {

using boost::system::error_code;
namespace asio_error = boost::asio::error;

error_code errno_code(int e) {
  return {e, boost::system::system_category()};
}

}  // namespace

deadline_stream::deadline_stream(boost::asio::ip::tcp::socket& socket, const shutdown_signal& shutdown)
    : fd_{socket.native_handle()}, shutdown_fd_{shutdown.fd()} {
  error_code ignored;
  socket.non_blocking(true, ignored);
}

bool deadline_stream::wait(short events, clock::time_point deadline, error_code& ec) {
  pollfd fds[2] = {{fd_, events, 0}, {shutdown_fd_, POLLIN, 0}};
  for (;;) {
    const auto now = clock::now();
    if (now >= deadline) {
      ec = asio_error::timed_out;
      return false;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    const int timeout = left > 60'000 ? 60'000 : static_cast<int>(left);
    const int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      ec = errno_code(errno);
      return false;
    }
    if (n <= 0) continue;
    if (fds[1].revents != 0) {
      ec = asio_error::operation_aborted;
      return false;
    }
    if (fds[0].revents != 0) return true;  // ready, or an error the next call will report
  }
}

std::size_t deadline_stream::recv_some(iovec* iov, std::size_t count, error_code& ec) {
  ec = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  for (;;) {
    const auto n = ::recvmsg(fd_, &msg, 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) {
      ec = asio_error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = errno_code(errno);
      return 0;
    }
    if (!wait(POLLIN, read_deadline_, ec)) return 0;
  }
}

std::size_t deadline_stream::send_some(const iovec* iov, std::size_t count, error_code& ec) {
  ec = {};
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    // MSG_NOSIGNAL: a viewer that vanished is an error code here, never a SIGPIPE.
    const auto n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = errno_code(errno);
      return 0;
    }
    if (!wait(POLLOUT, clock::now() + write_timeout_, ec)) return 0;
  }
}

void deadline_stream::wait_writable(error_code& ec) {
  ec = {};
  wait(POLLOUT, clock::now() + write_timeout_, ec);
}

void deadline_stream::close_gracefully() {
  // Half-close, then drain briefly: closing with unread input would send a reset that can
  // destroy the response before the peer reads it.
  ::shutdown(fd_, SHUT_WR);
  const auto until = clock::now() + std::chrono::milliseconds{200};
  char sink[4096];
  error_code ec;
  read_deadline(until);
  for (std::size_t drained = 0; drained < 64 * 1024;) {
    iovec iov{sink, sizeof sink};
    const auto n = recv_some(&iov, 1, ec);
    if (ec) break;
    drained += n;
  }
}

frame_ptr wait_newer(frame_hub& hub, std::uint64_t seen, deadline_stream& stream) {
  // A viewer with a rate cap (?fps=N) first sits out the rest of its period, watching for the
  // peer leaving and for shutdown; the frames published meanwhile are skipped at the hub. With
  // no cap, or once the period is over, the wait below returns at once (no system call).
  error_code ec;
  if (stream.wait(POLLRDHUP, stream.pace_.due(), ec) || ec != asio_error::timed_out) return nullptr;
  // While frames flow this is the hub's wait and nothing more. While they do not, look at the
  // socket once a second, so a viewer who left meanwhile frees its thread and its slot.
  for (;;) {
    if (frame_ptr f = hub.wait_newer_for(seen, std::chrono::seconds{1})) {
      stream.pace_.took(std::chrono::steady_clock::now());
      return f;
    }
    if (hub.closed() || peer_gone(stream.native_handle())) return nullptr;
  }
}

bool accept_next(server_context& ctx, connection& c) {
  const int listen_fd = ctx.acceptor.native_handle();
  error_code ec;
  ctx.acceptor.non_blocking(true, ec);
  bool told = false;
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {ctx.shutdown.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return false;
    if (fds[1].revents != 0 || ctx.shutdown.triggered()) return false;
    if (fds[0].revents == 0) continue;
    ctx.acceptor.accept(c.socket, ec);
    if (!ec) {
      c.accepted = steady_clock::now();
      count_accepted(ctx.stats, c.socket.native_handle());
      return true;
    }
    if (ec == asio_error::would_block || ec == asio_error::try_again || ec == asio_error::connection_aborted)
      continue;
    // Out of descriptors or memory: the pending connection stays queued and poll would report
    // it again at once. Pause instead of spinning, and say so once.
    if (!told) log::write(log::level::error, "accept: %s; pausing", ec.message().c_str());
    told = true;
    pollfd stop{ctx.shutdown.fd(), POLLIN, 0};
    ::poll(&stop, 1, 100);
  }
}

namespace {

// The stream: preamble, then whatever frame is newest each time the viewer can take one.
void stream_frames(server_context& ctx, camera_feed& camera, deadline_stream& stream, viewer_state& viewer,
                   std::string peer, http::stream_type type) {
  const viewer_scope scope{camera.stats, viewer, std::move(peer)};
  error_code ec;
  const std::string preamble = http::stream_preamble(type);
  boost::asio::write(stream, boost::asio::buffer(preamble), ec);
  freshness_gate gate{stream.native_handle(), seconds(ctx.opts.send_timeout), ctx.opts.freshness_gate};
  while (!ec) {
    frame_ptr f = wait_newer(camera.hub, gate.after(viewer.last_seq.load(std::memory_order_relaxed)), stream);
    if (!f) break;  // shutdown, or the viewer left
    // Wait until the kernel has taken the previous frame, then send the newest one: frames
    // published meanwhile are skipped rather than queued, so a slow viewer sees fresh frames.
    stream.wait_writable(ec);
    if (ec) break;
    f = camera.hub.latest();
    // Only a whole frame the path can deliver fresh; otherwise a newer one later (freshness.hpp).
    if (const auto v = gate.check(*f); v != freshness_gate::verdict::send) {
      if (v == freshness_gate::verdict::stalled) {
        ec = boost::asio::error::timed_out;
        break;
      }
      continue;
    }
    boost::asio::write(stream, f->buffers(), ec);
    if (!ec) camera.stats.frame_sent(viewer, *f);
  }
  viewer.ended = end_reason_of(ec);
}

}  // namespace

void serve_client(server_context& ctx, connection c, viewer_state& viewer) {
  tune_for_streaming(c.socket.native_handle());
  deadline_stream stream{c.socket, ctx.shutdown};

  // Read the request head; a client that dawdles past --header-timeout (from accept) gets 408.
  boost::beast::flat_buffer buffer;
  http::request_parser parser;
  error_code ec;
  stream.read_deadline(c.accepted + seconds(ctx.opts.header_timeout));
  boost::beast::http::read_header(stream, buffer, parser, ec);
  const auto plan = plan_request(ctx, ec, parser, buffer, c.socket);

  // Answer it; a viewer that stops taking bytes is dropped after --send-timeout.
  stream.write_timeout(seconds(ctx.opts.send_timeout));
  stream.max_fps(plan.max_fps);
  if (plan.what == http::resource::none) return;
  if (plan.what == http::resource::stream && !plan.head_only) {
    stream_frames(ctx, ctx.camera(plan), stream, viewer, peer_name(c.socket), plan.type);
    return;
  }
  const reply r = make_reply(plan, ctx);
  boost::asio::write(stream, r.buffers(), ec);
  if (!ec) stream.close_gracefully();
}

}  // namespace mjpeg::blocking
