// The context-local lesson, driven: the same viewer written once per kind of thread (a thread per
// viewer, a pool's worker, a coroutine), with its state in a global, a thread_local, a
// context_local or the coroutine's frame.

#include "lesson.hpp"

#include <array>
#include <atomic>
#include <barrier>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "context_local.hpp"

namespace mjpeg::lesson {

namespace {

namespace asio = boost::asio;

// 1. One plain global for every viewer: what the Python lesson starts with, ten threads printing
// each other's values. Every viewer writes it at once; that is the data race TSan reports.
viewer_state racy_global_state;

// 2. One per thread, the C++ twin of threading.local(): right while a thread is a viewer.
thread_local viewer_state per_thread_state;

// 4b. One per thread again, now read from coroutines.
thread_local viewer_state coroutine_thread_state;

// The coroutine reaches its thread_local through a call that is not inlined: a compiler may
// otherwise compute the thread_local's address once and keep it across a co_await, so that after
// resuming on another thread the coroutine would still use the first thread's object (a data race).
// Going through a call reads the state of the thread the coroutine runs on now, as the source says.
[[gnu::noinline]] viewer_state& current_thread_state() {
  return coroutine_thread_state;
}

constexpr std::array names{
    std::pair{storage::global, std::string_view{"global"}},
    std::pair{storage::thread_local_storage, std::string_view{"thread_local"}},
    std::pair{storage::context_local, std::string_view{"context_local"}},
    std::pair{storage::coroutine_frame, std::string_view{"coroutine"}},
    std::pair{storage::coroutine_thread_local, std::string_view{"coroutine_thread_local"}}};

bool on_coroutines(storage where) {
  return where == storage::coroutine_frame || where == storage::coroutine_thread_local;
}

// The frame every viewer waits for. With a thread per viewer it is a barrier all of them meet at,
// as viewers all woken by one published frame: every write before it happens before any read after
// it, so the global's mix-up is certain, not a matter of luck. A pool's workers take viewers one
// after another and wait for nobody.
class frame_clock {
 public:
  explicit frame_clock(int viewers) {
    if (viewers > 0) barrier_.emplace(viewers);
  }
  void tick() {
    if (barrier_) barrier_->arrive_and_wait();
  }

 private:
  std::optional<std::barrier<>> barrier_;
};

// One viewer on a thread, written once for every storage: `state()` is wherever its state lives,
// `end()` runs when it leaves. Like the servers' serve_client: note who I am, count the frames
// sent, report. It relies on starting from a fresh state unless the options say to reset it.
template <class State, class End>
viewer_report serve_viewer(int id, const run_options& o, frame_clock& clock, State state, End end) {
  if (o.reset) state() = viewer_state{};  // the thread_pool variant's viewer_scope does this
  state().id = id;
  for (int f = 0; f < o.frames; ++f) {
    clock.tick();  // a frame is published: every viewer wakes for it
    ++state().frames;
  }
  clock.tick();  // every viewer has counted its last frame
  const viewer_report report{id, state(), 0};
  end();
  return report;
}

// Runs every viewer on a thread of its own (o.pool == 0) or on a pool of o.pool workers, each of
// which takes viewer after viewer: with more viewers than workers, some worker serves two.
template <class State, class End>
outcome run_threads(const run_options& o, State state, End end) {
  outcome out;
  out.frames = o.frames;
  out.viewers.resize(static_cast<std::size_t>(o.viewers));
  const auto serve = [&](int index, frame_clock& clock) {
    out.viewers[static_cast<std::size_t>(index)] = serve_viewer(index + 1, o, clock, state, end);
  };
  std::vector<std::jthread> threads;
  if (o.pool == 0) {
    frame_clock clock{o.viewers};
    for (int i = 0; i < o.viewers; ++i)
      threads.emplace_back([&, i] { serve(i, clock); });
    threads.clear();  // joins
  } else {
    frame_clock no_clock{0};
    std::atomic<int> next{0};
    for (int w = 0; w < o.pool; ++w)
      threads.emplace_back([&] {
        for (int i = next.fetch_add(1); i < o.viewers; i = next.fetch_add(1))
          serve(i, no_clock);
      });
    threads.clear();
  }
  return out;
}

// Moves the calling coroutine on to its next frame. On an io_context run by two or more threads it
// resumes on another thread than the one it suspended on, every time, by construction: the
// resumption is posted as a `hop`. A thread other than the one the coroutine left that takes the
// hop resumes the coroutine at once. The thread it left, if it takes the hop itself, posts the
// resumption again and stays busy until another thread has started it. Only one thread is kept
// busy at a time, so another is always free to resume.
class frame_stepper {
 public:
  frame_stepper(asio::io_context& io, int threads) : io_{io}, threads_{threads} {}

  // Waits for the next frame; 1 if the coroutine now runs on another thread, else 0.
  asio::awaitable<int> next_frame() {
    const auto from = std::this_thread::get_id();
    if (threads_ < 2) {
      co_await asio::post(io_, asio::use_awaitable);  // one thread: let the other coroutines run
    } else {
      co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
          [this, from](auto handler) {
            asio::post(io_, hop<decltype(handler)>{this, from, std::move(handler)});
          },
          asio::use_awaitable);
    }
    co_return std::this_thread::get_id() != from ? 1 : 0;
  }

 private:
  // The resumption of a coroutine that suspended on thread `from`.
  template <class Handler>
  struct hop {
    frame_stepper* stepper;
    std::thread::id from;
    Handler resume;

    void operator()() {
      if (std::this_thread::get_id() != from) {
        resume();  // another thread: the coroutine goes on here
        return;
      }
      if (stepper->holding_.exchange(true, std::memory_order_acquire)) {
        asio::post(stepper->io_, std::move(*this));  // another thread is held already: come back later
        return;
      }
      // Post the resumption and keep this thread busy until another thread has started it.
      auto started = std::make_shared<std::atomic<bool>>(false);
      asio::post(stepper->io_, [started, h = std::move(resume)]() mutable {
        started->store(true, std::memory_order_release);
        h();
      });
      while (!started->load(std::memory_order_acquire))
        std::this_thread::yield();
      stepper->holding_.store(false, std::memory_order_release);
    }
  };

  asio::io_context& io_;
  int threads_;
  std::atomic<bool> holding_{false};
};

// 4a. The state is a local of the coroutine, so it lives in the coroutine's frame: exactly as long
// as the viewer, whichever thread resumes it. mjpeg-async's serve_client keeps its viewer so.
asio::awaitable<viewer_report> frame_viewer(int id, const run_options& o, frame_stepper& stepper) {
  viewer_state state;
  state.id = id;
  int hops = 0;
  for (int f = 0; f < o.frames; ++f) {
    hops += co_await stepper.next_frame();
    ++state.frames;
  }
  co_return viewer_report{id, state, hops};
}

// 4b. The same viewer with its state in a thread_local: the thread it reads after a co_await is
// whichever resumed it, and the other coroutines on that thread wrote the same object meanwhile.
asio::awaitable<viewer_report> thread_local_viewer(int id, const run_options& o, frame_stepper& stepper) {
  current_thread_state().id = id;
  int hops = 0;
  for (int f = 0; f < o.frames; ++f) {
    hops += co_await stepper.next_frame();
    ++current_thread_state().frames;
  }
  co_return viewer_report{id, current_thread_state(), hops};
}

// Every viewer a coroutine on one io_context, run by o.threads threads.
outcome run_coroutines(const run_options& o) {
  asio::io_context io{o.threads};
  frame_stepper stepper{io, o.threads};
  outcome out;
  out.frames = o.frames;
  out.viewers.resize(static_cast<std::size_t>(o.viewers));
  std::mutex failure_mutex;
  std::exception_ptr failure;
  for (int i = 0; i < o.viewers; ++i) {
    auto viewer = o.where == storage::coroutine_frame ? frame_viewer(i + 1, o, stepper)
                                                      : thread_local_viewer(i + 1, o, stepper);
    asio::co_spawn(io, std::move(viewer), [&, i](std::exception_ptr e, viewer_report r) {
      if (e) {
        std::lock_guard lock{failure_mutex};
        failure = e;
      } else {
        out.viewers[static_cast<std::size_t>(i)] = r;
      }
    });
  }
  {
    std::vector<std::jthread> threads;  // fresh threads: every thread_local starts at zero
    for (int t = 0; t < o.threads; ++t)
      threads.emplace_back([&io] { io.run(); });
  }
  if (failure) std::rethrow_exception(failure);
  return out;
}

}  // namespace

std::string_view name_of(storage where) {
  for (const auto& [value, name] : names)
    if (value == where) return name;
  return "?";
}

std::optional<storage> storage_named(std::string_view name) {
  for (const auto& [value, n] : names)
    if (n == name) return value;
  return std::nullopt;
}

int outcome::wrong() const {
  int n = 0;
  for (const auto& v : viewers)
    if (v.seen.id != v.id || v.seen.frames != frames) ++n;
  return n;
}

int outcome::hops() const {
  int n = 0;
  for (const auto& v : viewers)
    n += v.hops;
  return n;
}

outcome run(const run_options& o) {
  if (o.viewers < 1 || o.frames < 0 || o.pool < 0 || o.threads < 1)
    throw std::invalid_argument("viewers and threads must be positive, frames and pool not negative");
  switch (o.where) {
    case storage::global:
      racy_global_state = viewer_state{};  // before any viewer starts: no race yet
      return run_threads(
          o, []() -> viewer_state& { return racy_global_state; }, [] {});
    case storage::thread_local_storage:
      return run_threads(
          o, []() -> viewer_state& { return per_thread_state; }, [] {});
    case storage::context_local: {
      context_local<viewer_state> local;
      auto out = run_threads(
          o, [&]() -> viewer_state& { return local.get(); },
          [&] {
            if (o.release) release_local(local);  // Flask's teardown: forget this thread's entry
          });
      out.entries_left = local.size();
      return out;
    }
    case storage::coroutine_frame:
    case storage::coroutine_thread_local:
      return run_coroutines(o);
  }
  throw std::invalid_argument("unknown storage");
}

std::string describe(const run_options& o) {
  const auto n = std::to_string(o.viewers);
  const auto viewers = o.viewers == 1 ? std::string{"1 viewer"} : n + " viewers";
  if (on_coroutines(o.where))
    return (o.viewers == 1 ? std::string{"1 coroutine"} : n + " coroutines") + " on " +
           std::to_string(o.threads) + (o.threads == 1 ? " thread" : " threads") + " of one io_context";
  std::string s = o.pool == 0 ? viewers + ", a thread each"
                              : viewers + " on a pool of " + std::to_string(o.pool) + " workers";
  if (o.where == storage::thread_local_storage && o.pool > 0)
    s += o.reset ? ", reset per viewer" : ", never reset";
  if (o.where == storage::context_local) s += o.release ? ", release_local per viewer" : ", never released";
  return s;
}

std::string verdict(const run_options& o, const outcome& result) {
  std::string line = std::string{name_of(o.where)} + " (" + describe(o) + ", " + std::to_string(o.frames) +
                     " frames each): ";
  const int wrong = result.wrong();
  if (wrong == 0) {
    line += "right, every viewer read its own id and " + std::to_string(o.frames) + " frames";
  } else {
    line += "WRONG, " + std::to_string(wrong) + " of " + std::to_string(o.viewers) +
            " viewers read state that is not theirs";
    for (const auto& v : result.viewers)
      if (v.seen.id != v.id || v.seen.frames != result.frames) {
        line += " (viewer " + std::to_string(v.id) + " read id " + std::to_string(v.seen.id) + " and " +
                std::to_string(v.seen.frames) + " frames)";
        break;
      }
  }
  if (o.where == storage::context_local) line += "; entries left: " + std::to_string(result.entries_left);
  if (on_coroutines(o.where) && o.threads > 1)
    line += "; resumed on another thread " + std::to_string(result.hops()) + " times";
  return line;
}

}  // namespace mjpeg::lesson
