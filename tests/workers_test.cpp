// Worker processes (--workers N): one port served by N processes that the parent feeds over the
// bus and restarts; /stats answers for all of them; SIGTERM stops everything.

#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <thread>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "fake_camera.hpp"
#include "server_process.hpp"

namespace {

using mjpeg::test::EveryVariant;

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;

struct worker_info {
  long pid = 0;
  int restarts = 0;
  int viewers = 0;
};

// Total viewers and the per-worker rows of /stats.
struct cluster_stats {
  int viewers = -1;
  std::vector<worker_info> workers;
};

cluster_stats ask(unsigned short port) {
  const std::string body = get(port, "/stats").body;
  cluster_stats s;
  std::smatch m;
  if (std::regex_search(body, m, std::regex{R"("viewers_now":(\d+))"})) s.viewers = std::stoi(m[1]);
  const std::regex row{R"(\{"index":\d+,"pid":(\d+),"restarts":(\d+),"viewers_now":(\d+))"};
  for (auto it = std::sregex_iterator(body.begin(), body.end(), row); it != std::sregex_iterator(); ++it)
    s.workers.push_back({std::stol((*it)[1]), std::stoi((*it)[2]), std::stoi((*it)[3])});
  return s;
}

// Running (a zombie waiting for whoever reaps it has stopped: it is not alive).
bool alive(long pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  std::getline(stat, text);
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

TEST_P(EveryVariant, WorkersShareThePortAndStatsCountThemAll) {
  server_process server{binary(), small_frames({"--workers", "2"})};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  const int count = one_at_a_time() ? 2 : 6;  // one viewer per worker that serves one at a time
  // Single-threaded workers serve one connection each, so ask /stats before opening the streams.
  const auto before = ask(server.port());
  ASSERT_EQ(before.workers.size(), 2u) << server.error_output();
  EXPECT_NE(before.workers[0].pid, before.workers[1].pid);
  EXPECT_NE(before.workers[0].pid, server.pid());
  if (one_at_a_time()) return;  // its /stats waits behind the stream: its lesson
  for (int i = 0; i < count; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200);
    ASSERT_TRUE(viewers.back()->next()) << "viewer " << i;
  }
  // Whichever worker answers, the total is every worker's viewers (reports lag ≤ 100 ms).
  cluster_stats s;
  for (int i = 0; i < 30; ++i) {
    s = ask(server.port());
    if (s.viewers == count) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(s.viewers, count);
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].viewers + s.workers[1].viewers, count);
}

TEST(Workers, EveryCameraIsServedThroughEveryWorker) {
  const mjpeg::test::scratch_dir dir;
  const std::map<std::string, std::set<std::string>> jpegs{
      {"a", mjpeg::test::write_test_card_jpegs(std::filesystem::path{dir.path()} / "a", 320, 240, 1, 7, 4)},
      {"ab",
       mjpeg::test::write_test_card_jpegs(std::filesystem::path{dir.path()} / "ab", 320, 240, 100, 7, 4)}};
  server_process server{mjpeg::test::variant_binary("mjpeg_async"),
                        small_frames({"--workers", "2", "--camera", "a=" + dir.path() + "/a", "--camera",
                                      "ab=" + dir.path() + "/ab"})};
  const auto s = ask(server.port());
  ASSERT_EQ(s.workers.size(), 2u) << server.error_output();
  const std::vector<long> pids{s.workers[0].pid, s.workers[1].pid};
  // New connections until each camera has been served by both workers (the kernel spreads them
  // by a hash of addresses and ports), each playing its own camera's bytes.
  std::map<std::string, std::set<long>> served;
  for (int i = 0; i < 40 && (served["a"].size() < 2 || served["ab"].size() < 2); ++i)
    for (const auto& [name, bytes] : jpegs) {
      stream_reader viewer{server.port(), "/" + name + "/stream"};
      ASSERT_EQ(viewer.open(), 200) << name;
      for (int n = 0; n < 3; ++n) {
        const auto part = viewer.next();
        ASSERT_TRUE(part) << name << " part " << n << server.error_output();
        EXPECT_EQ(bytes.count(part->body), 1u) << name << ": another camera's bytes";
      }
      served[name].insert(mjpeg::test::serving_process(viewer.conn().fd(), pids));
    }
  const std::set<long> both{pids.begin(), pids.end()};
  EXPECT_EQ(served["a"], both);
  EXPECT_EQ(served["ab"], both);
}

// The parent's --idle-stop of a camera counts every worker's viewers of that camera, not only of
// the first: a camera watched through a worker keeps streaming while the other one idles.
TEST(Workers, IdleStopKeepsEveryWatchedCameraCapturing) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"),
                        small_frames({"--workers", "2", "--idle-stop", "0.3", "--camera", "idle=pattern",
                                      "--camera", "watched=pattern"})};
  stream_reader viewer{server.port(), "/watched/stream"};
  ASSERT_EQ(viewer.open(), 200);
  // Ten times the idle limit on, new frames keep coming (a stopped camera would send none; the
  // generous wait for each only rides out a loaded machine).
  const auto until = std::chrono::steady_clock::now() + 3s;
  std::uint64_t last = 0;
  for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
    const auto part = viewer.next(5s);
    ASSERT_TRUE(part) << "frame " << i << server.error_output();
    EXPECT_GT(mjpeg::test::seq_of(*part), last);
    last = mjpeg::test::seq_of(*part);
  }
}

TEST(Workers, KillNineOfAWorkerIsSurvived) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  // Open viewers until both workers have some (the kernel spreads connections by hash).
  std::vector<std::unique_ptr<stream_reader>> viewers;
  cluster_stats s;
  for (int i = 0; i < 40; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200);
    ASSERT_TRUE(viewers.back()->next());
    if (i < 3) continue;
    std::this_thread::sleep_for(150ms);
    s = ask(server.port());
    if (s.workers.size() == 2 && s.workers[0].viewers > 0 && s.workers[1].viewers > 0) break;
  }
  ASSERT_EQ(s.workers.size(), 2u);
  ASSERT_GT(s.workers[0].viewers, 0);
  ASSERT_GT(s.workers[1].viewers, 0);

  const long victim = s.workers[0].pid;
  ASSERT_EQ(::kill(static_cast<pid_t>(victim), SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  const double killed_at = static_cast<double>(mjpeg::test::now_us()) / 1e6;

  // Viewers on the other worker keep getting new frames; the victim's get what was already in
  // their socket buffers, then the connection ends.
  int kept = 0;
  int closed = 0;
  for (auto& v : viewers) {
    bool fresh = false;
    while (auto part = v->next(1s))
      if (std::stod(part->headers.at("x-timestamp")) > killed_at + 0.2) {
        fresh = true;
        break;
      }
    if (fresh) {
      ++kept;
      for (int i = 0; i < 5; ++i)
        EXPECT_TRUE(v->next(1s)) << "a viewer on the surviving worker stalled";
    } else {
      ++closed;
      EXPECT_TRUE(v->conn().closed());
    }
  }
  EXPECT_EQ(kept, s.workers[1].viewers);
  EXPECT_EQ(closed, s.workers[0].viewers);

  // The parent restarted it within a second (a fresh process in the same slot).
  cluster_stats after;
  while (std::chrono::steady_clock::now() - killed < 3s) {
    after = ask(server.port());
    if (after.workers.size() == 2 && after.workers[0].pid != victim && after.workers[0].pid != 0 &&
        alive(after.workers[0].pid))
      break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(after.workers.size(), 2u);
  EXPECT_NE(after.workers[0].pid, victim);
  EXPECT_EQ(after.workers[0].restarts, 1);
  EXPECT_EQ(after.workers[1].pid, s.workers[1].pid) << "the other worker must not restart";
  // A viewer that reconnects is served at once.
  stream_reader again{server.port()};
  ASSERT_EQ(again.open(), 200);
  EXPECT_TRUE(again.next());
  // Restarted within a second: measured from the kill, the new worker was answering well before.
  std::this_thread::sleep_for(100ms);
  EXPECT_NE(server.error_output().find("restarting"), std::string::npos);
}

TEST(Workers, SigtermStopsEveryProcessWithinASecond) {
  for (const char* key : {"mjpeg_async", "mjpeg_thread_pool"}) {
    server_process server{mjpeg::test::variant_binary(key), small_frames({"--workers", "3"})};
    const auto s = ask(server.port());
    ASSERT_EQ(s.workers.size(), 3u) << key;
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    ASSERT_TRUE(viewer.next());
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait(mjpeg::test::stop_bound), 0) << key << ": " << server.error_output();
    for (const auto& w : s.workers)
      EXPECT_FALSE(alive(w.pid)) << key << ": worker " << w.pid << " outlived its parent";
  }
}

TEST(Workers, WorkersDieWithAParentKilledByNine) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  const auto s = ask(server.port());
  ASSERT_EQ(s.workers.size(), 2u);
  server.signal(SIGKILL);
  server.wait(2s);
  const auto until = std::chrono::steady_clock::now() + 3s;
  while ((alive(s.workers[0].pid) || alive(s.workers[1].pid)) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(alive(s.workers[0].pid)) << "orphan worker";
  EXPECT_FALSE(alive(s.workers[1].pid)) << "orphan worker";
}

TEST(Workers, IdleStopInTheParentWatchesTheWorkersViewers) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"),
                        small_frames({"--workers", "2", "--idle-stop", "1"})};
  // A viewer keeps the parent's source open past --idle-stop …
  {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    const auto until = std::chrono::steady_clock::now() + 2500ms;
    while (std::chrono::steady_clock::now() < until)
      ASSERT_TRUE(viewer.next(1s)) << "the parent closed its source while a worker's viewer watched";
  }
  // … nobody watching closes it (workers idle too, or see their bus go quiet), and the next
  // viewer opens it again.
  std::this_thread::sleep_for(3s);
  const auto body = get(server.port(), "/stats").body;
  EXPECT_EQ(body.find("\"source_state\":\"up\""), std::string::npos) << body;
  stream_reader again{server.port()};
  ASSERT_EQ(again.open(), 200);
  const auto part = again.next(10s);
  ASSERT_TRUE(part);
  bool fresh = false;
  for (int i = 0; i < 60 && !fresh; ++i) {
    const auto p = again.next(10s);
    ASSERT_TRUE(p);
    fresh = static_cast<double>(mjpeg::test::now_us()) / 1e6 - std::stod(p->headers.at("x-timestamp")) < 0.5;
  }
  EXPECT_TRUE(fresh) << "frames must flow again for a new viewer";
}

// /metrics, like /stats, answers for the whole server whichever worker takes the request, and has
// a series per worker.
TEST(Workers, MetricsCountTheWholeServerAndEachWorker) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 4; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200);
    ASSERT_TRUE(viewers.back()->next()) << "viewer " << i;
  }
  // Each request may land on either worker; every answer must count all four (reports lag ≤ 100 ms).
  const std::regex total{R"(\nmjpeg_viewers 4\n)"};
  const std::regex worker0{R"(\nmjpeg_worker_viewers\{worker="0"\} \d+\n)"};
  const std::regex worker1{R"(\nmjpeg_worker_viewers\{worker="1"\} \d+\n)"};
  int agreed = 0;
  std::string page;
  for (int i = 0; i < 40 && agreed < 5; ++i) {
    page = get(server.port(), "/metrics").body;
    agreed = std::regex_search(page, total) ? agreed + 1 : 0;
    if (agreed == 0) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(agreed, 5) << page;
  EXPECT_TRUE(std::regex_search(page, worker0)) << page;
  EXPECT_TRUE(std::regex_search(page, worker1)) << page;
  EXPECT_NE(page.find("mjpeg_worker_restarts_total{worker=\"1\"} 0"), std::string::npos) << page;
}

TEST(Workers, HelpSaysMaxClientsIsPerWorker) {
  const auto help = run_command(mjpeg::test::variant_binary("mjpeg_async"), {"--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--workers"), std::string::npos);
  EXPECT_NE(help.out.find("per worker process"), std::string::npos) << help.out;
  const auto bad = run_command(mjpeg::test::variant_binary("mjpeg_async"), {"--workers", "-1"}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
}

// The parent's private directory, from the bus endpoint /stats lists ("ipc:///tmp/mjpeg-workers-…/bus").
std::string private_dir_of(unsigned short port) {
  const std::string body = get(port, "/stats").body;
  std::smatch m;
  if (!std::regex_search(body, m, std::regex{R"(ipc://(/tmp/mjpeg-workers-[A-Za-z0-9]+)/bus)"})) return {};
  return m[1].str();
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// A stopped (hung) worker keeps its listening socket, so the kernel goes on handing it new
// visitors: the parent notices its heartbeat stop, marks its row stale, kills and replaces it.
TEST(Workers, AHungWorkerIsReplacedAndNewVisitorsAreAllServed) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  const auto s = ask(server.port());
  ASSERT_EQ(s.workers.size(), 2u) << server.error_output();
  const long victim = s.workers[0].pid;
  ASSERT_EQ(::kill(static_cast<pid_t>(victim), SIGSTOP), 0);
  const struct resume {  // if it was not killed after all, let it go on at the end
    pid_t pid;
    ~resume() { ::kill(pid, SIGCONT); }
  } resume{static_cast<pid_t>(victim)};
  // While it is stopped, /stats (from the other worker; a request that lands on the stopped one
  // gets no answer) marks its row stale. The row is stale from 1 s of silence until the parent
  // kills the worker at 3 s, and the kernel hands about every other request to the stopped
  // worker: short tries, so that many fit in that window (the live worker answers in a few ms).
  const std::regex stale_row{R"(\{"index":0,[^}]*"stale":true\})"};
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] { return std::regex_search(get(server.port(), "/stats", 100ms).body, stale_row); }, 3500ms))
      << "the stopped worker's row must be marked stale";
  // Within about 5 s the parent says so and replaces it.
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] { return server.error_output().find("made no progress") != std::string::npos; }, 6s))
      << server.error_output();
  cluster_stats after;
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] {
        after = ask(server.port());
        return after.workers.size() == 2 && after.workers[0].pid != victim && after.workers[0].pid != 0 &&
               alive(after.workers[0].pid);
      },
      3s))
      << server.error_output();
  // Every new visitor is served: none lands on a hung process any more.
  for (int i = 0; i < 40; ++i) {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(2s), 200) << "visitor " << i;
    ASSERT_TRUE(viewer.next(2s)) << "visitor " << i;
  }
  EXPECT_EQ(count_of(server.error_output(), "made no progress"), 1) << server.error_output();
}

// A worker that cannot start (here: its parent's private directory is gone) is restarted with a
// growing delay, logged once, and when its slot stays empty the parent exits non-zero so that
// systemd (Restart=on-failure) starts the whole service afresh.
TEST(Workers, AWorkerThatCannotStartBacksOffThenTheParentGivesUp) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "2"})};
  const auto s = ask(server.port());
  ASSERT_EQ(s.workers.size(), 2u);
  const std::string dir = private_dir_of(server.port());
  ASSERT_FALSE(dir.empty());
  std::filesystem::remove_all(dir);
  ASSERT_EQ(::kill(static_cast<pid_t>(s.workers[0].pid), SIGKILL), 0);
  // Restarted as soon as it fails this would be a restart per start-up time (50 ms on an idle
  // machine); with backoff (0, 250, 500, 1000, 2000 ms …) it is a handful in 5 s.
  std::this_thread::sleep_for(5s);
  const auto during = ask(server.port());
  ASSERT_EQ(during.workers.size(), 2u);
  EXPECT_LE(during.workers[0].restarts, 7);
  EXPECT_EQ(count_of(server.error_output(), "restarting"), 1) << "one line per change of state\n"
                                                              << server.error_output();
  const int code = server.wait(mjpeg::test::sanitized ? 30s : 15s);
  EXPECT_NE(code, -1) << "the parent must give up on a slot that stays empty";
  EXPECT_NE(code, 0);
  EXPECT_NE(server.error_output().find("giving up"), std::string::npos) << server.error_output();
}

// A parent killed by SIGKILL cannot remove its private directory; the next parent does.
TEST(Workers, KillNineOfTheParentLeavesNoPrivateDirectoryBehind) {
  std::string dir;
  {
    server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "1"})};
    dir = private_dir_of(server.port());
    ASSERT_FALSE(dir.empty());
    server.signal(SIGKILL);
    server.wait(2s);
  }
  ASSERT_TRUE(std::filesystem::exists(dir)) << "nothing removes it on SIGKILL";
  server_process next{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "1"})};
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir << " left behind";
  const std::string own = private_dir_of(next.port());
  EXPECT_TRUE(std::filesystem::exists(own)) << "a running parent's directory must stay";
  // A second parent running beside it leaves the first one's directory alone.
  server_process other{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--workers", "1"})};
  EXPECT_TRUE(std::filesystem::exists(own));
  EXPECT_EQ(get(next.port(), "/snapshot").status, 200);
}

}  // namespace
