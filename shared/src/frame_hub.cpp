#include "mjpeg/frame_hub.hpp"

namespace mjpeg {

void frame_hub::publish(frame_ptr f) {
  publish_hook hook;
  {
    std::lock_guard lock{mutex_};
    latest_ = f;
    hook = hook_;
  }
  // Notify after unlocking so woken viewers do not bounce off a held mutex.
  changed_.notify_all();
  if (hook) hook(f);
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

void frame_hub::close() {
  {
    std::lock_guard lock{mutex_};
    closed_ = true;
  }
  changed_.notify_all();
}

bool frame_hub::closed() const {
  std::lock_guard lock{mutex_};
  return closed_;
}

void frame_hub::on_publish(publish_hook hook) {
  std::lock_guard lock{mutex_};
  hook_ = std::move(hook);
}

}  // namespace mjpeg
