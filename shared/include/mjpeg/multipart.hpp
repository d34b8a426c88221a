/// Reading multipart/x-mixed-replace streams: the load generator's viewers and the relay source.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mjpeg::http {

/// The response head of a stream request.
struct response_head {
  int status = 0;            ///< HTTP status code; 0 if the status line was malformed.
  std::string content_type;  ///< Content-Type value as sent.
  std::string boundary;      ///< Multipart boundary from Content-Type, without the leading "--".
};

/// What the parser learned about one part.
struct part_info {
  std::optional<std::uint64_t> content_length;  ///< Declared Content-Length, if present and numeric.
  std::uint64_t body_bytes = 0;                 ///< Body bytes consumed for this part.
  std::optional<std::int64_t> timestamp_us;     ///< X-Timestamp in microseconds since the epoch.
  std::optional<std::uint64_t> seq;             ///< X-Frame-Seq.
  std::string_view body;  ///< The body when the parser keeps bodies (valid during on_part), else empty.
  /// ustreamer's grab time (X-UStreamer-Grab-Time, asked for with ?extra_headers=1), in
  /// microseconds on CLOCK_MONOTONIC_RAW: its X-Timestamp is the send time, not the capture time.
  std::optional<std::int64_t> grab_raw_us;
};

/// Receives parser events. Called synchronously from multipart_parser::feed.
class multipart_listener {
 public:
  virtual ~multipart_listener() = default;
  /// The response head is complete (any status; the parser stops unless it is a 2xx multipart).
  virtual void on_response(const response_head& head) = 0;
  /// One part's body is complete.
  virtual void on_part(const part_info& part) = 0;
};

/// Counters of what did not look right in a stream.
struct multipart_errors {
  std::uint64_t bad_headers = 0;        ///< Malformed part header lines or oversized part heads.
  std::uint64_t missing_length = 0;     ///< Parts without a usable Content-Length (found by boundary).
  std::uint64_t length_mismatches = 0;  ///< Bytes other than CRLF between a body's end and the boundary.
};

/// Incremental parser for an HTTP response carrying multipart/x-mixed-replace.
///
/// Bytes arrive in chunks split anywhere. Parts are found by the boundary from the response's
/// Content-Type and their bodies skipped by Content-Length without copying, so the cost per
/// frame is its header, not its JPEG (unless the bodies are kept). Header names and order are not
/// assumed: fields are matched case-insensitively. A part without Content-Length is found by its
/// closing boundary line. A chunked response (Transfer-Encoding: chunked) is de-chunked first.
class multipart_parser {
 public:
  /// Where the parser is.
  enum class state {
    response_head,  ///< Reading the status line and headers.
    seek_boundary,  ///< Looking for the next "--boundary" line.
    part_head,      ///< Reading a part's header lines.
    body,           ///< Reading a body of known length.
    done,           ///< Closing boundary seen, or the response was not a stream.
    failed,         ///< Malformed response head or chunking, or a kept body over body_limit.
  };

  /// What happens to part bodies.
  enum class bodies {
    skip,  ///< Counted, never copied (the load generator).
    keep,  ///< Gathered and handed to on_part in part_info::body (the relay source).
  };

  /// Part or response heads longer than this are malformed.
  static constexpr std::size_t head_limit = 16 * 1024;
  /// A kept body longer than this fails the stream (an upstream must not exhaust our memory).
  static constexpr std::size_t body_limit = 64 * 1024 * 1024;

  /// A parser that starts at the response's status line.
  explicit multipart_parser(bodies what = bodies::skip) : keep_{what == bodies::keep} {}

  /// Skips the response head, read elsewhere: the boundary comes from its `content_type`, and
  /// `chunked` says it came with Transfer-Encoding: chunked. Call before the first feed; false
  /// (and state failed) when `content_type` is not multipart with a boundary.
  bool start_body(std::string_view content_type, bool chunked = false);

  /// Feeds the next chunk; returns the number of bytes consumed (all of them unless the parser
  /// reached done or failed).
  std::size_t feed(std::string_view chunk, multipart_listener& listener);

  /// Current state.
  state current() const noexcept { return state_; }
  /// Error counters.
  const multipart_errors& errors() const noexcept { return errors_; }
  /// Why the parser failed, if it did.
  const std::string& failure() const noexcept { return failure_; }

 private:
  enum class chunk_state { size, data, data_end };

  std::size_t feed_stream(std::string_view chunk, multipart_listener& listener);
  void finish_response_head(multipart_listener& listener);
  bool expect_parts(const response_head& head);
  void finish_part_head();
  void handle_line(std::string_view line, multipart_listener& listener);
  void take_body(std::string_view bytes);
  void emit_part(multipart_listener& listener);
  void fail(std::string why);

  bool keep_ = false;
  state state_ = state::response_head;
  std::string line_;              // the partial line (or response head) being accumulated
  bool discarding_line_ = false;  // the current line is too long to be a boundary: drop to '\n'
  std::string delimiter_;         // "--" + boundary
  std::string alt_delimiter_;     // the boundary itself, when it was declared with its "--"
  part_info part_;
  std::string body_;  // the body so far, when kept
  std::size_t part_head_size_ = 0;
  bool part_head_bad_ = false;
  bool after_body_ = false;     // seeking the boundary right after a body of known length
  bool unframed_body_ = false;  // a part without length: bytes until the boundary are its body
  bool mismatch_noted_ = false;
  std::uint64_t remaining_ = 0;
  multipart_errors errors_;
  std::string failure_;
  bool chunked_ = false;  // Transfer-Encoding: chunked
  chunk_state chunk_state_ = chunk_state::size;
  std::string chunk_line_;
  std::uint64_t chunk_left_ = 0;
};

/// Extracts the boundary parameter from a multipart Content-Type value (quotes removed), or "".
std::string boundary_of(std::string_view content_type);

/// Parses "1700000000.123456" (any number of fraction digits) into microseconds since the epoch.
std::optional<std::int64_t> parse_timestamp_us(std::string_view text) noexcept;

}  // namespace mjpeg::http
