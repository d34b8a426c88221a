// Exercise 4b.2 (docs/04b-readiness-and-completion.md): the io_uring server says, as it stops, how
// many completions its system calls carried: one call for many sends is the model's whole claim.

#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <string>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(CompletionsPerSystemCall, ManyViewersMakeManyCompletionsPerCall) {
  server_process server{exercise_binary("mjpeg_io_uring"), small_frames()};
  {
    // Twenty viewers take twenty frames each: each frame's twenty sends go in one submission.
    auto viewers = open_viewers(server.port(), 20);
    for (int frame = 0; frame < 20; ++frame)
      for (auto& v : viewers)
        ASSERT_TRUE(v->next()) << "frame " << frame;
  }
  server.signal(SIGTERM);
  ASSERT_EQ(server.wait(10s), 0) << server.error_output();
  std::smatch m;
  const std::string log = server.error_output();
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex{R"(io_uring: (\d+) completions in (\d+) system calls, ([0-9.]+) per call)"}))
      << "no line \"io_uring: N completions in M system calls, X per call\" as it stopped:\n"
      << log;
  EXPECT_GE(std::stoull(m[1].str()), 400u) << "at least a completion per frame sent";
  // With twenty viewers the call that carries a frame's sends reaps about twenty completions; the
  // one that waits for the next frame, and those of accepts and requests, one or two (here about
  // six a call in all; a readiness server makes a system call per send).
  EXPECT_GE(std::stod(m[3].str()), 3.0) << m[0].str();
}

}  // namespace
