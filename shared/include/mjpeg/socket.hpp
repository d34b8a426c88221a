/// Socket helpers every model uses: an accepted connection, tuning for streaming, peer names, the 503.
#pragma once

#include <cstdint>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "mjpeg/clock.hpp"
#include "mjpeg/stats.hpp"

namespace mjpeg {

/// An accepted connection and the moment it was accepted: every deadline of a connection counts
/// from its accept, however long it then waits in a queue for a worker.
struct connection {
  /// An empty connection to accept into.
  explicit connection(boost::asio::io_context& io) : socket{io} {}
  boost::asio::ip::tcp::socket socket;  ///< The connected socket.
  steady_clock::time_point accepted;    ///< When accept returned it.
};

/// Unsent bytes the kernel may hold for one viewer before the socket stops being writable
/// (TCP_NOTSENT_LOWAT). Waiting for writability before each frame then skips frames for a slow
/// viewer instead of queueing them, so the frames it does get stay fresh.
inline constexpr int unsent_limit = 16 * 1024;

/// Sets TCP_NODELAY (each write is a whole frame) and TCP_NOTSENT_LOWAT to unsent_limit.
void tune_for_streaming(int native_socket) noexcept;

/// "address:port" of the connected peer, or "?" if it is already gone.
std::string peer_name(const boost::asio::ip::tcp::socket& socket);

/// The connected peer's port (the viewer's name in a --trace), or 0 if it is already gone.
std::uint16_t peer_port(int native_socket) noexcept;

/// Counts a connection just accepted and, with --trace, records its accept under the client's port:
/// every model's acceptor calls this, however it accepts.
void count_accepted(server_stats& stats, int native_socket);

/// True once the peer has closed or reset the connection (end of stream or an error is pending),
/// asked without blocking. Bytes it sent and we did not read do not count.
bool peer_gone(int native_socket) noexcept;

/// Answers a connection the server has no room for with 503 and Retry-After in one
/// non-blocking send (an acceptor, blocking or asynchronous, must never wait for it), counts the
/// rejection, and closes it.
void reject_busy(server_stats& stats, boost::asio::ip::tcp::socket socket);

}  // namespace mjpeg
