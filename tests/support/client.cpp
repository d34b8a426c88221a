#include "client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <regex>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace mjpeg::test {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::map<std::string, std::string> parse_fields(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find("\r\n", at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    const auto colon = line.find(':');
    if (colon != std::string::npos) fields[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    at = end + 2;
  }
  return fields;
}

}  // namespace

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t parse_head(const std::string& text, response& r) {
  const auto end = text.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  const auto line_end = text.find("\r\n");
  const std::string status_line = text.substr(0, line_end);
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return 0;
  r.status = std::stoi(status_line.substr(9, 3));
  r.headers = parse_fields(text.substr(line_end + 2, end - line_end - 2));
  return end + 4;
}

connection::connection(unsigned short port, const std::string& host, int receive_buffer) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer > 0) set_receive_buffer(receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd_);
    throw std::runtime_error("not an IPv4 address: " + host);
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    throw std::runtime_error("cannot connect to port " + std::to_string(port));
  }
}

connection::~connection() {
  ::close(fd_);
}

bool connection::send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string connection::receive(std::chrono::milliseconds timeout, std::size_t max) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
  std::string out(max, '\0');
  const auto n = ::recv(fd_, out.data(), max, 0);
  if (n <= 0) {
    closed_ = true;
    return {};
  }
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string connection::read_all(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::string out;
  while (!closed_) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    out += receive(left);
  }
  return out;
}

void connection::set_receive_buffer(int bytes) {
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

response parse_response(const std::string& text) {
  response r;
  const auto head = parse_head(text, r);
  if (head != 0) r.body = text.substr(head);
  return r;
}

std::string header(const response& r, const std::string& name) {
  const auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

bool is_jpeg(const std::string& body) {
  return body.size() > 4 && static_cast<unsigned char>(body[0]) == 0xFF &&
         static_cast<unsigned char>(body[1]) == 0xD8 &&
         static_cast<unsigned char>(body[body.size() - 2]) == 0xFF &&
         static_cast<unsigned char>(body.back()) == 0xD9;
}

bool good_snapshot(const response& r) {
  const auto length = r.headers.find("content-length");
  return r.status == 200 && length != r.headers.end() && std::stoul(length->second) == r.body.size() &&
         is_jpeg(r.body);
}

response request(unsigned short port, const std::string& raw, std::chrono::milliseconds timeout,
                 const std::string& host) {
  connection c{port, host};
  c.send(raw);
  return parse_response(c.read_all(timeout));
}

response get(unsigned short port, const std::string& path, std::chrono::milliseconds timeout,
             const std::string& host) {
  return request(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n", timeout, host);
}

std::string get_request(const std::string& target, const std::string& host,
                        const std::string& extra_headers) {
  return "GET " + target + " HTTP/1.1\r\n" + (host.empty() ? "" : "Host: " + host + "\r\n") + extra_headers +
         "\r\n";
}

response request_from(const std::string& source, unsigned short port, const std::string& raw) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return {};
  }
  ::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string text;
  char chunk[65536];
  for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;)
    text.append(chunk, static_cast<std::size_t>(n));
  ::close(fd);
  return parse_response(text);
}

std::string basic_auth(const std::string& user_colon_pass, const std::string& scheme) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (const char c : user_colon_pass) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    count += 8;
    while (count >= 6)
      out += alphabet[(bits >> (count -= 6)) & 63];
  }
  if (count > 0) out += alphabet[(bits << (6 - count)) & 63];
  while (out.size() % 4 != 0)
    out += '=';
  return "Authorization: " + scheme + out + "\r\n";
}

unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), size);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

silent_upstream::silent_upstream() : fd_{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)} {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), size) != 0 || ::listen(fd_, 64) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
    ::close(fd_);
    throw std::runtime_error("silent upstream");
  }
  port_ = ntohs(addr.sin_port);
}

silent_upstream::~silent_upstream() {
  for (const int c : accepted_)
    ::close(c);
  ::close(fd_);
}

std::string silent_upstream::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/stream";
}

bool silent_upstream::accept_within(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c >= 0) accepted_.push_back(c);
  return c >= 0;
}

stream_reader::stream_reader(unsigned short port, const std::string& path, const std::string& extra_headers,
                             const std::string& host, int receive_buffer)
    : conn_{port, host, receive_buffer} {
  conn_.send("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers + "\r\n");
}

bool stream_reader::fill(std::chrono::steady_clock::time_point until) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  if (left.count() <= 0 || conn_.closed()) return false;
  const std::string more = conn_.receive(left, 256 * 1024);
  buffer_ += more;
  return !more.empty();
}

int stream_reader::open(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::size_t head = 0;
  while ((head = parse_head(buffer_, head_)) == 0)
    if (!fill(until)) return 0;
  buffer_.erase(0, head);
  const auto& type = head_.headers["content-type"];
  const auto at = type.find("boundary=");
  if (at != std::string::npos) boundary_ = "--" + type.substr(at + 9);
  return head_.status;
}

std::optional<part> stream_reader::next(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  if (boundary_.empty()) return std::nullopt;
  // Boundary line, part headers, then exactly Content-Length bytes of JPEG.
  std::size_t end = 0;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
    if (!fill(until)) return std::nullopt;
  std::size_t start = 0;
  while (buffer_.compare(start, 2, "\r\n") == 0)
    start += 2;  // CRLF that ends the previous part
  if (buffer_.compare(start, boundary_.size(), boundary_) != 0) return std::nullopt;
  const auto fields_at = buffer_.find("\r\n", start) + 2;
  part p;
  p.headers = parse_fields(buffer_.substr(fields_at, end - fields_at));
  const auto length_field = p.headers.find("content-length");
  if (length_field == p.headers.end()) return std::nullopt;
  const auto length = static_cast<std::size_t>(std::stoul(length_field->second));
  while (buffer_.size() < end + 4 + length)
    if (!fill(until)) return std::nullopt;
  p.body = buffer_.substr(end + 4, length);
  buffer_.erase(0, end + 4 + length);
  return p;
}

std::uint64_t seq_of(const part& p) {
  return std::stoull(p.headers.at("x-frame-seq"));
}

std::vector<std::unique_ptr<stream_reader>> open_viewers(unsigned short port, int n) {
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < n; ++i)
    viewers.push_back(std::make_unique<stream_reader>(port));
  for (auto& v : viewers)
    EXPECT_EQ(v->open(10s), 200);
  return viewers;
}

stalled_reader::stalled_reader(unsigned short port) : stream_reader{port, "/stream", "", "127.0.0.1", 4096} {}

bool stalled_reader::drain_to_end(std::chrono::milliseconds timeout) {
  conn().read_all(timeout);
  return conn().closed();
}

std::string local_name(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

burst_result burst(unsigned short port, std::size_t n, const std::string& request,
                   std::chrono::milliseconds timeout) {
  // Connect all at once (non-blocking), then send every request.
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  burst_result result;
  result.errors.assign(n, 0);
  result.done.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::to_string(errno));
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno != EINPROGRESS) result.errors[i] = errno;
    fds.push_back(fd);
  }
  std::vector<std::string> replies(n);
  std::vector<bool> sent(n, false);
  std::size_t open = n;
  const auto finish = [&](std::size_t i) {
    result.done[i] = true;
    ::close(fds[i]);
    --open;
  };
  for (std::size_t i = 0; i < n; ++i)
    if (result.errors[i] != 0) finish(i);
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (open > 0 && std::chrono::steady_clock::now() < until) {
    std::vector<pollfd> polls;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < n; ++i) {
      if (result.done[i]) continue;
      polls.push_back({fds[i], static_cast<short>(sent[i] ? POLLIN : POLLOUT), 0});
      which.push_back(i);
    }
    if (::poll(polls.data(), polls.size(), 200) <= 0) continue;
    for (std::size_t k = 0; k < polls.size(); ++k) {
      const std::size_t i = which[k];
      if (polls[k].revents == 0) continue;
      if (!sent[i]) {
        // Connected (or failed): send the request once; a full response must follow.
        const auto sent_bytes = ::send(fds[i], request.data(), request.size(), MSG_NOSIGNAL);
        if (sent_bytes == static_cast<ssize_t>(request.size())) {
          sent[i] = true;
          continue;
        }
        result.errors[i] = errno;
      } else {
        char buf[65536];
        const auto got = ::recv(fds[i], buf, sizeof buf, 0);
        if (got > 0) {
          replies[i].append(buf, static_cast<std::size_t>(got));
          continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got < 0) result.errors[i] = errno;
      }
      finish(i);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!result.done[i]) ::close(fds[i]);
    result.replies.push_back(parse_response(replies[i]));
  }
  return result;
}

std::map<std::uint64_t, part> parts_by_seq(unsigned short port, int count, const std::string& path) {
  std::map<std::uint64_t, part> parts;
  stream_reader viewer{port, path};
  if (viewer.open() != 200) return parts;
  for (int i = 0; i < count; ++i) {
    auto p = viewer.next();
    if (!p) break;
    parts[std::stoull(p->headers.at("x-frame-seq"))] = *p;
  }
  return parts;
}

relayed_parts read_relayed(unsigned short origin, unsigned short edge, int count, const std::string& path) {
  relayed_parts read;
  stream_reader origin_viewer{origin, path};
  if (origin_viewer.open() != 200) return read;
  std::atomic<bool> edge_done{false};
  std::thread reader{[&] {
    while (!edge_done.load())
      if (auto p = origin_viewer.next(); p)
        read.from_origin[seq_of(*p)] = std::move(*p);
      else
        break;
  }};
  read.from_edge = parts_by_seq(edge, count, path);
  edge_done.store(true);
  reader.join();
  return read;
}

int same_parts(const std::map<std::uint64_t, part>& relayed, const std::map<std::uint64_t, part>& original) {
  int same = 0;
  for (const auto& [seq, p] : relayed) {
    const auto at = original.find(seq);
    if (at == original.end()) continue;
    ++same;
    EXPECT_EQ(p.body, at->second.body) << "seq " << seq;
    EXPECT_EQ(p.headers.at("x-timestamp"), at->second.headers.at("x-timestamp")) << "seq " << seq;
  }
  return same;
}

std::string text_of(const std::string& dom, const std::string& id) {
  std::smatch m;
  const std::regex element{"id=\"" + id + "\">([^<]*)<"};
  return std::regex_search(dom, m, element) ? m[1].str() : "";
}

}  // namespace mjpeg::test
