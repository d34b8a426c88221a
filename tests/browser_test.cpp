// The viewer page in real browsers (label `browser`, run one at a time). Two kinds of test:
//
// - Every variant in headless Chromium's one-shot mode (--dump-dom, --screenshot): the page's
//   <img> decodes the stream at its size and /stats answers, also when the page was opened as
//   http://user:pass@host/. Virtual time runs the page's timers without waiting for them.
// - The page as people use it, in Chromium (chromedriver), Firefox ESR (Marionette) and WebKitGTK
//   (WebKitWebDriver under xvfb-run), the engine closest to Safari that runs here: the picture
//   moves; the server killed and restarted, the page moves again within 12 s without a reload;
//   snapshot mode polls at the rate asked; the page reads the stream with fetch() in all three
//   (WebKit as ?type=octet-stream), so ?fps=2 gets 2 frames a second, a hidden tab drops its
//   stream (/stats shows the viewer gone within 2 s) and takes it up again when shown, and a
//   frozen picture is noticed and recovers. Screenshots land in the build tree (viewer-<engine>-….png);
//   look at them.

#include <csignal>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "browser.hpp"
#include "client.hpp"
#include "eventually.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::browser;
using mjpeg::test::engine;
using mjpeg::test::run_command;
using mjpeg::test::server_process;
using steady = std::chrono::steady_clock;

const std::vector<std::string> vga = {"--width", "640", "--height", "480"};

std::string page_url(unsigned short port, const std::string& rest = "") {
  return "http://127.0.0.1:" + std::to_string(port) + "/" + rest;
}

// The screenshot shows the test card where the <img> is: its colour bars are many distinct,
// saturated colours, where an empty or broken image is one flat colour.
bool shows_test_card(const cv::Mat& shot, const cv::Rect& area) {
  if (shot.empty()) return false;
  const cv::Rect inside = area & cv::Rect{0, 0, shot.cols, shot.rows};
  if (inside.area() == 0) return false;
  cv::Scalar mean, stddev;
  cv::meanStdDev(shot(inside), mean, stddev);
  return stddev[0] + stddev[1] + stddev[2] > 90;
}

// True when the picture inside `area` differs between two screenshots (the card's frame counter,
// clock and moving disc): the stream kept playing.
bool picture_changed(const cv::Mat& a, const cv::Mat& b, const cv::Rect& area) {
  if (a.empty() || b.empty() || a.size() != b.size()) return false;
  const cv::Rect inside = area & cv::Rect{0, 0, a.cols, a.rows};
  if (inside.area() == 0) return false;
  cv::Mat diff, changed;
  cv::absdiff(a(inside), b(inside), diff);
  cv::cvtColor(diff, diff, cv::COLOR_BGR2GRAY);
  cv::threshold(diff, changed, 40, 255, cv::THRESH_BINARY);
  return static_cast<double>(cv::countNonZero(changed)) / static_cast<double>(inside.area()) > 0.002;
}

cv::Mat decode(const std::vector<unsigned char>& png) {
  return png.empty() ? cv::Mat{} : cv::imdecode(png, cv::IMREAD_COLOR);
}

void save(const std::vector<unsigned char>& png, const std::string& name) {
  std::ofstream{std::string{MJPEG_SCREENSHOT_DIR} + "/" + name, std::ios::binary}.write(
      reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
}

// ---- Every variant, Chromium's one-shot mode ---------------------------------------------

class Browser : public testing::TestWithParam<std::string> {};

TEST_P(Browser, PageShowsTheDecodedStreamAndStats) {
  ASSERT_TRUE(std::filesystem::exists(mjpeg::test::chromium_binary)) << "install Debian's chromium";
  const std::string variant = GetParam().substr(std::string{"mjpeg_"}.size());
  server_process server{mjpeg::test::variant_binary(GetParam()), vga};
  const std::string profile = std::filesystem::temp_directory_path() / ("mjpeg-chromium-" + variant);
  std::filesystem::remove_all(profile);
  // Virtual time stands still while a request is pending; with single_thread, /stats stays
  // pending for good, so that page gets a plain 5 s timeout instead.
  const bool one_at_a_time = variant == "single_thread";
  const std::string wait = one_at_a_time ? "--timeout=5000" : "--virtual-time-budget=4000";
  const auto run =
      run_command(mjpeg::test::chromium_binary,
                  mjpeg::test::chromium_flags(profile, {wait, "--dump-dom", page_url(server.port())}), 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& dom = run.out;

  EXPECT_NE(dom.find("<b>" + variant + "</b>"), std::string::npos) << dom;
  if (one_at_a_time) {
    // The lesson, in the browser: the one thread is busy streaming, so /stats never answers, and
    // the page does not mistake a busy server for a broken stream.
    EXPECT_EQ(mjpeg::test::text_of(dom, "fps"), "\u2013") << dom;
    EXPECT_NE(dom.find("<div class=\"state\"></div>"), std::string::npos) << "a reconnecting note: " << dom;
  } else {
    EXPECT_EQ(mjpeg::test::text_of(dom, "size"), "640\u00d7480")
        << "the <img> decoded the stream at the configured size";
    const std::string fps = mjpeg::test::text_of(dom, "fps");
    ASSERT_FALSE(fps.empty()) << dom;
    EXPECT_GT(std::stod(fps), 0.0) << "fps from /stats";
    EXPECT_EQ(mjpeg::test::text_of(dom, "note"), "source pattern");
  }

  // A screenshot for people (the README's picture, docs/images/viewer.png, is this one of async).
  const std::string shot = std::string{MJPEG_SCREENSHOT_DIR} + "/viewer-" + variant + ".png";
  const cv::Rect picture{100, 150, 600, 300};
  if (one_at_a_time) {
    // --timeout shoots at the load event, and the page opens its stream after that event and its
    // look at how the browser reads one: a driven browser waits for the first frame instead.
    browser b{engine::chromium};
    b.navigate(page_url(server.port()));
    EXPECT_TRUE(mjpeg::test::eventually(
        [&] { return !b.execute("return document.getElementById('stream').dataset.frames || '';").empty(); },
        10s))
        << "no frame reached the page";
    const auto png = b.screenshot();
    save(png, "viewer-" + variant + ".png");
    EXPECT_TRUE(shows_test_card(decode(png), picture)) << shot;
    std::filesystem::remove_all(profile);
    return;
  }
  std::filesystem::remove_all(profile);
  const auto screenshot = run_command(
      mjpeg::test::chromium_binary,
      mjpeg::test::chromium_flags(profile, {wait, "--screenshot=" + shot, page_url(server.port())}), 60s);
  EXPECT_EQ(screenshot.exit_code, 0) << screenshot.err;
  EXPECT_TRUE(shows_test_card(cv::imread(shot, cv::IMREAD_COLOR), picture)) << shot;
  std::filesystem::remove_all(profile);
}

// Opened as http://user:pass@host/ (how many people bookmark a camera behind --auth): a relative
// fetch("stats") would inherit the credentials in the page's URL, and browsers refuse that.
TEST_P(Browser, PageWithCredentialsInUrlLoadsStats) {
  ASSERT_TRUE(std::filesystem::exists(mjpeg::test::chromium_binary)) << "install Debian's chromium";
  const std::string variant = GetParam().substr(std::string{"mjpeg_"}.size());
  // single_thread cannot answer /stats while it streams (its lesson), and virtual time stands
  // still while a request is pending, so the page's 2 s give-up never comes in headless mode.
  if (variant == "single_thread") GTEST_SKIP() << "one request at a time: /stats waits for the stream to end";
  auto args = vga;
  args.insert(args.end(), {"--auth", "viewer:pa55word"});
  server_process server{mjpeg::test::variant_binary(GetParam()), args};
  const std::string url = "http://viewer:pa55word@127.0.0.1:" + std::to_string(server.port()) + "/";
  const std::string profile = std::filesystem::temp_directory_path() / ("mjpeg-chromium-auth-" + variant);
  std::filesystem::remove_all(profile);
  const auto run = run_command(
      mjpeg::test::chromium_binary,
      mjpeg::test::chromium_flags(profile, {"--virtual-time-budget=4000", "--dump-dom", url}), 60s);
  std::filesystem::remove_all(profile);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::string& dom = run.out;
  EXPECT_EQ(mjpeg::test::text_of(dom, "size"), "640\u00d7480") << "the <img> decoded the stream: " << dom;
  const std::string fps = mjpeg::test::text_of(dom, "fps");
  ASSERT_FALSE(fps.empty()) << dom;
  ASSERT_NE(fps, "\u2013") << "/stats never answered: " << mjpeg::test::text_of(dom, "note");
  EXPECT_GT(std::stod(fps), 0.0) << "fps from /stats: " << dom;
  EXPECT_EQ(mjpeg::test::text_of(dom, "viewers"), "1") << dom;
  EXPECT_EQ(mjpeg::test::text_of(dom, "note"), "source pattern") << dom;
}

INSTANTIATE_TEST_SUITE_P(Variants, Browser, testing::ValuesIn(mjpeg::test::variant_keys()),
                         [](const auto& param_info) { return param_info.param; });

// ---- The page as people use it, in three engines -----------------------------------------

class Engine : public testing::TestWithParam<engine> {
 protected:
  void SetUp() override {
    if (const auto why = browser::missing(GetParam()); !why.empty()) GTEST_SKIP() << why;
    name_ = mjpeg::test::engine_name(GetParam());
  }
  // Where the first tile's picture is on a screenshot, in screenshot pixels.
  static cv::Rect picture_of(browser& b) {
    const std::string r = b.execute(
        "var r = document.getElementById('stream').getBoundingClientRect(), d = window.devicePixelRatio || 1;"
        "return [r.left, r.top, r.width, r.height].map(function (v) { return Math.round(v * d); }).join(' "
        "');");
    int x = 0, y = 0, w = 0, h = 0;
    std::istringstream{r} >> x >> y >> w >> h;
    return {x, y, w, h};
  }
  // The page's status line: empty while the picture plays.
  static std::string state_of(browser& b) {
    return b.execute("return document.querySelector('.state').textContent;");
  }
  // Waits up to 8 s for the page to say it is reconnecting; returns its status line then (or last).
  static std::string reconnecting_notice(browser& b) {
    std::string state;
    mjpeg::test::eventually(
        [&] {
          state = state_of(b);
          return state.find("reconnecting since ") == 0;
        },
        8s);
    return state;
  }
  // Two screenshots `apart`, saved as viewer-<engine>-<label>-1/2.png: did the picture move?
  bool moving(browser& b, const std::string& label, std::chrono::milliseconds apart = 1000ms) {
    const cv::Rect area = picture_of(b);
    // The first screenshot once the card is painted: on a loaded machine WebKit once painted the
    // <img> black for a moment after its first frame had loaded.
    std::vector<std::uint8_t> first;
    cv::Mat a;
    mjpeg::test::eventually(
        [&] {
          first = b.screenshot();
          a = decode(first);
          return shows_test_card(a, area);
        },
        5s);
    std::this_thread::sleep_for(apart);
    const auto second = b.screenshot();
    save(first, "viewer-" + name_ + "-" + label + "-1.png");
    save(second, "viewer-" + name_ + "-" + label + "-2.png");
    const cv::Mat c = decode(second);
    return shows_test_card(a, area) && picture_changed(a, c, area);
  }
  std::string name_;
};

TEST_P(Engine, ShowsTheMovingStreamAndStats) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), vga};
  browser b{GetParam()};
  b.navigate(page_url(server.port()));
  // Frames arrive and /stats answers (a browser on a loaded machine may take seconds to start).
  const std::regex fps{"variant async \\S+ ([0-9.]+) fps"};
  std::string probe;
  mjpeg::test::eventually(
      [&] {
        probe = b.execute(
            "var i = document.getElementById('stream');"
            "return i.naturalWidth + 'x' + i.naturalHeight + ' ' + document.body.innerText;");
        return probe.rfind("640x480 ", 0) == 0 && std::regex_search(probe, fps);
      },
      10s);
  EXPECT_EQ(probe.substr(0, probe.find(' ')), "640x480")
      << "the <img> decoded the stream at its size: " << probe;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(probe, m, fps)) << probe;
  EXPECT_GT(std::stod(m[1].str()), 0.0) << "fps from /stats: " << probe;
  EXPECT_EQ(probe.find("reconnecting"), std::string::npos)
      << "a healthy stream is not reconnected: " << probe;
  // Every engine reads the stream itself; only WebKit, which refuses a multipart body to fetch(),
  // needs the octet-stream label.
  EXPECT_EQ(b.execute("return document.getElementById('stream').dataset.reading || 'img';"),
            GetParam() == engine::webkit ? "fetch octet-stream" : "fetch multipart");
  EXPECT_TRUE(moving(b, "live")) << "the picture did not change between two screenshots a second apart";
}

TEST_P(Engine, ResumesWithoutReloadAfterTheServerRestarts) {
  auto server = std::make_unique<server_process>(mjpeg::test::variant_binary("mjpeg_async"), vga);
  const unsigned short port = server->port();
  browser b{GetParam()};
  b.navigate(page_url(port));
  ASSERT_TRUE(mjpeg::test::eventually([&] { return mjpeg::test::viewers_now(port) == 1; }, 10s));
  // A mark in the page's memory: a reload would wipe it.
  b.execute("window.still_the_same_page = 'yes'; return '';");

  server->signal(SIGKILL);
  server->wait(5s);
  server.reset();
  // The page notices and says so plainly.
  const std::string state = reconnecting_notice(b);
  EXPECT_TRUE(std::regex_search(state, std::regex{"^reconnecting since [0-9]{2}:[0-9]{2}:[0-9]{2}"}))
      << state;

  std::this_thread::sleep_for(2s);  // a real outage, long enough for a backoff or two
  server = std::make_unique<server_process>(
      mjpeg::test::variant_binary("mjpeg_async"),
      std::vector<std::string>{"--width", "640", "--height", "480", "--port", std::to_string(port)});
  const auto back = steady::now();
  bool moved = false;
  while (!moved && steady::now() - back < 12s)
    moved = moving(b, "restarted", 700ms);
  EXPECT_TRUE(moved) << "the picture did not move again within 12 s of the restart";
  EXPECT_EQ(b.execute("return window.still_the_same_page || 'reloaded';"), "yes");
  EXPECT_TRUE(mjpeg::test::eventually([&] { return state_of(b).empty(); }, 3s))
      << "the reconnecting note stays after the picture is back";
}

// What the page can do because it reads the stream itself with fetch() (WebKit as
// ?type=octet-stream): a browser's multipart <img> fires one "load" in all in WebKit (no frame
// count) and keeps its connection open after the tab is hidden in Firefox ESR and WebKit.
class ReadStream : public Engine {};

TEST_P(ReadStream, DropsItsStreamAndTakesItUpWhenShown) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), vga};
  browser b{GetParam()};
  b.navigate(page_url(server.port()));
  ASSERT_TRUE(mjpeg::test::eventually([&] { return mjpeg::test::viewers_now(server.port()) == 1; }, 10s));

  b.hide_page();
  const auto hidden = steady::now();
  EXPECT_TRUE(mjpeg::test::eventually([&] { return mjpeg::test::viewers_now(server.port()) == 0; }, 2s))
      << "the viewer is still there 2 s after its tab was hidden";
  EXPECT_LT(steady::now() - hidden, 2s);
  // While hidden, nothing at all: no stream, and no /stats polling either. The server counts
  // every connection it accepts; between the two reads only this test's own three requests come.
  const auto accepted = [&] {
    std::smatch m;
    const std::string metrics = mjpeg::test::get(server.port(), "/metrics").body;
    return std::regex_search(metrics, m, std::regex{"\\nmjpeg_connections_accepted_total ([0-9]+)"})
               ? std::stoll(m[1].str())
               : -1LL;
  };
  const auto before = accepted();
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(mjpeg::test::viewers_now(server.port()), 0);
  EXPECT_EQ(accepted() - before, 2) << "the hidden page kept asking";

  const auto frames = [&] {
    return b.execute("return document.getElementById('stream').dataset.frames || '';");
  };
  const std::string frames_before = frames();
  b.show_page();
  EXPECT_TRUE(mjpeg::test::eventually([&] { return mjpeg::test::viewers_now(server.port()) == 1; }, 2s))
      << "the viewer did not come back within 2 s of being shown";
  // The server has the viewer back at once; the screenshots wait until a new frame is in the page
  // and its <img> has decoded one (the tab may have been hidden before the first frame came).
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] {
        return frames() != frames_before &&
               b.execute("return String(document.getElementById('stream').naturalWidth);") == "640";
      },
      5s))
      << "no new frame after the tab came back";
  EXPECT_TRUE(moving(b, "shown")) << "the picture does not move after the tab came back";
}

TEST_P(Engine, SnapshotModePollsAtTheChosenRate) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), vga};
  browser b{GetParam()};
  b.navigate(page_url(server.port(), "?mode=snapshot&fps=4"));
  std::this_thread::sleep_for(2s);
  const auto count = [&] {
    return std::stoi("0" + b.execute("return document.getElementById('stream').dataset.taken || '';"));
  };
  const int first = count();
  const auto start = steady::now();
  std::this_thread::sleep_for(5s);
  const int second = count();
  const double rate = (second - first) / std::chrono::duration<double>(steady::now() - start).count();
  EXPECT_NEAR(rate, 4.0, 0.6) << first << " then " << second << " snapshots";
  EXPECT_EQ(mjpeg::test::viewers_now(server.port()), 0) << "snapshot mode holds no stream open";
  EXPECT_TRUE(moving(b, "snapshots")) << "the snapshots do not change";
}

// One browser session for two checks (browsers start slowly). ?fps=2: the page asks the server for
// at most 2 frames a second and gets them, timed from one new frame to another so the count is not
// off by one at either end. Then the picture freezes while the tab is visible (the relay's upstream
// is stopped, the connection stays open): the page says since when, reconnects, and clears the
// notice when frames resume.
TEST_P(ReadStream, GetsTheRateItAsksAndRecoversFromAFrozenPicture) {
  server_process origin{mjpeg::test::variant_binary("mjpeg_async"), vga};
  server_process edge{mjpeg::test::variant_binary("mjpeg_async"),
                      {"--source", "http://127.0.0.1:" + std::to_string(origin.port()) + "/?action=stream"}};
  browser b{GetParam()};
  b.navigate(page_url(edge.port(), "?fps=2"));
  const auto frames = [&] {
    return std::stoi("0" + b.execute("return document.getElementById('stream').dataset.frames || '';"));
  };
  // The moment the count changes, and the new count.
  const auto next_frame = [&] {
    const int before = frames();
    int now = before;
    const auto give_up = steady::now() + 3s;
    while (now == before && steady::now() < give_up) {
      std::this_thread::sleep_for(20ms);
      now = frames();
    }
    return std::pair{steady::now(), now};
  };
  ASSERT_TRUE(mjpeg::test::eventually([&] { return frames() > 0; }, 10s)) << "no frame arrived";
  const auto [start, first] = next_frame();
  std::this_thread::sleep_for(4500ms);
  const auto [end, last] = next_frame();
  const double rate = (last - first) / std::chrono::duration<double>(end - start).count();
  EXPECT_NEAR(rate, 2.0, 0.2) << first << " then " << last << " frames";

  origin.signal(SIGSTOP);
  const std::string state = reconnecting_notice(b);
  EXPECT_TRUE(
      std::regex_search(state, std::regex{"^reconnecting since [0-9]{2}:[0-9]{2}:[0-9]{2}: no new frame"}))
      << state;

  origin.signal(SIGCONT);
  const int before = frames();
  EXPECT_TRUE(mjpeg::test::eventually([&] { return frames() > before && state_of(b).empty(); }, 12s))
      << "the picture did not come back within 12 s of the upstream resuming";
  EXPECT_TRUE(moving(b, "unfrozen")) << "the picture does not move after the stall";
}

INSTANTIATE_TEST_SUITE_P(Engines, Engine, testing::Values(engine::chromium, engine::firefox, engine::webkit),
                         [](const auto& param_info) { return mjpeg::test::engine_name(param_info.param); });

INSTANTIATE_TEST_SUITE_P(Engines, ReadStream,
                         testing::Values(engine::chromium, engine::firefox, engine::webkit),
                         [](const auto& param_info) { return mjpeg::test::engine_name(param_info.param); });

}  // namespace
