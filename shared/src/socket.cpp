#include "mjpeg/socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "mjpeg/http.hpp"

namespace mjpeg {

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

std::uint16_t peer_port(int native_socket) noexcept {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getpeername(native_socket, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  return 0;
}

void count_accepted(server_stats& stats, int native_socket) {
  stats.connection_accepted();
  if (stats.tracing()) stats.trace(trace_event::accept, peer_port(native_socket));
}

bool peer_gone(int native_socket) noexcept {
  // POLLRDHUP: the peer sent its FIN. A viewer only ever sends its request, so end of stream
  // after it means the viewer closed (or half-closed: it can never ask for anything again).
  pollfd p{native_socket, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void reject_busy(server_stats& stats, boost::asio::ip::tcp::socket socket) {
  stats.connection_rejected();
  if (stats.tracing()) stats.trace(trace_event::reject, peer_port(socket.native_handle()));
  const std::string response = http::error_response(http::status::service_unavailable);
  // One non-blocking attempt: a small response into an empty send buffer always fits, and the
  // acceptor must never wait for a client it is turning away.
  ::send(socket.native_handle(), response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(socket.native_handle(), SHUT_WR);
  char sink[1024];
  while (::recv(socket.native_handle(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace mjpeg
