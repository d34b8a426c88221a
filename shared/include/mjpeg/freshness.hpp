/// Per-viewer freshness: before each frame, ask the kernel how much of what this viewer was sent
/// is still on its way, and send a whole frame only when it will arrive fresh; otherwise skip to
/// a newer frame later. Used by every variant's stream loop, blocking or asynchronous.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "mjpeg/frame.hpp"

namespace mjpeg {

/// The frame age the gate aims for: a frame is sent when everything ahead of it plus the frame
/// itself should reach the viewer's application within this time (plus the path's round trip).
inline constexpr std::chrono::milliseconds freshness_target{200};

/// However slow the path, the gate lets a frame go once what is ahead of it drains within this
/// time, so the path never idles between two checks (one check per published frame).
inline constexpr std::chrono::milliseconds freshness_horizon{50};

/// Upper bound of the retransmission timeout set on each stream socket (TCP_RTO_MAX_MS, Linux
/// 6.15 and later; the kernel's smallest allowed value): a viewer whose link comes back after
/// an outage hears from the server within a second instead of after an exponential backoff of
/// up to two minutes.
inline constexpr std::chrono::milliseconds retransmit_cap{1000};

/// One viewer's gate: owned by the loop that streams to it, asked once before each frame.
///
/// What the kernel knows (TCP_INFO) gives the backlog ahead of the next frame: bytes written but
/// not yet acknowledged (in flight, including any bottleneck queue) or not yet sent. It drains
/// at the rate the path acknowledges bytes, measured from the same counters while a backlog
/// exists (averaged over about a second; the kernel's delivery-rate sample until then). A frame
/// goes when the backlog drains within max(freshness_target - frame time, freshness_horizon)
/// plus the minimum round trip; a viewer on loopback or a fast network has an empty backlog at
/// every frame, so it never loses one to the gate. A backlog that makes no progress for
/// `stall_limit` (--send-timeout) is reported stalled, so the loop drops the viewer as it drops
/// a write that times out. What the viewer's own kernel holds unread is beyond what the sender
/// can see reliably; docs/freshness.md says where that limit is.
class freshness_gate {
 public:
  using clock = std::chrono::steady_clock;

  /// What the loop does with the newest frame.
  enum class verdict {
    send,     ///< Send it now (whole).
    later,    ///< Skip it; ask again with the next newer frame.
    stalled,  ///< No progress for the stall limit: end the connection.
  };

  /// A gate for the TCP socket `fd` (sets its retransmit cap); `stall_limit` is --send-timeout.
  /// A gate that is not `on` (--no-freshness-gate) says `send` to every frame without asking the
  /// kernel: the loop then sends whatever the socket takes, latest-frame-wins alone.
  freshness_gate(int fd, clock::duration stall_limit, bool on) noexcept;

  /// Decides for the newest frame `f` at `now`; a frame skipped here is remembered (see after()).
  verdict check(const frame& f, clock::time_point now = clock::now()) noexcept;
  /// Decides for a frame of `frame_bytes` (its wire size) at `now`.
  verdict check(std::size_t frame_bytes, clock::time_point now = clock::now()) noexcept;
  /// The sequence number the next frame must be newer than: the last one sent (`last_sent`) or
  /// the last one this gate skipped, whichever is newer.
  std::uint64_t after(std::uint64_t last_sent) const noexcept {
    return last_sent > skipped_ ? last_sent : skipped_;
  }

  /// Bytes ahead of the next frame at the last check.
  std::uint64_t backlog() const noexcept { return backlog_; }
  /// Measured rate at which the path acknowledges bytes (bytes per second), 0 until measured.
  double rate() const noexcept;

 private:
  int fd_;
  clock::duration stall_limit_;
  bool on_;
  std::uint64_t acked_ = 0;  // bytes acknowledged at the last check
  std::uint64_t backlog_ = 0;
  std::uint64_t retransmitted_ = 0;  // tcpi_bytes_retrans at the last check
  std::uint64_t skipped_ = 0;        // newest frame the gate said `later` to
  clock::time_point checked_at_{};
  clock::time_point progress_at_{};
  double rate_bytes_ = 0;  // bytes acknowledged while backlogged, exponentially forgotten
  double rate_time_ = 0;   // seconds backlogged, forgotten alike
};

}  // namespace mjpeg
