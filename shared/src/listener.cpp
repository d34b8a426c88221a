#include "mjpeg/listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "mjpeg/log.hpp"

namespace mjpeg::listener {

std::string url_host(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

int inherited() {
  constexpr int first_fd = 3;  // SD_LISTEN_FDS_START
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  const bool ours = pid != nullptr && fds != nullptr && std::atol(pid) == ::getpid() && std::atoi(fds) >= 1;
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!ours) return -1;
  int listening = 0;
  socklen_t size = sizeof listening;
  if (::getsockopt(first_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening == 0)
    throw std::runtime_error("LISTEN_FDS: fd 3 is not a listening socket");
  ::fcntl(first_fd, F_SETFD, FD_CLOEXEC);
  return first_fd;
}

namespace {
using reuse_port = boost::asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
}  // namespace

void open(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, int fd, unsigned short port,
          bool share_port) {
  if (fd >= 0) {
    sockaddr_storage address{};
    socklen_t size = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    acceptor.assign(address.ss_family == AF_INET6 ? boost::asio::ip::tcp::v6() : boost::asio::ip::tcp::v4(),
                    fd);
    log::write(log::level::info, "using the listening socket from systemd; --host and --port do not apply");
    return;
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--host " + host + ": not an IP address");
  const boost::asio::ip::tcp::endpoint endpoint{address, port};
  acceptor.open(endpoint.protocol());
  acceptor.set_option(boost::asio::socket_base::reuse_address{true});
  if (share_port) acceptor.set_option(reuse_port{true});
  acceptor.bind(endpoint, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + url_host(host) + ":" + std::to_string(port) + ": " +
                             ec.message());
}

void print_url_line(std::string_view name, const boost::asio::ip::tcp::acceptor& acceptor) {
  const auto local = acceptor.local_endpoint();
  std::printf("%.*s listening on http://%s:%u/\n", static_cast<int>(name.size()), name.data(),
              url_host(local.address().to_string()).c_str(), static_cast<unsigned>(local.port()));
  std::fflush(stdout);
}

bool bound_to_loopback(const boost::asio::ip::tcp::acceptor& acceptor) {
  const auto address = acceptor.local_endpoint().address();
  return address.is_loopback() ||
         (address.is_v6() && address.to_v6().is_v4_mapped() && address.to_v6().to_v4().is_loopback());
}

}  // namespace mjpeg::listener
