#include "mjpeg/frame_hub.hpp"

#include <algorithm>

namespace mjpeg {

void frame_hub::publish(frame_ptr f) {
  std::vector<hub_waiter*> waking;
  {
    std::lock_guard lock{mutex_};
    latest_ = f;
    // The parked waiters are taken under the lock, so a waiter that parks after this saw `f` as
    // latest and cannot miss it; parked_ keeps the spare's room, so parking never allocates.
    waking.swap(parked_);
    parked_.swap(spare_);
  }
  // Wake after unlocking, as the condition variable is notified after unlocking: woken viewers
  // (on other threads) do not bounce off a held mutex, and the waiters taken are this call's
  // alone, so neither cancel nor close can reach them meanwhile.
  changed_.notify_all();
  for (hub_waiter* w : waking)
    w->wake(f);
  waking.clear();
  std::lock_guard lock{mutex_};
  if (spare_.capacity() < waking.capacity()) spare_.swap(waking);
}

frame_ptr frame_hub::latest() const {
  std::lock_guard lock{mutex_};
  return latest_;
}

frame_ptr frame_hub::wait_newer(std::uint64_t seen) {
  std::unique_lock lock{mutex_};
  changed_.wait(lock, [&] { return closed_ || (latest_ && latest_->seq() > seen); });
  return closed_ ? nullptr : latest_;
}

frame_ptr frame_hub::wait_newer_for(std::uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock{mutex_};
  const bool ready =
      changed_.wait_for(lock, timeout, [&] { return closed_ || (latest_ && latest_->seq() > seen); });
  return (ready && !closed_) ? latest_ : nullptr;
}

void frame_hub::async_wait_newer(std::uint64_t seen, hub_waiter& w) {
  std::lock_guard lock{mutex_};
  if (closed_)
    w.wake(nullptr);
  else if (latest_ && latest_->seq() > seen)
    w.wake(latest_);
  else
    parked_.push_back(&w);
}

bool frame_hub::cancel(hub_waiter& w) {
  std::lock_guard lock{mutex_};
  const auto it = std::find(parked_.begin(), parked_.end(), &w);
  if (it == parked_.end()) return false;
  *it = parked_.back();
  parked_.pop_back();
  w.wake(nullptr);
  return true;
}

void frame_hub::close() {
  {
    std::lock_guard lock{mutex_};
    closed_ = true;
    for (hub_waiter* w : parked_)
      w->wake(nullptr);
    parked_.clear();
  }
  changed_.notify_all();
}

bool frame_hub::closed() const {
  std::lock_guard lock{mutex_};
  return closed_;
}

}  // namespace mjpeg
