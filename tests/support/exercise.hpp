/// The binary an exercise's checks run against: the chapter's own, or the one named by
/// MJPEG_EXERCISE_BINARY (an answer built by exercises/CMakeLists.txt), and what /proc says of it.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "client.hpp"
#include "eventually.hpp"
#include "server_process.hpp"
#include "stats.hpp"

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

/// The worker processes /stats lists, in index order (none while one of them restarts).
inline std::vector<pid_t> worker_pids(unsigned short port) {
  const std::string body = get(port, "/stats").body;
  const std::regex row{R"(\{"index":\d+,"pid":(\d+))"};
  std::vector<pid_t> pids;
  for (auto it = std::sregex_iterator(body.begin(), body.end(), row); it != std::sregex_iterator(); ++it)
    pids.push_back(static_cast<pid_t>(std::stol((*it)[1])));
  for (const pid_t pid : pids)
    if (pid <= 0) return {};
  return pids;
}

/// Two viewers of the server on `port` each get a frame, and /stats then lists both under one
/// viewer id: they share one viewer_state (`why` says how, for the failure message).
inline void expect_two_viewers_share_one_viewer_state(unsigned short port, const std::string& why) {
  using namespace std::chrono_literals;
  auto viewers = open_viewers(port, 2);
  for (auto& v : viewers)
    ASSERT_TRUE(v->next());
  stats_snapshot s;
  ASSERT_TRUE(eventually([&] { return (s = read_stats(port)).viewers.size() == 2; }, 2s));
  EXPECT_EQ(s.viewers[0].id, s.viewers[1].id) << why;
}

/// The server on `port` has room for one viewer: a second one is not answered (no 503) while the
/// first keeps receiving, and is served once the first leaves (`room`: what freed up, for the
/// failure message).
inline void expect_the_next_viewer_waits_for_room(unsigned short port, const std::string& room) {
  using namespace std::chrono_literals;
  auto one = std::make_unique<stream_reader>(port);
  ASSERT_EQ(one->open(), 200);
  ASSERT_TRUE(one->next());
  stream_reader two{port};
  EXPECT_EQ(two.open(1s), 0) << "viewer two must wait, not be answered (a 503 is " << 503 << ")";
  EXPECT_TRUE(one->next()) << "viewer one keeps receiving";
  one.reset();  // viewer one leaves
  ASSERT_EQ(two.open(5s), 200) << "once " << room << " is free, the waiting viewer is served";
  EXPECT_TRUE(two.next());
}

}  // namespace mjpeg::test
