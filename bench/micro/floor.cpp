// mjpeg-floor: the kernel's floor under every model, as CPU. One shared frame (the 640x480 test
// card at quality 50, the frame bench/compare replays) is sent to N non-blocking loopback TCP
// sockets, round after round; a reader thread pinned to the other core drains every socket. The
// sender's own CPU time (CLOCK_THREAD_CPUTIME_ID: user + system) per frame sent is the floor,
// for three ways to send: sendmsg with the frame's three gather buffers (one system call per
// viewer), writev with the same three buffers, and io_uring (every viewer's sendmsg queued, one
// io_uring_enter for all, completions reaped together). Each round starts with empty sockets, as a
// server's does at 30 fps when its viewers keep up; the wait for the reader is not counted.
// Methods are alternated round by round, so drift on a shared machine hits all of them alike.

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "mjpeg/capture.hpp"
#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/pattern.hpp"

namespace {

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double thread_cpu_us() {
  // The thread's own CPU clock (the scheduler's exact runtime; getrusage counts in ticks here).
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

int check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string{what} + ": " + std::strerror(errno));
  return rc;
}

// N connected pairs on loopback: senders non-blocking with TCP_NODELAY (as the servers tune
// theirs), readers drained by a thread on the other core.
class fan_out {
 public:
  fan_out(int n, int reader_cpu) {
    const int listener = check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
    check(::listen(listener, 4096), "listen");
    socklen_t len = sizeof addr;
    check(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), "getsockname");
    epoll_ = check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    for (int i = 0; i < n; ++i) {
      const int s = check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
      check(::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "connect");
      const int r = check(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK), "accept");
      const int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      senders.push_back(s);
      readers_.push_back(r);
      epoll_event ev{EPOLLIN, {}};
      ev.data.fd = r;
      check(::epoll_ctl(epoll_, EPOLL_CTL_ADD, r, &ev), "epoll_ctl");
    }
    ::close(listener);
    drain_ = std::thread{[this, reader_cpu] { drain(reader_cpu); }};
  }
  ~fan_out() {
    stop_ = true;
    drain_.join();
    for (const int s : senders)
      ::close(s);
    for (const int r : readers_)
      ::close(r);
    ::close(epoll_);
  }
  fan_out(const fan_out&) = delete;
  fan_out& operator=(const fan_out&) = delete;

  // Waits (sleeping, not counted) until the reader has taken everything sent so far.
  void wait_drained(std::uint64_t sent) const {
    while (received_.load(std::memory_order_acquire) < sent)
      std::this_thread::sleep_for(std::chrono::microseconds{200});
  }

  std::vector<int> senders;

 private:
  void drain(int cpu) {
    pin(cpu);
    std::vector<char> sink(256 * 1024);
    std::vector<epoll_event> events(256);
    while (!stop_) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 50);
      for (int i = 0; i < n; ++i)
        for (ssize_t got;
             (got = ::read(events[static_cast<std::size_t>(i)].data.fd, sink.data(), sink.size())) > 0;)
          received_.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_release);
    }
  }

  std::vector<int> readers_;
  int epoll_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0};
  std::thread drain_;
};

// What is left of one frame for one socket after a short send.
struct rest {
  std::array<iovec, 3> iov{};
  std::size_t first = 0;
  msghdr msg{};
  bool advance(std::size_t sent) {
    while (first < 3 && sent >= iov[first].iov_len) {
      sent -= iov[first].iov_len;
      ++first;
    }
    if (first == 3) return true;
    iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + sent;
    iov[first].iov_len -= sent;
    return false;
  }
  msghdr* header() {
    msg = {};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = 3 - first;
    return &msg;
  }
};

enum class method { sendmsg, writev, io_uring };
const char* name_of(method m) {
  return m == method::sendmsg ? "sendmsg" : m == method::writev ? "writev" : "io_uring";
}

struct tally {
  double cpu_us = 0;
  std::uint64_t sends = 0;
  std::uint64_t calls = 0;  // system calls the sender made to send
};

// One round: the frame to every socket, finishing short sends; returns the sender's CPU.
void round(method m, fan_out& fo, const mjpeg::frame& f, io_uring& ring, tally& t) {
  const auto b = f.buffers();
  std::vector<rest> left(fo.senders.size());
  for (auto& r : left)
    for (std::size_t i = 0; i < 3; ++i)
      r.iov[i] = {const_cast<void*>(b[i].data()), b[i].size()};
  std::vector<std::size_t> pending(fo.senders.size());
  for (std::size_t i = 0; i < pending.size(); ++i)
    pending[i] = i;
  const double start = thread_cpu_us();
  while (!pending.empty()) {
    std::vector<std::size_t> again;
    if (m == method::io_uring) {
      for (const std::size_t i : pending) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        while (sqe == nullptr) {
          ++t.calls;
          io_uring_submit(&ring);
          sqe = io_uring_get_sqe(&ring);
        }
        io_uring_prep_sendmsg(sqe, fo.senders[i], left[i].header(), MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, i);
      }
      for (std::size_t done = 0; done < pending.size();) {
        ++t.calls;
        io_uring_submit_and_wait(&ring, 1);
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring, head, cqe) {
          const auto i = static_cast<std::size_t>(cqe->user_data);
          if (cqe->res < 0 || !left[i].advance(static_cast<std::size_t>(cqe->res))) again.push_back(i);
          ++seen;
        }
        io_uring_cq_advance(&ring, seen);
        done += seen;
      }
    } else {
      for (const std::size_t i : pending) {
        ++t.calls;
        const ssize_t n = m == method::sendmsg
                              ? ::sendmsg(fo.senders[i], left[i].header(), MSG_DONTWAIT | MSG_NOSIGNAL)
                              : ::writev(fo.senders[i], left[i].iov.data() + left[i].first,
                                         static_cast<int>(3 - left[i].first));
        if (n < 0 || !left[i].advance(static_cast<std::size_t>(n))) again.push_back(i);
      }
    }
    pending.swap(again);
    if (!pending.empty()) std::this_thread::yield();  // a full socket: let the reader catch up
  }
  t.cpu_us += thread_cpu_us() - start;
  t.sends += fo.senders.size();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mjpeg-floor: sender CPU per frame sent to N loopback sockets (sendmsg, writev, io_uring)"};
  std::vector<int> viewers{1, 100, 1000, 2000};
  int sends = 20000;
  int sender_cpu = 0;
  int reader_cpu = 1;
  app.add_option("--viewers", viewers, "Socket counts")->delimiter(',');
  app.add_option("--sends", sends, "Frames sent per method and socket count (at least 10 rounds)");
  app.add_option("--sender-cpu", sender_cpu, "Core of the sending thread");
  app.add_option("--reader-cpu", reader_cpu, "Core of the draining thread");
  CLI11_PARSE(app, argc, argv);

  pin(sender_cpu);
  mjpeg::image pixels;
  mjpeg::draw_pattern(pixels, mjpeg::pattern_background(640, 480), 1);
  const mjpeg::frame f{1, mjpeg::wall_clock::now(), mjpeg::encode_jpeg(pixels, 50)};
  io_uring ring{};
  if (const int rc = io_uring_queue_init(4096, &ring, 0); rc < 0) {
    std::fprintf(stderr, "mjpeg-floor: io_uring is not available here (%s)\n", std::strerror(-rc));
    return 1;
  }
  std::printf("{\"frame_bytes\": %zu, \"sender_cpu\": %d, \"reader_cpu\": %d, \"results\": [\n",
              f.wire_size(), sender_cpu, reader_cpu);
  const char* sep = "";
  for (const int n : viewers) {
    fan_out fo{n, reader_cpu};
    const int rounds = std::max(10, sends / n);
    std::array<tally, 3> t{};
    std::uint64_t sent = 0;
    // A warm-up round per method (socket buffers grow to their working size), then alternate.
    for (int r = -1; r < rounds; ++r)
      for (const method m : {method::sendmsg, method::writev, method::io_uring}) {
        tally scratch;
        round(m, fo, f, ring, r < 0 ? scratch : t[static_cast<std::size_t>(m)]);
        sent += f.wire_size() * static_cast<std::uint64_t>(n);
        fo.wait_drained(sent);
      }
    for (const method m : {method::sendmsg, method::writev, method::io_uring}) {
      const tally& x = t[static_cast<std::size_t>(m)];
      std::printf(
          "%s  {\"method\": \"%s\", \"viewers\": %d, \"sends\": %llu, \"cpu_us_per_send\": %.3f, "
          "\"syscalls_per_send\": %.4f}",
          sep, name_of(m), n, static_cast<unsigned long long>(x.sends),
          x.cpu_us / static_cast<double>(x.sends),
          static_cast<double>(x.calls) / static_cast<double>(x.sends));
      sep = ",\n";
      std::fflush(stdout);
    }
  }
  std::printf("\n]}\n");
  io_uring_queue_exit(&ring);
  return 0;
}
