/// The context-local lesson: one viewer's state kept four ways, driven by concurrent viewers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mjpeg::lesson {

/// What a viewer keeps about itself: who it is and how many frames it has been sent.
struct viewer_state {
  int id = 0;      ///< the viewer's own id (1, 2, ...)
  int frames = 0;  ///< frames counted so far
};

/// Where the per-viewer state lives.
enum class storage {
  global,                  ///< one plain global for everybody: races
  thread_local_storage,    ///< thread_local: one per thread (a thread per viewer, or a pool's worker)
  context_local,           ///< context_local<viewer_state>: a map keyed by thread id, Werkzeug-style
  coroutine_frame,         ///< a local of the viewer's coroutine (what mjpeg-async does)
  coroutine_thread_local,  ///< thread_local read from a coroutine: the wrong tool there
};

/// The command-line name of `where` (global, thread_local, context_local, coroutine, ...).
std::string_view name_of(storage where);

/// The storage called `name` on the command line, if any.
std::optional<storage> storage_named(std::string_view name);

/// One run of the lesson: who keeps the state, how many viewers, and what serves them.
struct run_options {
  storage where = storage::global;  ///< where each viewer keeps its state
  int viewers = 8;                  ///< concurrent viewers, ids 1..viewers
  int frames = 100;                 ///< frames each viewer counts
  int pool = 0;                     ///< threads: 0 = a thread per viewer, N = a pool of N workers
  bool reset = false;               ///< thread_local on a pool: reset the state as each viewer begins
  bool release = true;              ///< context_local: release_local as each viewer ends
  int threads = 2;                  ///< coroutines: threads running the one io_context
};

/// What one viewer read back from its state at the end.
struct viewer_report {
  int id = 0;         ///< who the viewer is
  viewer_state seen;  ///< what its state said at the end
  int hops = 0;       ///< coroutines: times it resumed on another thread than it suspended on
};

/// Every viewer's report, plus what the storage still holds afterwards.
struct outcome {
  std::vector<viewer_report> viewers;  ///< in id order
  int frames = 0;                      ///< frames each viewer counted
  std::size_t entries_left = 0;        ///< context_local: entries nobody released

  /// Viewers whose state was not their own id and exactly `frames` frames.
  int wrong() const;
  /// Times all viewers together resumed on another thread.
  int hops() const;
};

/// Runs `o.viewers` viewers that each record their id, count `o.frames` frames and read both back.
/// Interleavings that matter are forced, not hoped for: a thread per viewer meets the others at a
/// barrier for every frame (as viewers woken by one published frame), a pool's workers take viewer
/// after viewer, and coroutines on two or more threads are made to resume on another thread at
/// every frame. Throws std::invalid_argument for options that cannot run.
outcome run(const run_options& o);

/// What was run, in a few words: "8 viewers, a thread each", "on a pool of 2, not reset", ...
std::string describe(const run_options& o);

/// One line saying whether every viewer read its own state and, if not, how it went wrong.
std::string verdict(const run_options& o, const outcome& result);

}  // namespace mjpeg::lesson
