// Exercise 2.2 (docs/02-thread-per-client.md): name each connection's thread ("client 7"), so
// that ps -L, top -H and /proc/PID/task/*/comm show the model itself: one thread per connection,
// born with it and gone when it leaves.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "client.hpp"
#include "eventually.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// The names of `pid`'s threads that start with "client ".
std::multiset<std::string> client_threads(pid_t pid) {
  std::multiset<std::string> names;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/task", ec}) {
    std::ifstream comm{task.path() / "comm"};
    std::string name;
    if (std::getline(comm, name) && name.rfind("client ", 0) == 0) names.insert(name);
  }
  return names;
}

TEST(NamedViewerThreads, EachConnectionsThreadIsNamedWhileItLasts) {
  server_process server{exercise_binary("mjpeg_thread_per_client"), small_frames()};
  constexpr std::size_t viewers = 3;
  auto open = open_viewers(server.port(), viewers);
  for (auto& v : open)
    ASSERT_TRUE(v->next());
  std::multiset<std::string> named;
  EXPECT_TRUE(eventually([&] { return (named = client_threads(server.pid())).size() >= viewers; }, 5s))
      << named.size() << " threads named \"client N\" for " << viewers << " viewers";
  EXPECT_EQ(std::set<std::string>(named.begin(), named.end()).size(), named.size())
      << "each connection's thread has its own name";
  open.clear();  // the viewers leave: so do their threads
  EXPECT_TRUE(eventually([&] { return client_threads(server.pid()).empty(); }, 5s))
      << client_threads(server.pid()).size() << " named threads left after the viewers did";
}

}  // namespace
