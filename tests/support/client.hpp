#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
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
  /// Connects to `host`:`port` (an IPv4 address; loopback unless given). A `receive_buffer` in
  /// bytes (0: the system's) is set before connecting, so the advertised window is small from the
  /// start: how a slow or stalled reader is modelled.
  explicit connection(unsigned short port, const std::string& host = "127.0.0.1", int receive_buffer = 0);
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

/// Splits a whole response (head and body) as read from a socket; status 0 if the head is bad.
response parse_response(const std::string& text);
/// A header of `r` (name lower-case), or "" if absent.
std::string header(const response& r, const std::string& name);
/// True if `body` starts and ends like a JPEG (SOI … EOI).
bool is_jpeg(const std::string& body);
/// A complete snapshot response: 200, Content-Length bytes of JPEG.
bool good_snapshot(const response& r);

/// Sends raw request bytes to `host` (an IPv4 address) and returns the whole response (read until
/// close).
response request(unsigned short port, const std::string& raw, std::chrono::milliseconds timeout = 5s,
                 const std::string& host = "127.0.0.1");
/// GET `path` with HTTP/1.1 from `host`.
response get(unsigned short port, const std::string& path, std::chrono::milliseconds timeout = 5s,
             const std::string& host = "127.0.0.1");
/// The bytes of "GET `target` HTTP/1.1" with the Host header `host` (none when empty) and
/// `extra_headers` ("Name: value\r\n" lines).
std::string get_request(const std::string& target, const std::string& host,
                        const std::string& extra_headers = "");
/// Sends `raw` from the local address `source` (a loopback address other than 127.0.0.1: another
/// client, as the server sees it) to 127.0.0.1:`port`; the whole response (status 0: none).
response request_from(const std::string& source, unsigned short port, const std::string& raw);
/// "Authorization: <scheme><base64 of user_colon_pass>\r\n".
std::string basic_auth(const std::string& user_colon_pass, const std::string& scheme = "Basic ");
/// A loopback TCP port that was free a moment ago, for programs that take no "--port 0".
unsigned short free_port();

/// A TCP upstream on loopback that completes every handshake and never answers: a network source
/// that hangs while opening.
class silent_upstream {
 public:
  /// Listens on 127.0.0.1, port chosen by the system (throws if it cannot).
  silent_upstream();
  ~silent_upstream();
  silent_upstream(const silent_upstream&) = delete;
  silent_upstream& operator=(const silent_upstream&) = delete;
  /// "http://127.0.0.1:PORT/stream".
  std::string url() const;
  /// Accepts the next connection (and keeps it, silent) within `timeout`: then the server is
  /// inside its source's open. False if none came.
  bool accept_within(std::chrono::milliseconds timeout);

 private:
  int fd_;
  unsigned short port_ = 0;
  std::vector<int> accepted_;
};

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
                         const std::string& extra_headers = "", const std::string& host = "127.0.0.1",
                         int receive_buffer = 0);
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

/// X-Frame-Seq of a part.
std::uint64_t seq_of(const part& p);

/// Opens `n` stream viewers, each with its response head read (a failure to get 200 is reported
/// as a test failure).
std::vector<std::unique_ptr<stream_reader>> open_viewers(unsigned short port, int n);

/// A viewer that asks for the stream and then never reads, with a receive buffer too small for
/// one frame, set before connecting. open() still reads the response head.
class stalled_reader : public stream_reader {
 public:
  /// Connects with a 4 KiB receive buffer and asks for /stream.
  explicit stalled_reader(unsigned short port);
  /// Reads everything the server left behind; true if the stream then ended (closed or reset)
  /// within `timeout`.
  bool drain_to_end(std::chrono::milliseconds timeout);
};

/// "127.0.0.1:port" of our end of a connection: how the server lists it in /stats.
std::string local_name(int fd);

/// What each connection of a burst got.
struct burst_result {
  std::vector<response> replies;  ///< Parsed replies (status 0: none or malformed).
  std::vector<int> errors;        ///< errno of a failed send or receive, else 0.
  std::vector<bool> done;         ///< False for a connection still open at the deadline.
};

/// Connects `n` clients at once (non-blocking), sends `request` on each as soon as it is
/// connected, and reads each reply until the server closes, up to `timeout` in all.
burst_result burst(unsigned short port, std::size_t n, const std::string& request,
                   std::chrono::milliseconds timeout);

/// The text of the element with `id` in a page's DOM dump (the viewer page's status fields).
std::string text_of(const std::string& dom, const std::string& id);

/// Microseconds since the Unix epoch now.
std::int64_t now_us();

/// Up to `count` parts of the stream at `path`, keyed by their X-Frame-Seq.
std::map<std::uint64_t, part> parts_by_seq(unsigned short port, int count,
                                           const std::string& path = "/stream");

/// How many parts of `relayed` (an edge's or relay's stream) carry a seq also in `original` (the
/// upstream's); each such part must have the same JPEG bytes and X-Timestamp (a gtest failure if
/// not).
int same_parts(const std::map<std::uint64_t, part>& relayed, const std::map<std::uint64_t, part>& original);

/// An edge's (or relay's) parts and its origin's, read so that they overlap.
struct relayed_parts {
  std::map<std::uint64_t, part> from_edge;
  std::map<std::uint64_t, part> from_origin;
};

/// Up to `count` parts of the edge's stream at `path`, and the origin's stream at `path` read from
/// before the edge's first part until after its last, so every seq the edge serves was on offer at
/// the origin too, however slowly the edge starts.
relayed_parts read_relayed(unsigned short origin, unsigned short edge, int count,
                           const std::string& path = "/stream");

}  // namespace mjpeg::test
