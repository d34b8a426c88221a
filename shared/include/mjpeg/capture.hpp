/// The capture thread: source to encoded frame to hub, paced to --fps.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "mjpeg/frame_hub.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/stats.hpp"

namespace mjpeg {

/// Capture settings taken from the options.
struct capture_config {
  double fps = 30;       ///< Frames per second to publish (sources faster than this are paced down).
  int quality = 80;      ///< JPEG quality 1..100 for sources that deliver pixels.
  double idle_stop = 0;  ///< Close the source after this many seconds without viewers; 0 = never.
};

/// One thread: source → encode once → hub.publish, paced to the configured fps.
///
/// The source comes already open (run_variant opens it), so a bad source fails at start with a clear
/// error. A source that fails later is reopened with backoff while viewers keep the last frame. With
/// idle_stop, the source (a camera: its LED, its power) is closed while nobody watches.
class capture {
 public:
  /// Called on the capture thread with every frame after it is published (the frame bus).
  using frame_sink = std::function<void(const frame&)>;

  /// Starts the capture thread on `source`, already open; `sink`, if set, gets every published
  /// frame too.
  capture(std::unique_ptr<frame_source> source, capture_config config, frame_hub& hub, server_stats& stats,
          frame_sink sink = {});
  /// Stops and joins the thread.
  ~capture();
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;

  /// Asks the thread to stop; returns at once.
  void stop();
  /// Asks the thread to stop and joins it if it ends within `timeout`; false when it is stuck in
  /// its source (a driver that never returns), which then cannot be joined.
  bool stop_within(std::chrono::milliseconds timeout);

 private:
  void run();
  bool sleep_until(std::chrono::steady_clock::time_point t);
  bool wait_for_viewer();

  std::unique_ptr<frame_source> source_;
  capture_config config_;
  frame_hub& hub_;
  server_stats& stats_;
  frame_sink sink_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool finished_ = false;  // set by the thread as its last act
  std::thread thread_;
};

}  // namespace mjpeg
