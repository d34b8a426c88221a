// The threaded servers' lessons as end-to-end tests: thread_per_client serves everyone at once;
// thread_pool serves N viewers, holds the next ones in its queue and refuses the rest; thread_local
// viewer state must start fresh for every viewer; stalled clients cost at most their timeout.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <stdexcept>
#include <thread>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::connection;
using mjpeg::test::get;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;
using clock_type = std::chrono::steady_clock;

const std::string per_client = "mjpeg_thread_per_client";
const std::string pool = "mjpeg_thread_pool";

std::string binary(const std::string& key) {
  return mjpeg::test::variant_binary(key);
}

std::uint64_t seq_of(const mjpeg::test::part& p) {
  return std::stoull(p.headers.at("x-frame-seq"));
}

// One viewer as /stats lists it.
struct listed_viewer {
  std::uint64_t id = 0;
  std::string peer;
  std::uint64_t last_seq = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_skipped = 0;
};

// The parts of /stats these tests look at.
struct stats_snapshot {
  int status = 0;
  std::uint64_t viewers_now = 0;
  std::uint64_t viewers_total = 0;
  std::uint64_t rejected = 0;
  std::vector<listed_viewer> viewers;
  bool lists(const std::string& peer) const {
    for (const auto& v : viewers)
      if (v.peer == peer) return true;
    return false;
  }
};

// The number after "name": in `json` (the first one from `from`).
std::uint64_t field(const std::string& json, const std::string& name, std::size_t from = 0) {
  const std::string key = "\"" + name + "\":";
  const auto at = json.find(key, from);
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in " + json);
  return std::stoull(json.substr(at + key.size()));
}

// The string after "name": in `json`, from `from`.
std::string text_field(const std::string& json, const std::string& name, std::size_t from) {
  const std::string key = "\"" + name + "\":\"";
  const auto at = json.find(key, from) + key.size();
  return json.substr(at, json.find('"', at) - at);
}

stats_snapshot read_stats(unsigned short port) {
  const auto r = get(port, "/stats", 10s);
  stats_snapshot s;
  s.status = r.status;
  if (r.status != 200) return s;
  s.viewers_now = field(r.body, "viewers_now");
  s.viewers_total = field(r.body, "viewers_total");
  s.rejected = field(r.body, "rejected");
  // The listed viewers: {"id":…,"peer":"…",…} after "viewers":[, one object each.
  for (auto at = r.body.find("{\"id\":", r.body.find("\"viewers\":[")); at != std::string::npos;
       at = r.body.find("{\"id\":", at + 1)) {
    s.viewers.push_back({field(r.body, "id", at), text_field(r.body, "peer", at),
                         field(r.body, "last_seq", at), field(r.body, "frames_sent", at),
                         field(r.body, "frames_skipped", at)});
  }
  return s;
}

// "127.0.0.1:port" of our end of a connection: how the server lists it in /stats.
std::string local_name(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

// A viewer that asks for the stream and then never reads, with a receive buffer too small for
// one frame (set before connecting, so the advertised window is small from the start).
class stalled_reader {
 public:
  explicit stalled_reader(unsigned short port) : fd_{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)} {
    const int tiny = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect");
    const std::string request = "GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n";
    ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
  }
  ~stalled_reader() { ::close(fd_); }
  stalled_reader(const stalled_reader&) = delete;
  stalled_reader& operator=(const stalled_reader&) = delete;

  std::string name() const { return local_name(fd_); }

  // Reads everything the server left behind; true if the stream then ended (closed or reset).
  bool drain_to_end(std::chrono::milliseconds timeout) {
    const auto until = clock_type::now() + timeout;
    char sink[65536];
    while (clock_type::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const auto n = ::recv(fd_, sink, sizeof sink, 0);
      if (n <= 0) return true;
    }
    return false;
  }

 private:
  int fd_;
};

// --- thread_per_client ------------------------------------------------------------------------

// Its lesson: every viewer has its own thread, so three viewers are all served at the same time
// (single_thread would leave two of them waiting).
TEST(ThreadPerClient, ServesThreeViewersAtOnce) {
  server_process server{binary(per_client), small_frames({})};
  std::vector<std::unique_ptr<stream_reader>> viewers;
  for (int i = 0; i < 3; ++i) {
    viewers.push_back(std::make_unique<stream_reader>(server.port()));
    ASSERT_EQ(viewers.back()->open(), 200) << "viewer " << i << server.error_output();
  }
  std::vector<std::uint64_t> last(3, 0);
  for (int round = 0; round < 5; ++round) {
    for (std::size_t i = 0; i < viewers.size(); ++i) {
      const auto part = viewers[i]->next();
      ASSERT_TRUE(part) << "viewer " << i << " round " << round;
      EXPECT_GT(seq_of(*part), last[i]);
      last[i] = seq_of(*part);
    }
  }
  // And /stats, a fourth connection, is answered while all three stream.
  const auto stats = read_stats(server.port());
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.viewers_now, 3u);
  ASSERT_EQ(stats.viewers.size(), 3u);
  EXPECT_NE(stats.viewers[0].id, stats.viewers[1].id);
  EXPECT_NE(stats.viewers[1].id, stats.viewers[2].id);
  EXPECT_NE(stats.viewers[0].id, stats.viewers[2].id);
}

// --max-clients caps the threads: the next connection gets 503 with Retry-After, and once a
// viewer leaves its thread is reaped and the slot serves someone else.
TEST(ThreadPerClient, MaxClientsRefusesWithRetryAfterAndFreesTheSlot) {
  server_process server{binary(per_client), small_frames({"--max-clients", "2"})};
  auto first = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(first->open(), 200) << server.error_output();
  stream_reader second{server.port()};
  ASSERT_EQ(second.open(), 200);
  ASSERT_TRUE(first->next());
  ASSERT_TRUE(second.next());

  const auto refused = get(server.port(), "/stream");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.headers.count("retry-after"), 1u);
  ASSERT_TRUE(first->next()) << "the refusal disturbs nobody";
  ASSERT_TRUE(second.next());

  // The first viewer leaves; its thread ends at its next frame and the next accept reaps it.
  // A 503 in between is allowed (it says when to retry), so retry as a browser would.
  first.reset();
  int status = 0;
  std::unique_ptr<stream_reader> third;
  for (const auto until = clock_type::now() + 10s; status != 200 && clock_type::now() < until;) {
    third = std::make_unique<stream_reader>(server.port());
    status = third->open();
    if (status != 200) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(status, 200) << "the freed slot must serve a new viewer";
  EXPECT_TRUE(third->next());
  EXPECT_TRUE(second.next());
}

// --- thread_pool ------------------------------------------------------------------------------

// Its lesson: one task is one whole viewer. Two workers serve two viewers; the third waits in
// the queue, connected but receiving nothing, until a worker comes free; the fourth finds the
// queue full and gets 503 at once.
TEST(ThreadPool, TwoWorkersServeTwoHoldTheThirdAndRefuseTheFourth) {
  server_process server{binary(pool), small_frames({"--threads", "2", "--queue", "1"})};
  auto first = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(first->open(), 200) << server.error_output();
  ASSERT_TRUE(first->next());
  auto second = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(second->open(), 200);
  ASSERT_TRUE(second->next());

  stream_reader third{server.port()};
  EXPECT_EQ(third.open(1500ms), 0) << "the third viewer must get nothing while both workers are busy";
  EXPECT_FALSE(third.conn().closed()) << "the third viewer waits, connected";

  const auto fourth = get(server.port(), "/stream");
  EXPECT_EQ(fourth.status, 503) << "the queue (1) is full: the fourth is refused";
  EXPECT_EQ(fourth.headers.count("retry-after"), 1u);
  ASSERT_TRUE(first->next()) << "the refusal disturbs nobody";
  ASSERT_TRUE(second->next());

  first.reset();  // a worker comes free and takes the waiting viewer
  ASSERT_EQ(third.open(10s), 200);
  EXPECT_TRUE(third.next());
  EXPECT_TRUE(second->next());

  // With the viewers gone, /stats (itself a task) gets a worker and shows the one refusal.
  second.reset();
  const auto stats = [&] {
    stats_snapshot s;
    for (const auto until = clock_type::now() + 10s; clock_type::now() < until;) {
      s = read_stats(server.port());
      if (s.status == 200) break;
    }
    return s;
  }();
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.rejected, 1u);
}

// thread_local now lives per worker and outlives each viewer. Two viewers occupy both workers
// and leave, so each worker's viewer_state holds a finished viewer's id and counters; the next
// viewer lands on one of them and must start fresh: a new id, and counters that count only its
// own frames. Without the per-viewer reset it would show ids 1 or 2 and carry on the old counts.
TEST(ThreadPool, SecondViewerOnAWorkerStartsFresh) {
  server_process server{binary(pool), small_frames({"--threads", "2"})};
  std::uint64_t earlier_frames = 0;
  {
    stream_reader a{server.port()};
    stream_reader b{server.port()};
    ASSERT_EQ(a.open(), 200) << server.error_output();
    ASSERT_EQ(b.open(), 200);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(a.next());
      ASSERT_TRUE(b.next());
      earlier_frames += 1;
    }
  }  // both leave; their workers keep their thread_local viewer_state

  stream_reader fresh{server.port()};
  ASSERT_EQ(fresh.open(), 200);
  const auto first = fresh.next();
  ASSERT_TRUE(first);
  const std::uint64_t first_seq = seq_of(*first);
  // The server counts a frame after its write returns, so the count may trail what we received
  // by one. Receiving a fourth frame proves the third was counted: the worker counts each frame
  // before it waits for and writes the next.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(fresh.next());

  // /stats goes to the other worker (queued until it notices its viewer left).
  const auto stats = read_stats(server.port());
  ASSERT_EQ(stats.status, 200);
  ASSERT_EQ(stats.viewers.size(), 1u) << "only the fresh viewer streams now";
  const listed_viewer& v = stats.viewers[0];
  EXPECT_EQ(v.peer, local_name(fresh.conn().fd()));
  EXPECT_GT(v.id, 2u) << "a new viewer gets a new id, not the one its worker served before";
  EXPECT_GE(v.last_seq, first_seq + 2);
  EXPECT_GE(v.frames_sent, 3u);
  // Every frame since its first was either sent or skipped, nothing before it. /stats reads the
  // counters one by one while frames go on, so allow a few frames of slack; the old viewer's
  // 30+ frames would exceed it.
  const std::uint64_t own_frames = v.last_seq - first_seq + 1;
  EXPECT_LE(v.frames_sent + v.frames_skipped, own_frames + 10)
      << "frames_sent " << v.frames_sent << " skipped " << v.frames_skipped << " since seq " << first_seq
      << " to " << v.last_seq << ": counting on from the worker's previous viewer (" << earlier_frames
      << " frames)?";
}

// --- both -------------------------------------------------------------------------------------

class Threaded : public testing::TestWithParam<std::string> {
 protected:
  std::string binary() const { return ::binary(GetParam()); }
};

// A client whose request head never completes holds a thread (in the pool: a worker) only until
// --header-timeout, then gets 408 and is closed; one that sends nothing is closed too. A normal
// viewer keeps receiving throughout.
TEST_P(Threaded, HeaderTimeoutClosesOnlyTheDawdlers) {
  server_process server{binary(), small_frames({"--header-timeout", "1"})};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200) << server.error_output();
  connection partial{server.port()};
  ASSERT_TRUE(partial.send("GET /stream HTTP/1.1\r\nHo"));
  connection silent{server.port()};

  std::string partial_reply;
  int frames = 0;
  for (const auto until = clock_type::now() + 15s;
       (!partial.closed() || !silent.closed()) && clock_type::now() < until;) {
    ASSERT_TRUE(viewer.next()) << "the normal viewer keeps receiving";
    ++frames;
    if (!partial.closed()) partial_reply += partial.receive(1ms);
    if (!silent.closed()) silent.receive(1ms);
  }
  EXPECT_TRUE(partial.closed()) << "the partial request must be closed after its header timeout";
  EXPECT_TRUE(silent.closed()) << "the silent connection must be closed after its header timeout";
  mjpeg::test::response r;
  mjpeg::test::parse_head(partial_reply, r);
  EXPECT_EQ(r.status, 408) << partial_reply;
  EXPECT_GE(frames, 3);
  ASSERT_TRUE(viewer.next()) << "and still does";
}

// A viewer that stops reading is dropped after --send-timeout instead of holding its thread
// forever: it disappears from /stats and its connection is closed, while a normal viewer keeps
// receiving.
TEST_P(Threaded, SendTimeoutDropsAStalledReader) {
  server_process server{binary(), small_frames({"--send-timeout", "1"})};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200) << server.error_output();
  const std::string viewer_name = local_name(viewer.conn().fd());
  stalled_reader stalled{server.port()};
  const std::string stalled_name = stalled.name();

  // It becomes a viewer (it may already be gone by the time we look: viewers_total counts it)…
  bool started = false;
  for (const auto until = clock_type::now() + 10s; !started && clock_type::now() < until;) {
    ASSERT_TRUE(viewer.next());
    const auto s = read_stats(server.port());
    started = s.lists(stalled_name) || s.viewers_total >= 2;
  }
  ASSERT_TRUE(started) << "the stalled reader's stream never started";

  // …and is dropped once a send has stalled for a second, while the normal viewer goes on.
  stats_snapshot s;
  bool dropped = false;
  for (const auto until = clock_type::now() + 20s; !dropped && clock_type::now() < until;) {
    ASSERT_TRUE(viewer.next()) << "the normal viewer keeps receiving";
    s = read_stats(server.port());
    dropped = s.status == 200 && !s.lists(stalled_name);
  }
  ASSERT_TRUE(dropped) << "the stalled reader is still listed after 20 s";
  EXPECT_EQ(s.viewers_now, 1u);
  EXPECT_TRUE(s.lists(viewer_name));
  EXPECT_TRUE(stalled.drain_to_end(10s)) << "the server must have closed the stalled connection";
  ASSERT_TRUE(viewer.next());
}

// SIGTERM stops the server within a second and exits 0 with every kind of connection open:
// streaming viewers, a stalled reader, a half-sent request, and (in the pool) a queued viewer.
TEST_P(Threaded, SigtermWithBusyConnectionsExitsZeroWithinASecond) {
  std::vector<std::string> model;
  if (GetParam() == pool) model = {"--threads", "4", "--queue", "2"};
  server_process server{binary(), small_frames(model)};
  stream_reader one{server.port()};
  stream_reader two{server.port()};
  ASSERT_EQ(one.open(), 200) << server.error_output();
  ASSERT_EQ(two.open(), 200);
  ASSERT_TRUE(one.next());
  ASSERT_TRUE(two.next());
  stalled_reader stalled{server.port()};
  connection partial{server.port()};
  ASSERT_TRUE(partial.send("GET /stream HTTP/1.1\r\n"));
  stream_reader last{server.port()};   // thread_per_client serves it; the pool's four are busy: queued
  std::this_thread::sleep_for(500ms);  // let the server accept them all
  ASSERT_TRUE(one.next());

  const auto start = clock_type::now();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0) << server.error_output();
  EXPECT_LT(clock_type::now() - start, mjpeg::test::stop_bound);
}

// --help describes the options the model gives, and only those.
TEST_P(Threaded, HelpShowsTheModelsOptions) {
  const auto r = mjpeg::test::run_command(binary(), {"--help"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const bool is_pool = GetParam() == pool;
  EXPECT_EQ(r.out.find("--threads") != std::string::npos, is_pool) << r.out;
  EXPECT_EQ(r.out.find("--queue") != std::string::npos, is_pool) << r.out;
  EXPECT_EQ(r.out.find("--max-clients") != std::string::npos, !is_pool) << r.out;
  for (const char* common : {"--header-timeout", "--send-timeout", "--port", "--source", "--fps"})
    EXPECT_NE(r.out.find(common), std::string::npos) << common;
}

INSTANTIATE_TEST_SUITE_P(Variants, Threaded, testing::Values(per_client, pool),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
