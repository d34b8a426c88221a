#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "mjpeg/frame_hub.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::frame;
using mjpeg::frame_hub;

mjpeg::frame_ptr make(std::uint64_t seq) {
  return std::make_shared<const frame>(seq, mjpeg::wall_clock::now(),
                                       std::vector<std::uint8_t>{0xFF, 0xD8, 0xFF, 0xD9});
}

TEST(FrameHub, LatestIsNullUntilFirstPublish) {
  frame_hub hub;
  EXPECT_EQ(hub.latest(), nullptr);
  hub.publish(make(1));
  ASSERT_NE(hub.latest(), nullptr);
  EXPECT_EQ(hub.latest()->seq(), 1u);
}

TEST(FrameHub, KeepsOnlyTheLatestFrame) {
  frame_hub hub;
  for (std::uint64_t s = 1; s <= 5; ++s)
    hub.publish(make(s));
  EXPECT_EQ(hub.latest()->seq(), 5u);
  // A waiter that saw frame 1 gets frame 5 at once: the frames between are skipped, not queued.
  EXPECT_EQ(hub.wait_newer(1)->seq(), 5u);
}

TEST(FrameHub, WaiterWakesOnPublish) {
  frame_hub hub;
  hub.publish(make(1));
  std::atomic<std::uint64_t> got{0};
  std::thread waiter{[&] { got = hub.wait_newer(1)->seq(); }};
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(got.load(), 0u) << "must block while nothing newer than seq 1 exists";
  hub.publish(make(2));
  waiter.join();
  EXPECT_EQ(got.load(), 2u);
}

TEST(FrameHub, SlowWaiterSkipsToNewest) {
  frame_hub hub;
  hub.publish(make(1));
  auto first = hub.wait_newer(0);
  // While this viewer is "busy", three frames go by.
  hub.publish(make(2));
  hub.publish(make(3));
  hub.publish(make(4));
  auto next = hub.wait_newer(first->seq());
  EXPECT_EQ(next->seq(), 4u);
}

TEST(FrameHub, CloseWakesEveryWaiter) {
  frame_hub hub;
  hub.publish(make(1));
  std::atomic<int> woke{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 16; ++i)
    waiters.emplace_back([&] {
      if (hub.wait_newer(1) == nullptr) ++woke;
    });
  std::this_thread::sleep_for(20ms);
  hub.close();
  for (auto& t : waiters)
    t.join();
  EXPECT_EQ(woke.load(), 16);
  EXPECT_TRUE(hub.closed());
  EXPECT_EQ(hub.wait_newer(0), nullptr) << "after close, waits return at once";
}

TEST(FrameHub, WaitNewerForTimesOut) {
  frame_hub hub;
  hub.publish(make(3));
  EXPECT_EQ(hub.wait_newer_for(3, 10ms), nullptr);
  EXPECT_EQ(hub.wait_newer_for(2, 10ms)->seq(), 3u);
}

// A parked asynchronous waiter as the async machinery has one: it records what it is handed.
struct recording_waiter final : mjpeg::hub_waiter {
  void wake(mjpeg::frame_ptr f) noexcept override {
    ++wakes;
    got = std::move(f);
  }
  int wakes = 0;
  mjpeg::frame_ptr got;
};

TEST(FrameHub, AsyncWaiterIsWokenAtOnceWhenANewerFrameExists) {
  frame_hub hub;
  hub.publish(make(3));
  recording_waiter w;
  hub.async_wait_newer(2, w);
  EXPECT_EQ(w.wakes, 1);
  ASSERT_NE(w.got, nullptr);
  EXPECT_EQ(w.got->seq(), 3u);
}

TEST(FrameHub, ParkedAsyncWaiterIsWokenOnceByTheNextPublish) {
  frame_hub hub;
  hub.publish(make(1));
  recording_waiter w;
  hub.async_wait_newer(1, w);
  EXPECT_EQ(w.wakes, 0) << "must stay parked while nothing newer than seq 1 exists";
  hub.publish(make(2));
  EXPECT_EQ(w.wakes, 1);
  ASSERT_NE(w.got, nullptr);
  EXPECT_EQ(w.got->seq(), 2u);
  hub.publish(make(3));
  EXPECT_EQ(w.wakes, 1) << "one wait, one wake: the waiter is no longer parked";
}

TEST(FrameHub, CancelEndsAParkedWaitWithNull) {
  frame_hub hub;
  hub.publish(make(1));
  recording_waiter parked;
  recording_waiter other;
  hub.async_wait_newer(1, parked);
  hub.async_wait_newer(1, other);
  EXPECT_TRUE(hub.cancel(parked));
  EXPECT_EQ(parked.wakes, 1);
  EXPECT_EQ(parked.got, nullptr);
  EXPECT_FALSE(hub.cancel(parked)) << "no longer parked";
  hub.publish(make(2));
  EXPECT_EQ(parked.wakes, 1) << "a cancelled waiter is not woken again";
  EXPECT_EQ(other.wakes, 1) << "the other waiter is unaffected";
  EXPECT_EQ(other.got->seq(), 2u);
}

TEST(FrameHub, CloseWakesParkedAsyncWaitersWithNull) {
  frame_hub hub;
  hub.publish(make(1));
  recording_waiter w;
  hub.async_wait_newer(1, w);
  hub.close();
  EXPECT_EQ(w.wakes, 1);
  EXPECT_EQ(w.got, nullptr);
  recording_waiter late;
  hub.async_wait_newer(0, late);
  EXPECT_EQ(late.wakes, 1) << "after close, waits end at once";
  EXPECT_EQ(late.got, nullptr);
}

// Asynchronous waiters on many threads re-park as fast as they are woken while a publisher runs:
// each must reach the final frame; a lost wake-up would leave one parked forever (the test would
// then fail its bounded wait).
TEST(FrameHub, NoLostWakeUpForAsyncWaiters) {
  frame_hub hub;
  constexpr std::uint64_t last = 2000;
  constexpr int waiters = 16;
  struct handoff final : mjpeg::hub_waiter {
    // Notifies under the lock: the waiter's thread may end, and its condition variable with it,
    // as soon as it sees `woken`.
    void wake(mjpeg::frame_ptr f) noexcept override {
      std::lock_guard lock{mutex};
      got = std::move(f);
      woken = true;
      ready.notify_one();
    }
    std::mutex mutex;
    std::condition_variable ready;
    mjpeg::frame_ptr got;
    bool woken = false;
  };
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i)
    threads.emplace_back([&] {
      handoff w;
      std::uint64_t seen = 0;
      while (seen < last) {
        hub.async_wait_newer(seen, w);
        std::unique_lock lock{w.mutex};
        ASSERT_TRUE(w.ready.wait_for(lock, 10s, [&] { return w.woken; })) << "lost wake-up after " << seen;
        w.woken = false;
        ASSERT_NE(w.got, nullptr);
        ASSERT_GT(w.got->seq(), seen);
        seen = w.got->seq();
      }
      ++finished;
    });
  for (std::uint64_t s = 1; s <= last; ++s)
    hub.publish(make(s));
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(finished.load(), waiters);
}

// Many waiters, a fast publisher: every waiter must see the final frame; a lost wake-up would
// leave one blocked forever (the test would then hang and hit its ctest timeout).
TEST(FrameHub, NoLostWakeUpUnderManyThreads) {
  frame_hub hub;
  constexpr std::uint64_t last = 2000;
  constexpr int waiters = 32;
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i)
    threads.emplace_back([&] {
      std::uint64_t seen = 0;
      while (seen < last) {
        auto f = hub.wait_newer(seen);
        ASSERT_NE(f, nullptr);
        ASSERT_GT(f->seq(), seen);
        seen = f->seq();
      }
      ++finished;
    });
  for (std::uint64_t s = 1; s <= last; ++s)
    hub.publish(make(s));
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(finished.load(), waiters);
}

}  // namespace
