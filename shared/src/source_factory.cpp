#include "mjpeg/source_factory.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "mjpeg/bus.hpp"
#include "mjpeg/pattern.hpp"
#include "mjpeg/relay.hpp"

namespace mjpeg {
namespace {

namespace fs = std::filesystem;

bool is_camera_index(const std::string& spec, int& index) {
  const auto* end = spec.data() + spec.size();
  auto [ptr, ec] = std::from_chars(spec.data(), end, index);
  return !spec.empty() && ec == std::errc{} && ptr == end && index >= 0;
}

bool is_jpeg_path(const std::string& spec) {
  std::error_code ec;
  if (fs::is_directory(spec, ec)) return true;
  auto ext = fs::path{spec}.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg";
}

}  // namespace

std::unique_ptr<frame_source> make_source(const source_config& config) {
  if (bus::is_bus_source(config.spec))
    return bus::make_bus_source(
        config.spec, config.fps,
        config.bus_keys.empty() ? std::nullopt : std::optional<bus::key_files>{{config.bus_keys}});
  if (is_http_relay(config.spec)) return make_http_relay(config.spec, config.fps);
  if (config.spec == "pattern") return make_pattern_source(config.width, config.height);
  if (int index = 0; is_camera_index(config.spec, index))
    return make_camera_source("/dev/video" + std::to_string(index), config);
  if (std::error_code ec; config.spec.starts_with("/dev/") && !fs::is_directory(config.spec, ec))
    return make_camera_source(config.spec, config);  // /dev/videoN, /dev/v4l/by-id/…, or a clear error
  if (is_jpeg_path(config.spec)) return make_replay_source(config.spec);
  return make_opencv_source(config.spec);
}

std::string_view source_kind(const std::string& spec) {
  int index = 0;
  std::error_code ec;
  if (bus::is_bus_source(spec)) return "bus";
  if (is_http_relay(spec)) return "relay";
  if (spec == "pattern") return "pattern";
  if (is_camera_index(spec, index) || (spec.starts_with("/dev/") && !fs::is_directory(spec, ec)))
    return "device";
  if (is_jpeg_path(spec)) return "jpegs";
  return "opencv";
}

}  // namespace mjpeg
