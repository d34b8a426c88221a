// The viewer page in a real browser: headless Chromium (Debian's package) loads "/", runs its
// JavaScript for a few seconds of virtual time, and we read the resulting DOM. The page writes
// the decoded image size and the measured fps into its status line, so the DOM tells whether the
// stream reached the browser as JPEG frames it could decode, and whether /stats answered.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::run_command;
using mjpeg::test::server_process;

const std::string chromium = "/usr/bin/chromium";

// Virtual time lets the page's timers run for 4 s without waiting 4 s, but it stands still
// while a request is pending; with single_thread, /stats stays pending for good, so that page
// gets a plain 5 s timeout instead.
std::vector<std::string> browser_args(const std::string& profile, bool virtual_time) {
  return {"--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--disable-quic",
          "--user-data-dir=" + profile,
          "--window-size=800,680",
          virtual_time ? "--virtual-time-budget=4000" : "--timeout=5000"};
}

// The screenshot shows the test card where the <img> is: its colour bars are many distinct,
// saturated colours, where an empty or broken image is one flat colour.
bool shows_test_card(const std::string& png) {
  const cv::Mat shot = cv::imread(png, cv::IMREAD_COLOR);
  if (shot.empty()) return false;
  const cv::Mat area = shot(cv::Rect{100, 150, 600, 300} & cv::Rect{0, 0, shot.cols, shot.rows});
  cv::Scalar mean, stddev;
  cv::meanStdDev(area, mean, stddev);
  return stddev[0] > 30 && stddev[1] > 30 && stddev[2] > 30;
}

class Browser : public testing::TestWithParam<std::string> {};

TEST_P(Browser, PageShowsTheDecodedStreamAndStats) {
  ASSERT_TRUE(std::filesystem::exists(chromium)) << "install Debian's chromium (scripts/install-deps does)";
  const std::string variant = GetParam().substr(std::string{"mjpeg_"}.size());
  server_process server{mjpeg::test::variant_binary(GetParam()), {"--width", "640", "--height", "480"}};
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  const std::string profile = std::filesystem::temp_directory_path() / ("mjpeg-chromium-" + variant);
  std::filesystem::remove_all(profile);

  const bool one_at_a_time = variant == "single_thread";
  auto args = browser_args(profile, !one_at_a_time);
  args.insert(args.end(), {"--dump-dom", url});
  const auto run = run_command(chromium, args, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& dom = run.out;

  EXPECT_NE(dom.find("<b>" + variant + "</b>"), std::string::npos) << dom;
  if (one_at_a_time) {
    // The lesson, in the browser: the one thread is busy streaming, so /stats never answers.
    EXPECT_EQ(mjpeg::test::text_of(dom, "fps"), "\u2013") << dom;
  } else {
    EXPECT_EQ(mjpeg::test::text_of(dom, "size"), "640\u00d7480")
        << "the <img> decoded the stream at the configured size";
    const std::string fps = mjpeg::test::text_of(dom, "fps");
    ASSERT_FALSE(fps.empty()) << dom;
    EXPECT_GT(std::stod(fps), 0.0) << "fps from /stats";
    EXPECT_EQ(mjpeg::test::text_of(dom, "note"), "source pattern");
  }

  // A screenshot for people (the README's picture comes from this test).
  const std::string shot = std::string{MJPEG_SCREENSHOT_DIR} + "/viewer-" + variant + ".png";
  std::filesystem::remove_all(profile);
  auto shot_args = browser_args(profile, !one_at_a_time);
  shot_args.insert(shot_args.end(), {"--screenshot=" + shot, url});
  const auto screenshot = run_command(chromium, shot_args, 60s);
  EXPECT_EQ(screenshot.exit_code, 0) << screenshot.err;
  EXPECT_TRUE(shows_test_card(shot)) << shot;
  std::filesystem::remove_all(profile);
}

INSTANTIATE_TEST_SUITE_P(Variants, Browser, testing::ValuesIn(mjpeg::test::variant_keys()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
