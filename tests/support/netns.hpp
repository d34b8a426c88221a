/// Test hosts built from Linux network namespaces and veth pairs, with tc-shaped links: several
/// "machines" on the one test machine, with addresses that exist only inside those namespaces.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server_process.hpp"

namespace mjpeg::test {

using namespace std::chrono_literals;

/// Why network namespaces cannot be used here (not root, no `ip`/`tc`, no netns support), or ""
/// when they can. Tests skip with it: `if (auto why = netns_unavailable(); !why.empty())
/// GTEST_SKIP() << why;`.
std::string netns_unavailable();

/// A name prefix unique to this process and call: "mjnet-<owner>-<pid>-<n>". Every namespace a
/// test creates starts with it, so concurrent tests and users never collide, and a sweeper can
/// find the leftovers of a run that was killed.
std::string unique_netns_prefix(const std::string& owner);

/// Deletes every network namespace whose name starts with `prefix`; returns how many it deleted.
/// For leftovers of a killed run: pass "mjnet-<owner>-" to sweep every run of that owner, or a
/// full unique prefix for one run.
int sweep_netns(const std::string& prefix);

/// Full path of the `ip` tool ("/usr/sbin/ip"), or "" when there is none.
std::string ip_tool();

/// One network namespace with its loopback up; deleted (with every interface in it, which also
/// removes the veth peers outside) in the destructor, whatever the test's outcome.
class netns {
 public:
  /// Creates namespace `name` (throws if it cannot) and brings `lo` up.
  explicit netns(std::string name);
  ~netns();
  netns(const netns&) = delete;
  netns& operator=(const netns&) = delete;

  /// The namespace's name (as `ip netns list` shows it).
  const std::string& name() const { return name_; }
  /// The argument list (after the `ip` binary) that runs `argv` inside this namespace.
  std::vector<std::string> exec_args(const std::vector<std::string>& argv) const;
  /// Runs `argv` inside this namespace to completion, with a time cap.
  run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s) const;
  /// Runs `argv` inside; throws with the command's stderr if it fails.
  void must_run(const std::vector<std::string>& argv) const;
  /// Starts a server binary inside this namespace (`ip netns exec` replaces itself with the
  /// server, so the process id is the server's); give it `--host` with an address of this host.
  std::unique_ptr<server_process> start_server(const std::string& binary,
                                               std::vector<std::string> args) const;
  /// Sets the namespace's default TCP congestion control ("cubic", "bbr"). A namespace other than
  /// the initial one may only pick algorithms in the machine-wide
  /// `net.ipv4.tcp_allowed_congestion_control`; a missing one is appended there (never removed:
  /// removing would race with concurrent users, and allowing an algorithm changes nothing else).
  void set_congestion_control(const std::string& algorithm) const;
  /// Turns on IPv4 forwarding, for a namespace that routes between two links.
  void enable_forwarding() const;

 private:
  std::string name_;
};

/// While alive, the calling thread lives in namespace `ns`: sockets it creates (and threads it
/// starts) belong to that namespace. Restores the thread's previous namespace when destroyed.
class netns_scope {
 public:
  /// Moves the calling thread into `ns` (throws if it cannot).
  explicit netns_scope(const netns& ns);
  ~netns_scope();
  netns_scope(const netns_scope&) = delete;
  netns_scope& operator=(const netns_scope&) = delete;

 private:
  int previous_ = -1;
};

/// Token-bucket shaping of one interface's egress (`tc qdisc … tbf`).
struct shaping {
  std::uint64_t rate_bits = 0;             ///< Rate in bit/s; 0 drops everything (link set down).
  std::uint32_t burst_bytes = 0;           ///< Bucket size; 0 picks max(10 ms of rate, 4 packets).
  std::chrono::milliseconds queue = 50ms;  ///< Bottleneck queue depth as time (tbf `latency`).
};

/// A veth pair joining two namespaces, addressed and up; shaped with tc on either side.
/// Each end's egress can be shaped; shaping the far end of a path (a router's or a switch's port
/// toward a host) makes a remote bottleneck whose queue the sender's TCP really fills.
class veth_link {
 public:
  /// Which end of the pair.
  enum class side { a, b };

  /// Creates the pair directly inside `a` and `b` (names `a_if`, `b_if`: per namespace, so they
  /// never collide with other tests), gives each end its address ("10.77.0.1/24"; "" for none)
  /// and brings both up.
  veth_link(const netns& a, const netns& b, std::string a_if, std::string b_if, std::string a_address,
            std::string b_address);
  ~veth_link();
  veth_link(const veth_link&) = delete;
  veth_link& operator=(const veth_link&) = delete;

  /// Shapes the egress of one end (replaces earlier shaping); rate 0 drops everything.
  void shape(side end, const shaping& s);
  /// Changes the rate of one end at run time, keeping its burst and queue; 0 drops everything,
  /// a later non-zero rate brings the link back.
  void set_rate(side end, std::uint64_t rate_bits);
  /// Removes the shaping of one end.
  void unshape(side end);
  /// The interface name of one end.
  const std::string& interface(side end) const { return end == side::a ? a_if_ : b_if_; }
  /// The address of one end without the prefix length ("10.77.0.1").
  std::string address(side end) const;
  /// The namespace of one end.
  const netns& host(side end) const { return end == side::a ? a_ : b_; }
  /// `tc -s qdisc show` of one end (for failure messages: drops, backlog).
  std::string qdisc_stats(side end) const;

 private:
  void apply(side end);
  const netns& a_;
  const netns& b_;
  std::string a_if_, b_if_, a_address_, b_address_;
  shaping shaping_[2];
  bool shaped_[2] = {false, false};
};

/// A star of hosts on one switch (a namespace holding a bridge): every host is a namespace with
/// one veth to the switch and an address 10.77.0.<n>/24, so all hosts reach each other directly.
/// A host's downlink is shaped at the switch's port (a remote bottleneck, like a slow access link),
/// its uplink on its own end.
class lan {
 public:
  /// Creates the switch namespace "<prefix>-sw" with its bridge.
  explicit lan(std::string prefix);
  ~lan();
  lan(const lan&) = delete;
  lan& operator=(const lan&) = delete;

  /// Adds host "<prefix>-<name>" with the next address; returns its index.
  std::size_t add_host(const std::string& name);
  /// The namespace of host `i`.
  const netns& host(std::size_t i) const { return *hosts_.at(i); }
  /// The address of host `i` ("10.77.0.2").
  std::string address(std::size_t i) const;
  /// The link of host `i` (side a: the host, side b: the switch port).
  veth_link& link(std::size_t i) { return *links_.at(i); }
  /// Shapes what host `i` receives (the switch port's egress); rate 0 drops everything.
  void shape_down(std::size_t i, const shaping& s) { link(i).shape(veth_link::side::b, s); }
  /// Shapes what host `i` sends (its own egress).
  void shape_up(std::size_t i, const shaping& s) { link(i).shape(veth_link::side::a, s); }
  /// Changes host `i`'s downlink rate at run time (0 drops everything).
  void set_down_rate(std::size_t i, std::uint64_t rate_bits) {
    link(i).set_rate(veth_link::side::b, rate_bits);
  }
  /// Sets every host's default TCP congestion control.
  void set_congestion_control(const std::string& algorithm) const;

 private:
  std::string prefix_;
  std::unique_ptr<netns> switch_;
  // Declared in this order so links go first, then hosts, then the switch (reverse order).
  std::vector<std::unique_ptr<netns>> hosts_;
  std::vector<std::unique_ptr<veth_link>> links_;
};

}  // namespace mjpeg::test
