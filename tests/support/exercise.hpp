/// The binary an exercise's checks run against: the chapter's own, or the one named by
/// MJPEG_EXERCISE_BINARY (an answer built by exercises/CMakeLists.txt), and what /proc says of it.
#pragma once

#include <sys/types.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "server_process.hpp"

namespace mjpeg::test {

/// MJPEG_EXERCISE_BINARY if set, else the build's binary of the variant `key` ("mjpeg_thread_pool").
inline std::string exercise_binary(const std::string& key) {
  const char* override_path = std::getenv("MJPEG_EXERCISE_BINARY");
  return override_path && *override_path ? std::string{override_path} : variant_binary(key);
}

/// A field of /proc/`pid`/status in its own unit ("Threads": a count, "VmSize": KiB); -1 if absent.
inline long proc_status(pid_t pid, const std::string& field) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

}  // namespace mjpeg::test
