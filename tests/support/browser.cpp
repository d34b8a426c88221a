#include "browser.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "client.hpp"
#include "server_process.hpp"

namespace mjpeg::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

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

std::string mini_browser() {
  for (const char* candidate : {"/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                                "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                                "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.0/MiniBrowser"})
    if (std::filesystem::exists(candidate)) return candidate;
  return "";
}

std::filesystem::path fresh_profile(const std::string& engine) {
  const auto path =
      std::filesystem::temp_directory_path() / ("mjpeg-" + engine + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

}  // namespace

std::vector<std::string> chromium_flags(const std::string& profile, std::vector<std::string> extra) {
  std::vector<std::string> flags{"--headless",
                                 "--no-sandbox",
                                 "--disable-gpu",
                                 "--no-first-run",
                                 "--disable-background-networking",
                                 "--disable-component-update",
                                 "--disable-sync",
                                 "--disable-quic",
                                 "--user-data-dir=" + profile,
                                 "--window-size=800,680"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

std::string engine_name(engine e) {
  return e == engine::chromium ? "chromium" : e == engine::firefox ? "firefox" : "webkit";
}

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

// Each protocol's way to say the same few things. Answers are the raw JSON texts.
struct browser::driver {
  virtual ~driver() = default;
  // One command: its W3C method and path (below /session/{id}), its Marionette name, its parameters.
  virtual std::string call(const std::string& method, const std::string& path, const std::string& name,
                           const std::string& params) = 0;
  std::filesystem::path profile;
  std::unique_ptr<background_process> process;
};

namespace {

// W3C WebDriver over HTTP/1.1 on loopback (chromedriver, WebKitWebDriver).
struct w3c_driver : browser::driver {
  unsigned short port = 0;
  std::string session;

  std::string http(const std::string& method, const std::string& path, const std::string& body) {
    const std::string raw =
        method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
        body;
    // Read up to Content-Length: chromedriver keeps the connection open despite "close".
    connection conn{port};
    conn.send(raw);
    std::string in;
    for (const auto until = steady::now() + 60s; steady::now() < until && !conn.closed();) {
      in += conn.receive(1s, 1 << 22);
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      const response head = parse_response(in.substr(0, end + 4));
      const std::string length = header(head, "content-length");
      if (!length.empty() && in.size() >= end + 4 + std::stoul(length)) break;
    }
    return parse_response(in).body;
  }
  void start(const std::string& binary, const std::vector<std::string>& args,
             const std::string& capabilities) {
    process = std::make_unique<background_process>(binary, args);
    bool ready = false;
    for (const auto until = steady::now() + 30s; !ready && steady::now() < until;) {
      try {
        ready = http("GET", "/status", "").find("ready") != std::string::npos;
      } catch (const std::exception&) {
      }
      if (!ready) std::this_thread::sleep_for(200ms);
    }
    if (!ready) throw std::runtime_error("the WebDriver did not start: " + process->output());
    const std::string answer =
        http("POST", "/session", R"({"capabilities":{"alwaysMatch":)" + capabilities + "}}");
    session = json_string(answer, "sessionId");
    if (session.empty()) throw std::runtime_error("no WebDriver session: " + answer + process->output());
  }
  std::string call(const std::string& method, const std::string& path, const std::string&,
                   const std::string& params) override {
    return http(method, "/session/" + session + path, method == "GET" || method == "DELETE" ? "" : params);
  }
  ~w3c_driver() override {
    if (!session.empty()) {
      try {
        http("DELETE", "/session/" + session, "");
      } catch (const std::exception&) {
      }
    }
  }
};

// Firefox's Marionette: "<length>:<JSON>" frames; a command is [0, id, name, params], its
// answer [1, id, error, result].
struct marionette_driver : browser::driver {
  std::unique_ptr<connection> conn;
  std::string buffer;
  int id = 0;

  std::string read_message() {
    const auto until = steady::now() + 30s;
    for (;;) {
      const auto colon = buffer.find(':');
      if (colon != std::string::npos) {
        const auto length = std::stoul(buffer.substr(0, colon));
        if (buffer.size() >= colon + 1 + length) {
          std::string message = buffer.substr(colon + 1, length);
          buffer.erase(0, colon + 1 + length);
          return message;
        }
      }
      if (steady::now() > until || conn->closed()) return "";
      buffer += conn->receive(1s, 1 << 20);
    }
  }
  std::string call(const std::string&, const std::string&, const std::string& name,
                   const std::string& params) override {
    const std::string body = "[0," + std::to_string(++id) + "," + json_quote(name) + "," + params + "]";
    conn->send(std::to_string(body.size()) + ":" + body);
    return read_message();
  }
  ~marionette_driver() override {
    if (conn) call("", "", "Marionette:Quit", "{}");
  }
};

}  // namespace

std::string browser::missing(engine e) {
  switch (e) {
    case engine::chromium:
      if (!std::filesystem::exists(chromium_binary)) return "no chromium (scripts/install-deps)";
      if (!std::filesystem::exists("/usr/bin/chromedriver")) return "no chromedriver (scripts/install-deps)";
      return "";
    case engine::firefox:
      return std::filesystem::exists("/usr/bin/firefox-esr") ? "" : "no firefox-esr (scripts/install-deps)";
    case engine::webkit:
      if (!std::filesystem::exists("/usr/bin/WebKitWebDriver") ||
          !std::filesystem::exists("/usr/bin/xvfb-run") || mini_browser().empty())
        return "needs webkit2gtk-driver, its MiniBrowser and xvfb (scripts/install-deps)";
      return "";
  }
  return "unknown engine";
}

browser::browser(engine e, std::vector<std::string> chromium_extra) : engine_{e} {
  const std::string why = missing(e);
  if (!why.empty()) throw std::runtime_error(why);
  const auto profile = fresh_profile(engine_name(e));
  if (e == engine::firefox) {
    auto d = std::make_unique<marionette_driver>();
    d->profile = profile;
    {
      // Marionette on a free port (written to MarionetteActivePort); every other connection goes
      // to a dead proxy, so the browser's background services never leave this machine.
      std::ofstream prefs{profile / "user.js"};
      for (const char* pref :
           {"\"marionette.port\", 0", "\"network.proxy.type\", 1", "\"network.proxy.http\", \"127.0.0.1\"",
            "\"network.proxy.http_port\", 9", "\"network.proxy.ssl\", \"127.0.0.1\"",
            "\"network.proxy.ssl_port\", 9", "\"network.proxy.allow_hijacking_localhost\", false",
            "\"app.update.disabledForTesting\", true",
            "\"datareporting.policy.dataSubmissionEnabled\", false",
            "\"toolkit.telemetry.reportingpolicy.firstRun\", false",
            "\"browser.shell.checkDefaultBrowser\", false", "\"browser.tabs.warnOnClose\", false"})
        prefs << "user_pref(" << pref << ");\n";
    }
    d->process = std::make_unique<background_process>(
        "/usr/bin/firefox-esr",
        std::vector<std::string>{"--headless", "--marionette", "--no-remote", "--profile", profile.string()});
    unsigned short port = 0;
    for (const auto until = steady::now() + 60s; port == 0 && steady::now() < until;) {
      std::ifstream active{profile / "MarionetteActivePort"};
      int p = 0;
      if (active >> p && p > 0)
        port = static_cast<unsigned short>(p);
      else
        std::this_thread::sleep_for(200ms);
    }
    if (port == 0) throw std::runtime_error("Firefox did not open Marionette: " + d->process->output());
    d->conn = std::make_unique<connection>(port);
    d->read_message();  // the greeting
    const auto session = d->call("", "", "WebDriver:NewSession",
                                 R"({"capabilities":{"alwaysMatch":{"pageLoadStrategy":"none"}}})");
    if (session.find("sessionId") == std::string::npos)
      throw std::runtime_error("no Marionette session: " + session);
    driver_ = std::move(d);
  } else {
    auto d = std::make_unique<w3c_driver>();
    d->profile = profile;
    d->port = free_port();  // drivers cannot be given port 0
    if (e == engine::chromium) {
      std::string args;
      for (const auto& flag : chromium_flags(profile.string(), chromium_extra))
        args += (args.empty() ? "" : ",") + json_quote(flag);
      d->start("/usr/bin/chromedriver", {"--port=" + std::to_string(d->port)},
               R"({"pageLoadStrategy":"none","goog:chromeOptions":{"binary":)" + json_quote(chromium_binary) +
                   R"(,"args":[)" + args + "]}}");
    } else {
      d->start("/usr/bin/xvfb-run", {"-a", "/usr/bin/WebKitWebDriver", "--port=" + std::to_string(d->port)},
               R"({"pageLoadStrategy":"none","webkitgtk:browserOptions":{"binary":)" +
                   json_quote(mini_browser()) + R"(,"args":["--automation"]}})");
    }
    driver_ = std::move(d);
  }
  page_handle_ = json_string(driver_->call("GET", "/window", "WebDriver:GetWindowHandle", "{}"), "value");
}

browser::~browser() {
  const auto profile = driver_->profile;
  driver_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(profile, ignored);
}

void browser::navigate(const std::string& url) {
  driver_->call("POST", "/url", "WebDriver:Navigate", "{\"url\":" + json_quote(url) + "}");
}

std::string browser::execute(const std::string& script) {
  return json_string(driver_->call("POST", "/execute/sync", "WebDriver:ExecuteScript",
                                   "{\"script\":" + json_quote(script) + ",\"args\":[]}"),
                     "value");
}

std::vector<unsigned char> browser::screenshot() {
  return base64_decode(
      json_string(driver_->call("GET", "/screenshot", "WebDriver:TakeScreenshot", "{}"), "value"));
}

void browser::hide_page() {
  if (engine_ == engine::webkit) {
    driver_->call("POST", "/window/minimize", "", "{}");
    return;
  }
  blank_handle_ =
      json_string(driver_->call("POST", "/window/new", "WebDriver:NewWindow", R"({"type":"tab"})"), "handle");
  driver_->call("POST", "/window", "WebDriver:SwitchToWindow",
                "{\"handle\":" + json_quote(blank_handle_) + "}");
}

void browser::show_page() {
  if (engine_ == engine::webkit) {
    driver_->call("POST", "/window/rect", "", "{}");  // no size given: restore the window
    return;
  }
  driver_->call("DELETE", "/window", "WebDriver:CloseWindow", "{}");
  driver_->call("POST", "/window", "WebDriver:SwitchToWindow",
                "{\"handle\":" + json_quote(page_handle_) + "}");
}

}  // namespace mjpeg::test
