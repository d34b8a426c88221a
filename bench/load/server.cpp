#include "server.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mjpeg::bench {

std::unique_ptr<launched_server> launch(config& cfg) {
  if (cfg.launch.empty()) return nullptr;
  std::istringstream words{cfg.launch};
  std::vector<std::string> args{std::istream_iterator<std::string>{words}, {}};
  if (args.empty()) throw std::runtime_error("--launch: empty command");
  const std::string program = args.front();
  args.erase(args.begin());
  auto server = std::make_unique<launched_server>(program, args);
  // Keep the path the user gave (if any); host and port come from the server.
  std::string path = "stream";
  if (const auto scheme = cfg.url.find("://"); scheme != std::string::npos) {
    const auto slash = cfg.url.find('/', scheme + 3);
    if (slash != std::string::npos) path = cfg.url.substr(slash + 1);
  }
  cfg.url = server->url() + path;
  cfg.server_pid = server->pid();
  return server;
}

double observation::server_cpu() const {
  if (!at_window_start || !at_end) return std::numeric_limits<double>::quiet_NaN();
  return cpu_between(*at_window_start, threads_at_window_start, *at_end, threads_at_end);
}

observation observe(pid_t pid, const timeline& tl) {
  observation seen;
  const auto sample = [&]() -> std::optional<process_sample> {
    if (pid <= 0) return std::nullopt;
    auto s = sample_process(pid);
    if (!s) {
      seen.alive = false;
      return s;
    }
    seen.rss_max = std::max(seen.rss_max, s->rss_bytes);
    seen.threads_max = std::max(seen.threads_max, s->threads);
    return s;
  };
  while (steady::now() < tl.window_start) {
    sample();
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  seen.at_window_start = sample();
  if (pid > 0) seen.threads_at_window_start = thread_runtimes(pid);
  const double own_cpu_start = own_cpu_seconds();
  while (steady::now() < tl.end) {
    std::this_thread::sleep_until(std::min(tl.end, steady::now() + std::chrono::milliseconds{200}));
    sample();
  }
  seen.at_end = sample();
  if (pid > 0) seen.threads_at_end = thread_runtimes(pid);
  seen.own_cpu = own_cpu_seconds() - own_cpu_start;
  return seen;
}

}  // namespace mjpeg::bench
