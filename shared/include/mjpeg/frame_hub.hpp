/// The broadcast point between the capture thread and every viewer: the latest frame and its waiters.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "mjpeg/frame.hpp"

namespace mjpeg {

/// A viewer parked in the hub without a thread: publish, close or cancel hands it one frame (or
/// null) through wake(). The waiting side owns the object and keeps it alive while parked.
class hub_waiter {
 public:
  /// Called once per wait (by publish, close or cancel, perhaps under the hub's lock): it must
  /// only hand the frame on (post it to the waiter's executor), never block, do I/O or call the
  /// hub. Null means the wait ended without a frame.
  virtual void wake(frame_ptr f) noexcept = 0;
  /// Waiters are owned by the waiting side.
  virtual ~hub_waiter() = default;
};

/// The broadcast point: the latest frame, its sequence number, and everyone waiting for a newer one.
///
/// Waiters ask for "a frame newer than the one I saw", either blocking on the condition variable
/// (wait_newer) or parked as a hub_waiter that publish resumes (async_wait_newer). Both park and
/// are taken under the one lock, so no wake-up is lost and there is no second copy of "latest". A slow
/// viewer simply gets the newest frame on its next turn, so memory per viewer is bounded and the
/// capture thread never waits for anyone. No I/O happens under the lock.
class frame_hub {
 public:
  /// Makes `f` the latest frame and wakes every waiter. Its seq must grow.
  void publish(frame_ptr f);
  /// The latest frame, or null before the first publish.
  frame_ptr latest() const;
  /// Blocks until a frame with seq > `seen` exists and returns it; returns null once closed.
  frame_ptr wait_newer(std::uint64_t seen);
  /// Like wait_newer, but gives up after `timeout` and returns null.
  frame_ptr wait_newer_for(std::uint64_t seen, std::chrono::milliseconds timeout);
  /// The asynchronous wait_newer: wakes `w` at once if a frame with seq > `seen` exists (or the hub
  /// is closed), else parks it until the next publish.
  void async_wait_newer(std::uint64_t seen, hub_waiter& w);
  /// Ends a parked wait of `w` with null (its viewer left); false if `w` was not parked.
  bool cancel(hub_waiter& w);
  /// Wakes every waiter for good: waits end with null from now on (shutdown).
  void close();
  /// True once close() was called.
  bool closed() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  frame_ptr latest_;  // guarded by mutex_, like the fields below
  bool closed_ = false;
  std::vector<hub_waiter*> parked_;
  std::vector<hub_waiter*> spare_;  // room for parked_ while publish wakes the waiters it took
};

}  // namespace mjpeg
