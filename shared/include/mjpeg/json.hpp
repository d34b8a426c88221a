/// The one JSON writer: /stats, and the load generator's report.
#pragma once

#include <concepts>
#include <string>
#include <string_view>

namespace mjpeg {

/// A compact JSON writer: objects and arrays appended in order, commas handled.
///
/// A member takes its `key`; inside an array (or for the outermost value) the key is empty.
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
  /// A number with ten significant digits; NaN and infinity become null.
  json_writer& number(std::string_view key, double value);
  /// An integer, exactly (counters of bytes exceed a double's ten digits).
  template <std::integral Int>
  json_writer& number(std::string_view key, Int value) {
    prefix(key);
    out_ += std::to_string(value);
    return *this;
  }
  /// A string, escaped.
  json_writer& string(std::string_view key, std::string_view value);
  /// A boolean.
  json_writer& boolean(std::string_view key, bool value);
  /// A null.
  json_writer& null(std::string_view key);
  /// The document so far.
  const std::string& str() const noexcept { return out_; }

 private:
  json_writer& open(std::string_view key, char bracket);
  json_writer& close(char bracket);
  void prefix(std::string_view key);

  std::string out_;
  bool first_ = true;
};

/// Escapes `text` for a JSON string literal (quotes not included).
std::string json_escape(std::string_view text);

}  // namespace mjpeg
