// mjpeg-pipe-demo: why the hub is latest-frame-wins instead of a pipe per viewer.
//
// The Python lesson this project retells wrote every frame into one OS pipe per viewer, under a
// lock. This program runs that design and ours side by side, in-process, with the same viewers:
// several fast ones and one that reads slowly (a phone on a bad network). It prints how many
// frames capture published and each kind of viewer received, per second.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "mjpeg/clock.hpp"
#include "mjpeg/frame_hub.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct config {
  double fps = 30;
  std::size_t frame_bytes = 40'000;
  int fast_viewers = 4;
  double slow_rate = 50'000;  // bytes per second the slow viewer reads
  double seconds = 5;
};

struct result {
  double published = 0;  // frames per second capture managed to publish
  double fast = 0;       // mean frames per second per fast viewer
  double slow = 0;       // frames per second of the slow viewer
};

// Reads `n` bytes at `rate` bytes per second (0: as fast as possible), in 4 KiB sips.
bool read_paced(int fd, std::size_t n, double rate, clock_type::time_point until) {
  char buf[4096];
  while (n > 0) {
    if (clock_type::now() >= until) return false;
    const auto got = ::read(fd, buf, std::min(n, sizeof buf));
    if (got <= 0) return false;
    n -= static_cast<std::size_t>(got);
    if (rate > 0) std::this_thread::sleep_for(std::chrono::duration<double>(static_cast<double>(got) / rate));
  }
  return true;
}

// Frames per second published, per fast viewer (mean) and for the slow viewer 0.
result summarize(const config& c, double published, const std::vector<std::atomic<int>>& received) {
  result r;
  r.published = published / c.seconds;
  for (std::size_t i = 1; i < received.size(); ++i)
    r.fast += received[i] / c.seconds;
  r.fast /= c.fast_viewers;
  r.slow = received[0] / c.seconds;
  return r;
}

// The original design: capture writes each frame into every viewer's pipe while holding a lock.
result run_pipes(const config& c) {
  const int viewers = c.fast_viewers + 1;
  std::vector<int> read_end(static_cast<std::size_t>(viewers)), write_end(static_cast<std::size_t>(viewers));
  for (int i = 0; i < viewers; ++i) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    read_end[static_cast<std::size_t>(i)] = fds[0];
    write_end[static_cast<std::size_t>(i)] = fds[1];
  }
  const auto until = clock_type::now() + mjpeg::seconds(c.seconds);
  std::vector<std::atomic<int>> received(static_cast<std::size_t>(viewers));
  std::vector<std::thread> readers;
  for (int i = 0; i < viewers; ++i)
    readers.emplace_back([&, i] {
      const double rate = i == 0 ? c.slow_rate : 0;  // viewer 0 is the slow one
      while (read_paced(read_end[static_cast<std::size_t>(i)], c.frame_bytes, rate, until))
        ++received[static_cast<std::size_t>(i)];
      // Closing our end fails capture's pending write (EPIPE) instead of leaving it blocked.
      ::close(read_end[static_cast<std::size_t>(i)]);
    });
  const std::vector<char> frame(c.frame_bytes, 'x');
  std::mutex lock;
  int published = 0;
  const auto interval = std::chrono::duration<double>(1.0 / c.fps);
  auto due = clock_type::now();
  while (clock_type::now() < until) {
    std::this_thread::sleep_until(due);
    due += std::chrono::duration_cast<clock_type::duration>(interval);
    std::lock_guard guard{lock};
    for (const int fd : write_end) {
      // A blocking write: once the slow viewer's 64 KiB pipe is full, this waits for it.
      std::size_t off = 0;
      while (off < frame.size() && clock_type::now() < until) {
        const auto n = ::write(fd, frame.data() + off, frame.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
    }
    ++published;
  }
  for (const int fd : write_end)
    ::close(fd);  // readers see end of file
  for (auto& t : readers)
    t.join();  // each reader closed its own end
  return summarize(c, published, received);
}

// Ours: capture publishes to the hub; each viewer takes the newest frame when it is ready.
result run_hub(const config& c) {
  const int viewers = c.fast_viewers + 1;
  mjpeg::frame_hub hub;
  const auto until = clock_type::now() + mjpeg::seconds(c.seconds);
  std::vector<std::atomic<int>> received(static_cast<std::size_t>(viewers));
  std::vector<std::thread> readers;
  for (int i = 0; i < viewers; ++i)
    readers.emplace_back([&, i] {
      std::uint64_t seen = 0;
      while (auto f = hub.wait_newer(seen)) {
        seen = f->seq();
        // The slow viewer takes as long to receive a frame as its rate allows.
        if (i == 0)
          std::this_thread::sleep_for(
              std::chrono::duration<double>(static_cast<double>(f->jpeg().size()) / c.slow_rate));
        if (clock_type::now() >= until) break;
        ++received[static_cast<std::size_t>(i)];
      }
    });
  const auto interval = std::chrono::duration<double>(1.0 / c.fps);
  auto due = clock_type::now();
  std::uint64_t seq = 0;
  while (clock_type::now() < until) {
    std::this_thread::sleep_until(due);
    due += std::chrono::duration_cast<clock_type::duration>(interval);
    hub.publish(std::make_shared<const mjpeg::frame>(++seq, mjpeg::wall_clock::now(),
                                                     std::vector<std::uint8_t>(c.frame_bytes, 0)));
  }
  hub.close();
  for (auto& t : readers)
    t.join();
  return summarize(c, static_cast<double>(seq), received);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a write to a pipe whose reader left fails with EPIPE instead
  config c;
  CLI::App app{"Pipe per viewer (the original design) against the latest-frame hub", "mjpeg-pipe-demo"};
  app.add_option("--fps", c.fps, "Frames per second capture aims for")->capture_default_str();
  app.add_option("--frame-bytes", c.frame_bytes, "Bytes per frame")->capture_default_str();
  app.add_option("--fast", c.fast_viewers, "Fast viewers")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--slow-rate", c.slow_rate, "Bytes per second the one slow viewer reads")
      ->capture_default_str();
  app.add_option("--seconds", c.seconds, "Seconds per design")
      ->check(CLI::Range(1.0, 60.0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::printf("%d fast viewers and 1 reading %.0f B/s; %zu-byte frames at %.0f fps; %.0f s each\n",
              c.fast_viewers, c.slow_rate, c.frame_bytes, c.fps, c.seconds);
  std::printf("%-16s %14s %18s %18s\n", "design", "published fps", "fast viewer fps", "slow viewer fps");
  const auto row = [](const char* name, const result& r) {
    std::printf("%-16s %14.1f %18.1f %18.1f\n", name, r.published, r.fast, r.slow);
  };
  row("pipe per viewer", run_pipes(c));
  row("latest-frame hub", run_hub(c));
  return 0;
}
