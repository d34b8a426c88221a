#include <gtest/gtest.h>

#include <atomic>
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

TEST(FrameHub, HookRunsAfterPublishWithTheFrame) {
  frame_hub hub;
  std::uint64_t seen = 0;
  hub.on_publish([&](const mjpeg::frame_ptr& f) {
    // The hook may look at the hub: it runs outside the lock.
    seen = f->seq();
    EXPECT_EQ(hub.latest()->seq(), f->seq());
  });
  hub.publish(make(7));
  EXPECT_EQ(seen, 7u);
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
