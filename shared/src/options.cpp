#include "mjpeg/options.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <CLI/CLI.hpp>
#include <boost/asio/ip/address.hpp>

#include "mjpeg/bus.hpp"
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

// The --config file, checked before CLI11 reads it. CLI11 2.1 opens any path with an ifstream and
// reads to the end: /dev/zero for ever, a FIFO without writer blocks in open(), a read error
// looks like an empty file, and its messages echo what it read. So the file is read here first,
// once: a regular file (after following links) of at most config_size_limit, all of it readable,
// printable UTF-8 text; a UTF-8 byte order mark is skipped. CLI11 then parses that text (not the
// path again) through config_text below, which also knows the line of every key.
constexpr std::size_t config_size_limit = 1 << 20;

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bytes as a message can show them: printable ASCII as is, anything else as \xNN.
std::string printable(std::string_view bytes) {
  std::string out;
  for (const char byte : bytes) {
    const auto c = static_cast<unsigned char>(byte);
    if (c >= 0x20 && c < 0x7f) {
      out += byte;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out;
}

// Length of the UTF-8 sequence at `at` (1 to 4), or 0 when it is not well-formed UTF-8.
std::size_t utf8_length(std::string_view s, std::size_t at) {
  const auto c = static_cast<unsigned char>(s[at]);
  const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || at + n > s.size() || (n == 2 && c < 0xc2)) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((static_cast<unsigned char>(s[at + i]) & 0xc0) != 0x80) return 0;
  return n;
}

// The file's text, or a config_error saying in one printable line why it cannot be used.
std::string read_config_file(const std::string& path) {
  const std::string shown = "config file " + printable(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw config_error{shown + ": " + std::strerror(errno)};
  if (S_ISDIR(st.st_mode)) throw config_error{shown + ": is a directory, not a file"};
  if (!S_ISREG(st.st_mode))
    throw config_error{shown + ": not a regular file (" +
                       (S_ISFIFO(st.st_mode)   ? "a FIFO"
                        : S_ISSOCK(st.st_mode) ? "a socket"
                        : S_ISCHR(st.st_mode)  ? "a character device"
                        : S_ISBLK(st.st_mode)  ? "a block device"
                                               : "not a file") +
                       ")"};
  if (static_cast<std::uint64_t>(st.st_size) > config_size_limit)
    throw config_error{shown + ": larger than 1 MB"};
  // O_NONBLOCK: should the path have become a FIFO since stat(), open() still returns at once.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw config_error{shown + ": " + std::strerror(errno)};
  std::string text;
  std::string problem;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) problem = "not a regular file";
  char buffer[64 * 1024];
  while (problem.empty()) {
    const auto n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) problem = std::string{"cannot read it: "} + std::strerror(errno);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > config_size_limit) problem = "larger than 1 MB";  // a /proc file says size 0
  }
  ::close(fd);
  if (!problem.empty()) throw config_error{shown + ": " + problem};
  if (text.starts_with("\xef\xbb\xbf")) text.erase(0, 3);  // a UTF-8 byte order mark (Windows editors)
  int line = 1;
  for (std::size_t at = 0; at < text.size();) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (c == '\n') ++line;
    const std::size_t n = utf8_length(text, at);
    const bool control =
        c < 0x20 && c != '\t' && c != '\n' && !(c == '\r' && at + 1 < text.size() && text[at + 1] == '\n');
    if (n == 0 || control || c == 0x7f)
      throw config_error{shown + " line " + std::to_string(line) + ": not text (byte " +
                         printable(std::string_view{text}.substr(at, 1)) + "); is this the right file?"};
    at += n;
  }
  return text;
}

// CLI11's TOML reader fed with text already read and checked, remembering the line of each key.
// A key set twice is an error naming both lines: CLI11 alone refuses a repeat on the next line but
// silently keeps the first value of a repeat further down, so an override appended at the end was
// ignored. Refusing every repeat is the one rule that never keeps a value the operator did not
// mean (letting the last win would quietly merge two intentions).
class config_text final : public CLI::ConfigTOML {
 public:
  config_text(std::string path, std::string text)
      : shown_{"config file " + printable(path)}, text_{std::move(text)} {}

  std::vector<CLI::ConfigItem> from_config(std::istream&) const override {
    std::istringstream in{text_};
    std::string line, section;
    for (int number = 1; std::getline(in, line); ++number) {
      const auto trimmed = trim(line);
      if (trimmed.empty() || trimmed.front() == '#' || trimmed.front() == ';') continue;
      if (trimmed.front() == '[') {
        section = std::string{trim(trimmed.substr(1, trimmed.find(']') - 1))};
        if ((section == "camera" || section.starts_with("camera.")) && !camera_sections_.count(section))
          camera_sections_.emplace(section, number);
        continue;
      }
      const auto equals = trimmed.find('=');
      std::string key{trim(trimmed.substr(0, std::min(equals, trimmed.find('#'))))};  // "flag # note"
      if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'') && key.back() == key.front())
        key = key.substr(1, key.size() - 2);
      if (!section.empty() && section != "default") key = section + "." + key;
      if (const auto [first, fresh] = lines_.emplace(key, number); !fresh)
        throw config_error{shown_ + " line " + std::to_string(number) + ": '" + printable(key) +
                           "' is already set on line " + std::to_string(first->second) +
                           "; set each option once (a list such as [\"a\", \"b\"] for several values)"};
      // A list may go on over several lines, as CLI11 reads it.
      if (equals != std::string_view::npos) {
        const auto value = trim(trimmed.substr(equals + 1));
        if (value.size() > 1 && value.front() == '[' && value.back() != ']')
          while (std::getline(in, line)) {
            ++number;
            if (const auto more = trim(line); !more.empty() && more.back() == ']') break;
          }
      }
    }
    // The [camera.NAME] sections are open-ended (CLI11 2.1 maps a section only to a subcommand of
    // that fixed name): their items are kept here for camera_sections(), the rest go to CLI11.
    std::istringstream parse{text_};
    std::vector<CLI::ConfigItem> options;
    for (CLI::ConfigItem& item : CLI::ConfigTOML::from_config(parse)) {
      if (item.parents.empty() || item.parents.front() != "camera")
        options.push_back(std::move(item));
      else if (item.name != "++" && item.name != "--")  // CLI11's section open and close marks
        camera_items_.push_back(std::move(item));
    }
    return options;
  }

  /// The items of the [camera.NAME] sections (and camera.NAME.key dotted keys), as CLI11 read them.
  const std::vector<CLI::ConfigItem>& camera_items() const { return camera_items_; }
  /// Each [camera…] section header, with the line of its first appearance.
  const std::map<std::string, int>& camera_section_lines() const { return camera_sections_; }

  /// "config file PATH line N" for `key`, or "config file PATH" when the file does not set it.
  std::string where(const std::string& key) const {
    const auto found = lines_.find(key);
    return found == lines_.end() ? shown_ : shown_ + " line " + std::to_string(found->second);
  }
  /// True when the file sets `key`.
  bool sets(const std::string& key) const { return lines_.count(key) != 0; }

 private:
  static std::string_view trim(std::string_view s) {
    const auto begin = s.find_first_not_of(" \t\r");
    if (begin == std::string_view::npos) return {};
    return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
  }
  std::string shown_;
  std::string text_;
  mutable std::map<std::string, int> lines_;
  mutable std::map<std::string, int> camera_sections_;
  mutable std::vector<CLI::ConfigItem> camera_items_;
};

// One key a [camera.NAME] section may set, its range, and where it goes.
struct camera_key {
  std::string_view name;  // "width"
  double low, high;       // its range, as the global option's
  bool whole;             // a whole number (width, height, quality)
  void (*set)(camera_spec&, double);
};

constexpr camera_key camera_keys[] = {
    {"width", 16, 7680, true, [](camera_spec& c, double v) { c.width = static_cast<int>(v); }},
    {"height", 16, 4320, true, [](camera_spec& c, double v) { c.height = static_cast<int>(v); }},
    {"fps", 0.1, 240, false, [](camera_spec& c, double v) { c.fps = v; }},
    {"quality", 1, 100, true, [](camera_spec& c, double v) { c.quality = static_cast<int>(v); }},
};

// The cameras of the file's [camera.NAME] sections, in the order of the file, each starting from
// the global settings in `o` and changed by its keys; a config_error naming the section, the key
// and its line for a bad name, an unknown key, a bad value or a section without a source.
std::vector<camera_spec> camera_sections(const config_text& file, const options& o) {
  struct section {
    int line;
    camera_spec camera;
    bool has_source = false;
  };
  std::map<std::string, section> by_name;
  std::vector<std::string> order;  // names, by line
  const auto section_of = [&](const std::string& name, int line, const std::string& where) -> section& {
    if (name.empty()) throw config_error{where + ": [camera] needs the camera's name: [camera.NAME]"};
    if (!http::valid_camera_name(name))
      throw config_error{where + ": [camera." + printable(name) + "]: the name '" + printable(name) +
                         "' must be 1 to 32 of a-z, 0-9, _ and -"};
    auto [it, fresh] =
        by_name.try_emplace(name, section{line, {name, "", o.width, o.height, o.fps, o.quality}});
    if (fresh) order.push_back(name);
    return it->second;
  };
  for (const auto& [header, line] : file.camera_section_lines())
    section_of(header == "camera" ? "" : header.substr(7), line,
               file.where("") + " line " + std::to_string(line));
  for (const CLI::ConfigItem& item : file.camera_items()) {
    const std::string key = item.fullname();
    std::string name;
    for (std::size_t i = 1; i < item.parents.size(); ++i)
      name += (i > 1 ? "." : "") + item.parents[i];
    const std::string where = file.where(key);
    section& s = section_of(name, std::numeric_limits<int>::max(), where);
    const std::string shown = where + ": [camera." + name + "] " + printable(item.name);
    if (item.inputs.size() != 1) throw config_error{shown + ": give one value"};
    const std::string& value = item.inputs.front();
    if (item.name == "source") {
      if (value.empty()) throw config_error{shown + ": the source is empty"};
      s.camera.source = value;
      s.has_source = true;
      continue;
    }
    const auto* known = std::find_if(std::begin(camera_keys), std::end(camera_keys),
                                     [&](const camera_key& k) { return k.name == item.name; });
    if (known == std::end(camera_keys))
      throw config_error{where + ": [camera." + name + "]: unknown key '" + printable(item.name) +
                         "' (a camera takes source, width, height, fps and quality)"};
    double number = 0;
    char range[64];
    std::snprintf(range, sizeof range, "%g to %g", known->low, known->high);
    if (!CLI::detail::lexical_cast(value, number) || !std::isfinite(number))
      throw config_error{shown + ": '" + printable(value) + "' is not a number (" + range + ")"};
    if (known->whole && number != std::floor(number))
      throw config_error{shown + ": '" + printable(value) + "' is not a whole number (" + range + ")"};
    if (number < known->low || number > known->high)
      throw config_error{shown + ": " + printable(value) + " is not in range " + range};
    known->set(s.camera, number);
  }
  std::vector<camera_spec> cameras;
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    return by_name.at(a).line < by_name.at(b).line;
  });
  for (const std::string& name : order) {
    const section& s = by_name.at(name);
    if (!s.has_source)
      throw config_error{
          file.where("camera." + name + ".source") +
          (s.line == std::numeric_limits<int>::max() ? "" : " line " + std::to_string(s.line)) +
          ": [camera." + name +
          "] has no source (source = a device, a folder of JPEGs, a URL or "
          "pattern)"};
    cameras.push_back(s.camera);
  }
  return cameras;
}

// CLI11 2.1 names an unknown key ("INI was not able to parse KEY") but not its line.
std::string unknown_key_message(const CLI::ConfigError& e, const config_text& file) {
  constexpr std::string_view marker = "INI was not able to parse ";
  const std::string what = e.what();
  if (what.rfind(marker, 0) != 0) return file.where("") + ": " + printable(what);
  const std::string key = what.substr(marker.size());
  // "[name]" arrives as the key "name.++": every option lives at the top level.
  if (key.size() > 3 && key.ends_with(".++"))
    return file.where("") + ": unknown section [" + printable(key.substr(0, key.size() - 3)) + "]";
  return file.where(key) + ": unknown key '" + printable(key) + "'";
}

// The --config path given on the command line, or "" for none.
std::string config_argument(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--config" && i + 1 < argc) return argv[i + 1];
    if (arg.starts_with("--config=")) return std::string{arg.substr(9)};
  }
  return "";
}

// True when the command line itself sets --name (so a value error is not the file's).
bool on_command_line(int argc, const char* const* argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--" + name || arg.starts_with("--" + name + "=")) return true;
  }
  return false;
}

// CLI11's message for a bad value, made precise: a value that is no number at all is said to be
// so (CLI11 says "Value 8080abc not in range 0 to 65535"), and a value from the file is named by
// its line there ("config file server.conf line 2: --port: ...").
std::string value_message(const CLI::ParseError& e, int argc, const char* const* argv,
                          const config_text* file) {
  std::string what = e.what();
  constexpr std::string_view value_marker = "Value ", range_marker = " not in range ";
  if (const auto v = what.find(value_marker), r = what.find(range_marker);
      v != std::string::npos && r != std::string::npos && v < r) {
    const std::string value = what.substr(v + value_marker.size(), r - v - value_marker.size());
    char* end = nullptr;
    errno = 0;
    std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size())
      what = what.substr(0, v) + "'" + value + "' is not a number (" + what.substr(r + range_marker.size()) +
             ")";
  }
  what = printable(what);
  if (!file || !what.starts_with("--")) return what;
  const std::string name = what.substr(2, what.find_first_of(": ") - 2);
  if (on_command_line(argc, argv, name) || !file->sets(name)) return what;
  return file->where(name) + ": " + what;
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

// The one line of an --auth-file: "user:pass", a final newline allowed. Like ssh with a key,
// says so when group or others may read it (used all the same).
std::string read_auth_file(const std::string& path, std::string& problem) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
    log::write(log::level::warning, "--auth-file %s can be read by %s (mode %04o): chmod 600 it",
               printable(path).c_str(), (st.st_mode & S_IROTH) != 0 ? "every local user" : "its group",
               static_cast<unsigned>(st.st_mode & 07777));
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
  app.set_config("--config", "",
                 "Read options from this TOML/INI file (the command line wins); a [camera.NAME] section "
                 "per camera: source, and width, height, fps, quality to override the global ones");
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
  app.add_option("--trusted-proxy", o.trusted_proxies,
                 "A reverse proxy's address: for requests from it, the client address the login limit counts "
                 "is the one its X-Forwarded-For (or Forwarded) header names (repeatable; off by default)")
      ->type_name("ADDR")
      ->check([](const std::string& v) {
        boost::system::error_code ec;
        boost::asio::ip::make_address(v, ec);
        return ec ? std::string{"not an IP address"} : std::string{};
      });
  app.add_option("--port", o.port, "TCP port; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option(
         "--source", o.source,
         "pattern | camera index (0) or /dev/videoN | folder or .jpg to replay | zmq+tcp://HOST:PORT or "
         "zmq+ipc:///PATH (frame bus: every camera the origin publishes; #NAME after it takes camera NAME "
         "only) | http://HOST:PORT/PATH (MJPEG relay, no re-encoding) | file or rtsp:// URL for OpenCV")
      ->capture_default_str()
      ->check([](const std::string& v) { return bus::topic_problem(v); });
  std::vector<std::string> camera_args;
  app.add_option(
         "--camera", camera_args,
         "A named camera: NAME=SOURCE, SOURCE as --source takes it, NAME of a-z 0-9 _ - (at most 32); "
         "repeatable, each served at /NAME/stream, /NAME/snapshot, /NAME/stats and /NAME/ (not with "
         "--source), at the global --width, --height, --fps and --quality")
      ->type_name("NAME=SOURCE");
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
  bool no_freshness_gate = false;
  app.add_flag("--no-freshness-gate", no_freshness_gate,
               "Send a slow viewer every newest frame the socket takes, however long the path needs to "
               "deliver it (to see what the freshness gate is for; chapter 7)");
  app.add_option("--idle-stop", o.idle_stop,
                 "Close the source after this many seconds without viewers, reopen on the next (0 = never)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--max-source-down", o.max_source_down,
                 "Seconds the source may stay down before the health check (/healthz) answers 503, so a "
                 "load balancer takes this server out (0 = never)")
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
  app.add_option("--trace", o.trace,
                 "Record each viewer's events (accept, stream start, every frame, leave, 503) with the "
                 "serving thread's id, and write them to this file at exit (bench/timeline draws them)")
      ->type_name("FILE")
      ->check([](const std::string& v) {
        // Appending creates it if need be and destroys nothing: the server truncates it as it starts.
        const int fd = ::open(v.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) return "cannot write " + v + ": " + std::strerror(errno);
        ::close(fd);
        return std::string{};
      });

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
  std::shared_ptr<config_text> config_file;
  std::vector<camera_spec> section_cameras;
  try {
    if (const std::string path = config_argument(argc, argv); !path.empty()) {
      config_file = std::make_shared<config_text>(path, read_config_file(path));
      app.config_formatter(config_file);
    }
    app.parse(argc, argv);
    if (config_file) section_cameras = camera_sections(*config_file, o);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const config_error& e) {
    log::write(log::level::error, "%s", e.what());
    return 2;
  } catch (const CLI::ConfigError& e) {
    log::write(log::level::error, "%s",
               config_file ? unknown_key_message(e, *config_file).c_str() : e.what());
    return 2;
  } catch (const CLI::ParseError& e) {
    return fail(value_message(e, argc, argv, config_file.get()));
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
  if (!camera_args.empty() && app.count("--source") > 0)
    return fail("--source and --camera: give every camera with --camera NAME=SOURCE");
  if (!section_cameras.empty() && app.count("--source") > 0)
    return fail("--source and [camera." + section_cameras.front().name + "] in " + config_file->where("") +
                ": give every camera a section (or --camera NAME=SOURCE)");
  // Each camera as its messages name it: "--camera NAME" or its section.
  std::vector<std::string> shown;
  const auto add_camera = [&](camera_spec camera, std::string label) -> std::optional<int> {
    if (const std::string problem = bus::topic_problem(camera.source); !problem.empty())
      return fail(label + ": " + problem);
    for (std::size_t i = 0; i < o.cameras.size(); ++i) {
      const camera_spec& other = o.cameras[i];
      if (other.name == camera.name)
        return fail(label + ": the name " + camera.name + " is given twice" +
                    (shown[i] == label ? "" : " (also " + shown[i] + ")"));
      // One device can be opened by one capture at a time; the second would fail as busy.
      if (other.source == camera.source &&
          (camera.source.starts_with("/dev/") ||
           camera.source.find_first_not_of("0123456789") == std::string::npos))
        return fail(label + " and " + shown[i] + ": both on " + printable(camera.source));
    }
    o.cameras.push_back(std::move(camera));
    shown.push_back(std::move(label));
    return std::nullopt;
  };
  for (const std::string& arg : camera_args) {
    const auto equals = arg.find('=');
    camera_spec camera{arg.substr(0, equals),
                       equals == std::string::npos ? "" : arg.substr(equals + 1),
                       o.width,
                       o.height,
                       o.fps,
                       o.quality};
    if (equals == std::string::npos) return fail("--camera " + printable(arg) + ": must be NAME=SOURCE");
    if (!http::valid_camera_name(camera.name))
      return fail("--camera " + printable(arg) + ": the name '" + printable(camera.name) +
                  "' must be 1 to 32 of a-z, 0-9, _ and -");
    if (camera.source.empty()) return fail("--camera " + printable(arg) + ": the source is empty");
    if (const auto code = add_camera(camera, "--camera " + camera.name)) return *code;
  }
  for (camera_spec& camera : section_cameras) {
    const std::string label =
        config_file->where("camera." + camera.name + ".source") + ": [camera." + camera.name + "]";
    if (const auto code = add_camera(std::move(camera), label)) return *code;
  }
  if (o.cameras.empty()) o.cameras.push_back({"", o.source, o.width, o.height, o.fps, o.quality});
  o.log_level = quiet ? log::level::warning : *log::parse_level(log_level);
  o.freshness_gate = !no_freshness_gate;
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
