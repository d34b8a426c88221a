#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace mjpeg::bench {

/// A minimal JSON writer: objects and arrays appended in order, commas handled.
class json_writer {
 public:
  /// Opens an object, as a member `key` when given (inside an object) or as a value.
  json_writer& begin_object(std::string_view key = {}) { return open(key, '{'); }
  /// Closes the innermost object.
  json_writer& end_object() { return close('}'); }
  /// Opens an array, as a member `key` when given.
  json_writer& begin_array(std::string_view key = {}) { return open(key, '['); }
  /// Closes the innermost array.
  json_writer& end_array() { return close(']'); }
  /// A number member (or array element when `key` is empty); NaN and infinity become null.
  json_writer& number(std::string_view key, double value) {
    prefix(key);
    if (!std::isfinite(value)) {
      out_ += "null";
    } else {
      char text[32];
      std::snprintf(text, sizeof text, "%.10g", value);
      out_ += text;
    }
    return *this;
  }
  /// A string member.
  json_writer& string(std::string_view key, std::string_view value) {
    prefix(key);
    out_ += '"';
    for (const char c : value) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        out_ += esc;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
    return *this;
  }
  /// A boolean member.
  json_writer& boolean(std::string_view key, bool value) {
    prefix(key);
    out_ += value ? "true" : "false";
    return *this;
  }
  /// The document so far.
  const std::string& str() const noexcept { return out_; }

 private:
  json_writer& open(std::string_view key, char bracket) {
    prefix(key);
    out_ += bracket;
    first_ = true;
    return *this;
  }
  json_writer& close(char bracket) {
    out_ += bracket;
    first_ = false;
    return *this;
  }
  void prefix(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    if (!key.empty()) {
      out_ += '"';
      out_ += key;
      out_ += "\":";
    }
  }

  std::string out_;
  bool first_ = true;
};

}  // namespace mjpeg::bench
