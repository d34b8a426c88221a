#include "mjpeg/app.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "mjpeg/bus.hpp"
#include "mjpeg/capture.hpp"
#include "mjpeg/listener.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/source_factory.hpp"
#include "mjpeg/workers.hpp"

namespace mjpeg {
namespace {

// --bus-keygen DIR: writes the keys and says who needs which. Returns the exit code.
int generate_keys(const options& opts, const std::string& name) {
  try {
    bus::generate_keys(opts.bus_keygen);
  } catch (const std::exception& e) {
    log::write(log::level::error, "%s", e.what());
    return 1;
  }
  std::printf(
      "%s: keys written to %s: the publisher needs server.secret and authorized/, each "
      "subscriber server.pub, client.pub and client.secret\n",
      name.c_str(), opts.bus_keygen.c_str());
  return 0;
}

// Signals are blocked before any thread starts, so every thread inherits the mask and only the
// watcher receives them. A viewer that vanishes must never kill us with SIGPIPE.
void block_stop_signals() {
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
}

// Waits for SIGINT/SIGTERM (blocked in every thread, so they queue here) or the --duration
// deadline, whichever comes first, or for a shutdown triggered elsewhere.
void watch_signals(shutdown_signal& shutdown, double duration) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const auto deadline = duration > 0 ? std::chrono::steady_clock::now() + seconds(duration)
                                     : std::chrono::steady_clock::time_point::max();
  while (!shutdown.triggered()) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    const timespec tick{0, 50'000'000};  // also notice a trigger from elsewhere
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  shutdown.trigger();
}

// The signal watcher on a thread of its own, started first so SIGINT/SIGTERM stop the server at
// every stage, start-up included; whatever way we leave, it is told to stop and joined.
class signal_watcher {
 public:
  signal_watcher(shutdown_signal& shutdown, double duration)
      : shutdown_{shutdown}, thread_{[&shutdown, duration] { watch_signals(shutdown, duration); }} {}
  ~signal_watcher() {
    shutdown_.trigger();
    thread_.join();
  }
  signal_watcher(const signal_watcher&) = delete;
  signal_watcher& operator=(const signal_watcher&) = delete;

 private:
  shutdown_signal& shutdown_;
  std::thread thread_;
};

// The bus publisher on `endpoints` (none: no publisher), carrying every camera under its name,
// and the capture sinks that feed it.
struct publishing {
  std::optional<bus::publisher> publisher;
  publishing(const std::vector<std::string>& endpoints, const std::vector<camera_spec>& cameras,
             const options& opts, server_stats& stats) {
    if (endpoints.empty()) return;
    const auto keys = opts.bus_keys.empty() ? std::nullopt : std::optional<bus::key_files>{{opts.bus_keys}};
    std::vector<std::string> names;  // the catalogue: every named camera
    for (const camera_spec& camera : cameras)
      if (!camera.name.empty()) names.push_back(camera.name);
    publisher.emplace(endpoints, keys, std::move(names));
    stats.set_publish(publisher->endpoints());
  }
  // What feeds camera `name`'s frames to the bus, under its topic (none without a publisher).
  capture::frame_sink sink(const std::string& name) {
    if (!publisher) return {};
    return [this, name](const frame& f) { publisher->send(f, name); };
  }
};

// How long an edge given a bus source that names no camera waits at start to learn what the
// publisher serves (its catalogue comes every bus::catalogue_interval).
constexpr std::chrono::seconds discovery_wait{2};

// The cameras this process serves: those the options give, except that a bus source naming no
// camera serves what its publisher serves: every camera, under the publisher's names (its
// catalogue), or its one unnamed camera. A worker asks its parent's bus the same question. When
// nothing is heard within discovery_wait, the one unnamed camera, said once (it may come later).
std::vector<camera_spec> served_cameras(const options& opts, const workers::role& role,
                                        const shutdown_signal& shutdown) {
  const camera_spec& only = opts.cameras.front();
  if (opts.cameras.size() != 1 || !only.name.empty() || !bus::is_bus_source(only.source) ||
      !bus::split_source(only.source).topic.empty())
    return opts.cameras;
  const source_config asked = role.source(only);
  const auto keys = asked.bus_keys.empty() ? std::nullopt : std::optional<bus::key_files>{{asked.bus_keys}};
  const auto names =
      bus::discover_cameras(asked.spec, keys, discovery_wait, [&shutdown] { return shutdown.triggered(); });
  if (!names) {
    if (!shutdown.triggered())
      log::write(log::level::warning,
                 "bus %s: no camera list and no frame within %lld s; serving it as one unnamed camera",
                 only.source.c_str(), static_cast<long long>(discovery_wait.count()));
    return opts.cameras;
  }
  if (names->empty()) return opts.cameras;
  std::vector<camera_spec> cameras;
  std::string listed;
  for (const std::string& name : *names) {
    camera_spec camera = only;  // the global size and rate
    camera.name = name;
    camera.source = only.source + bus::topic_separator + name;
    cameras.push_back(std::move(camera));
    listed += (listed.empty() ? "" : ", ") + name;
  }
  log::write(log::level::info, "bus %s: serving its cameras %s", only.source.c_str(), listed.c_str());
  return cameras;
}

// Opens `source` on a thread of its own and waits until it is open, until shutdown, or for
// source_open_timeout. True when open, false on shutdown; throws the source's own error. A source
// stuck in its driver can be neither interrupted nor joined: on a timeout (or a signal) during
// such an open, say so in one line and leave the process at once.
bool open_source(frame_source& source, const shutdown_signal& shutdown) {
  std::promise<void> opened;
  std::future<void> result = opened.get_future();
  std::thread opener{[&] {
    try {
      source.open();
      opened.set_value();
    } catch (...) {
      opened.set_exception(std::current_exception());
    }
  }};
  const auto until = std::chrono::steady_clock::now() + source_open_timeout;
  while (result.wait_for(std::chrono::milliseconds{20}) != std::future_status::ready) {
    if (!shutdown.triggered() && std::chrono::steady_clock::now() < until) continue;
    if (!shutdown.triggered())
      log::write(
          log::level::error, "source '%s' did not open within %lld s", source.describe().c_str(),
          static_cast<long long>(std::chrono::ceil<std::chrono::seconds>(source_open_timeout).count()));
    std::fflush(nullptr);
    std::_Exit(shutdown.triggered() ? 0 : 1);
  }
  opener.join();
  result.get();  // the source's own error, if it failed
  return !shutdown.triggered();
}

// Stops every camera's capture on the way out, all at once: a capture thread stuck in its
// source's driver cannot be joined; leave without it rather than hang past the promised second.
struct stop_captures {
  std::vector<std::unique_ptr<capture>>& cameras;
  ~stop_captures() {
    for (const auto& camera : cameras)
      camera->stop();
    for (const auto& camera : cameras) {
      if (camera->stop_within(std::chrono::milliseconds{500})) continue;
      log::write(log::level::error, "the source does not return; leaving without it");
      std::fflush(nullptr);
      std::_Exit(0);
    }
  }
};

// One camera's own core: counters and hub (its capture thread is started later, beside the others).
struct camera_core {
  camera_core(camera_spec camera, std::string variant) : spec{std::move(camera)}, stats{std::move(variant)} {}
  camera_spec spec;
  server_stats stats;
  frame_hub hub;
};

// What the router needs: credentials, and the Host policy of the address we are bound to.
http::route_options routes_for(const options& opts, const std::vector<camera_spec>& cameras,
                               const boost::asio::ip::tcp::acceptor& acceptor) {
  http::route_options routes;
  if (!opts.auth.empty()) routes.expected_authorization = http::basic_authorization(opts.auth);
  // Bound to loopback, only this machine can connect, but a web page it visits can reach us
  // through DNS rebinding: its requests then name the attacker's host, so Host must be ours.
  routes.loopback_only = listener::bound_to_loopback(acceptor);
  routes.allowed_hosts = opts.allow_hosts;
  for (const std::string& proxy : opts.trusted_proxies)
    routes.trusted_proxies.push_back(boost::asio::ip::make_address(proxy));  // checked by parse_options
  for (const camera_spec& camera : cameras)
    routes.camera_rates.push_back(camera.fps);  // the most its viewer may ask for with ?fps=N
  if (cameras.size() > 1 || (cameras.size() == 1 && !cameras.front().name.empty()))
    for (const camera_spec& camera : cameras)
      routes.cameras.push_back(camera.name);
  return routes;
}

}  // namespace

int run_variant(int argc, const char* const* argv, const variant_info& info, const serve_function& serve) {
  // Parse; --bus-keygen only writes keys.
  auto parsed = parse_options(argc, argv, info);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const options& opts = std::get<options>(parsed);
  const std::string name = binary_name(info);
  if (!opts.bus_keygen.empty()) return generate_keys(opts, name);
  block_stop_signals();
  try {
    const int inherited = listener::inherited();  // before any thread starts: it edits the environment
    // The role: a single server, the parent of --workers (captures, supervises) or a worker.
    workers::role role{opts};
    role.set_process_title();
    // --trace: a fresh file (workers append to their parent's), written as we leave.
    if (!opts.trace.empty() && opts.worker_of.empty()) ::truncate(opts.trace.c_str(), 0);
    std::optional<trace_log> trace;
    if (!opts.trace.empty()) trace.emplace(opts.trace);
    // The core: one set of counters and one broadcast hub per camera (the first camera's counters
    // are also the server's), made once we know the cameras; it outlives the shutdown signal's
    // watcher, whose last trigger closes the hubs.
    std::vector<std::unique_ptr<camera_core>> cores;
    // The one shutdown signal and its watcher, first: asking a bus what it serves can take a while.
    shutdown_signal shutdown;
    const signal_watcher watcher{shutdown, role.duration()};
    const std::vector<camera_spec> cameras = served_cameras(opts, role, shutdown);
    for (const camera_spec& spec : cameras) {
      cores.push_back(std::make_unique<camera_core>(spec, std::string{info.name}));
      if (trace) cores.back()->stats.set_trace(&*trace);
      cores.back()->stats.set_config(spec.width, spec.height, spec.fps);
    }
    server_stats& stats = cores.front()->stats;
    shutdown.on_trigger([&cores] {
      for (const auto& core : cores)
        core->hub.close();
    });
    std::vector<server_stats*> every_stats;
    for (const auto& core : cores)
      every_stats.push_back(&core->stats);
    const auto reporting = role.share(every_stats);
    // The publisher: every --publish endpoint, and the parent's private one for its workers.
    publishing publish{role.publish_endpoints(), cameras, opts, stats};
    // The sources, open before we listen: a camera that is not there is an error at start, not a
    // blank page. Another server's frames may not flow yet (an origin that starts later): do not
    // wait long for them. Each camera has its own capture thread.
    std::vector<std::unique_ptr<capture>> captures;
    const stop_captures stopping{captures};
    auto first_frame_wait = std::chrono::seconds{10};
    for (const auto& core : cores) {
      // Each camera from its own source at its own size and rate; a worker reads each from its
      // parent's bus, by name.
      auto source = make_source(role.source(core->spec));
      if (!open_source(*source, shutdown)) return 0;
      if (source->forwards()) first_frame_wait = std::chrono::seconds{1};
      captures.push_back(std::make_unique<capture>(
          std::move(source), capture_config{core->spec.fps, core->spec.quality, opts.idle_stop}, core->hub,
          core->stats, publish.sink(core->spec.name)));
    }
    // Listen once the first frames exist, so the URL line means "ready" (a snapshot works at once).
    // A signal closes the hubs and ends this wait too.
    for (const auto& core : cores)
      if (!core->hub.wait_newer_for(0, first_frame_wait) && !shutdown.triggered())
        log::write(log::level::warning, "no frame from the source%s%s yet; serving anyway",
                   core->spec.name.empty() ? "" : " of camera ", core->spec.name.c_str());
    if (shutdown.triggered()) return 0;
    // The listener: workers all bind the port their parent reserved (SO_REUSEPORT).
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor acceptor{io};
    listener::open(acceptor, opts.host, inherited, role.port(), role.shares_port());
    if (role.supervises()) return role.supervise(acceptor, shutdown, name, argc, argv);
    // Serve.
    acceptor.listen(4096);  // room for a burst of connects; the kernel caps it at somaxconn
    login_limiter logins;
    std::vector<camera_feed> feeds;
    for (const auto& core : cores)
      feeds.push_back({core->spec.name, core->spec.source, core->hub, core->stats});
    server_context ctx{
        info.name, name,     opts,   cores.front()->hub, stats, shutdown, routes_for(opts, cameras, acceptor),
        io,        acceptor, logins, std::move(feeds)};
    listener::print_url_line(name, acceptor);

    try {
      serve(ctx);
    } catch (...) {
      shutdown.trigger();  // wake whatever still waits before the io_context goes away
      throw;
    }
    log::flush_dropped();
    return 0;
  } catch (const std::exception& e) {
    log::write(log::level::error, "%s", e.what());
    return 1;
  }
}

}  // namespace mjpeg
