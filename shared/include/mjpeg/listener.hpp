/// The listening socket: adopted from systemd or bound here (SO_REUSEPORT for worker processes),
/// and the URL line that says the server is ready.
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace mjpeg::listener {

/// `host` as a URL writes it: an IPv6 address in brackets.
std::string url_host(const std::string& host);

/// systemd socket activation (mjpeg-concurrency.socket): the listening socket arrives as fd 3,
/// with LISTEN_PID naming this process. Returns the fd, or -1 when there is none to adopt. The
/// variables are cleared so a process started later does not think the socket is its own; call
/// it before any thread starts (it edits the environment).
int inherited();

/// Opens and binds `host`:`port` (with SO_REUSEPORT when `share_port`: worker processes bind one
/// port together), or adopts `fd`, the socket systemd passed (if not -1). The caller listens.
void open(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, int fd, unsigned short port,
          bool share_port);

/// Prints the one line scripts read to find the server: "NAME listening on http://HOST:PORT/".
void print_url_line(std::string_view name, const boost::asio::ip::tcp::acceptor& acceptor);

/// True when `acceptor` is bound to a loopback address (v4-mapped included).
bool bound_to_loopback(const boost::asio::ip::tcp::acceptor& acceptor);

}  // namespace mjpeg::listener
