// Issue 15, item 7, in a real browser: the viewer page opened as http://user:pass@host/ (how many
// people bookmark a camera behind --auth). A relative fetch("stats") inherits the credentials in
// the page's URL and browsers refuse such a request; the page used to say the server was busy.
// Headless Chromium (Debian's package) loads the page, and we read the DOM it ends up with.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::run_command;
using mjpeg::test::server_process;

const std::string chromium = "/usr/bin/chromium";

// As in browser_test.cpp: virtual time runs the page's timers without waiting for them.
std::vector<std::string> browser_args(const std::string& profile) {
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
          "--virtual-time-budget=4000"};
}

class PageWithCredentialsInUrl : public testing::TestWithParam<std::string> {};

TEST_P(PageWithCredentialsInUrl, StatsLoadAndTheStatusTellsTheTruth) {
  ASSERT_TRUE(std::filesystem::exists(chromium)) << "install Debian's chromium (scripts/install-deps does)";
  const std::string variant = GetParam().substr(std::string{"mjpeg_"}.size());
  // single_thread cannot answer /stats while it streams (its lesson), and virtual time stands
  // still while a request is pending, so the page's 2 s give-up never comes in headless mode.
  if (variant == "single_thread") GTEST_SKIP() << "one request at a time: /stats waits for the stream to end";
  server_process server{mjpeg::test::variant_binary(GetParam()),
                        {"--width", "640", "--height", "480", "--auth", "viewer:pa55word"}};
  const std::string url = "http://viewer:pa55word@127.0.0.1:" + std::to_string(server.port()) + "/";
  const std::string profile = std::filesystem::temp_directory_path() / ("mjpeg-chromium-auth-" + variant);

  std::filesystem::remove_all(profile);
  auto args = browser_args(profile);
  args.insert(args.end(), {"--dump-dom", url});
  const auto run = run_command(chromium, args, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& dom = run.out;

  EXPECT_EQ(mjpeg::test::text_of(dom, "size"), "640\u00d7480") << "the <img> decoded the stream: " << dom;
  const std::string fps = mjpeg::test::text_of(dom, "fps");
  ASSERT_FALSE(fps.empty()) << dom;
  ASSERT_NE(fps, "\u2013") << "/stats never answered: " << mjpeg::test::text_of(dom, "note");
  EXPECT_GT(std::stod(fps), 0.0) << "fps from /stats: " << dom;
  EXPECT_EQ(mjpeg::test::text_of(dom, "viewers"), "1") << dom;
  EXPECT_EQ(mjpeg::test::text_of(dom, "note"), "source pattern") << dom;

  // A screenshot for people to look at.
  const std::string shot = std::string{MJPEG_SCREENSHOT_DIR} + "/viewer-with-credentials-" + variant + ".png";
  std::filesystem::remove_all(profile);
  auto shot_args = browser_args(profile);
  shot_args.insert(shot_args.end(), {"--screenshot=" + shot, url});
  const auto screenshot = run_command(chromium, shot_args, 60s);
  EXPECT_EQ(screenshot.exit_code, 0) << screenshot.err;
  EXPECT_TRUE(std::filesystem::exists(shot)) << shot;
  std::filesystem::remove_all(profile);
}

INSTANTIATE_TEST_SUITE_P(Variants, PageWithCredentialsInUrl, testing::ValuesIn(mjpeg::test::variant_keys()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
