// The context-local lesson's claims, pinned: a global mixes viewers up (under a forced
// interleaving, not by luck), thread_local is exact per thread and leaks from one viewer to the
// next on a pool that does not reset it, the Werkzeug-style context_local releases its entry, and
// a coroutine's frame keeps its state across threads where a thread_local does not.

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <stdexcept>
#include <thread>
#include <vector>

#include "context_local.hpp"
#include "lesson.hpp"

namespace {

using mjpeg::lesson::context_local;
using mjpeg::lesson::run;
using mjpeg::lesson::run_options;
using mjpeg::lesson::storage;
using mjpeg::lesson::viewer_state;

run_options options(storage where, int viewers, int frames) {
  run_options o;
  o.where = where;
  o.viewers = viewers;
  o.frames = frames;
  return o;
}

// Every viewer writes its id before the first frame's barrier and reads after the last one, so
// all of them read the same id, the last writer's: at most one viewer sees its own.
TEST(ContextLocal, GlobalMixesViewersUp) {
  const auto result = run(options(storage::global, 8, 10));
  ASSERT_EQ(result.viewers.size(), 8u);
  int own_id = 0;
  for (const auto& v : result.viewers) {
    EXPECT_EQ(v.seen.id, result.viewers.front().seen.id) << "viewer " << v.id;
    if (v.seen.id == v.id) ++own_id;
    EXPECT_GE(v.seen.frames, 10) << "every frame adds at least one";
  }
  EXPECT_LE(own_id, 1);
  EXPECT_GE(result.wrong(), 7);
}

TEST(ContextLocal, ThreadLocalIsExactPerThread) {
  const auto result = run(options(storage::thread_local_storage, 8, 50));
  ASSERT_EQ(result.viewers.size(), 8u);
  for (const auto& v : result.viewers) {
    EXPECT_EQ(v.seen.id, v.id);
    EXPECT_EQ(v.seen.frames, 50) << "viewer " << v.id;
  }
  EXPECT_EQ(result.wrong(), 0);
}

// One worker serves viewers 1, 2, 3 in turn; its thread_local still holds the previous viewers' frames.
TEST(ContextLocal, ThreadLocalOnAPoolLeaksIntoTheNextViewer) {
  auto o = options(storage::thread_local_storage, 3, 10);
  o.pool = 1;
  const auto leaky = run(o);
  ASSERT_EQ(leaky.viewers.size(), 3u);
  EXPECT_EQ(leaky.viewers[0].seen.frames, 10);
  EXPECT_EQ(leaky.viewers[1].seen.frames, 20);
  EXPECT_EQ(leaky.viewers[2].seen.frames, 30);
  EXPECT_EQ(leaky.wrong(), 2);

  o.reset = true;  // what the thread_pool variant's viewer_scope does
  const auto reset = run(o);
  for (const auto& v : reset.viewers)
    EXPECT_EQ(v.seen.frames, 10) << "viewer " << v.id;
  EXPECT_EQ(reset.wrong(), 0);
}

TEST(ContextLocal, WerkzeugLocalReleasesItsEntry) {
  context_local<viewer_state> local;
  EXPECT_EQ(local.size(), 0u);
  EXPECT_FALSE(local.has_value());
  local.get().id = 7;  // local.id = 7
  ++local.get().frames;
  EXPECT_EQ(local.size(), 1u);
  EXPECT_TRUE(local.has_value());

  // Another thread has its own entry, and releasing it leaves ours alone.
  std::barrier both{2};
  std::jthread other{[&] {
    EXPECT_EQ(local.get().id, 0);
    local.get().id = 9;
    both.arrive_and_wait();  // 1: two entries
    both.arrive_and_wait();  // 2: counted
    mjpeg::lesson::release_local(local);
  }};
  both.arrive_and_wait();
  EXPECT_EQ(local.size(), 2u);
  both.arrive_and_wait();
  other.join();
  EXPECT_EQ(local.size(), 1u);
  EXPECT_EQ(local.get().id, 7);
  EXPECT_EQ(local.get().frames, 1);

  mjpeg::lesson::release_local(local);  // local.__release_local__()
  EXPECT_EQ(local.size(), 0u);
  EXPECT_FALSE(local.has_value());
  EXPECT_EQ(local.get().id, 0) << "a released entry starts afresh";
}

TEST(ContextLocal, WerkzeugLocalOnAPoolNeedsItsRelease) {
  auto o = options(storage::context_local, 3, 10);
  o.pool = 1;
  const auto released = run(o);
  EXPECT_EQ(released.wrong(), 0);
  EXPECT_EQ(released.entries_left, 0u);

  o.release = false;
  const auto kept = run(o);
  EXPECT_EQ(kept.viewers[2].seen.frames, 30);
  EXPECT_EQ(kept.wrong(), 2);
  EXPECT_EQ(kept.entries_left, 1u);
}

TEST(ContextLocal, ShardedLocalKeepsOneEntryPerThread) {
  context_local<int, 4> local;
  std::barrier all{4};
  std::atomic<std::size_t> entries{0};
  {
    std::vector<std::jthread> threads;
    for (int i = 1; i <= 4; ++i)
      threads.emplace_back([&, i] {
        local.get() = i;
        all.arrive_and_wait();  // every thread has written its own
        EXPECT_EQ(local.get(), i);
        if (i == 1) entries = local.size();
        all.arrive_and_wait();
        mjpeg::lesson::release_local(local);
      });
  }
  EXPECT_EQ(entries.load(), 4u);
  EXPECT_EQ(local.size(), 0u);
}

// Every frame the coroutine is made to resume on the other thread, and its frame goes with it.
TEST(ContextLocal, CoroutineFrameKeepsItsStateAcrossThreads) {
  auto o = options(storage::coroutine_frame, 4, 20);
  o.threads = 2;
  const auto result = run(o);
  ASSERT_EQ(result.viewers.size(), 4u);
  for (const auto& v : result.viewers) {
    EXPECT_EQ(v.hops, 20) << "viewer " << v.id << " resumed on another thread every frame";
    EXPECT_EQ(v.seen.id, v.id);
    EXPECT_EQ(v.seen.frames, 20);
  }
}

// One coroutine, two threads, a hop every frame: it counts half its frames into each thread's
// object and ends on the thread it started on, which holds its id and half of its frames.
TEST(ContextLocal, ThreadLocalInACoroutineSplitsAcrossThreads) {
  auto o = options(storage::coroutine_thread_local, 1, 10);
  o.threads = 2;
  const auto result = run(o);
  ASSERT_EQ(result.viewers.size(), 1u);
  EXPECT_EQ(result.viewers[0].hops, 10);
  EXPECT_EQ(result.viewers[0].seen.id, 1);
  EXPECT_EQ(result.viewers[0].seen.frames, 5);
  EXPECT_EQ(result.wrong(), 1);
}

// On one thread there is no hop, and still every coroutine shares the one thread_local.
TEST(ContextLocal, ThreadLocalInCoroutinesOnOneThreadIsShared) {
  auto o = options(storage::coroutine_thread_local, 3, 4);
  o.threads = 1;
  const auto result = run(o);
  for (const auto& v : result.viewers) {
    EXPECT_EQ(v.hops, 0);
    EXPECT_EQ(v.seen.id, 3) << "the last to start wrote it";
  }
  EXPECT_EQ(result.viewers[2].seen.frames, 12) << "the last to finish counted everyone's frames";
  EXPECT_EQ(result.wrong(), 3);
}

TEST(ContextLocal, NamesRoundTripAndBadOptionsThrow) {
  for (const auto where : {storage::global, storage::thread_local_storage, storage::context_local,
                           storage::coroutine_frame, storage::coroutine_thread_local})
    EXPECT_EQ(mjpeg::lesson::storage_named(mjpeg::lesson::name_of(where)), where);
  EXPECT_FALSE(mjpeg::lesson::storage_named("greenlet"));
  EXPECT_THROW(run(options(storage::global, 0, 1)), std::invalid_argument);
}

}  // namespace
