/// Waiting in tests for something that happens soon, without a fixed sleep.
#pragma once

#include <chrono>
#include <thread>

namespace mjpeg::test {

/// Polls `done` every 20 ms until it holds or `timeout` passes; its last answer.
template <class Predicate>
bool eventually(Predicate done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

}  // namespace mjpeg::test
