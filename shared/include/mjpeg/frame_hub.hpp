#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "mjpeg/frame.hpp"

namespace mjpeg {

/// The broadcast point: the latest frame, its sequence number and a condition variable.
///
/// Waiters ask for "a frame newer than the one I saw". A slow viewer simply gets the newest frame
/// on its next turn, so memory per viewer is bounded and the capture thread never waits for
/// anyone. No I/O happens under the lock; waiters are notified after it is released.
class frame_hub {
 public:
  /// Called after every publish, outside the lock (the async variant wakes its sessions here).
  using publish_hook = std::function<void(const frame_ptr&)>;

  /// Makes `f` the latest frame and wakes every waiter. Its seq must grow.
  void publish(frame_ptr f);
  /// The latest frame, or null before the first publish.
  frame_ptr latest() const;
  /// Blocks until a frame with seq > `seen` exists and returns it; returns null once closed.
  frame_ptr wait_newer(std::uint64_t seen);
  /// Like wait_newer, but gives up after `timeout` and returns null.
  frame_ptr wait_newer_for(std::uint64_t seen, std::chrono::milliseconds timeout);
  /// Wakes every waiter for good: wait_newer returns null from now on (shutdown).
  void close();
  /// True once close() was called.
  bool closed() const;
  /// Installs the hook; set it before capture starts publishing.
  void on_publish(publish_hook hook);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  frame_ptr latest_;
  bool closed_ = false;
  publish_hook hook_;
};

}  // namespace mjpeg
