/// One viewer's frame-rate cap (/stream?fps=N): when its next frame may be sent.
#pragma once

#include <chrono>

namespace mjpeg {

/// One viewer's cap of N frames a second, honoured where the stream waits for a newer frame:
/// it waits until due(), then takes whatever frame is newest, so the frames in between are
/// skipped at the hub and nothing is re-encoded.
///
/// The schedule keeps its own beat: the next frame is due one period after the previous one was
/// due, not after it was taken, so waiting for the camera's next frame (up to one camera period
/// late) does not pull the rate below N. After a longer gap (no frames for a while, or a slow
/// viewer) the beat restarts from when the frame was taken, so a viewer is never owed a burst.
class rate_cap {
 public:
  using clock = std::chrono::steady_clock;

  /// No cap until set().
  rate_cap() = default;
  /// At most `fps` frames a second from now on; 0 lifts the cap.
  void set(unsigned fps) noexcept {
    period_ = fps == 0 ? clock::duration::zero()
                       : std::chrono::duration_cast<clock::duration>(std::chrono::seconds{1}) / fps;
    due_ = clock::time_point::min();
  }
  /// True when a cap is set.
  bool active() const noexcept { return period_ != clock::duration::zero(); }
  /// When the next frame may be sent (the past when it may be sent now).
  clock::time_point due() const noexcept { return due_; }
  /// Notes that a frame was taken at `now`.
  void took(clock::time_point now) noexcept {
    if (!active()) return;
    due_ = due_ != clock::time_point::min() && now - due_ < period_ ? due_ + period_ : now + period_;
  }

 private:
  clock::duration period_{};
  clock::time_point due_ = clock::time_point::min();
};

}  // namespace mjpeg
