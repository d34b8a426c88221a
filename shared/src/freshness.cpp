#include "mjpeg/freshness.hpp"

#include <linux/tcp.h>  // the kernel's tcp_info (the C library's lacks the newer fields)
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace mjpeg {
namespace {

// TCP_RTO_MAX_MS from Linux 6.15's uapi header, newer than the C library's; older kernels refuse
// it with ENOPROTOOPT and keep their default backoff.
constexpr int tcp_rto_max_ms = 44;

// Connection states of tcpi_state (the kernel's tcp_states.h).
constexpr int tcp_established = 1;
constexpr int tcp_close_wait = 8;

// How fast the consumption rate forgets: about a second of backlogged time.
constexpr double rate_memory_s = 1.0;

double seconds(freshness_gate::clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

freshness_gate::freshness_gate(int fd, clock::duration stall_limit, bool on) noexcept
    : fd_{fd}, stall_limit_{stall_limit}, on_{on}, progress_at_{clock::now()} {
  const int cap = static_cast<int>(retransmit_cap.count());
  ::setsockopt(fd_, IPPROTO_TCP, tcp_rto_max_ms, &cap, sizeof cap);
}

double freshness_gate::rate() const noexcept {
  return rate_time_ > 0 ? rate_bytes_ / rate_time_ : 0;
}

freshness_gate::verdict freshness_gate::check(const frame& f, clock::time_point now) noexcept {
  const verdict v = check(f.wire_size(), now);
  if (v == verdict::later) skipped_ = std::max(skipped_, f.seq());
  return v;
}

freshness_gate::verdict freshness_gate::check(std::size_t frame_bytes, clock::time_point now) noexcept {
  if (!on_) return verdict::send;
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_retrans) + sizeof ti.tcpi_bytes_retrans)
    return verdict::send;  // not TCP, or a kernel too old to say: send as the loop always did
  // A connection reset or closed by the viewer: the write reports it and ends the loop.
  if (ti.tcpi_state != tcp_established && ti.tcpi_state != tcp_close_wait) return verdict::send;

  // The backlog ahead of the next frame: written but not yet acknowledged (in flight, bottleneck
  // queues included) or not yet sent. What the viewer's kernel holds unread is not counted: a
  // receiver announces a reopened window only once it has about doubled, so the sender cannot
  // tell a buffer the application has emptied from one still full (docs/freshness.md).
  const auto sent_once = ti.tcpi_bytes_sent - std::min(ti.tcpi_bytes_retrans, ti.tcpi_bytes_sent);
  const std::uint64_t acked = ti.tcpi_bytes_acked;
  backlog_ = (sent_once > acked ? sent_once - acked : 0) + ti.tcpi_notsent_bytes;

  // Rate: bytes acknowledged per second over intervals that were backlogged from start to end
  // (a backlog at the end means one all along: it only grows when a frame is sent, at a check).
  // Intervals with retransmissions measure a loss or an outage, not the path: left out, so a
  // viewer whose link comes back is judged by the rate it had.
  const double dt = checked_at_ == clock::time_point{} ? 0 : seconds(now - checked_at_);
  const bool recovering = ti.tcpi_retransmits > 0 || ti.tcpi_bytes_retrans != retransmitted_;
  retransmitted_ = ti.tcpi_bytes_retrans;
  if (dt > 0 && !recovering && backlog_ > 0 && acked >= acked_) {
    const double keep = std::exp(-dt / rate_memory_s);
    rate_bytes_ = rate_bytes_ * keep + static_cast<double>(acked - acked_);
    rate_time_ = rate_time_ * keep + dt;
  }
  if (acked > acked_ || backlog_ == 0) progress_at_ = now;
  acked_ = std::max(acked_, acked);
  checked_at_ = now;

  if (backlog_ == 0) return verdict::send;
  if (now - progress_at_ > stall_limit_) return verdict::stalled;
  // Until the path has had a backlog to measure, the kernel's own delivery-rate sample stands in.
  const double measured = rate();
  const double r = measured > 0 ? measured : static_cast<double>(ti.tcpi_delivery_rate);
  if (r <= 0) return verdict::later;  // nothing delivered yet: wait for an empty path
  const double rtt = ti.tcpi_min_rtt / 1e6;
  const double budget = std::max(r * (seconds(freshness_target) + rtt) - static_cast<double>(frame_bytes),
                                 r * (seconds(freshness_horizon) + rtt));
  return static_cast<double>(backlog_) <= budget ? verdict::send : verdict::later;
}

}  // namespace mjpeg
