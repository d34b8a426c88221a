#include "mjpeg/multipart.hpp"

#include <algorithm>
#include <charconv>

namespace mjpeg::http {
namespace {

constexpr std::string_view whitespace = " \t\r";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(whitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(whitespace) - first + 1);
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  s = trim(s);
  Int value{};
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return value;
}

// Splits "Name: value" into trimmed halves; false when there is no colon or no name.
bool split_field(std::string_view line, std::string_view& name, std::string_view& value) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  name = trim(line.substr(0, colon));
  value = trim(line.substr(colon + 1));
  return !name.empty();
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Case-insensitive ASCII comparison of header names.
bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace

std::string boundary_of(std::string_view content_type) {
  // Parameters follow ';'; the name is case-insensitive, the value may be quoted.
  std::size_t at = content_type.find(';');
  while (at != std::string_view::npos) {
    const auto next = content_type.find(';', at + 1);
    const auto param =
        trim(content_type.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
    const auto eq = param.find('=');
    if (eq != std::string_view::npos && iequals(trim(param.substr(0, eq)), "boundary")) {
      auto value = trim(param.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      return std::string{value};
    }
    at = next;
  }
  return {};
}

std::optional<std::int64_t> parse_timestamp_us(std::string_view text) noexcept {
  text = trim(text);
  const auto dot = text.find('.');
  const auto secs = parse_int<std::int64_t>(text.substr(0, dot));
  if (!secs || *secs < 0) return std::nullopt;
  std::int64_t us = 0;
  if (dot != std::string_view::npos) {
    const auto fraction = text.substr(dot + 1);
    if (fraction.empty()) return std::nullopt;
    std::int64_t scale = 100'000;
    for (const char c : fraction) {
      if (c < '0' || c > '9') return std::nullopt;
      us += (c - '0') * scale;  // digits past microseconds add zero
      scale /= 10;
    }
  }
  return *secs * 1'000'000 + us;
}

bool multipart_parser::start_body(std::string_view content_type, bool chunked) {
  response_head head;
  head.status = 200;
  head.content_type = content_type;
  head.boundary = boundary_of(content_type);
  chunked_ = chunked;
  if (expect_parts(head)) return true;
  fail("not a multipart stream with a boundary: '" + head.content_type + "'");
  return false;
}

std::size_t multipart_parser::feed(std::string_view chunk, multipart_listener& listener) {
  std::size_t i = 0;
  if (!chunked_) {
    i = feed_stream(chunk, listener);
    if (!chunked_) return i;  // feed_stream stops right after a head announcing chunked encoding
  }
  // Transfer-Encoding: chunked (HTTP/1.1 servers without a length, e.g. Go's net/http): undo the
  // chunk framing and hand the payload on.
  while (i < chunk.size() && state_ != state::done && state_ != state::failed) {
    const auto rest = chunk.substr(i);
    if (chunk_state_ == chunk_state::data) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, rest.size()));
      feed_stream(rest.substr(0, n), listener);
      i += n;
      chunk_left_ -= n;
      if (chunk_left_ == 0) chunk_state_ = chunk_state::data_end;
      continue;
    }
    // The size line or the CRLF after the data: a line either way.
    const auto nl = rest.find('\n');
    const std::size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
    chunk_line_.append(rest.substr(0, take));
    i += take;
    if (chunk_line_.size() > 1024) {
      fail("chunk size line too long");
      break;
    }
    if (nl == std::string_view::npos) break;
    if (chunk_state_ == chunk_state::data_end) {
      chunk_state_ = chunk_state::size;
      chunk_line_.clear();
      continue;
    }
    std::string_view size_text{chunk_line_};
    size_text = size_text.substr(0, size_text.find_first_of(";\r\n"));
    while (!size_text.empty() && (size_text.back() == ' ' || size_text.back() == '\t'))
      size_text.remove_suffix(1);
    std::uint64_t size = 0;
    const auto [ptr, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    chunk_line_.clear();
    if (size_text.empty() || ec != std::errc{} || ptr != size_text.data() + size_text.size()) {
      fail("bad chunk size");
      break;
    }
    if (size == 0) {  // the last chunk: the stream is over
      state_ = state::done;
      break;
    }
    chunk_left_ = size;
    chunk_state_ = chunk_state::data;
  }
  return i;
}

std::size_t multipart_parser::feed_stream(std::string_view chunk, multipart_listener& listener) {
  std::size_t i = 0;
  while (i < chunk.size()) {
    switch (state_) {
      case state::done:
      case state::failed:
        return i;

      case state::response_head: {
        const std::size_t old = line_.size();
        const std::size_t take = std::min(chunk.size() - i, head_limit + 4 - std::min(old, head_limit));
        line_.append(chunk.substr(i, take));
        const auto end = line_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
        if (end == std::string::npos) {
          i += take;
          if (line_.size() > head_limit) {
            fail("response head over " + std::to_string(head_limit) + " bytes");
            listener.on_response({});
          }
          break;
        }
        i += end + 4 - old;
        line_.resize(end + 2);  // keep the last field's CRLF
        finish_response_head(listener);
        line_.clear();
        if (chunked_) return i;  // the rest goes through feed's de-chunking
        break;
      }

      case state::body: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, chunk.size() - i));
        take_body(chunk.substr(i, n));
        remaining_ -= n;
        part_.body_bytes += n;
        i += n;
        if (remaining_ == 0) {
          emit_part(listener);
          state_ = state::seek_boundary;
          after_body_ = true;
        }
        break;
      }

      case state::seek_boundary:
      case state::part_head: {
        const auto rest = chunk.substr(i);
        const auto nl = rest.find('\n');
        const std::size_t segment = nl == std::string_view::npos ? rest.size() : nl + 1;
        if (state_ == state::seek_boundary && unframed_body_) {
          part_.body_bytes += segment;
          take_body(rest.substr(0, segment));
        }
        i += segment;
        if (state_ == state::failed) return i;
        if (discarding_line_) {
          if (nl != std::string_view::npos) discarding_line_ = false;
          break;
        }
        line_.append(rest.substr(0, segment));
        if (nl == std::string_view::npos) {
          // A line longer than any delimiter (plus padding) is body or garbage: drop it to its end.
          if (state_ == state::seek_boundary && line_.size() > delimiter_.size() + 64) {
            handle_line(line_, listener);
            line_.clear();
            discarding_line_ = true;
          } else if (state_ == state::part_head && part_head_size_ + line_.size() > head_limit) {
            ++errors_.bad_headers;
            line_.clear();
            discarding_line_ = true;
            state_ = state::seek_boundary;
          }
          break;
        }
        handle_line(line_, listener);
        line_.clear();
        break;
      }
    }
  }
  return i;
}

void multipart_parser::finish_response_head(multipart_listener& listener) {
  response_head head;
  const std::string_view text = line_;
  const auto eol = text.find("\r\n");
  const auto status_line = text.substr(0, eol);
  // "HTTP/1.1 200 OK": the code is the second word.
  const auto sp = status_line.find(' ');
  if (status_line.starts_with("HTTP/") && sp != std::string_view::npos) {
    const auto code = parse_int<int>(status_line.substr(sp + 1, 3));
    if (code && *code >= 100 && *code <= 999) head.status = *code;
  }
  for (auto at = eol + 2; at < text.size();) {
    const auto next = text.find("\r\n", at);
    std::string_view name, value;
    if (split_field(text.substr(at, next - at), name, value)) {
      if (iequals(name, "content-type")) head.content_type = std::string{value};
      if (iequals(name, "transfer-encoding") && value.size() >= 7 &&
          iequals(value.substr(value.size() - 7), "chunked"))
        chunked_ = true;
    }
    at = next == std::string_view::npos ? text.size() : next + 2;
  }
  head.boundary = boundary_of(head.content_type);
  if (head.status == 0) {
    fail("malformed status line");
  } else if (!expect_parts(head)) {
    state_ = state::done;  // an error status or not a stream: nothing more to parse
  }
  listener.on_response(head);
}

bool multipart_parser::expect_parts(const response_head& head) {
  // Parts come as multipart/*, or as application/octet-stream with a boundary: the same parts
  // that this project's servers send for /stream?type=octet-stream (for WebKit's fetch()).
  const std::string_view type{head.content_type};
  if (head.status < 200 || head.status >= 300 || head.boundary.empty() ||
      !(iequals(type.substr(0, 10), "multipart/") || iequals(type.substr(0, 24), "application/octet-stream")))
    return false;
  delimiter_ = "--" + head.boundary;
  // Some servers declare the boundary with the "--" already in it and send it once.
  if (head.boundary.starts_with("--")) alt_delimiter_ = head.boundary;
  state_ = state::seek_boundary;
  return true;
}

void multipart_parser::handle_line(std::string_view line, multipart_listener& listener) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  if (state_ == state::part_head) {
    part_head_size_ += line.size() + 2;
    if (line.empty()) {
      finish_part_head();
      if (state_ == state::body && remaining_ == 0) {  // an empty part
        emit_part(listener);
        state_ = state::seek_boundary;
        after_body_ = true;
      }
      return;
    }
    std::string_view name, value;
    if (!split_field(line, name, value)) {
      part_head_bad_ = true;
      return;
    }
    if (iequals(name, "content-length")) {
      part_.content_length = parse_int<std::uint64_t>(value);
      if (!part_.content_length) part_head_bad_ = true;
    } else if (iequals(name, "x-timestamp")) {
      part_.timestamp_us = parse_timestamp_us(value);
      if (!part_.timestamp_us) part_head_bad_ = true;
    } else if (iequals(name, "x-ustreamer-grab-time")) {
      part_.grab_raw_us = parse_timestamp_us(value);
    } else if (iequals(name, "x-frame-seq")) {
      part_.seq = parse_int<std::uint64_t>(value);
      if (!part_.seq) part_head_bad_ = true;
    }
    return;
  }

  // seek_boundary: RFC 2046 allows trailing whitespace after a delimiter.
  const auto trimmed = line.substr(0, line.find_last_not_of(" \t") + 1);
  const auto is = [&](const std::string& d) { return !d.empty() && trimmed == d; };
  const auto closes = [&](const std::string& d) {
    return !d.empty() && trimmed.size() == d.size() + 2 && trimmed.starts_with(d) && trimmed.ends_with("--");
  };
  const bool close = closes(delimiter_) || closes(alt_delimiter_);
  if (is(delimiter_) || is(alt_delimiter_) || close) {
    if (unframed_body_) {
      // The delimiter line and the CRLF before it belong to the boundary, not the body.
      const std::uint64_t framing = line.size() + 2 + 2;
      part_.body_bytes = part_.body_bytes > framing ? part_.body_bytes - framing : 0;
      if (keep_) body_.resize(static_cast<std::size_t>(part_.body_bytes));
      emit_part(listener);
    }
    after_body_ = false;
    mismatch_noted_ = false;
    if (close) {
      state_ = state::done;
      return;
    }
    state_ = state::part_head;
    part_ = {};
    part_head_size_ = 0;
    part_head_bad_ = false;
    return;
  }
  if (after_body_ && !line.empty() && !mismatch_noted_) {
    // A correct Content-Length leaves exactly CRLF before the delimiter.
    ++errors_.length_mismatches;
    mismatch_noted_ = true;
  }
}

void multipart_parser::finish_part_head() {
  if (part_head_bad_) ++errors_.bad_headers;
  if (part_.content_length) {
    if (keep_ && *part_.content_length > body_limit) {
      fail("part of " + std::to_string(*part_.content_length) + " bytes over the limit");
      return;
    }
    remaining_ = *part_.content_length;
    state_ = state::body;
  } else {
    // No usable length: the body runs until the next delimiter line.
    ++errors_.missing_length;
    unframed_body_ = true;
    state_ = state::seek_boundary;
  }
}

void multipart_parser::take_body(std::string_view bytes) {
  if (!keep_ || state_ == state::failed) return;
  if (body_.size() + bytes.size() > body_limit) {
    fail("part body over " + std::to_string(body_limit) + " bytes");
    return;
  }
  body_.append(bytes);
}

void multipart_parser::emit_part(multipart_listener& listener) {
  unframed_body_ = false;
  part_.body = keep_ ? std::string_view{body_} : std::string_view{};
  listener.on_part(part_);
  part_.body = {};
  body_.clear();
}

void multipart_parser::fail(std::string why) {
  state_ = state::failed;
  failure_ = std::move(why);
}

}  // namespace mjpeg::http
