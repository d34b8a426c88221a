#include "mjpeg/json.hpp"

#include <cmath>
#include <cstdio>

namespace mjpeg {

json_writer& json_writer::number(std::string_view key, double value) {
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

json_writer& json_writer::string(std::string_view key, std::string_view value) {
  prefix(key);
  out_ += '"';
  out_ += json_escape(value);
  out_ += '"';
  return *this;
}

json_writer& json_writer::boolean(std::string_view key, bool value) {
  prefix(key);
  out_ += value ? "true" : "false";
  return *this;
}

json_writer& json_writer::null(std::string_view key) {
  prefix(key);
  out_ += "null";
  return *this;
}

json_writer& json_writer::open(std::string_view key, char bracket) {
  prefix(key);
  out_ += bracket;
  first_ = true;
  return *this;
}

json_writer& json_writer::close(char bracket) {
  out_ += bracket;
  first_ = false;
  return *this;
}

void json_writer::prefix(std::string_view key) {
  if (!first_) out_ += ',';
  first_ = false;
  if (!key.empty()) {
    out_ += '"';
    out_ += json_escape(key);
    out_ += "\":";
  }
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace mjpeg
