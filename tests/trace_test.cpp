// --trace FILE over every variant: a viewer's events, named by its port, by the serving thread.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;
using namespace std::chrono_literals;

struct trace_record {
  double seconds = 0;
  char side = '?';
  long pid = 0;
  long tid = 0;
  unsigned port = 0;
  std::string event;
  std::uint64_t value = 0;
};

// Every record line of a trace file; a line that is neither a record nor a comment fails the test.
std::vector<trace_record> read_trace(const std::string& path) {
  std::vector<trace_record> records;
  std::ifstream in{path};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields{line};
    trace_record r;
    fields >> r.seconds >> r.side >> r.pid >> r.tid >> r.port >> r.event >> r.value;
    std::string rest;
    EXPECT_TRUE(fields && !(fields >> rest)) << "not a trace record: " << line;
    records.push_back(r);
  }
  return records;
}

unsigned local_port(int fd) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  return ntohs(address.sin_port);
}

TEST_P(EveryVariant, TraceNamesAViewerByItsPortWithEveryFrameAndTheThreadThatSentIt) {
  const scratch_dir dir;
  const std::string path = dir.path() + "/server.trace";
  server_process server{binary(), small_frames({"--trace", path})};
  std::set<std::uint64_t> received;
  unsigned port = 0;
  {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    port = local_port(viewer.conn().fd());
    for (int i = 0; i < 3; ++i) {
      const auto part = viewer.next();
      ASSERT_TRUE(part);
      received.insert(seq_of(*part));
    }
  }  // the viewer leaves
  // The trace is written as the server leaves, after its viewer's leave has been recorded.
  server.signal(SIGTERM);
  ASSERT_EQ(server.wait(5s), 0) << server.error_output();

  std::map<std::string, int> events;
  std::set<std::uint64_t> sent;
  std::set<long> threads;
  double stream_at = 0;
  double left_at = 0;
  for (const trace_record& r : read_trace(path)) {
    EXPECT_EQ(r.side, 'S');
    EXPECT_EQ(r.pid, server.pid());
    EXPECT_GT(r.tid, 0);
    if (r.port != port) continue;
    ++events[r.event];
    if (r.event == "frame") {
      sent.insert(r.value);
      threads.insert(r.tid);
      EXPECT_GE(r.seconds, stream_at);
    }
    if (r.event == "stream") stream_at = r.seconds;
    if (r.event == "left") left_at = r.seconds;
  }
  EXPECT_EQ(events["accept"], 1) << "every model records its accept under the client's port";
  EXPECT_EQ(events["stream"], 1);
  EXPECT_EQ(events["left"], 1);
  EXPECT_GE(left_at, stream_at);
  // Every frame the viewer received is in the trace under its port, sent by a server thread.
  for (const std::uint64_t seq : received)
    EXPECT_EQ(sent.count(seq), 1U) << "frame " << seq << " missing from the trace";
  EXPECT_FALSE(threads.empty());
}

}  // namespace
