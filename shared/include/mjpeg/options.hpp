/// The command line every variant shares, and the options each model adds.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mjpeg/log.hpp"

namespace mjpeg {

/// One camera a server serves: its name (empty for the one camera of a server without --camera),
/// its source spec (anything --source takes) and the settings its capture runs with: the global
/// --width, --height, --fps and --quality, or what its [camera.NAME] section of the config file says.
struct camera_spec {
  std::string name;    ///< [a-z0-9_-]{1,32}, or empty for the unnamed only camera.
  std::string source;  ///< Frame source spec (see make_source).
  int width = 640;     ///< Frame width asked of its source.
  int height = 480;    ///< Frame height asked of its source.
  double fps = 30;     ///< Frames per second it publishes (and the most ?fps=N asks of it).
  int quality = 80;    ///< JPEG quality where its frames are encoded.
};

/// Every command-line option. The common ones exist in every variant; the model options only
/// where the variant's concurrency model gives them a meaning (see model_options).
struct options {
  std::string host = "127.0.0.1";  ///< Address to bind; loopback unless told otherwise.
  int port = 8080;                 ///< TCP port; 0 picks a free one.
  std::string source = "pattern";  ///< Frame source spec (see make_source).
  /// The cameras served, in order: each --camera NAME=SOURCE, then each [camera.NAME] section of
  /// the config file, or without any the one unnamed camera on --source.
  std::vector<camera_spec> cameras;
  int width = 640;             ///< Frame width in pixels.
  int height = 480;            ///< Frame height in pixels.
  double fps = 30;             ///< Frames per second.
  int quality = 80;            ///< JPEG quality.
  bool encode = false;         ///< Re-encode a camera's MJPEG at --quality instead of passing it through.
  double duration = 0;         ///< Stop after this many seconds; 0 runs until a signal.
  double header_timeout = 10;  ///< Seconds a client has to send its request head.
  double send_timeout = 10;    ///< Seconds a viewer may stall a send before it is dropped.
  /// Ask the freshness gate before each frame (freshness.hpp); --no-freshness-gate shows why.
  bool freshness_gate = true;
  std::string auth;                      ///< "user:pass" for HTTP Basic on every endpoint; empty = open.
  std::vector<std::string> allow_hosts;  ///< Host names accepted besides loopback ones (loopback bind).
  double idle_stop = 0;                  ///< Close the source after this long without viewers; 0 = never.
  int threads = 1;                       ///< Worker threads (thread_pool, async).
  int queue = 0;                         ///< Waiting connections (thread_pool).
  int max_clients = 0;                   ///< Open connections before 503 (per worker process); 0 = unlimited.
  log::level log_level = log::level::info;  ///< Least severe log lines written (--log-level, --quiet).
  std::vector<std::string> publish;         ///< Frame-bus endpoints to publish every frame on.
  std::string bus_keys;    ///< CurveZMQ key directory (publish and bus sources); empty = none.
  std::string bus_keygen;  ///< Write a new key set into this directory and exit.
  int workers = 0;         ///< Worker processes behind one port; 0 = serve in this process.
  std::string worker_of;   ///< Hidden: this process is a worker; the parent's private directory.
  int worker_index = 0;    ///< Hidden: this worker's slot.

  /// /healthz answers 503 once the source has been down this many seconds; 0 = never.
  double max_source_down = 30;
  /// Reverse proxies whose X-Forwarded-For/Forwarded name the client (--trusted-proxy).
  std::vector<std::string> trusted_proxies;
  /// Write every viewer's events to this file at exit (--trace); empty = off.
  std::string trace;
};

/// Which model options a variant has, with its defaults; nullopt leaves the option out.
struct model_options {
  std::optional<int> threads;      ///< --threads default.
  std::optional<int> queue;        ///< --queue default.
  std::optional<int> max_clients;  ///< --max-clients default (0 = unlimited).
};

/// Name and one-line description of a variant, and the options its model adds.
struct variant_info {
  std::string_view name;     ///< "single_thread", "thread_pool", …: shown in /stats and the page.
  std::string_view summary;  ///< One line for --help.
  model_options model;       ///< The options this model adds.
};

/// The binary's name for a variant: "mjpeg-" and the name with dashes ("mjpeg-thread-pool").
std::string binary_name(const variant_info& info);

/// Environment variable holding "user:pass" when neither --auth nor --auth-file is given.
inline constexpr const char* auth_variable = "MJPEG_AUTH";

/// Parses the command line, the --config file (TOML/INI, CLI11's own reader: every option by its
/// long name without dashes; the command line wins; one [camera.NAME] section per camera, with
/// the keys source, width, height, fps and quality) and MJPEG_AUTH. Returns the options, or the
/// exit code to leave with: 0 after --help or --version, 2 after a bad value or an unknown key in
/// the file (a one-line message naming the option, or the key and its line, is printed to
/// stderr). Also sets the log's program name and level.
std::variant<options, int> parse_options(int argc, const char* const* argv, const variant_info& info);

}  // namespace mjpeg
