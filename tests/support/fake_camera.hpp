/// The fake V4L2 camera's set-up (tests/support/fake_v4l2.cpp): the environment the next server
/// inherits, and folders of distinct test-card JPEGs for it (or any folder source) to serve.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "server_process.hpp"

namespace mjpeg::test {

/// Environment variables set for the servers a test starts, unset again when this goes.
class scoped_env {
 public:
  scoped_env() = default;
  /// Unsets every variable set through this.
  ~scoped_env();
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

  /// Sets `name` to `value` until this goes.
  void set(const std::string& name, const std::string& value);

 private:
  std::vector<std::string> names_;
};

/// Writes `count` distinct JPEGs of the `width`×`height` test card (frames first, first + step, …)
/// into a new folder `dir` as frame1.jpg, frame2.jpg, …; returns them byte for byte.
std::set<std::string> write_test_card_jpegs(const std::filesystem::path& dir, int width, int height,
                                            std::uint64_t first, std::uint64_t step, int count);

#ifdef MJPEG_FAKE_V4L2
/// Makes the next server see the fake camera at `device`, serving `folder`'s JPEGs as a camera of
/// `size` ("320x240") at 30 fps: the fake preloaded (after a sanitizer's runtime) and configured.
inline void use_fake_camera(scoped_env& env, const std::string& device, const std::filesystem::path& folder,
                            const std::string& size) {
  const std::string runtime = sanitizer_runtime();
  env.set("LD_PRELOAD", (runtime.empty() ? "" : runtime + ":") + MJPEG_FAKE_V4L2);
  env.set("FAKE_V4L2_PATH", device);
  env.set("FAKE_V4L2_JPEGS", folder.string());
  env.set("FAKE_V4L2_SIZE", size);
  env.set("FAKE_V4L2_FPS", "30");
}
#endif

}  // namespace mjpeg::test
