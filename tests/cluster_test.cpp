// Several machines, built from network namespaces on one switch: an origin publishing on the frame
// bus with CurveZMQ keys, two edges subscribing, HAProxy in front (deploy/haproxy/haproxy.cfg) and
// a viewer host. Needs root; skipped otherwise. Every namespace is removed at the end, pass or fail.

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "client.hpp"
#include "netns.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace mjpeg::test {
namespace {

namespace fs = std::filesystem;
constexpr unsigned short http_port = 8080;  // inside our own namespaces: nobody else is there
constexpr unsigned short bus_port = 5555;

// HAProxy started in daemon mode inside `ns`, stopped (by pid) when destroyed.
class haproxy_process {
 public:
  haproxy_process(const netns& ns, const std::string& config, const std::string& pid_file)
      : pid_file_{pid_file} {
    const auto r = ns.run({"haproxy", "-D", "-p", pid_file, "-f", config}, 10s);
    if (r.exit_code != 0) throw std::runtime_error("haproxy did not start: " + r.err);
    std::ifstream in{pid_file};
    in >> pid_;
  }
  ~haproxy_process() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    fs::remove(pid_file_);
  }
  haproxy_process(const haproxy_process&) = delete;
  haproxy_process& operator=(const haproxy_process&) = delete;

 private:
  std::string pid_file_;
  pid_t pid_ = 0;
};

double age_ms(const part& p) {
  return static_cast<double>(now_us()) / 1e3 - std::stod(p.headers.at("x-timestamp")) * 1e3;
}

TEST(Cluster, OriginTwoEdgesAndHaproxyAsMachines) {
  if (auto why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  if (run_command("/usr/sbin/haproxy", {"-v"}, 5s).exit_code != 0) GTEST_SKIP() << "no haproxy";
  const std::string server = variant_binary("mjpeg_async");
  const fs::path work = fs::temp_directory_path() / ("mjpeg-cluster-" + std::to_string(::getpid()));
  fs::create_directories(work);
  struct cleanup {
    fs::path dir;
    ~cleanup() { fs::remove_all(dir); }
  } remove_work{work};
  ASSERT_EQ(run_command(server, {"--bus-keygen", work / "keys"}, 10s).exit_code, 0);
  ASSERT_EQ(run_command(server, {"--bus-keygen", work / "intruder"}, 10s).exit_code, 0);
  fs::copy_file(work / "keys" / "server.pub", work / "intruder" / "server.pub",
                fs::copy_options::overwrite_existing);

  lan net{unique_netns_prefix("cluster")};
  const auto origin_host = net.add_host("origin");
  const auto edge1_host = net.add_host("edge1");
  const auto edge2_host = net.add_host("edge2");
  const auto front_host = net.add_host("front");
  const auto viewer_host = net.add_host("viewer");
  const std::string origin_ip = net.address(origin_host);
  const std::string front_ip = net.address(front_host);
  const std::string bus = "tcp://" + origin_ip + ":" + std::to_string(bus_port);
  const auto port_args = [](const std::string& ip) {
    return std::vector<std::string>{"--host", ip, "--port", std::to_string(http_port)};
  };
  const auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };

  auto origin =
      net.host(origin_host)
          .start_server(server, small_frames(with(port_args(origin_ip),
                                                  {"--publish", bus, "--bus-keys", work / "keys"})));
  const std::vector<std::string> edge_source{"--source", "zmq+" + bus, "--bus-keys", work / "keys"};
  auto edge1 = net.host(edge1_host)
                   .start_server(server, small_frames(with(port_args(net.address(edge1_host)), edge_source)));
  auto edge2 = net.host(edge2_host)
                   .start_server(server, small_frames(with(port_args(net.address(edge2_host)), edge_source)));

  ::setenv("FRONT_ADDR", front_ip.c_str(), 1);
  ::setenv("FRONT_PORT", std::to_string(http_port).c_str(), 1);
  ::setenv("EDGE1_ADDR", net.address(edge1_host).c_str(), 1);
  ::setenv("EDGE2_ADDR", net.address(edge2_host).c_str(), 1);
  ::setenv("EDGE1_PORT", std::to_string(http_port).c_str(), 1);
  ::setenv("EDGE2_PORT", std::to_string(http_port).c_str(), 1);
  const haproxy_process front{net.host(front_host),
                              std::string{MJPEG_SOURCE_DIR} + "/deploy/haproxy/haproxy.cfg",
                              (work / "haproxy.pid").string()};

  // Everything below is a viewer on its own host.
  const netns_scope inside{net.host(viewer_host)};
  const auto edge_viewers = [&](std::size_t host) { return viewers_now(http_port, net.address(host)); };

  // 1. Through HAProxy: the origin's JPEG bytes, byte for byte, and fresh.
  {
    std::map<std::uint64_t, std::string> from_origin;
    std::thread direct{[&] {
      const netns_scope also_inside{net.host(viewer_host)};
      stream_reader r{http_port, "/stream", "", origin_ip};
      if (r.open() != 200) return;
      for (int i = 0; i < 60; ++i)
        if (auto p = r.next()) from_origin[std::stoull(p->headers.at("x-frame-seq"))] = p->body;
    }};
    stream_reader viewer{http_port, "/stream", "", front_ip};
    ASSERT_EQ(viewer.open(), 200) << edge1->error_output() << edge2->error_output();
    std::vector<double> ages;
    std::map<std::uint64_t, std::string> through_front;
    for (int i = 0; i < 60; ++i) {
      const auto p = viewer.next();
      ASSERT_TRUE(p) << "part " << i;
      if (i >= 5) ages.push_back(age_ms(*p));  // the first parts may be ones that waited at connect
      through_front[std::stoull(p->headers.at("x-frame-seq"))] = p->body;
    }
    direct.join();
    int same = 0;
    for (const auto& [seq, body] : through_front)
      if (const auto at = from_origin.find(seq); at != from_origin.end()) {
        ++same;
        EXPECT_EQ(body, at->second) << "seq " << seq;
      }
    EXPECT_GE(same, 30);
    std::sort(ages.begin(), ages.end());
    const double p99 = ages[ages.size() * 99 / 100];
    std::printf("age through origin -> edge -> HAProxy: p50 %.1f ms, p99 %.1f ms\n", ages[ages.size() / 2],
                p99);
    EXPECT_LT(p99, 100.0) << "age p99 through origin → edge → HAProxy";
  }

  // 2. Viewers spread over both edges.
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 6; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(http_port, "/stream", "", front_ip));
    ASSERT_EQ(viewers.back()->open(), 200);
    ASSERT_TRUE(viewers.back()->next());
  }
  EXPECT_GT(edge_viewers(edge1_host), 0);
  EXPECT_GT(edge_viewers(edge2_host), 0);

  // 3. The origin stops for 3 s: edges say "down", keep their viewers, and frames resume.
  const long watching = edge_viewers(edge1_host) + edge_viewers(edge2_host);
  EXPECT_GE(watching, 6);
  origin->signal(SIGSTOP);
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(stats_field(get(http_port, "/stats", 5s, net.address(edge1_host)).body, "source_state"), "down");
  EXPECT_EQ(stats_field(get(http_port, "/stats", 5s, net.address(edge2_host)).body, "source_state"), "down");
  EXPECT_EQ(edge_viewers(edge1_host) + edge_viewers(edge2_host), watching);
  origin->signal(SIGCONT);
  const double resumed_at = static_cast<double>(now_us()) / 1e6;
  for (auto& v : viewers) {
    bool fresh = false;
    for (int i = 0; i < 200 && !fresh; ++i) {
      const auto p = v->next(5s);
      ASSERT_TRUE(p) << "a viewer lost its stream while the origin was stopped";
      fresh = std::stod(p->headers.at("x-timestamp")) > resumed_at;
    }
    EXPECT_TRUE(fresh);
  }

  // 4. kill -9 of one edge: the health check takes it out, new viewers land on the other.
  edge1->signal(SIGKILL);
  edge1->wait(2s);
  std::this_thread::sleep_for(1500ms);  // two failed checks 300 ms apart, with room to spare
  const long before = edge_viewers(edge2_host);
  std::vector<std::unique_ptr<stream_reader>> late;
  for (int i = 0; i < 4; ++i) {
    late.push_back(std::make_unique<stream_reader>(http_port, "/stream", "", front_ip));
    ASSERT_EQ(late.back()->open(), 200) << "HAProxy sent a new viewer to the dead edge";
    ASSERT_TRUE(late.back()->next());
  }
  EXPECT_EQ(edge_viewers(edge2_host), before + 4);

  // 5. A subscriber whose key is not authorized gets nothing, even knowing the server's key.
  {
    const netns_scope back_out{net.host(viewer_host)};
    auto intruder =
        net.host(viewer_host)
            .start_server(server,
                          small_frames(with(port_args(net.address(viewer_host)),
                                            {"--source", "zmq+" + bus, "--bus-keys", work / "intruder"})));
    std::this_thread::sleep_for(1500ms);
    const auto body = get(http_port, "/stats", 5s, net.address(viewer_host)).body;
    EXPECT_EQ(stats_number(body, "frame_seq"), 0u) << body;
    EXPECT_EQ(get(http_port, "/snapshot", 5s, net.address(viewer_host)).status, 503);
  }
}

}  // namespace
}  // namespace mjpeg::test
