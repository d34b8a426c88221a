// mjpeg-context-local: where does a viewer's own state live?
//
// The Python lesson this project retells starts with threads writing one global and printing each
// other's values, fixes it with threading.local(), and then opens Flask to show Werkzeug building
// its own Local (a dict keyed by get_ident(), with __release_local__) and later a ContextVar so
// asyncio tasks get their own values. This program runs the C++ twin of each: N viewers record
// their id, count their frames and read both back, with the state in a plain global, a
// thread_local (a thread per viewer, or a pool that does or does not reset it), a Werkzeug-style
// context_local, or a coroutine (its frame, or wrongly a thread_local). It prints one verdict per
// run and exits 1 if any viewer read state that was not its own.

#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lesson.hpp"

namespace {

using mjpeg::lesson::run_options;
using mjpeg::lesson::storage;

// `--state all`: the whole lesson, in the order the chapter tells it.
std::vector<run_options> whole_lesson(const run_options& base) {
  const int pool = base.pool > 0 ? base.pool : 2;
  auto with = [&](storage where, int with_pool, bool reset, bool release, int threads, int viewers) {
    run_options o = base;
    o.where = where;
    o.pool = with_pool;
    o.reset = reset;
    o.release = release;
    o.threads = threads;
    o.viewers = viewers;
    return o;
  };
  const int v = base.viewers;
  const int t = base.threads;
  return {with(storage::global, 0, false, true, t, v),
          with(storage::thread_local_storage, 0, false, true, t, v),
          with(storage::thread_local_storage, pool, false, true, t, v),
          with(storage::thread_local_storage, pool, true, true, t, v),
          with(storage::context_local, 0, false, true, t, v),
          with(storage::context_local, pool, false, true, t, v),
          with(storage::context_local, pool, false, false, t, v),
          with(storage::coroutine_frame, 0, false, true, t, v),
          with(storage::coroutine_thread_local, 0, false, true, 1, v),
          with(storage::coroutine_thread_local, 0, false, true, t, 1)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Where a viewer's own state lives: a global, thread_local, a Werkzeug-style context_local, "
      "or a coroutine's frame. Exits 1 if any viewer read state that was not its own."};
  run_options o;
  std::string state = "all";
  std::map<std::string, std::string> choices{{"all", "all"}};
  for (const auto where : {storage::global, storage::thread_local_storage, storage::context_local,
                           storage::coroutine_frame, storage::coroutine_thread_local})
    choices.emplace(std::string{mjpeg::lesson::name_of(where)}, std::string{mjpeg::lesson::name_of(where)});
  app.add_option("--state", state,
                 "where each viewer keeps its state: global, thread_local, context_local, coroutine "
                 "(its frame), coroutine_thread_local, or all (the whole lesson)")
      ->transform(CLI::IsMember(choices))
      ->capture_default_str();
  app.add_option("-n,--viewers", o.viewers, "concurrent viewers")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--frames", o.frames, "frames each viewer counts")
      ->check(CLI::Range(0, 1'000'000))
      ->capture_default_str();
  app.add_option("--pool", o.pool, "threads: 0 = a thread per viewer, N = a pool of N workers")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_flag("--reset", o.reset, "thread_local on a pool: reset the state as each viewer begins");
  app.add_flag("!--no-release", o.release, "context_local: never call release_local");
  app.add_option("--threads", o.threads, "coroutines: threads running the io_context")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<run_options> runs;
  if (state == "all") {
    runs = whole_lesson(o);
  } else {
    o.where = *mjpeg::lesson::storage_named(state);
    runs.push_back(o);
  }
  try {
    bool all_right = true;
    for (const auto& r : runs) {
      const auto result = mjpeg::lesson::run(r);
      std::printf("%s\n", mjpeg::lesson::verdict(r, result).c_str());
      std::fflush(stdout);
      all_right = all_right && result.wrong() == 0;
    }
    return all_right ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mjpeg-context-local: %s\n", e.what());
    return 2;
  }
}
