/// Where frames come from: the interface every source kind implements (made by source_factory).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mjpeg/camera_info.hpp"
#include "mjpeg/frame.hpp"
#include "mjpeg/image.hpp"

namespace mjpeg {

/// One picture from a source: either raw pixels to encode, or JPEG bytes to send as they are.
struct source_image {
  image pixels;                    ///< BGR picture to encode; empty when `jpeg` is set.
  std::vector<std::uint8_t> jpeg;  ///< Ready JPEG (replay, relay, bus): sent without re-encoding.
  std::uint64_t seq = 0;           ///< The origin's sequence number (relay, bus); 0 = count here.
  std::optional<wall_clock::time_point> captured;  ///< The origin's capture time (relay, bus).
};

/// How long opening a source may take (a network source that accepts and never answers, a device
/// that never delivers): start-up gives up after this.
inline constexpr std::chrono::milliseconds source_open_timeout{5000};

/// Where frames come from. read() blocks for at most about one frame interval.
class frame_source {
 public:
  virtual ~frame_source() = default;
  /// (Re)opens the device, file or stream; throws std::runtime_error with a clear message.
  virtual void open() = 0;
  /// Next picture, or false when the source failed or ended (the capture loop reopens it).
  virtual bool read(source_image& out) = 0;
  /// Releases the device (idle stop, shutdown); open() brings it back.
  virtual void close() = 0;
  /// Human-readable description for logs and /stats.
  virtual std::string describe() const = 0;
  /// True when the source sets its own pace (a camera); others are paced to --fps.
  virtual bool self_paced() const { return false; }
  /// What a camera negotiated (after open()); nullopt for every other source.
  virtual std::optional<camera_info> camera() const { return std::nullopt; }
  /// Broken frames the source received and dropped so far (a camera's truncated JPEGs).
  virtual std::uint64_t bad_frames() const { return 0; }
  /// Forwarded frames whose capture time was implausible (over an hour from now) and was replaced
  /// with the time they arrived.
  virtual std::uint64_t times_replaced() const { return 0; }
  /// Makes a read() in progress return soon (shutdown); from any thread.
  virtual void interrupt() {}
  /// True when every picture is another server's frame, forwarded as it arrives: neither paced
  /// nor dropped here (the origin already paced it).
  virtual bool forwards() const { return false; }
};

/// What make_source needs to know.
struct source_config {
  std::string spec = "pattern";  ///< "pattern", a camera index, a JPEG file or folder, or a path/URL.
  int width = 640;               ///< Requested width (pattern draws exactly this).
  int height = 480;              ///< Requested height.
  double fps = 30;               ///< Requested frame rate.
  bool encode = false;           ///< Re-encode a camera's frames even when it delivers MJPEG (--encode).
  std::string bus_keys{};        ///< CurveZMQ key directory for a bus source; empty = no keys.
};

/// JPEG files replayed as they are: `path` is one .jpg/.jpeg file or a folder of them.
std::unique_ptr<frame_source> make_replay_source(std::string path);

/// A video file or network stream through cv::VideoCapture (FFmpeg first), decoded for encoding:
/// made by the OpenCV module (opencv_module.hpp), loaded now if it is not yet. Throws, naming the
/// package to install, when the module is missing.
std::unique_ptr<frame_source> make_opencv_source(std::string spec);

/// A V4L2 camera (`device` is "/dev/videoN" or any device path, /dev/v4l/by-id/… links included):
/// read directly when it offers MJPEG, its own JPEG bytes published and broken ones dropped and
/// counted (v4l2_camera.hpp); through OpenCV's V4L2 backend in the OpenCV module, pixels + encode,
/// when it has no MJPEG or `config.encode` asks for it. Throws with the reason when `device` is no capture
/// device.
std::unique_ptr<frame_source> make_camera_source(std::string device, const source_config& config);

/// True when `bytes` can be a whole JPEG from a camera of `width`×`height`: SOI first, EOI last
/// (zero padding after it allowed), a length between a minimal JPEG and the raw image size.
/// Sets `length` to the JPEG's length without the padding.
bool plausible_camera_jpeg(std::span<const std::uint8_t> bytes, int width, int height, std::size_t& length);

/// `spec` fit to show in /stats, on the page and in logs: the userinfo of every URL in it
/// ("rtsp://user:pass@cam/") and the values of query parameters that look like secrets (token, key,
/// password, secret, auth, sig, session, …) become "***".
std::string redact_source(std::string_view spec);

}  // namespace mjpeg
