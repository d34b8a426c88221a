// The network-namespace test helpers themselves: hosts reach each other only through their veth
// links, shaping limits what a host receives, a zero rate drops everything, congestion control is
// per namespace, and nothing is left behind.
#include <gtest/gtest.h>

#include <filesystem>

#include "client.hpp"
#include "netns.hpp"
#include "server_process.hpp"

namespace mjpeg::test {
namespace {

bool netns_exists(const std::string& name) {
  return std::filesystem::exists("/run/netns/" + name);
}

// Bytes of /stream received in `duration` by a viewer in `viewer`.
std::size_t bytes_in(const netns& viewer, const std::string& server, unsigned short port,
                     std::chrono::milliseconds duration) {
  const netns_scope inside{viewer};
  connection c{port, server};
  c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  std::size_t total = 0;
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until)
    total += c.receive(std::chrono::duration_cast<std::chrono::milliseconds>(
                           until - std::chrono::steady_clock::now()))
                 .size();
  return total;
}

TEST(Netns, HostsTalkOverShapedLinksAndVanishAfterwards) {
  if (auto why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  const std::string prefix = unique_netns_prefix("selftest");
  {
    lan net{prefix};
    const auto server_host = net.add_host("srv");
    const auto viewer_host = net.add_host("view");
    EXPECT_TRUE(netns_exists(prefix + "-sw"));
    EXPECT_TRUE(netns_exists(prefix + "-srv"));
    auto server = net.host(server_host)
                      .start_server(variant_binary(variant_keys().back()),
                                    std::vector<std::string>{"--host", net.address(server_host), "--width",
                                                             "640", "--height", "480"});

    // The server's address exists only inside the namespaces: not from here.
    EXPECT_THROW(connection(server->port(), net.address(server_host)), std::runtime_error);

    // Unshaped, a 640x480 stream at 30 fps is well over 250 KB/s.
    const auto fast = bytes_in(net.host(viewer_host), net.address(server_host), server->port(), 2s);
    EXPECT_GT(fast, 2 * 400'000u);

    // Shaped to 2 Mbit/s (250 KB/s) at the switch port: close to that, never much above.
    net.shape_down(viewer_host, {2'000'000, 0, 100ms});
    const auto shaped = bytes_in(net.host(viewer_host), net.address(server_host), server->port(), 3s);
    EXPECT_LT(shaped, 3 * 250'000u * 12 / 10) << net.link(viewer_host).qdisc_stats(veth_link::side::b);
    EXPECT_GT(shaped, 3 * 250'000u / 2) << net.link(viewer_host).qdisc_stats(veth_link::side::b);

    // Rate 0 drops everything; a rate again brings the link back.
    {
      const netns_scope inside{net.host(viewer_host)};
      connection c{server->port(), net.address(server_host)};
      c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
      EXPECT_FALSE(c.receive(2s).empty());
      net.set_down_rate(viewer_host, 0);
      while (!c.receive(300ms).empty()) {
      }  // what was already past the switch
      EXPECT_TRUE(c.receive(1s).empty());
      net.set_down_rate(viewer_host, 2'000'000);
      EXPECT_FALSE(c.receive(5s).empty());
    }

    // Congestion control is per namespace.
    net.host(viewer_host).set_congestion_control("cubic");
    net.host(server_host).set_congestion_control("bbr");
    const std::vector<std::string> ask{"sysctl", "-n", "net.ipv4.tcp_congestion_control"};
    EXPECT_EQ(net.host(viewer_host).run(ask).out, "cubic\n");
    EXPECT_EQ(net.host(server_host).run(ask).out, "bbr\n");
  }
  EXPECT_FALSE(netns_exists(prefix + "-sw"));
  EXPECT_FALSE(netns_exists(prefix + "-srv"));
  EXPECT_FALSE(netns_exists(prefix + "-view"));
}

TEST(Netns, SweeperRemovesLeftoversWithItsPrefixOnly) {
  if (auto why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  const std::string prefix = unique_netns_prefix("selftest");
  const netns kept{unique_netns_prefix("selftest")};
  // A leftover of a killed run: created without an owner object.
  ASSERT_EQ(run_command(ip_tool(), {"netns", "add", prefix + "-left"}, 10s).exit_code, 0);
  EXPECT_EQ(sweep_netns(prefix), 1);
  EXPECT_FALSE(netns_exists(prefix + "-left"));
  EXPECT_TRUE(netns_exists(kept.name()));
}

}  // namespace
}  // namespace mjpeg::test
