/// Real browsers for the viewer-page tests: Chromium's flags in one place, and one driver for
/// Chromium (chromedriver), Firefox ESR (Marionette) and WebKitGTK (WebKitWebDriver, xvfb-run).
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace mjpeg::test {

/// Debian's Chromium.
inline const std::string chromium_binary = "/usr/bin/chromium";

/// The flags every test Chromium runs with: headless, no sandbox (tests run as root), no GPU,
/// no background traffic (it only ever reaches the loopback servers), its own `profile`
/// folder, an 800x680 window; `extra` follow.
std::vector<std::string> chromium_flags(const std::string& profile, std::vector<std::string> extra = {});

/// The browser engines the page is tested in.
enum class engine { chromium, firefox, webkit };

/// The engine's name as tests and screenshots say it ("chromium", "firefox", "webkit").
std::string engine_name(engine e);
/// GoogleTest prints a parameter by its name, not as bytes.
inline void PrintTo(engine e, std::ostream* os) {
  *os << engine_name(e);
}

/// One browser with one session, driven over WebDriver (Marionette for Firefox: Debian packages
/// no geckodriver). The page loading strategy is "none": the viewer's image never finishes.
class browser {
 public:
  /// Starts the engine and opens a session (Chromium with `chromium_extra` flags added).
  /// Throws if it cannot.
  explicit browser(engine e, std::vector<std::string> chromium_extra = {});
  ~browser();
  browser(const browser&) = delete;
  browser& operator=(const browser&) = delete;

  /// Empty when `e` can run here, else what is missing (a reason to skip).
  static std::string missing(engine e);

  /// Opens `url` in the current tab.
  void navigate(const std::string& url);
  /// Runs `script` (a function body that returns a string) in the page; returns that string.
  std::string execute(const std::string& script);
  /// A PNG screenshot of the current tab.
  std::vector<unsigned char> screenshot();
  /// Hides the page (Page Visibility API): a second, blank tab in front (Chromium, Firefox), or
  /// the window minimized (WebKitGTK's MiniBrowser opens a new tab as a window of its own).
  void hide_page();
  /// Shows the page again: closes that tab, or restores the window.
  void show_page();

  /// One protocol's way to say these things (W3C WebDriver or Marionette).
  struct driver;

 private:
  engine engine_;
  std::unique_ptr<driver> driver_;
  std::string page_handle_;
  std::string blank_handle_;
};

/// The string value of "key" in a JSON text (the first one), with \" \\ \/ \n undone.
std::string json_string(const std::string& json, const std::string& key);

/// `text` as a JSON string literal.
std::string json_quote(const std::string& text);

}  // namespace mjpeg::test
