#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mjpeg::test {

using namespace std::chrono_literals;

/// A parsed HTTP response (header names lower-cased).
struct response {
  int status = 0;                              ///< Status code, 0 if none arrived.
  std::map<std::string, std::string> headers;  ///< Header fields, names lower-cased.
  std::string body;                            ///< Everything after the head.
};

/// Parses "HTTP/1.1 200 OK\r\nName: value\r\n\r\n" into `r`; returns the head's length or 0.
std::size_t parse_head(const std::string& text, response& r);

/// A blocking loopback TCP connection with timeouts, for tests.
class connection {
 public:
  /// Connects to `host`:`port` (an IPv4 address; loopback unless given).
  explicit connection(unsigned short port, const std::string& host = "127.0.0.1");
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Sends all of `bytes`; false if the peer is gone.
  bool send(const std::string& bytes);
  /// Receives what arrives within `timeout` (at most `max` bytes); empty on timeout or close.
  std::string receive(std::chrono::milliseconds timeout, std::size_t max = 65536);
  /// Reads until the peer closes or `timeout` passes; returns all bytes.
  std::string read_all(std::chrono::milliseconds timeout);
  /// True once the peer closed (receive saw end of stream or a reset).
  bool closed() const { return closed_; }
  /// Sets a small receive buffer (before reading), to model a slow reader.
  void set_receive_buffer(int bytes);
  /// The socket.
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool closed_ = false;
};

/// Sends raw request bytes and returns the whole response (read until close).
response request(unsigned short port, const std::string& raw, std::chrono::milliseconds timeout = 5s);
/// GET `path` with HTTP/1.1.
response get(unsigned short port, const std::string& path, std::chrono::milliseconds timeout = 5s);

/// One multipart part.
struct part {
  std::map<std::string, std::string> headers;  ///< Part headers, names lower-cased.
  std::string body;                            ///< The JPEG bytes.
};

/// Reads a multipart/x-mixed-replace stream part by part.
class stream_reader {
 public:
  /// Connects to `host` and sends GET `path`, with `extra_headers` ("Name: value\r\n" lines) if given.
  explicit stream_reader(unsigned short port, const std::string& path = "/stream",
                         const std::string& extra_headers = "", const std::string& host = "127.0.0.1");
  /// Waits up to `timeout` for the response head; the status, or 0 if none came.
  int open(std::chrono::milliseconds timeout = 5s);
  /// The response head (after open()).
  const response& head() const { return head_; }
  /// Next part within `timeout`, or nullopt (timeout, close, malformed).
  std::optional<part> next(std::chrono::milliseconds timeout = 5s);
  /// The connection.
  connection& conn() { return conn_; }

 private:
  bool fill(std::chrono::steady_clock::time_point until);
  connection conn_;
  response head_;
  std::string boundary_;
  std::string buffer_;
};

/// Microseconds since the Unix epoch now.
std::int64_t now_us();

}  // namespace mjpeg::test
