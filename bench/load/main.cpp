// mjpeg-load: simulated viewers for an MJPEG-over-HTTP server.
//
// Opens N viewers against a stream URL, reads multipart/x-mixed-replace, parses only part headers
// and skips the JPEG bodies, and reports per-viewer fps, frame age (receive time − X-Timestamp),
// skipped frames, stalls, statuses and fairness. Readiness-based reads into one large buffer per
// thread keep it cheaper than the server it drives: a viewer costs a socket and a small parser,
// not a read buffer. Bounded by --duration; loopback only (or any address inside a test network
// namespace).
//
// The pieces: viewers.cpp (the viewer engine), server.cpp (--launch and the /proc watch),
// report.cpp (JSON and the summary); here the command line and run(), step by step.

#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "mjpeg/url.hpp"

#include "report.hpp"
#include "server.hpp"
#include "viewers.hpp"

namespace mjpeg::bench {
namespace {

/// The options, into `cfg`.
void add_options(CLI::App& app, config& cfg) {
  app.add_option("url", cfg.url,
                 "Stream URL, e.g. http://127.0.0.1:8080/stream (with --launch: only its path counts; "
                 "default /stream)");
  app.add_option("-n,--viewers", cfg.viewers, "Viewers reading at full speed")->check(CLI::Range(0, 100000));
  app.add_option("-d,--duration", cfg.duration, "Seconds the whole run lasts")
      ->check(CLI::Range(0.5, 86400.0));
  app.add_option("--ramp", cfg.ramp, "Seconds over which viewers connect")->check(CLI::Range(0.0, 3600.0));
  app.add_flag("--burst", cfg.burst, "Connect every viewer at once (no ramp)");
  app.add_option("--warmup", cfg.warmup, "Seconds after the ramp before metrics count")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--slow", cfg.slow, "Extra viewers that read slowly")->check(CLI::Range(0, 100000));
  app.add_option(
         "--slow-rcvbuf", cfg.slow_rcvbuf,
         "Receive buffer (SO_RCVBUF) of a slow viewer in bytes; 0 keeps the system's autotuned default")
      ->check(CLI::Range(0, 64 * 1024 * 1024));
  app.add_option("--slow-rate", cfg.slow_rate, "Bytes per second a slow viewer reads")
      ->check(CLI::Range(1.0, 1e10));
  app.add_option("--idle", cfg.idle, "Connections that never send a request (slowloris)")
      ->check(CLI::Range(0, 100000));
  app.add_option(
         "--source-address", cfg.source_addresses,
         "Loopback address viewers connect from (repeatable: taken in turn; each gives ~28,000 ports)")
      ->check([](const std::string& v) {
        boost::system::error_code ec;
        const auto a = boost::asio::ip::make_address(v, ec);
        return !ec && a.is_loopback() ? std::string{} : std::string{"must be a loopback address"};
      });
  app.add_option("--path", cfg.paths,
                 "Spread the viewers over these paths in turn instead of the URL's (repeatable; e.g. "
                 "/front/stream /yard/stream for several cameras)")
      ->check([](const std::string& v) {
        return v.starts_with("/") ? std::string{} : std::string{"must start with /"};
      });
  app.add_option("--threads", cfg.threads, "Load generator threads")->check(CLI::Range(1, 64));
  app.add_option("--stall-ms", cfg.stall_ms, "A gap between frames longer than this is a stall")
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--server-pid", cfg.server_pid, "Sample this process's CPU, RSS and threads from /proc");
  app.add_option("--json", cfg.json, "Write the full report as JSON to this file");
  app.add_option("--label", cfg.label, "Free text copied into the JSON report");
  app.add_flag("!--no-per-viewer", cfg.per_viewer, "Leave the per-viewer list out of the JSON");
  app.add_option("--trace", cfg.trace,
                 "Write each viewer's events (connect, open, status, every frame's seq, close) to this "
                 "file, named by the viewer's local port as the server's --trace names it")
      ->type_name("FILE");
  app.add_option(
      "--launch", cfg.launch,
      "Start this server command (words split at spaces; --port 0 unless it names one), read its URL line, "
      "sample it as --server-pid, and stop it at the end");
}

bool parse_url(config& cfg) {
  auto parts = mjpeg::http::parse_url(cfg.url);
  if (!parts) return false;
  cfg.host = std::move(parts->host);
  cfg.port = std::move(parts->port);
  cfg.target = std::move(parts->target);
  return true;
}

/// True when this process runs in a named network namespace (`ip netns add`, as bench/network and
/// the tests build their test networks), whose addresses are private to that network.
bool in_private_network_namespace() {
  struct stat self {};
  if (::stat("/proc/self/ns/net", &self) != 0) return false;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{"/run/netns", ec}) {
    struct stat named {};
    if (::stat(entry.path().c_str(), &named) == 0 && named.st_ino == self.st_ino &&
        named.st_dev == self.st_dev)
      return true;
  }
  return false;
}

/// The stream's address, which must be loopback (or inside a test network namespace): this tool
/// opens thousands of connections and must never aim them elsewhere.
tcp::endpoint loopback_endpoint(const config& cfg) {
  asio::io_context resolver_io;
  tcp::resolver resolver{resolver_io};
  error_code ec;
  const auto results = resolver.resolve(cfg.host, cfg.port, ec);
  if (ec || results.empty()) throw std::runtime_error("cannot resolve " + cfg.host + ": " + ec.message());
  const tcp::endpoint endpoint = *results.begin();
  if (!endpoint.address().is_loopback() && !in_private_network_namespace())
    throw std::runtime_error(
        cfg.host + " is not a loopback address (and this is not a named test network namespace); refusing");
  return endpoint;
}

/// Each connection is a descriptor: takes the whole hard limit, and says so if it is not enough.
void raise_descriptor_limit(const config& cfg) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  const auto needed = static_cast<rlim_t>(cfg.viewers + cfg.slow + cfg.idle + 64);
  if (needed > limit.rlim_cur)
    throw std::runtime_error(std::to_string(needed) + " connections need more descriptors than the limit " +
                             std::to_string(limit.rlim_cur));
}

/// Runs every worker on its own thread while this one watches the server and the clock.
observation drive(const std::vector<std::unique_ptr<worker>>& workers, const config& cfg,
                  const timeline& tl) {
  std::vector<std::thread> threads;
  for (const auto& w : workers)
    threads.emplace_back([&w] { w->run(); });
  observation seen = observe(cfg.server_pid, tl);
  for (auto& t : threads)
    t.join();
  return seen;
}

/// The JSON report to --json, if asked.
void write_json(const std::string& json, const config& cfg) {
  if (cfg.json.empty()) return;
  std::ofstream out{cfg.json};
  out << json << '\n';
  if (!out) std::fprintf(stderr, "mjpeg-load: cannot write %s\n", cfg.json.c_str());
}

/// One run, start to end. Exit code 1 when --launch fails, 2 for a setup that cannot work (bad
/// URL, not loopback, too few descriptors).
int run(config cfg) {
  std::unique_ptr<launched_server> server;
  try {
    server = launch(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mjpeg-load: %s\n", e.what());
    return 1;
  }
  tcp::endpoint endpoint;
  try {
    if (!parse_url(cfg)) throw std::invalid_argument("URL must look like http://127.0.0.1:PORT/stream");
    if (cfg.viewers + cfg.slow + cfg.idle == 0) throw std::invalid_argument("nothing to do (no viewers)");
    endpoint = loopback_endpoint(cfg);
    raise_descriptor_limit(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mjpeg-load: %s\n", e.what());
    return 2;
  }
  std::optional<trace_log> trace;
  if (!cfg.trace.empty()) {
    if (std::FILE* f = std::fopen(cfg.trace.c_str(), "w")) {
      std::fclose(f);
    } else {
      std::fprintf(stderr, "mjpeg-load: cannot write %s\n", cfg.trace.c_str());
      return 2;
    }
    trace.emplace(cfg.trace, 'C');
  }
  const timeline tl = plan_timeline(cfg);
  const auto workers = place_viewers(cfg, tl, endpoint, trace ? &*trace : nullptr);
  const run_report report = gather(workers, cfg, tl, drive(workers, cfg, tl));
  if (trace) trace->flush();
  write_json(json_report(report, cfg, tl, workers), cfg);
  print_summary(report, cfg);
  if (server) server->stop(std::chrono::seconds{5});
  return 0;
}

}  // namespace
}  // namespace mjpeg::bench

int main(int argc, char** argv) {
  mjpeg::bench::config cfg;
  CLI::App app{"mjpeg-load: simulated viewers for an MJPEG-over-HTTP stream (loopback only)"};
  mjpeg::bench::add_options(app, cfg);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return mjpeg::bench::run(cfg);
}
