/// One encoded frame as it goes on the wire, shared by every viewer.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>

#include "mjpeg/clock.hpp"

namespace mjpeg {

/// The multipart boundary of every stream; fixed, so one frame's bytes serve every viewer.
inline constexpr std::string_view boundary = "mjpegconcurrencyframe";

/// What follows every JPEG on the wire: end of part and the next boundary, sent at once so a
/// browser shows the frame when it arrives rather than when the next one starts.
inline constexpr std::string_view part_trailer = "\r\n--mjpegconcurrencyframe\r\n";

/// One encoded frame: immutable once built, encoded once, shared by every viewer.
class frame {
 public:
  /// Takes the JPEG bytes and formats the multipart part header once.
  frame(std::uint64_t seq, wall_clock::time_point captured, std::vector<std::uint8_t> jpeg);

  /// Publication sequence number, starting at 1; gaps seen by a viewer are skipped frames.
  std::uint64_t seq() const noexcept { return seq_; }
  /// When the frame was captured.
  wall_clock::time_point captured() const noexcept { return captured_; }
  /// The JPEG bytes.
  std::span<const std::uint8_t> jpeg() const noexcept { return jpeg_; }
  /// Part header: Content-Type, Content-Length, X-Timestamp, X-Frame-Seq and the blank line.
  std::string_view part_header() const noexcept { return part_header_; }
  /// The three buffers of one part for a single gather write: header, JPEG, trailer.
  std::array<boost::asio::const_buffer, 3> buffers() const noexcept;
  /// Bytes one part takes on the wire.
  std::size_t wire_size() const noexcept;

 private:
  std::uint64_t seq_;
  wall_clock::time_point captured_;
  std::vector<std::uint8_t> jpeg_;
  std::string part_header_;
};

/// Frames travel between threads only through this pointer: shared, never copied.
using frame_ptr = std::shared_ptr<const frame>;

/// Seconds since the Unix epoch with microseconds, as in X-Timestamp ("1700000000.123456").
std::string format_timestamp(wall_clock::time_point t);

/// True when the bytes start with the JPEG SOI marker and end with EOI.
bool looks_like_jpeg(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace mjpeg
