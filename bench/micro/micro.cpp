// Micro-benchmarks of the per-frame and per-request costs every variant shares: the hub's wake-up
// fan-out, JPEG encoding, part-header formatting, request parsing and routing, and the floor of
// the per-frame send cost (one gather write over loopback), one system call and the freshness
// gate's TCP_INFO; and the price of one access to a viewer's own state, kept in each of the four
// places chapter 2b compares.

#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <opencv2/core/mat.hpp>
#include <opencv2/imgcodecs.hpp>

#include "mjpeg/capture.hpp"
#include "mjpeg/frame.hpp"
#include "mjpeg/frame_hub.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/http.hpp"
#include "mjpeg/pattern.hpp"

#include "context_local.hpp"
#include "lesson.hpp"

namespace {

std::vector<std::uint8_t> test_card_jpeg(int width, int height, int quality) {
  mjpeg::image pixels;
  mjpeg::draw_pattern(pixels, mjpeg::pattern_background(width, height), 1);
  return mjpeg::encode_jpeg(pixels, quality);
}

// publish → every waiter has woken and seen the frame. Waiters are threads blocked in
// wait_newer, as in the thread-based variants; each round waits for all of them to check in.
void hub_fanout(benchmark::State& state) {
  const auto waiters = static_cast<int>(state.range(0));
  mjpeg::frame_hub hub;
  std::atomic<std::uint64_t> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i)
    threads.emplace_back([&] {
      std::uint64_t seen = 0;
      while (const auto f = hub.wait_newer(seen)) {
        seen = f->seq();
        woken.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  std::uint64_t seq = 0;
  const std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xD9};
  for (auto _ : state) {
    hub.publish(std::make_shared<const mjpeg::frame>(++seq, mjpeg::wall_clock::now(), jpeg));
    const auto target = seq * static_cast<std::uint64_t>(waiters);
    while (woken.load(std::memory_order_acquire) < target)
      std::this_thread::yield();
  }
  hub.close();
  for (auto& t : threads)
    t.join();
  state.counters["waiters"] = waiters;
  state.counters["s_per_wakeup"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * waiters,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);  // seconds per wake-up
}
BENCHMARK(hub_fanout)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);

// One encode of the test card, as the capture thread does once per frame.
void encode(benchmark::State& state) {
  const auto width = static_cast<int>(state.range(0));
  const auto height = static_cast<int>(state.range(1));
  const auto quality = static_cast<int>(state.range(2));
  mjpeg::image pixels;
  mjpeg::draw_pattern(pixels, mjpeg::pattern_background(width, height), 1);
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto jpeg = mjpeg::encode_jpeg(pixels, quality);
    bytes = jpeg.size();
    benchmark::DoNotOptimize(jpeg.data());
  }
  state.counters["jpeg_bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(encode)
    ->ArgsProduct({{640}, {480}, {50, 80, 95}})
    ->Args({320, 240, 80})
    ->Args({1280, 720, 80})
    ->Args({1920, 1080, 80})
    ->Unit(benchmark::kMillisecond);

// The same encode by OpenCV's imencode (libjpeg-turbo's libjpeg API beneath it), as the capture
// thread did before the test card left OpenCV: the same pixels, wrapped in a Mat without a copy.
void encode_opencv(benchmark::State& state) {
  const auto width = static_cast<int>(state.range(0));
  const auto height = static_cast<int>(state.range(1));
  const auto quality = static_cast<int>(state.range(2));
  mjpeg::image pixels;
  mjpeg::draw_pattern(pixels, mjpeg::pattern_background(width, height), 1);
  const cv::Mat mat{height, width, CV_8UC3, pixels.bgr.data()};
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::vector<std::uint8_t> jpeg;
    cv::imencode(".jpg", mat, jpeg, {cv::IMWRITE_JPEG_QUALITY, quality});
    bytes = jpeg.size();
    benchmark::DoNotOptimize(jpeg.data());
  }
  state.counters["jpeg_bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(encode_opencv)->Args({640, 480, 80})->Args({1280, 720, 80})->Unit(benchmark::kMillisecond);

// Building a frame formats its part header (Content-Length, X-Timestamp, X-Frame-Seq) once.
void part_header(benchmark::State& state) {
  std::uint64_t seq = 0;
  for (auto _ : state) {
    mjpeg::frame f{++seq, mjpeg::wall_clock::now(), std::vector<std::uint8_t>{0xFF, 0xD8, 0xFF, 0xD9}};
    benchmark::DoNotOptimize(f.part_header().data());
  }
}
BENCHMARK(part_header);

// Timestamps alone: the snprintf in the header.
void format_timestamp(benchmark::State& state) {
  const auto now = mjpeg::wall_clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(mjpeg::format_timestamp(now));
}
BENCHMARK(format_timestamp);

// A browser's request for the stream through Beast's parser, head_of and route.
void request_parse(benchmark::State& state) {
  constexpr std::string_view request =
      "GET /stream HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0\r\n"
      "Accept: image/avif,image/webp,image/apng,image/*,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\n"
      "Accept-Language: en-GB,en;q=0.9\r\nConnection: keep-alive\r\nReferer: http://127.0.0.1:8080/\r\n\r\n";
  const mjpeg::http::route_options options;
  for (auto _ : state) {
    mjpeg::http::request_parser parser;
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(request.data(), request.size()), ec);
    const auto plan = mjpeg::http::route(mjpeg::http::head_of(parser), options);
    if (ec || plan.what != mjpeg::http::resource::stream) state.SkipWithError("request did not parse");
    benchmark::DoNotOptimize(plan);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(request.size()));
}
BENCHMARK(request_parse);

// One frame's gather write {part header, JPEG, trailer} over a loopback TCP connection whose
// other end a thread drains: the floor under every variant's per-frame, per-viewer send cost.
void gather_write(benchmark::State& state) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  const auto width = static_cast<int>(state.range(0));
  const auto height = static_cast<int>(state.range(1));
  // Quality 50, as the frame sets bench/compare replays.
  const mjpeg::frame f{1, mjpeg::wall_clock::now(), test_card_jpeg(width, height, 50)};

  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::address_v4::loopback(), 0}};
  tcp::socket writer{io};
  writer.connect(acceptor.local_endpoint());
  tcp::socket reader = acceptor.accept();
  writer.set_option(tcp::no_delay{true});
  std::thread drain{[&] {
    std::vector<char> sink(256 * 1024);
    boost::system::error_code ec;
    while (!ec)
      reader.read_some(asio::buffer(sink), ec);
  }};
  for (auto _ : state)
    asio::write(writer, f.buffers());
  writer.shutdown(tcp::socket::shutdown_send);
  drain.join();
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(f.wire_size()));
  state.counters["frame_bytes"] = static_cast<double>(f.wire_size());
}
BENCHMARK(gather_write)->Args({640, 480})->Args({1280, 720})->UseRealTime()->Unit(benchmark::kMicrosecond);

// What one system call costs on this machine (the cheapest there is, getppid), and the freshness
// gate's look at the kernel before each frame (getsockopt TCP_INFO on a connected loopback TCP
// socket): what every readiness-based stream loop pays per viewer-frame on top of its send.
void syscall_getppid(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(::getppid());
}
BENCHMARK(syscall_getppid)->Unit(benchmark::kMicrosecond);

void freshness_tcp_info(benchmark::State& state) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::address_v4::loopback(), 0}};
  tcp::socket client{io};
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();
  for (auto _ : state) {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    benchmark::DoNotOptimize(::getsockopt(server.native_handle(), IPPROTO_TCP, TCP_INFO, &ti, &len));
  }
}
BENCHMARK(freshness_tcp_info)->Unit(benchmark::kMicrosecond);

// Where a viewer's own state lives (docs/02b-context-locals.md): one access counts one frame, from
// 1, 2 and 64 threads at once, each thread its own viewer. The global is shared by every thread,
// so from two threads on its answers are wrong; it is measured anyway, for what sharing one cache
// line costs. The others are per thread: thread_local (an offset from the thread pointer), the
// Werkzeug-style context_local (a lock and a hash lookup per access; one lock, or 16 shards), and
// a local in a coroutine's frame.
using mjpeg::lesson::viewer_state;
viewer_state one_global;
thread_local viewer_state per_thread;
mjpeg::lesson::context_local<viewer_state> werkzeug_local;
mjpeg::lesson::context_local<viewer_state, 16> werkzeug_local_sharded;

void context_global(benchmark::State& state) {
  for (auto _ : state) {
    ++one_global.frames;
    benchmark::DoNotOptimize(one_global);
  }
}

void context_thread_local(benchmark::State& state) {
  for (auto _ : state) {
    ++per_thread.frames;
    benchmark::DoNotOptimize(per_thread);
  }
}

template <class Local>
void context_werkzeug(benchmark::State& state, Local& local) {
  for (auto _ : state) {
    auto& viewer = local.get();  // Local.__getattr__: lock, look this thread's id up
    ++viewer.frames;
    benchmark::DoNotOptimize(viewer);
  }
  mjpeg::lesson::release_local(local);  // each benchmark run has new threads: forget this one
}
void context_werkzeug_local(benchmark::State& state) {
  context_werkzeug(state, werkzeug_local);
}
void context_werkzeug_local_sharded(benchmark::State& state) {
  context_werkzeug(state, werkzeug_local_sharded);
}

boost::asio::awaitable<void> count_in_frame(benchmark::State& state) {
  viewer_state viewer;  // in this coroutine's frame, as mjpeg-async keeps its viewer
  for (auto _ : state) {
    ++viewer.frames;
    benchmark::DoNotOptimize(viewer);
  }
  co_return;
}

void context_coroutine_frame(benchmark::State& state) {
  boost::asio::io_context io{1};
  boost::asio::co_spawn(io, count_in_frame(state), boost::asio::detached);
  io.run();
}

BENCHMARK(context_global)->Threads(1)->Threads(2)->Threads(64);
BENCHMARK(context_thread_local)->Threads(1)->Threads(2)->Threads(64);
BENCHMARK(context_werkzeug_local)->Threads(1)->Threads(2)->Threads(64);
BENCHMARK(context_werkzeug_local_sharded)->Threads(1)->Threads(2)->Threads(64);
BENCHMARK(context_coroutine_frame)->Threads(1)->Threads(2)->Threads(64);

}  // namespace

BENCHMARK_MAIN();
