// The viewer page in the two browser engines beside Chromium (label `browser`): Firefox ESR
// (Gecko), driven over its own Marionette protocol because Debian 12 packages no geckodriver, and
// WebKitGTK (the engine behind Safari), driven by WebKitWebDriver over W3C WebDriver under
// xvfb-run. For each: the page's <img> decodes the stream at the configured size, the picture
// changes between two screenshots, and the stats line shows the variant and its fps. Screenshots
// land in the build tree (viewer-firefox-1.png, …). Both browsers are kept off the network: they
// only reach the loopback server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::background_process;
using mjpeg::test::server_process;

// The string value of "key" in a JSON text, escapes \" \\ \/ \n undone (others left as they are).
std::string json_string(const std::string& json, const std::string& key) {
  const std::string open = "\"" + key + "\":\"";
  auto at = json.find(open);
  if (at == std::string::npos) return "";
  std::string out;
  for (at += open.size(); at < json.size() && json[at] != '"'; ++at) {
    if (json[at] == '\\' && at + 1 < json.size()) {
      const char c = json[++at];
      out += c == 'n' ? '\n' : (c == '"' || c == '\\' || c == '/') ? c : (out += '\\', c);
      continue;
    }
    out += json[at];
  }
  return out;
}

std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text)
    out += c == '"' ? std::string{"\\\""} : c == '\\' ? std::string{"\\\\"} : std::string(1, c);
  return out + "\"";
}

std::vector<unsigned char> base64_decode(const std::string& text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<unsigned char> out;
  unsigned bits = 0;
  int count = 0;
  for (const char c : text) {
    const auto v = alphabet.find(c);
    if (v == std::string::npos) continue;  // padding, line breaks
    bits = (bits << 6) | static_cast<unsigned>(v);
    if ((count += 6) >= 8) {
      count -= 8;
      out.push_back(static_cast<unsigned char>((bits >> count) & 0xff));
    }
  }
  return out;
}

// What the page reports, as the script below returns it: "WIDTHxHEIGHT <the page's text>".
const std::string page_probe =
    "var i = document.querySelector('img');"
    "return i.naturalWidth + 'x' + i.naturalHeight + ' ' + document.body.innerText;";

void expect_page(const std::string& probe, const std::string& variant) {
  EXPECT_EQ(probe.substr(0, probe.find(' ')), "640x480")
      << "the <img> decoded the stream at its size: " << probe;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(probe, m, std::regex{"variant " + variant + " \\S+ ([0-9.]+) fps"})) << probe;
  EXPECT_GT(std::stod(m[1].str()), 0.0) << "fps from /stats: " << probe;
}

// Two screenshots a second apart: each shows the test card (many saturated colours), and they
// differ (the card's frame counter, clock and moving disc), so the stream kept playing.
void expect_moving_picture(const std::vector<unsigned char>& first, const std::vector<unsigned char>& second,
                           const std::string& engine) {
  const std::string dir = MJPEG_SCREENSHOT_DIR;
  std::ofstream{dir + "/viewer-" + engine + "-1.png", std::ios::binary}.write(
      reinterpret_cast<const char*>(first.data()), static_cast<std::streamsize>(first.size()));
  std::ofstream{dir + "/viewer-" + engine + "-2.png", std::ios::binary}.write(
      reinterpret_cast<const char*>(second.data()), static_cast<std::streamsize>(second.size()));
  const cv::Mat a = cv::imdecode(first, cv::IMREAD_COLOR);
  const cv::Mat b = cv::imdecode(second, cv::IMREAD_COLOR);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  ASSERT_EQ(a.size(), b.size());
  cv::Scalar mean, stddev;
  cv::meanStdDev(a, mean, stddev);
  EXPECT_GT(stddev[0] + stddev[1] + stddev[2], 90) << "no test card on the first screenshot";
  cv::Mat diff, changed;
  cv::absdiff(a, b, diff);
  cv::cvtColor(diff, diff, cv::COLOR_BGR2GRAY);
  cv::threshold(diff, changed, 40, 255, cv::THRESH_BINARY);
  const double share = static_cast<double>(cv::countNonZero(changed)) / static_cast<double>(a.total());
  EXPECT_GT(share, 0.002) << "the picture did not change between two screenshots a second apart";
}

std::string page_url(const server_process& server) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + "/";
}

// ---- Firefox over Marionette ------------------------------------------------------------

// Marionette's framing: "<length>:<JSON>"; a command is [0, id, name, params], its answer
// [1, id, error, result].
class marionette {
 public:
  explicit marionette(unsigned short port) : conn_{port} { read_message(); }  // the greeting
  std::string command(const std::string& name, const std::string& params) {
    const std::string body = "[0," + std::to_string(++id_) + "," + json_quote(name) + "," + params + "]";
    conn_.send(std::to_string(body.size()) + ":" + body);
    return read_message();
  }

 private:
  std::string read_message() {
    const auto until = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      const auto colon = buffer_.find(':');
      if (colon != std::string::npos) {
        const auto length = std::stoul(buffer_.substr(0, colon));
        if (buffer_.size() >= colon + 1 + length) {
          std::string message = buffer_.substr(colon + 1, length);
          buffer_.erase(0, colon + 1 + length);
          return message;
        }
      }
      if (std::chrono::steady_clock::now() > until || conn_.closed()) return "";
      buffer_ += conn_.receive(1s, 1 << 20);
    }
  }
  mjpeg::test::connection conn_;
  std::string buffer_;
  int id_ = 0;
};

TEST(Engines, FirefoxShowsTheMovingStreamAndStats) {
  const std::string firefox = "/usr/bin/firefox-esr";
  if (!std::filesystem::exists(firefox)) GTEST_SKIP() << "no firefox-esr (scripts/install-deps test)";
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), {"--width", "640", "--height", "480"}};
  const std::filesystem::path profile =
      std::filesystem::temp_directory_path() / ("mjpeg-firefox-" + std::to_string(::getpid()));
  std::filesystem::remove_all(profile);
  std::filesystem::create_directories(profile);
  {
    // Marionette on a free port (written to MarionetteActivePort); every other connection goes
    // to a dead proxy, so the browser's background services never leave this machine.
    std::ofstream prefs{profile / "user.js"};
    for (const char* pref :
         {"\"marionette.port\", 0", "\"network.proxy.type\", 1", "\"network.proxy.http\", \"127.0.0.1\"",
          "\"network.proxy.http_port\", 9", "\"network.proxy.ssl\", \"127.0.0.1\"",
          "\"network.proxy.ssl_port\", 9", "\"app.update.disabledForTesting\", true",
          "\"datareporting.policy.dataSubmissionEnabled\", false",
          "\"toolkit.telemetry.reportingpolicy.firstRun\", false",
          "\"browser.shell.checkDefaultBrowser\", false"})
      prefs << "user_pref(" << pref << ");\n";
  }
  {
    background_process browser{firefox,
                               {"--headless", "--marionette", "--no-remote", "--profile", profile.string()}};
    unsigned short port = 0;
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (port == 0 && std::chrono::steady_clock::now() < until) {
      std::ifstream active{profile / "MarionetteActivePort"};
      int p = 0;
      if (active >> p && p > 0)
        port = static_cast<unsigned short>(p);
      else
        std::this_thread::sleep_for(200ms);
    }
    ASSERT_NE(port, 0) << "Firefox did not open Marionette: " << browser.output();
    marionette m{port};
    // "none": the page never finishes loading (its image is an endless stream).
    const auto session =
        m.command("WebDriver:NewSession", R"({"capabilities":{"alwaysMatch":{"pageLoadStrategy":"none"}}})");
    ASSERT_NE(session.find("sessionId"), std::string::npos) << session;
    m.command("WebDriver:Navigate", "{\"url\":" + json_quote(page_url(server)) + "}");
    std::this_thread::sleep_for(3s);  // frames arrive, /stats answers
    expect_page(json_string(m.command("WebDriver:ExecuteScript",
                                      "{\"script\":" + json_quote(page_probe) + ",\"args\":[]}"),
                            "value"),
                "async");
    const auto first = base64_decode(json_string(m.command("WebDriver:TakeScreenshot", "{}"), "value"));
    std::this_thread::sleep_for(1s);
    const auto second = base64_decode(json_string(m.command("WebDriver:TakeScreenshot", "{}"), "value"));
    expect_moving_picture(first, second, "firefox");
    m.command("Marionette:Quit", "{}");
  }
  std::filesystem::remove_all(profile);
}

// ---- WebKitGTK over W3C WebDriver -------------------------------------------------------

// One W3C WebDriver call over HTTP/1.1 on loopback; returns the response body.
std::string webdriver(unsigned short port, const std::string& method, const std::string& path,
                      const std::string& body = "") {
  const std::string raw = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
                          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body;
  return mjpeg::test::request(port, raw, 60s).body;
}

TEST(Engines, WebKitShowsTheMovingStreamAndStats) {
  const std::string driver = "/usr/bin/WebKitWebDriver";
  const std::string xvfb_run = "/usr/bin/xvfb-run";
  std::string mini_browser;
  for (const char* candidate : {"/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                                "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                                "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.0/MiniBrowser"})
    if (std::filesystem::exists(candidate)) mini_browser = candidate;
  if (!std::filesystem::exists(driver) || !std::filesystem::exists(xvfb_run) || mini_browser.empty())
    GTEST_SKIP() << "needs webkit2gtk-driver, its MiniBrowser and xvfb (scripts/install-deps test)";
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), {"--width", "640", "--height", "480"}};
  const auto port = mjpeg::test::free_port();
  background_process wd{xvfb_run, {"-a", driver, "--port=" + std::to_string(port)}};
  // Wait for the driver to answer.
  bool ready = false;
  for (const auto until = std::chrono::steady_clock::now() + 30s;
       !ready && std::chrono::steady_clock::now() < until;) {
    try {
      ready = webdriver(port, "GET", "/status").find("ready") != std::string::npos;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(200ms);
    }
  }
  ASSERT_TRUE(ready) << "WebKitWebDriver did not start: " << wd.output();
  const std::string session = json_string(
      webdriver(
          port, "POST", "/session",
          R"({"capabilities":{"alwaysMatch":{"pageLoadStrategy":"none","webkitgtk:browserOptions":{"binary":)" +
              json_quote(mini_browser) + R"(,"args":["--automation"]}}}})"),
      "sessionId");
  ASSERT_FALSE(session.empty()) << wd.output();
  const std::string at = "/session/" + session;
  webdriver(port, "POST", at + "/url", "{\"url\":" + json_quote(page_url(server)) + "}");
  std::this_thread::sleep_for(3s);
  expect_page(json_string(webdriver(port, "POST", at + "/execute/sync",
                                    "{\"script\":" + json_quote(page_probe) + ",\"args\":[]}"),
                          "value"),
              "async");
  const auto first = base64_decode(json_string(webdriver(port, "GET", at + "/screenshot"), "value"));
  std::this_thread::sleep_for(1s);
  const auto second = base64_decode(json_string(webdriver(port, "GET", at + "/screenshot"), "value"));
  expect_moving_picture(first, second, "webkit");
  webdriver(port, "DELETE", at);
}

}  // namespace
