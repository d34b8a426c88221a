/// The one interface between the server and its OpenCV module (libmjpeg-opencv.so), opened with
/// dlopen only when a source needs pixels: a camera without MJPEG, --encode, a video file, RTSP.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "mjpeg/frame_source.hpp"

namespace mjpeg {

/// Bumped whenever opencv_request, frame_source or source_image change shape: a module built from
/// other sources is refused rather than called.
inline constexpr int opencv_module_abi = 1;

/// The file name of the module, in the module directory.
inline constexpr const char* opencv_module_file = "libmjpeg-opencv.so";

/// The package that ships the module, named in the error when it is missing.
inline constexpr const char* opencv_module_package = "mjpeg-concurrency-opencv";

/// What the server asks the module for. The module links no part of the server: what it needs
/// from it (the log, the redacted spec) travels in here.
struct opencv_request {
  /// Which kind of source.
  enum class kind { camera, video };
  kind what = kind::video;  ///< A V4L2 camera through OpenCV, or a file/stream.
  std::string spec;         ///< Device path, file or URL.
  std::string shown;        ///< `spec` as logs may show it (redact_source).
  source_config config;     ///< Size, rate, --encode.
  /// Writes one log line at `level` (the value of log::level) through the server's log.
  void (*log)(int level, const char* line) = nullptr;
};

/// The module's one entry point (extern "C", so dlsym finds it by this name): a new source, not
/// opened yet, or nullptr when `abi` is not the module's own opencv_module_abi.
using opencv_make_source_fn = frame_source* (*)(int abi, const opencv_request& request);
/// The name of that entry point.
inline constexpr const char* opencv_make_source_symbol = "mjpeg_opencv_make_source";

/// Where the server looks for the module: $MJPEG_MODULE_DIR when set (and then only there), else
/// the installed directory beside the binary (../lib/<triplet>/mjpeg-concurrency), else the build
/// tree's.
std::filesystem::path opencv_module_path();

/// Asks the module (loading it on first use, and keeping it loaded) for a source; throws
/// std::runtime_error naming the module's path, dlopen's reason and the package to install when
/// it cannot be loaded.
std::unique_ptr<frame_source> make_module_source(opencv_request request);

}  // namespace mjpeg
