// trace_log: records kept per thread, written sorted by time as whole lines, appended.

#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mjpeg/trace.hpp"

#include "server_process.hpp"

namespace {

using mjpeg::trace_event;
using mjpeg::trace_log;

std::vector<std::string> lines_in(const std::string& path) {
  std::ifstream in{path};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  return lines;
}

TEST(TraceLog, PortOfReadsTheLastColon) {
  EXPECT_EQ(mjpeg::port_of("127.0.0.1:40123"), 40123);
  EXPECT_EQ(mjpeg::port_of("[::1]:8080"), 8080);
  EXPECT_EQ(mjpeg::port_of("?"), 0);
  EXPECT_EQ(mjpeg::port_of("host:99999"), 0);
  EXPECT_EQ(mjpeg::port_of("host:12x"), 0);
}

TEST(TraceLog, ThreadsRecordApartAndTheFileIsSortedByTimeWithEachThreadsId) {
  const mjpeg::test::scratch_dir dir;
  const std::string path = dir.path() + "/trace";
  const auto t0 = std::chrono::steady_clock::now();
  {
    trace_log trace{path};
    // Two threads record interleaved times; the file must come out in time order.
    const auto record = [&](std::uint16_t port, int offset) {
      for (int i = 0; i < 100; ++i)
        trace.record(trace_event::frame, port, static_cast<std::uint64_t>(i),
                     t0 + std::chrono::milliseconds{2 * i + offset});
    };
    std::thread a{record, 1001, 0};
    std::thread b{record, 1002, 1};
    a.join();
    b.join();
  }  // written here
  const auto lines = lines_in(path);
  ASSERT_EQ(lines.size(), 200U);
  double last = 0;
  std::set<std::pair<unsigned, long>> port_tid;
  for (const std::string& line : lines) {
    std::istringstream fields{line};
    double seconds = 0;
    char side = 0;
    long pid = 0;
    long tid = 0;
    unsigned port = 0;
    std::string event;
    std::uint64_t value = 0;
    ASSERT_TRUE(fields >> seconds >> side >> pid >> tid >> port >> event >> value) << line;
    EXPECT_GE(seconds, last) << line;
    last = seconds;
    EXPECT_EQ(side, 'S');
    EXPECT_EQ(pid, ::getpid());
    EXPECT_EQ(event, "frame");
    port_tid.insert({port, tid});
  }
  // Each port was recorded by one thread, and the two threads' ids differ.
  ASSERT_EQ(port_tid.size(), 2U);
  EXPECT_NE(port_tid.begin()->second, std::next(port_tid.begin())->second);

  // A second trace into the same file appends (worker processes share one file).
  {
    trace_log trace{path, 'C'};
    trace.record(trace_event::connect, 7, 0);
  }
  const auto after = lines_in(path);
  ASSERT_EQ(after.size(), 201U);
  EXPECT_NE(after.back().find(" C "), std::string::npos) << after.back();
  EXPECT_NE(after.back().find(" 7 connect 0"), std::string::npos) << after.back();
}

}  // namespace
