// The deployment around the server, proven with the real programs: Debian's nginx running the
// shipped site config (deploy/nginx/) as the TLS front, and a real Prometheus server scraping
// /metrics. Everything binds loopback on free ports and lives in a scratch folder.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "browser.hpp"
#include "client.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using mjpeg::test::free_port;
using mjpeg::test::get;
using mjpeg::test::percentile;
using mjpeg::test::ready_when;
using mjpeg::test::run_command;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;
using mjpeg::test::viewers_now;
using steady = std::chrono::steady_clock;

// A loopback port nobody listens on now (for programs that cannot take port 0).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("not in the shipped config: " + from);
  return text.replace(at, from.size(), to);
}

// Plain HTTP on a loopback port in, TLS to `tls_port` out: the tests' own HTTP client and stream
// reader then speak HTTPS through nginx unchanged. One io_context thread pumps both directions;
// when either side closes, both are closed, as a browser leaving would close its TLS connection.
class tls_tunnel {
 public:
  explicit tls_tunnel(unsigned short tls_port) : tls_port_{tls_port} {
    tls_.set_verify_mode(asio::ssl::verify_none);  // the throwaway self-signed certificate
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~tls_tunnel() {
    io_.stop();
    thread_.join();
  }
  tls_tunnel(const tls_tunnel&) = delete;
  tls_tunnel& operator=(const tls_tunnel&) = delete;
  // The plain port to connect to.
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  using tls_stream = asio::ssl::stream<tcp::socket>;

  template <class From, class To>
  static awaitable<void> pump(From& from, To& to) {
    char buffer[16384];
    for (;;) {
      boost::system::error_code ec;
      const auto n =
          co_await from.async_read_some(asio::buffer(buffer), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      co_await asio::async_write(to, asio::buffer(buffer, n), asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
    }
  }

  awaitable<void> session(std::shared_ptr<tcp::socket> plain) {
    auto secure = std::make_shared<tls_stream>(io_, tls_);
    boost::system::error_code ec;
    co_await secure->next_layer().async_connect({asio::ip::address_v4::loopback(), tls_port_},
                                                asio::redirect_error(use_awaitable, ec));
    if (!ec) co_await secure->async_handshake(tls_stream::client, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;  // closing `plain` tells the client
    const auto close_both = [plain, secure] {
      boost::system::error_code ignored;
      plain->close(ignored);
      secure->lowest_layer().close(ignored);
    };
    asio::co_spawn(
        io_,
        [plain, secure, close_both]() -> awaitable<void> {
          co_await pump(*plain, *secure);
          close_both();
        },
        asio::detached);
    co_await pump(*secure, *plain);
    close_both();
  }

  awaitable<void> accept_loop() {
    for (;;) {
      auto plain = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      co_await acceptor_.async_accept(*plain, asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io_, session(plain), asio::detached);
    }
  }

  unsigned short tls_port_;
  asio::io_context io_;
  asio::ssl::context tls_{asio::ssl::context::tls_client};
  tcp::acceptor acceptor_{io_};
  std::thread thread_;
};

// Debian's nginx with the shipped site config, pointed at `upstream_port`, with a self-signed
// certificate made for it, all in `dir`.
class nginx_front {
 public:
  nginx_front(const scratch_dir& dir, unsigned short upstream_port, bool http2 = true,
              const std::string& more_locations = "") {
    const auto cert = run_command(
        "/usr/bin/openssl",
        {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", dir.path() + "/key.pem", "-out", dir.path() + "/cert.pem"},
        30s);
    if (cert.exit_code != 0) throw std::runtime_error("openssl: " + cert.err);
    std::ifstream in{MJPEG_SOURCE_DIR "/deploy/nginx/mjpeg-concurrency.conf"};
    const std::string shipped{std::istreambuf_iterator<char>{in}, {}};
    for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
      port_ = free_port();
      std::string site = replaced(shipped, "server 127.0.0.1:8080;",
                                  "server 127.0.0.1:" + std::to_string(upstream_port) + ";");
      site = replaced(site, "listen 443 ssl http2;",
                      "listen 127.0.0.1:" + std::to_string(port_) + (http2 ? " ssl http2;" : " ssl;"));
      site = replaced(site, "listen [::]:443 ssl http2;", "");
      site = replaced(site, "    location / {", more_locations + "    location / {");
      site = replaced(site, "/etc/ssl/certs/camera.example.org.pem", dir.path() + "/cert.pem");
      site = replaced(site, "/etc/ssl/private/camera.example.org.key", dir.path() + "/key.pem");
      const std::string& d = dir.path();
      const std::string conf = dir.write("nginx.conf", "daemon off;\nworker_processes 1;\npid " + d +
                                                           "/nginx.pid;\n"
                                                           "error_log " +
                                                           d +
                                                           "/error.log warn;\n"
                                                           "events { worker_connections 256; }\n"
                                                           "http {\n  access_log off;\n"
                                                           "  client_body_temp_path " +
                                                           d + "/body;\n  proxy_temp_path " + d +
                                                           "/proxy;\n"
                                                           "  fastcgi_temp_path " +
                                                           d + "/fastcgi;\n  uwsgi_temp_path " + d +
                                                           "/uwsgi;\n"
                                                           "  scgi_temp_path " +
                                                           d + "/scgi;\n" + site + "}\n");
      const auto test =
          run_command("/usr/sbin/nginx", {"-t", "-e", d + "/error.log", "-p", d, "-c", conf}, 20s);
      if (test.exit_code != 0) throw std::runtime_error("nginx -t: " + test.err);
      auto p = std::make_unique<server_process>(
          "/usr/sbin/nginx", std::vector<std::string>{"-e", d + "/error.log", "-p", d, "-c", conf},
          ready_when::started);
      // Ready when it answers; gone when the port was taken meanwhile (then try another).
      const auto until = steady::now() + 10s;
      while (steady::now() < until && p->wait(0ms) == -1 && !listening(port_))
        std::this_thread::sleep_for(50ms);
      if (p->wait(0ms) == -1 && listening(port_)) process_ = std::move(p);
    }
    if (!process_) throw std::runtime_error("nginx did not start");
  }
  unsigned short port() const { return port_; }

 private:
  static bool listening(unsigned short port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
  }
  unsigned short port_ = 0;
  std::unique_ptr<server_process> process_;
};

// GET through nginx, which keeps connections alive unless asked not to (the test client reads
// until the peer closes).
mjpeg::test::response get_closing(unsigned short port, const std::string& path) {
  return mjpeg::test::request(port,
                              "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
}

TEST(NginxTls, StreamSnapshotAndStatsThroughTheShippedSite) {
  scratch_dir dir;
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--send-timeout", "2"})};
  const nginx_front nginx{dir, server.port()};
  tls_tunnel https{nginx.port()};

  // The server's own stream, read directly meanwhile: the JPEG bytes of each frame by seq.
  std::map<std::uint64_t, std::string> direct;
  std::mutex direct_mutex;
  std::atomic<bool> stop{false};
  std::thread direct_reader{[&] {
    stream_reader direct_viewer{server.port()};
    if (direct_viewer.open() != 200) return;
    while (!stop.load()) {
      const auto part = direct_viewer.next();
      if (!part) return;
      std::lock_guard lock{direct_mutex};
      direct[std::stoull(part->headers.at("x-frame-seq"))] = part->body;
    }
  }};

  // Stops and joins the reader however the test ends.
  const std::unique_ptr<std::thread, void (*)(std::thread*)> joined{&direct_reader, [](std::thread* t) {
                                                                      if (t->joinable()) t->join();
                                                                    }};
  struct stop_on_exit {
    std::atomic<bool>& flag;
    ~stop_on_exit() { flag = true; }
  } const stopper{stop};

  const auto stats = get_closing(https.port(), "/stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_NE(stats.body.find("\"variant\":\"async\""), std::string::npos) << stats.body;

  stream_reader viewer{https.port()};
  ASSERT_EQ(viewer.open(), 200) << server.error_output();
  EXPECT_EQ(viewer.head().headers.at("content-type").rfind("multipart/x-mixed-replace", 0), 0u);
  std::vector<double> ages_ms;
  std::map<std::uint64_t, std::string> proxied;
  for (int i = 0; i < 90; ++i) {
    const auto part = viewer.next();
    ASSERT_TRUE(part) << "frame " << i;
    const double sent = std::stod(part->headers.at("x-timestamp"));
    ages_ms.push_back(static_cast<double>(mjpeg::test::now_us()) / 1e3 - sent * 1e3);
    proxied[std::stoull(part->headers.at("x-frame-seq"))] = part->body;
  }
  const auto snapshot = get_closing(https.port(), "/snapshot");
  stop = true;
  direct_reader.join();

  const double p99 = percentile(ages_ms, 0.99);
  std::printf("through nginx over TLS: %zu frames, age p50 %.1f ms, p99 %.1f ms\n", ages_ms.size(),
              percentile(ages_ms, 0.5), p99);
  EXPECT_LT(p99, 100) << "frames must stay fresh through the proxy";

  // The same JPEG bytes, byte for byte, as the server sent directly.
  std::size_t compared = 0;
  for (const auto& [seq, body] : proxied) {
    const auto it = direct.find(seq);
    if (it == direct.end()) continue;
    EXPECT_EQ(body, it->second) << "frame " << seq;
    ++compared;
  }
  EXPECT_GE(compared, 30u) << "too few frames seen on both paths";
  ASSERT_EQ(snapshot.status, 200);
  EXPECT_EQ(snapshot.headers.at("content-type"), "image/jpeg");
  const auto seq = std::stoull(snapshot.headers.at("x-frame-seq"));
  if (direct.count(seq) != 0) {
    EXPECT_EQ(snapshot.body, direct.at(seq));
  }
  EXPECT_EQ(snapshot.body.size(), std::stoul(snapshot.headers.at("content-length")));
}

TEST(NginxTls, AViewerLeavingThroughTheProxyIsReleasedWithinTheSendTimeout) {
  scratch_dir dir;
  constexpr auto send_timeout = 2s;
  server_process server{mjpeg::test::variant_binary("mjpeg_thread_per_client"),
                        small_frames({"--send-timeout", "2"})};
  const nginx_front nginx{dir, server.port()};
  tls_tunnel https{nginx.port()};
  {
    stream_reader viewer{https.port()};
    ASSERT_EQ(viewer.open(), 200);
    ASSERT_TRUE(viewer.next());
    EXPECT_EQ(viewers_now(server.port()), 1);
  }  // the browser closes its tab
  const auto left = steady::now();
  while (viewers_now(server.port()) != 0 && steady::now() - left < send_timeout + 3s)
    std::this_thread::sleep_for(20ms);
  const auto took = steady::now() - left;
  EXPECT_EQ(viewers_now(server.port()), 0);
  EXPECT_LE(took, send_timeout) << "released after "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms";
}

// --- Prometheus ----------------------------------------------------------------------------

// A wall of eight cameras in one Chromium tab through the shipped TLS front. A browser opens at
// most six HTTP/1.1 connections to one host, and an MJPEG stream holds its connection for good:
// over HTTP/1.1 the seventh and eighth tiles never load. The shipped site speaks HTTP/2, where the
// eight streams share one connection. The wall is the viewer page itself with eight cameras in its
// list (this server has one camera, so each tile asks for it under a URL of its own).
struct wall_result {
  int moving = 0;      // tiles whose picture changed between two screenshots
  int viewers = 0;     // streams the server saw
  std::string detail;  // for failure messages
};

wall_result watch_wall(bool http2) {
  scratch_dir dir;
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  std::string page = get(server.port(), "/").body;
  std::string cameras = "[";
  for (int i = 0; i < 8; ++i)
    cameras += std::string{i ? "," : ""} + "{\"name\":\"camera " + std::to_string(i + 1) +
               "\",\"stream\":\"stream?tile=" + std::to_string(i) + "\",\"snapshot\":\"snapshot\"}";
  page = replaced(page, R"([{"name":"","stream":"stream","snapshot":"snapshot"}])", cameras + "]");
  const std::string wall = dir.write("wall.html", page);
  // nginx's workers are not root: they may pass through the scratch folder and read this file.
  std::filesystem::permissions(dir.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  std::filesystem::permissions(wall, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
  const nginx_front nginx{dir, server.port(), http2,
                          "    location = /wall.html { alias " + wall + "; default_type text/html; }\n"};
  mjpeg::test::browser b{mjpeg::test::engine::chromium,
                         {"--ignore-certificate-errors", "--window-size=1600,1000"}};
  b.navigate("https://127.0.0.1:" + std::to_string(nginx.port()) + "/wall.html");
  std::this_thread::sleep_for(5s);
  // Where each tile's picture is, in screenshot pixels.
  std::istringstream rects{b.execute(
      "var d = window.devicePixelRatio || 1;"
      "return Array.from(document.querySelectorAll('#grid img')).map(function (i) {"
      "  var r = i.getBoundingClientRect();"
      "  return [r.left, r.top, r.width, r.height].map(function (v) { return Math.round(v * d); }).join(' ');"
      "}).join(' ');")};
  const auto first = b.screenshot();
  std::this_thread::sleep_for(1500ms);
  const auto second = b.screenshot();
  // A tile that waits for a connection says "reconnecting since …", and that text changes too:
  // such a tile is not moving. One character a tile: 1 while it shows a reconnecting note.
  const std::string noted = b.execute(
      "return Array.from(document.querySelectorAll('#grid .state')).map(function (s) {"
      "  return s.textContent ? '1' : '0'; }).join('');");
  const std::string name = std::string{"viewer-wall-"} + (http2 ? "http2" : "http1");
  std::ofstream{std::string{MJPEG_SCREENSHOT_DIR} + "/" + name + "-1.png", std::ios::binary}.write(
      reinterpret_cast<const char*>(first.data()), static_cast<std::streamsize>(first.size()));
  std::ofstream{std::string{MJPEG_SCREENSHOT_DIR} + "/" + name + "-2.png", std::ios::binary}.write(
      reinterpret_cast<const char*>(second.data()), static_cast<std::streamsize>(second.size()));
  const cv::Mat a = cv::imdecode(first, cv::IMREAD_COLOR), c = cv::imdecode(second, cv::IMREAD_COLOR);
  wall_result out;
  if (a.empty() || c.empty() || a.size() != c.size()) return out;
  int x = 0, y = 0, w = 0, h = 0;
  for (int tile = 0; rects >> x >> y >> w >> h; ++tile) {
    const cv::Rect area = cv::Rect{x, y, w, h} & cv::Rect{0, 0, a.cols, a.rows};
    if (area.area() == 0) continue;
    cv::Mat diff, changed;
    cv::absdiff(a(area), c(area), diff);
    cv::cvtColor(diff, diff, cv::COLOR_BGR2GRAY);
    cv::threshold(diff, changed, 40, 255, cv::THRESH_BINARY);
    const bool moved =
        static_cast<double>(cv::countNonZero(changed)) / static_cast<double>(area.area()) > 0.002 &&
        (tile >= static_cast<int>(noted.size()) || noted[tile] == '0');
    out.moving += moved ? 1 : 0;
    out.detail += " tile " + std::to_string(tile + 1) + (moved ? " moves" : " still");
  }
  out.viewers = viewers_now(server.port());
  return out;
}

TEST(NginxHttp2, AWallOfEightStreamsMovesOverHttp2) {
  if (const auto why = mjpeg::test::browser::missing(mjpeg::test::engine::chromium); !why.empty())
    GTEST_SKIP() << why;
  const auto wall = watch_wall(true);
  EXPECT_EQ(wall.moving, 8) << wall.detail;
  EXPECT_EQ(wall.viewers, 8);
}

TEST(NginxHttp2, OverHttp1AtMostSixOfTheEightMove) {
  if (const auto why = mjpeg::test::browser::missing(mjpeg::test::engine::chromium); !why.empty())
    GTEST_SKIP() << why;
  const auto wall = watch_wall(false);
  EXPECT_GE(wall.moving, 1) << wall.detail;
  EXPECT_LE(wall.moving, 6) << wall.detail;
  EXPECT_LE(wall.viewers, 6);
}

TEST(Prometheus, ARealServerScrapesMetrics) {
  scratch_dir dir;
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  const std::string config = dir.write("prometheus.yml",
                                       "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                                       "scrape_configs:\n  - job_name: mjpeg\n    static_configs:\n"
                                       "      - targets: ['127.0.0.1:" +
                                           std::to_string(server.port()) + "']\n");
  std::unique_ptr<server_process> prometheus;
  unsigned short port = 0;
  std::string answer;
  for (int attempt = 0; attempt < 3 && answer.empty(); ++attempt) {
    port = free_port();
    prometheus = std::make_unique<server_process>(
        "/usr/bin/prometheus",
        std::vector<std::string>{"--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/data",
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                 "--log.level=warn"},
        ready_when::started);
    // Up to 40 s for it to start, scrape, and answer with a sample of ours.
    const auto until = steady::now() + 40s;
    while (steady::now() < until && prometheus->wait(0ms) == -1) {
      mjpeg::test::response r;
      try {
        r = get(port, "/api/v1/query?query=mjpeg_frames_captured_total", 2s);
      } catch (const std::exception&) {  // not listening yet
      }
      if (r.status == 200 && r.body.find("\"job\":\"mjpeg\"") != std::string::npos) {
        answer = r.body;
        break;
      }
      std::this_thread::sleep_for(250ms);
    }
  }
  ASSERT_FALSE(answer.empty()) << (prometheus ? prometheus->error_output() : "");
  EXPECT_NE(answer.find("\"__name__\":\"mjpeg_frames_captured_total\""), std::string::npos) << answer;
  const auto up = get(port, "/api/v1/query?query=up", 2s).body;
  EXPECT_NE(up.find("\"1\"]"), std::string::npos) << "the target is up: " << up;
  prometheus->signal(SIGTERM);
  EXPECT_NE(prometheus->wait(10s), -1);
}

}  // namespace
