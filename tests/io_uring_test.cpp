// End-to-end tests of mjpeg-io-uring's own lesson and its one own failure: where the kernel
// refuses io_uring (a seccomp profile, kernel.io_uring_disabled) the server says so in one line
// and exits 1. The refusal is made real with strace's fault injection: io_uring_setup itself
// returns EPERM or ENOSYS, as it does in a container. (Its limits, timeouts and freshness are
// tested over every variant.) Bounded in time; asserts behaviour, never speed.

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <string>
#include <vector>

#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;

std::string binary() {
  return mjpeg::test::variant_binary("mjpeg_io_uring");
}

class RefusedRing : public testing::TestWithParam<const char*> {};

TEST_P(RefusedRing, ExitsOneWithOneLineSayingSo) {
  struct stat st {};
  if (::stat("/usr/bin/strace", &st) != 0) GTEST_SKIP() << "strace is not installed";
  const std::string fault = std::string{"io_uring_setup:error="} + GetParam();
  // Only a traced call can be injected; strace's own lines go to /dev/null, so stderr is the server's.
  const auto r = mjpeg::test::run_command("/usr/bin/strace",
                                          {"-f", "-qq", "-o", "/dev/null", "-e", "trace=io_uring_setup", "-e",
                                           "inject=" + fault, binary(), "--port", "0"},
                                          20s);
  if (r.err.find("ptrace") != std::string::npos) GTEST_SKIP() << "ptrace is not allowed here: " << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::vector<std::string> lines;
  for (std::size_t at = 0, end; at < r.err.size(); at = end + 1) {
    end = r.err.find('\n', at);
    if (end == std::string::npos) end = r.err.size();
    if (end > at) lines.push_back(r.err.substr(at, end - at));
  }
  ASSERT_EQ(lines.size(), 1U) << r.err;
  EXPECT_NE(lines[0].find("io_uring is not available here"), std::string::npos) << lines[0];
}

INSTANTIATE_TEST_SUITE_P(Errors, RefusedRing, testing::Values("EPERM", "ENOSYS"));

}  // namespace
