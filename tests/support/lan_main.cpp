// mjpeg-lan: the tests' hosts on one switch (netns.hpp's lan) for scripts, so that the shaped
// networks of the tests and of bench/network are one implementation.
//
//   mjpeg-lan PREFIX CONGESTION NAME[=RATE_BITS/QUEUE_MS]…
//
// Creates host PREFIX-NAME for each NAME in order (addresses 10.77.0.1, .2, …), shapes the downlink
// of each host given a rate (bit/s) and a bottleneck queue (ms), sets every host's TCP congestion
// control, prints one line "NAME NAMESPACE ADDRESS" per host and then "ready", and removes it all
// when its standard input closes, on SIGTERM or SIGINT, or after an hour at the latest. Exit 2 for
// bad arguments, 1 when the network cannot be built.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "netns.hpp"

namespace {

struct host_spec {
  std::string name;
  mjpeg::test::shaping down;
  bool shaped = false;
};

// "NAME" or "NAME=RATE_BITS/QUEUE_MS"; false if malformed.
bool parse_host(const std::string& arg, host_spec& out) {
  const auto eq = arg.find('=');
  out.name = arg.substr(0, eq);
  if (out.name.empty() || out.name.find_first_of("/ ") != std::string::npos) return false;
  if (eq == std::string::npos) return true;
  const auto slash = arg.find('/', eq);
  if (slash == std::string::npos) return false;
  try {
    std::size_t used = 0;
    const std::string rate = arg.substr(eq + 1, slash - eq - 1);
    const std::string queue = arg.substr(slash + 1);
    out.down.rate_bits = std::stoull(rate, &used);
    if (used != rate.size()) return false;
    out.down.queue = std::chrono::milliseconds{std::stoul(queue, &used)};
    if (used != queue.size()) return false;
  } catch (const std::exception&) {
    return false;
  }
  out.shaped = true;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: mjpeg-lan PREFIX CONGESTION NAME[=RATE_BITS/QUEUE_MS]...\n";
    return 2;
  }
  std::vector<host_spec> specs;
  for (int i = 3; i < argc; ++i) {
    host_spec h;
    if (!parse_host(argv[i], h)) {
      std::cerr << "mjpeg-lan: bad host '" << argv[i] << "' (NAME or NAME=RATE_BITS/QUEUE_MS)\n";
      return 2;
    }
    specs.push_back(h);
  }
  if (const auto why = mjpeg::test::netns_unavailable(); !why.empty()) {
    std::cerr << "mjpeg-lan: " << why << "\n";
    return 1;
  }
  // Signals are read from a descriptor, so that they end the wait below and the destructors
  // remove every namespace.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signals = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
  try {
    mjpeg::test::lan net{argv[1]};
    std::vector<std::size_t> hosts;
    for (const auto& h : specs) {
      hosts.push_back(net.add_host(h.name));
      if (h.shaped) net.shape_down(hosts.back(), h.down);
    }
    net.set_congestion_control(argv[2]);
    for (std::size_t i = 0; i < hosts.size(); ++i)
      std::cout << specs[i].name << ' ' << net.host(hosts[i]).name() << ' ' << net.address(hosts[i]) << '\n';
    std::cout << "ready" << std::endl;
    pollfd waits[2] = {{STDIN_FILENO, POLLIN, 0}, {signals, POLLIN, 0}};
    char byte;
    while (::poll(waits, 2, 3'600'000) > 0 && waits[1].revents == 0 &&
           !((waits[0].revents & (POLLIN | POLLHUP)) != 0 && ::read(STDIN_FILENO, &byte, 1) <= 0)) {
    }
  } catch (const std::exception& e) {
    std::cerr << "mjpeg-lan: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
