// A short run of the real mjpeg-load against the real single-threaded server: the JSON report
// has its fields and they are sane. Not a speed test: the bounds are loose on purpose.

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <cstdio>
#include <string>

#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using boost::property_tree::ptree;

std::string json_path(const char* name) {
  return "/tmp/mjpeg-load-test-" + std::to_string(::getpid()) + "-" + name + ".json";
}

ptree run_load(const std::vector<std::string>& args, const std::string& json) {
  std::vector<std::string> all = args;
  all.insert(all.end(), {"--json", json});
  const auto result = mjpeg::test::run_command(MJPEG_LOAD_BINARY, all, 30s);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  ptree report;
  boost::property_tree::read_json(json, report);
  std::remove(json.c_str());
  return report;
}

TEST(LoadGenerator, OneViewerAgainstSingleThread) {
  mjpeg::test::server_process server{MJPEG_SERVER_BINARY,
                                     {"--width", "320", "--height", "240", "--fps", "30"}};
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/stream";
  const auto report = run_load({url, "--viewers", "1", "--duration", "2", "--ramp", "0", "--warmup", "0.5",
                                "--server-pid", std::to_string(server.pid())},
                               json_path("one"));

  EXPECT_EQ(report.get<std::string>("tool"), "mjpeg-load");
  EXPECT_NEAR(report.get<double>("window_s"), 1.5, 0.1);
  EXPECT_EQ(report.get<int>("viewers.requested"), 1);
  EXPECT_EQ(report.get<int>("viewers.ok"), 1);
  EXPECT_EQ(report.get<int>("viewers.refused"), 0);
  EXPECT_EQ(report.get<int>("viewers.statuses.200"), 1);
  EXPECT_EQ(report.get<int>("viewers.streaming_at_end"), 1);
  const double fps = report.get<double>("viewers.fps.mean");
  EXPECT_GT(fps, 5);  // 30 published; a loaded CI machine may deliver fewer, never none
  EXPECT_LT(fps, 40);
  EXPECT_DOUBLE_EQ(report.get<double>("viewers.fps.min"), fps);
  EXPECT_DOUBLE_EQ(report.get<double>("viewers.jain_fps"), 1.0);
  EXPECT_GT(report.get<double>("viewers.frames"), 5);
  const double age_p50 = report.get<double>("viewers.frame_age_ms.p50");
  EXPECT_GE(age_p50, 0);
  EXPECT_LT(age_p50, 1000);
  EXPECT_GE(report.get<double>("viewers.frame_age_ms.max"), report.get<double>("viewers.frame_age_ms.p99"));
  EXPECT_EQ(report.get<int>("viewers.ttff_ms.count"), 1);
  EXPECT_GT(report.get<double>("viewers.mbytes_per_s"), 0);
  EXPECT_EQ(report.get<int>("viewers.parse_errors.length_mismatches"), 0);
  EXPECT_EQ(report.get<int>("viewers.parse_errors.missing_length"), 0);
  EXPECT_GE(report.get<double>("load_cpu_percent"), 0);
  EXPECT_TRUE(report.get<bool>("server.alive_at_end"));
  EXPECT_GT(report.get<double>("server.cpu_us_per_viewer_frame"), 0);
  EXPECT_GT(report.get<double>("server.rss_mb_max"), 1);
  EXPECT_GE(report.get<int>("server.threads_max"), 2);  // serving thread + capture at least
  EXPECT_EQ(report.get_child("per_viewer").size(), 1u);
}

TEST(LoadGenerator, CountsErrorStatusesAsRefused) {
  mjpeg::test::server_process server{MJPEG_SERVER_BINARY, {"--width", "320", "--height", "240"}};
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/no-such-page";
  const auto report =
      run_load({url, "--viewers", "2", "--duration", "1", "--ramp", "0", "--warmup", "0"}, json_path("404"));
  EXPECT_EQ(report.get<int>("viewers.refused"), 2);
  EXPECT_EQ(report.get<int>("viewers.statuses.404"), 2);
  EXPECT_EQ(report.get<double>("viewers.fps.max"), 0);
}

TEST(LoadGenerator, LaunchesAndStopsTheServerItself) {
  const std::string server = std::string{MJPEG_SERVER_BINARY} + " --port 0 --width 320 --height 240";
  const auto report =
      run_load({"--launch", server, "--viewers", "1", "--duration", "1.5", "--ramp", "0", "--warmup", "0.5"},
               json_path("launch"));
  EXPECT_EQ(report.get<int>("viewers.ok"), 1);
  EXPECT_GT(report.get<double>("viewers.frames"), 0);
  const auto pid = report.get<int>("server.pid");
  ASSERT_GT(pid, 0);
  EXPECT_GT(report.get<double>("server.cpu_us_per_viewer_frame"), 0);
  EXPECT_NE(report.get<std::string>("url").find("/stream"), std::string::npos);
  EXPECT_NE(::kill(pid, 0), 0) << "the launched server is still running";
}

TEST(LoadGenerator, RefusesNonLoopbackTargets) {
  const auto result = mjpeg::test::run_command(MJPEG_LOAD_BINARY, {"http://192.0.2.1:80/stream"}, 10s);
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("loopback"), std::string::npos) << result.err;
}

}  // namespace
