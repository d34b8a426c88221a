#include "mjpeg/options.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <system_error>

#include <CLI/CLI.hpp>

#include "mjpeg/http.hpp"
#include "mjpeg/version.hpp"

namespace mjpeg {
namespace {

// Descriptors the server needs beside its connections: those open now (stdio and whatever the
// process inherited) and those it opens later: the listener, the shutdown eventfd, the
// io_context's epoll with its timer and interrupter, the source with its helpers, and one to
// accept a connection it turns away with 503. About 10 with the pattern, a few more with a camera.
long reserved_fds() {
  std::error_code ec;
  long open_now = 0;
  for (std::filesystem::directory_iterator it{"/proc/self/fd", ec}, end; !ec && it != end; it.increment(ec))
    ++open_now;
  return (open_now > 0 ? open_now : 8) + 16;
}

long open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return static_cast<long>(limit.rlim_cur);
}

// CLI11 2.1 names an unknown key ("INI was not able to parse KEY") but not its line; find the
// first line that sets it, so the message points into the file. (A lookup of the key CLI11
// reported, not a second parser.)
std::string unknown_key_message(const CLI::ConfigError& e, const std::string& path) {
  constexpr std::string_view marker = "INI was not able to parse ";
  const std::string what = e.what();
  if (what.rfind(marker, 0) != 0) return "config file " + path + ": " + what;
  const std::string key = what.substr(marker.size());
  // "[name]" arrives as the key "name.++": every option lives at the top level.
  if (key.size() > 3 && key.ends_with(".++"))
    return "config file " + path + ": unknown section [" + key.substr(0, key.size() - 3) + "]";
  const std::string name = key.substr(key.rfind('.') + 1);  // "section.key": the line says "key"
  std::ifstream in{path};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line.compare(start, name.size(), name) != 0) continue;
    const auto after = line.find_first_not_of(" \t", start + name.size());
    if (after != std::string::npos && (line[after] == '=' || line[after] == ':'))
      return "config file " + path + " line " + std::to_string(number) + ": unknown key '" + key + "'";
  }
  return "config file " + path + ": unknown key '" + key + "'";
}

// Why `credentials` cannot be used as "user:pass", or "" when it can. Empty halves would open the
// server to anybody who sends an empty user or password.
std::string credentials_problem(const std::string& credentials) {
  const auto colon = credentials.find(':');
  if (colon == std::string::npos) return "must be user:pass";
  if (colon == 0) return "the user must not be empty";
  if (colon + 1 == credentials.size()) return "the password must not be empty";
  if (std::any_of(credentials.begin(), credentials.end(),
                  [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
    return "must not contain control characters";
  return "";
}

// The one line of an --auth-file: "user:pass", a final newline allowed.
std::string read_auth_file(const std::string& path, std::string& problem) {
  std::ifstream in{path, std::ios::binary};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  if (!in.is_open() || in.bad()) {
    problem = "cannot read it";
    return {};
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.find('\n') != std::string::npos) problem = "must hold one line, user:pass";
  return text;
}

// --allow-host NAME: a host name or address as a Host header names it, without a port. A bare
// IPv6 address gets its brackets.
std::string allowed_host_problem(std::string& name) {
  if (name.find(':') != std::string::npos && name.front() != '[' && http::valid_host("[" + name + "]"))
    name = "[" + name + "]";
  if (!http::valid_host(name)) return "not a host name or address";
  if (name.front() == '[' ? name.back() != ']' : name.find(':') != std::string::npos)
    return "give the name without a port";
  return "";
}

}  // namespace

std::string binary_name(const variant_info& info) {
  std::string name = "mjpeg-" + std::string{info.name};
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

std::variant<options, int> parse_options(int argc, const char* const* argv, const variant_info& info) {
  options o;
  const std::string binary = binary_name(info);
  CLI::App app{std::string{info.summary}, binary};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("--version", binary + " " + std::string{version});
  log::set_program(binary);
  // Every option below can also be set in the file, by its long name: `port = 8080`. Options added
  // later are configurable the same way, with no change here.
  app.set_config("--config", "", "Read options from this TOML/INI file (the command line wins)");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.get_formatter()->column_width(28);

  app.add_option("--host", o.host,
                 "Address to bind. Bound to loopback, requests must name a loopback Host (localhost, "
                 "127.0.0.1, [::1]) or an --allow-host name; use 0.0.0.0 only behind a proxy or with auth")
      ->capture_default_str();
  app.add_option("--allow-host", o.allow_hosts,
                 "Also accept this Host name while bound to loopback, e.g. a reverse proxy's public name "
                 "(repeatable)")
      ->type_name("NAME");
  app.add_option("--port", o.port, "TCP port; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option(
         "--source", o.source,
         "pattern | camera index (0) or /dev/videoN | folder or .jpg to replay | zmq+tcp://HOST:PORT or "
         "zmq+ipc:///PATH (frame bus) | http://HOST:PORT/PATH (MJPEG relay, no re-encoding) | file or "
         "rtsp:// URL for OpenCV")
      ->capture_default_str();
  app.add_option("--width", o.width, "Frame width")->check(CLI::Range(16, 7680))->capture_default_str();
  app.add_option("--height", o.height, "Frame height")->check(CLI::Range(16, 4320))->capture_default_str();
  app.add_option("--fps", o.fps, "Frames per second")->check(CLI::Range(0.1, 240.0))->capture_default_str();
  app.add_option("--quality", o.quality, "JPEG quality")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_flag("--encode", o.encode,
               "Camera: decode and re-encode at --quality instead of passing its own MJPEG through");
  app.add_option("--duration", o.duration, "Stop after this many seconds (0 = run until SIGINT/SIGTERM)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--header-timeout", o.header_timeout, "Seconds a client has to send its request head")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--send-timeout", o.send_timeout, "Seconds a stalled viewer is kept before it is dropped")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--idle-stop", o.idle_stop,
                 "Close the source after this many seconds without viewers, reopen on the next (0 = never)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  std::string auth_file;
  auto* auth_option =
      app.add_option("--auth", o.auth,
                     "Require HTTP Basic credentials user:pass on every endpoint. Every local user can read "
                     "them in ps: prefer --auth-file or the MJPEG_AUTH environment variable")
          ->type_name("USER:PASS")
          ->check([](const std::string& v) { return credentials_problem(v); });
  app.add_option("--auth-file", auth_file,
                 "Require the HTTP Basic credentials held in this file (one line, user:pass); recommended")
      ->type_name("PATH")
      ->excludes(auth_option);

  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Least severe log lines written: error, warning, info, debug")
      ->check(CLI::IsMember({"error", "warning", "info", "debug"}))
      ->capture_default_str();
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Same as --log-level warning: no line per viewer");

  app.add_option("--publish", o.publish,
                 "Publish every frame on the frame bus: PORT (tcp on 127.0.0.1; 0 picks one) or a ZeroMQ "
                 "endpoint (tcp://ADDR:PORT, ipc:///PATH); repeatable")
      ->take_all()
      ->check([](const std::string& v) {
        return v.empty() || (v.rfind("tcp://", 0) != 0 && v.rfind("ipc://", 0) != 0 &&
                             v.find_first_not_of("0123456789") != std::string::npos)
                   ? std::string{"must be a port, tcp://ADDR:PORT or ipc:///PATH"}
                   : std::string{};
      });
  app.add_option("--bus-keys", o.bus_keys,
                 "CurveZMQ key directory: --publish encrypts and admits only authorized/*.pub; a "
                 "zmq+tcp source authenticates with client.secret")
      ->check(CLI::ExistingDirectory);
  app.add_option("--bus-keygen", o.bus_keygen,
                 "Write a new server key pair and an authorized client key pair into DIR, then exit");
  app.add_option("--workers", o.workers,
                 "Worker processes sharing the port (SO_REUSEPORT); the parent captures once and "
                 "feeds them over the bus (0 = serve in this process)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--worker-of", o.worker_of)->group("");
  app.add_option("--worker-index", o.worker_index)->group("");

  const long fd_limit = open_file_limit();
  const int max_viewers = static_cast<int>(std::clamp(fd_limit - reserved_fds(), 1L, 1L << 20));
  if (info.model.threads) {
    o.threads = *info.model.threads;
    app.add_option("--threads", o.threads, "Worker threads")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
  }
  if (info.model.queue) {
    o.queue = *info.model.queue;
    app.add_option("--queue", o.queue, "Connections that may wait for a free worker before 503")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
  }
  if (info.model.max_clients) {
    o.max_clients = *info.model.max_clients;
    app.add_option("--max-clients", o.max_clients,
                   "Open connections (viewers, page and /stats requests) before 503, per worker process with "
                   "--workers (0 = unlimited; at most " +
                       std::to_string(max_viewers) + " with this process's open-file limit)")
        ->check(CLI::Range(0, 1 << 20))
        ->capture_default_str();
  }

  app.footer(
      "Credentials: --auth-file PATH or the MJPEG_AUTH environment variable (user:pass) keep them out "
      "of ps; --auth USER:PASS works too. Neither user nor password may be empty.");

  const auto fail = [&](const std::string& message) {
    log::write(log::level::error, "%s (see --help)", message.c_str());
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ConfigError& e) {
    log::write(log::level::error, "%s",
               unknown_key_message(e, app.get_config_ptr()->as<std::string>()).c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }
  for (std::string& name : o.allow_hosts)
    if (const std::string problem = allowed_host_problem(name); !problem.empty())
      return fail("--allow-host " + name + ": " + problem);
  // The command line wins over the environment; the file and the variable are checked like --auth.
  if (!auth_file.empty()) {
    std::string problem;
    o.auth = read_auth_file(auth_file, problem);
    if (problem.empty()) problem = credentials_problem(o.auth);
    if (!problem.empty()) return fail("--auth-file " + auth_file + ": " + problem);
  } else if (const char* from_environment = std::getenv(auth_variable); o.auth.empty() && from_environment) {
    o.auth = from_environment;
    if (const std::string problem = credentials_problem(o.auth); !problem.empty())
      return fail(std::string{auth_variable} + ": " + problem);
  }
  o.log_level = quiet ? log::level::warning : *log::parse_level(log_level);
  log::set_level(o.log_level);
  // A cap above what this process may open would only fail later, at accept time: lower it to
  // what the open-file limit allows, and say so.
  if (o.max_clients > max_viewers) {
    log::write(log::level::warning,
               "the open-file limit (%ld) allows %d connections: --max-clients %d lowered to %d", fd_limit,
               max_viewers, o.max_clients, max_viewers);
    o.max_clients = max_viewers;
  }
  return o;
}

}  // namespace mjpeg
