#include "mjpeg/server.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace mjpeg {

shutdown_signal::shutdown_signal() : fd_{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)} {
  if (fd_ < 0) throw std::system_error{errno, std::system_category(), "eventfd"};
}

shutdown_signal::~shutdown_signal() {
  ::close(fd_);
}

void shutdown_signal::trigger() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock{mutex_};
    if (triggered_.exchange(true, std::memory_order_acq_rel)) return;
    callbacks.swap(callbacks_);
  }
  // The counter is never read back, so the fd stays readable: every later poll wakes at once.
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof one);
  for (auto& callback : callbacks)
    callback();
}

void shutdown_signal::on_trigger(std::function<void()> callback) {
  {
    std::lock_guard lock{mutex_};
    if (!triggered()) {
      callbacks_.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

}  // namespace mjpeg
