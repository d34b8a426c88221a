#include "mjpeg/frame.hpp"

#include <cinttypes>
#include <cstdio>

namespace mjpeg {

std::string format_timestamp(wall_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  char text[32];
  const int n = std::snprintf(text, sizeof text, "%lld.%06lld", static_cast<long long>(us / 1'000'000),
                              static_cast<long long>(us % 1'000'000));
  return {text, static_cast<std::size_t>(n)};
}

bool looks_like_jpeg(std::span<const std::uint8_t> bytes) noexcept {
  return bytes.size() >= 4 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[bytes.size() - 2] == 0xFF &&
         bytes[bytes.size() - 1] == 0xD9;
}

frame::frame(std::uint64_t seq, wall_clock::time_point captured, std::vector<std::uint8_t> jpeg)
    : seq_{seq}, captured_{captured}, jpeg_{std::move(jpeg)} {
  part_header_.reserve(128);
  part_header_ += "Content-Type: image/jpeg\r\nContent-Length: ";
  part_header_ += std::to_string(jpeg_.size());
  part_header_ += "\r\nX-Timestamp: ";
  part_header_ += format_timestamp(captured_);
  part_header_ += "\r\nX-Frame-Seq: ";
  part_header_ += std::to_string(seq_);
  part_header_ += "\r\n\r\n";
}

std::array<boost::asio::const_buffer, 3> frame::buffers() const noexcept {
  return {boost::asio::buffer(part_header_), boost::asio::buffer(jpeg_),
          boost::asio::buffer(part_trailer.data(), part_trailer.size())};
}

std::size_t frame::wire_size() const noexcept {
  return part_header_.size() + jpeg_.size() + part_trailer.size();
}

}  // namespace mjpeg
