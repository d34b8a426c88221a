#include "mjpeg/relay.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "mjpeg/http.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/multipart.hpp"

namespace mjpeg {
namespace {

using std::chrono::steady_clock;

// How long connecting and the response head may take together: a second longer than start-up
// waits for a source, so there the start-up watchdog speaks first, as for the other network sources.
constexpr auto open_deadline = source_open_timeout + std::chrono::seconds{1};

// http://[user:pass@]host[:port][/path], or a clear error for --source.
http::url parse_url(const std::string& url) {
  auto parts = http::parse_url(url);
  if (!parts)
    throw std::runtime_error("--source " + url +
                             (url.find('[') != std::string::npos ? ": bad IPv6 address" : ": no host"));
  return std::move(*parts);
}

// Another MJPEG server's stream, relayed without re-encoding: its JPEG bytes go to our viewers as
// they are, and its capture time (X-Timestamp) and seq (X-Frame-Seq) are kept when it sends them.
class http_relay final : public frame_source, private http::multipart_listener {
 public:
  http_relay(std::string url, double fps)
      : url_{std::move(url)},
        shown_{redact_source(url_)},
        parts_{parse_url(url_)},
        silence_{std::max(2.0, 3.0 / std::max(fps, 0.1))} {}
  ~http_relay() override { close(); }

  void open() override {
    close();
    // One deadline for connecting and for the response head: an upstream that accepts and never
    // answers (a wedged camera server, a host gone behind a NAT) fails this open, and the capture
    // loop tries again with backoff.
    const auto deadline = steady_clock::now() + open_deadline;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(parts_.host.c_str(), parts_.port.c_str(), &hints, &found); rc != 0)
      throw std::runtime_error("--source " + shown_ + ": " + ::gai_strerror(rc));
    std::string why = "no address";
    for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) continue;
      if (const int error = connect_before(fd, *a, deadline); error == 0) {
        fd_ = fd;
      } else {
        why = std::strerror(error);
        ::close(fd);
      }
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) throw std::runtime_error("cannot connect to " + shown_ + ": " + why);
    keep_alive(fd_);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);  // reads below poll first
    std::string request = "GET " + parts_.target + " HTTP/1.1\r\nHost: " + parts_.host + ":" + parts_.port +
                          "\r\nUser-Agent: mjpeg-concurrency-relay\r\nAccept: multipart/x-mixed-replace, "
                          "image/jpeg\r\nConnection: close\r\n";
    if (!parts_.userinfo.empty())
      request += "Authorization: " + http::basic_authorization(parts_.userinfo) + "\r\n";
    request += "\r\n";
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      close();
      throw std::runtime_error("cannot send the request to " + shown_);
    }
    parser_ = http::multipart_parser{http::multipart_parser::bodies::keep};
    failure_told_ = false;
    // Open means the upstream answered with a stream: wait for its response head, until the
    // deadline.
    char buffer[16 * 1024];
    while (parser_.current() == http::multipart_parser::state::response_head && !interrupted_.load()) {
      if (steady_clock::now() >= deadline) {
        close();
        throw std::runtime_error("--source " + shown_ + ": no response within " +
                                 std::to_string(open_deadline.count() / 1000) + " s");
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const auto n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      parser_.feed({buffer, static_cast<std::size_t>(n)}, *this);
    }
    if (parser_.current() == http::multipart_parser::state::response_head ||
        parser_.current() == http::multipart_parser::state::failed ||
        (parser_.current() == http::multipart_parser::state::done && !ready_)) {
      const std::string reason = parser_.failure().empty() ? "not an MJPEG stream" : parser_.failure();
      close();
      throw std::runtime_error("--source " + shown_ + ": " + reason);
    }
  }

  bool read(source_image& out) override {
    if (fd_ < 0) return false;
    const auto until = steady_clock::now() + std::chrono::duration<double>{silence_};
    char buffer[64 * 1024];
    while (!ready_) {
      if (interrupted_.load() || steady_clock::now() >= until) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const auto n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return false;  // the upstream closed or reset: a source loss
      parser_.feed({buffer, static_cast<std::size_t>(n)}, *this);
      if (parser_.current() == http::multipart_parser::state::failed ||
          (parser_.current() == http::multipart_parser::state::done && !ready_)) {
        if (!failure_told_)
          log::write(log::level::warning, "source %s: %s", shown_.c_str(),
                     parser_.failure().empty() ? "not an MJPEG stream" : parser_.failure().c_str());
        failure_told_ = true;
        return false;
      }
    }
    // Several parts in one read: only the newest was kept (latest frame wins).
    ready_ = false;
    out.pixels.release();
    out.jpeg = std::move(jpeg_);
    out.seq = seq_;
    out.captured = captured_;
    return true;
  }

  void close() override {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ready_ = false;
  }
  void interrupt() override { interrupted_.store(true); }
  std::string describe() const override { return shown_; }
  bool forwards() const override { return true; }

 private:
  // Connects the non-blocking `fd` to `a`, waiting until `deadline` (or an interrupt): 0 or the
  // errno that says why not (ETIMEDOUT when the upstream never completed the handshake).
  int connect_before(int fd, const addrinfo& a, steady_clock::time_point deadline) const {
    if (::connect(fd, a.ai_addr, a.ai_addrlen) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    while (!interrupted_.load()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0) return ETIMEDOUT;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 50))) <= 0) continue;
      int error = 0;
      socklen_t length = sizeof error;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
      return error;
    }
    return EINTR;
  }

  // TCP keepalive: a connection whose peer vanished without a word (power, NAT, firewall) errors
  // out after about 10 s of silence instead of lasting until the kernel's two hours.
  static void keep_alive(int fd) {
    const int on = 1, idle = 4, interval = 2, count = 3;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }

  void on_response(const http::response_head&) override {}
  void on_part(const http::part_info& part) override {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(part.body.data());
    const std::span<const std::uint8_t> body{bytes, part.body.size()};
    if (!looks_like_jpeg(body)) return;  // not a picture: skip it
    jpeg_.assign(body.begin(), body.end());
    seq_ = part.seq.value_or(0);
    captured_.reset();
    if (part.timestamp_us)
      captured_ = wall_clock::time_point{
          std::chrono::duration_cast<wall_clock::duration>(std::chrono::microseconds{*part.timestamp_us})};
    ready_ = true;
  }

  std::string url_;
  std::string shown_;  // url_ with its credentials redacted: what logs and /stats show
  http::url parts_;
  double silence_;
  int fd_ = -1;
  http::multipart_parser parser_{http::multipart_parser::bodies::keep};
  bool failure_told_ = false;
  bool ready_ = false;
  std::vector<std::uint8_t> jpeg_;
  std::uint64_t seq_ = 0;
  std::optional<wall_clock::time_point> captured_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

bool is_http_relay(std::string_view spec) noexcept {
  return spec.rfind("http://", 0) == 0;
}

std::unique_ptr<frame_source> make_http_relay(const std::string& url, double fps) {
  return std::make_unique<http_relay>(url, fps);
}

}  // namespace mjpeg
