#include "mjpeg/options.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include <CLI/CLI.hpp>

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

}  // namespace

std::string binary_name(const variant_info& info) {
  std::string name = "mjpeg-" + std::string{info.name};
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

std::variant<options, int> parse_options(int argc, const char* const* argv, const variant_info& info) {
  options o;
  CLI::App app{std::string{info.summary}, binary_name(info)};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.get_formatter()->column_width(28);

  app.add_option("--host", o.host, "Address to bind (use 0.0.0.0 only behind a proxy)")
      ->capture_default_str();
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
  app.add_option("--auth", o.auth, "Require HTTP Basic credentials user:pass on every endpoint")
      ->check([](const std::string& v) {
        return v.find(':') == std::string::npos ? std::string{"must be user:pass"} : std::string{};
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: error: %s (see --help)\n", app.get_name().c_str(), e.what());
    return 2;
  }
  // A cap above what this process may open would only fail later, at accept time: lower it to
  // what the open-file limit allows, and say so.
  if (o.max_clients > max_viewers) {
    std::fprintf(stderr,
                 "%s: the open-file limit (%ld) allows %d connections: --max-clients %d lowered to %d\n",
                 app.get_name().c_str(), fd_limit, max_viewers, o.max_clients, max_viewers);
    o.max_clients = max_viewers;
  }
  return o;
}

}  // namespace mjpeg
