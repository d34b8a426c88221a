#include "netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mjpeg::test {
namespace {

std::string find_tool(const char* name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    const std::string path = std::string{dir} + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

std::string tc_tool() {
  static const std::string path = find_tool("tc");
  return path;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words)
    out += (out.empty() ? "" : " ") + w;
  return out;
}

// Runs a tool to completion; throws with its stderr when it fails.
void must(const std::string& tool, const std::vector<std::string>& args) {
  const auto r = run_command(tool, args, 10s);
  if (r.exit_code != 0)
    throw std::runtime_error(tool + " " + join(args) + " failed (" + std::to_string(r.exit_code) +
                             "): " + r.err);
}

std::string strip_prefix_length(const std::string& address) {
  return address.substr(0, address.find('/'));
}

// tbf needs a bucket of at least one packet (larger packets are dropped) and of at least one
// timer tick of rate; 10 ms of rate, and never under four full-size frames.
std::uint32_t default_burst(std::uint64_t rate_bits) {
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(rate_bits / 8 / 100, 4 * 1514));
}

}  // namespace

std::string ip_tool() {
  static const std::string path = find_tool("ip");
  return path;
}

std::string netns_unavailable() {
  static const std::string reason = [] {
    if (::geteuid() != 0) return std::string{"network namespace tests need root"};
    if (ip_tool().empty()) return std::string{"no `ip` tool (iproute2)"};
    if (tc_tool().empty()) return std::string{"no `tc` tool (iproute2)"};
    const std::string probe = unique_netns_prefix("probe");
    const auto added = run_command(ip_tool(), {"netns", "add", probe}, 10s);
    if (added.exit_code != 0) return "`ip netns add` fails: " + added.err;
    run_command(ip_tool(), {"netns", "del", probe}, 10s);
    return std::string{};
  }();
  return reason;
}

std::string unique_netns_prefix(const std::string& owner) {
  static std::atomic<int> counter{0};
  return "mjnet-" + owner + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

int sweep_netns(const std::string& prefix) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{"/run/netns", ec}) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    if (run_command(ip_tool(), {"netns", "del", name}, 10s).exit_code == 0) ++removed;
  }
  return removed;
}

netns::netns(std::string name) : name_{std::move(name)} {
  must(ip_tool(), {"netns", "add", name_});
  try {
    must(ip_tool(), {"-n", name_, "link", "set", "lo", "up"});
  } catch (...) {
    run_command(ip_tool(), {"netns", "del", name_}, 10s);
    throw;
  }
}

netns::~netns() {
  run_command(ip_tool(), {"netns", "del", name_}, 10s);
}

std::vector<std::string> netns::exec_args(const std::vector<std::string>& argv) const {
  std::vector<std::string> args{"netns", "exec", name_};
  args.insert(args.end(), argv.begin(), argv.end());
  return args;
}

run_result netns::run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) const {
  return run_command(ip_tool(), exec_args(argv), timeout);
}

void netns::must_run(const std::vector<std::string>& argv) const {
  must(ip_tool(), exec_args(argv));
}

std::unique_ptr<server_process> netns::start_server(const std::string& binary,
                                                    std::vector<std::string> args) const {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<server_process>(ip_tool(), exec_args(argv));
}

void netns::set_congestion_control(const std::string& algorithm) const {
  const std::vector<std::string> set{"sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control=" + algorithm};
  if (run(set).exit_code == 0) return;
  // Outside the initial namespace only "allowed" algorithms may become the default.
  std::ifstream in{"/proc/sys/net/ipv4/tcp_allowed_congestion_control"};
  std::string allowed;
  std::getline(in, allowed);
  std::stringstream words{allowed};
  bool present = false;
  for (std::string w; words >> w;)
    present = present || w == algorithm;
  if (!present) {
    std::ofstream out{"/proc/sys/net/ipv4/tcp_allowed_congestion_control"};
    out << allowed << ' ' << algorithm << '\n';
  }
  must_run(set);
}

void netns::enable_forwarding() const {
  must_run({"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"});
}

netns_scope::netns_scope(const netns& ns) {
  previous_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const std::string path = "/run/netns/" + ns.name();
  const int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (previous_ < 0 || target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
    if (target >= 0) ::close(target);
    if (previous_ >= 0) ::close(previous_);
    throw std::runtime_error("cannot enter network namespace " + ns.name());
  }
  ::close(target);
}

netns_scope::~netns_scope() {
  ::setns(previous_, CLONE_NEWNET);
  ::close(previous_);
}

veth_link::veth_link(const netns& a, const netns& b, std::string a_if, std::string b_if,
                     std::string a_address, std::string b_address)
    : a_{a},
      b_{b},
      a_if_{std::move(a_if)},
      b_if_{std::move(b_if)},
      a_address_{std::move(a_address)},
      b_address_{std::move(b_address)} {
  // Created directly in both namespaces: no name ever exists in the initial namespace.
  must(ip_tool(), {"link", "add", "name", a_if_, "netns", a_.name(), "type", "veth", "peer", "name", b_if_,
                   "netns", b_.name()});
  for (const auto end : {side::a, side::b}) {
    const auto& ns = host(end).name();
    const auto& address = end == side::a ? a_address_ : b_address_;
    if (!address.empty()) must(ip_tool(), {"-n", ns, "addr", "add", address, "dev", interface(end)});
    must(ip_tool(), {"-n", ns, "link", "set", interface(end), "up"});
  }
}

veth_link::~veth_link() {
  // Deleting one end deletes the pair; the namespaces' own deletion would too.
  run_command(ip_tool(), {"-n", a_.name(), "link", "del", a_if_}, 10s);
}

std::string veth_link::address(side end) const {
  return strip_prefix_length(end == side::a ? a_address_ : b_address_);
}

void veth_link::shape(side end, const shaping& s) {
  const auto i = static_cast<std::size_t>(end);
  shaping_[i] = s;
  shaped_[i] = true;
  apply(end);
}

void veth_link::set_rate(side end, std::uint64_t rate_bits) {
  const auto i = static_cast<std::size_t>(end);
  shaping_[i].rate_bits = rate_bits;
  if (!shaped_[i]) shaping_[i].queue = 50ms;
  shaped_[i] = true;
  apply(end);
}

void veth_link::unshape(side end) {
  const auto i = static_cast<std::size_t>(end);
  const auto& ns = host(end).name();
  run_command(tc_tool(), {"-n", ns, "qdisc", "del", "dev", interface(end), "root"}, 10s);
  shaped_[i] = false;
}

void veth_link::apply(side end) {
  const auto i = static_cast<std::size_t>(end);
  const auto& ns = host(end).name();
  const auto& s = shaping_[i];
  if (s.rate_bits == 0) {
    // tbf has no zero rate; a FIFO that holds nothing drops everything, and TCP sees only
    // silence. Not `ip link set down`: a switch port that goes down loses its learnt addresses,
    // and the switch then floods the host's traffic to every other port, filling its neighbours'
    // slow links (a 2 Mbit/s viewer beside the outage saw frames 700 ms old).
    must(tc_tool(), {"-n", ns, "qdisc", "replace", "dev", interface(end), "root", "pfifo", "limit", "0"});
    return;
  }
  const auto burst = s.burst_bytes != 0 ? s.burst_bytes : default_burst(s.rate_bits);
  must(tc_tool(), {"-n", ns, "qdisc", "replace", "dev", interface(end), "root", "tbf", "rate",
                   std::to_string(s.rate_bits) + "bit", "burst", std::to_string(burst), "latency",
                   std::to_string(s.queue.count()) + "ms"});
}

std::string veth_link::qdisc_stats(side end) const {
  return run_command(tc_tool(), {"-n", host(end).name(), "-s", "qdisc", "show", "dev", interface(end)}, 10s)
      .out;
}

lan::lan(std::string prefix) : prefix_{std::move(prefix)}, switch_{std::make_unique<netns>(prefix_ + "-sw")} {
  must(ip_tool(), {"-n", switch_->name(), "link", "add", "br0", "type", "bridge"});
  must(ip_tool(), {"-n", switch_->name(), "link", "set", "br0", "up"});
}

lan::~lan() = default;

std::size_t lan::add_host(const std::string& name) {
  const std::size_t i = hosts_.size();
  if (i >= 250) throw std::runtime_error("a lan holds at most 250 hosts");
  hosts_.push_back(std::make_unique<netns>(prefix_ + "-" + name));
  const std::string port = "p" + std::to_string(i);
  links_.push_back(std::make_unique<veth_link>(*hosts_.back(), *switch_, "eth0", port,
                                               "10.77.0." + std::to_string(i + 1) + "/24", ""));
  must(ip_tool(), {"-n", switch_->name(), "link", "set", port, "master", "br0"});
  return i;
}

std::string lan::address(std::size_t i) const {
  return links_.at(i)->address(veth_link::side::a);
}

void lan::set_congestion_control(const std::string& algorithm) const {
  for (const auto& h : hosts_)
    h->set_congestion_control(algorithm);
}

}  // namespace mjpeg::test
