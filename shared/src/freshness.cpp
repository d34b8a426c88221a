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

// How long a viewer's last advertised window is trusted when nothing of ours is on its way.
constexpr std::chrono::milliseconds stale_window{1000};

double seconds(freshness_gate::clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

freshness_gate::freshness_gate(int fd, clock::duration stall_limit) noexcept
    : fd_{fd}, stall_limit_{stall_limit}, progress_at_{clock::now()} {
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
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_snd_wnd) + sizeof ti.tcpi_snd_wnd)
    return verdict::send;  // not TCP, or a kernel too old to say: send as the loop always did
  // A connection reset or closed by the viewer: the write reports it and ends the loop.
  if (ti.tcpi_state != tcp_established && ti.tcpi_state != tcp_close_wait) return verdict::send;

  // Ours: written but not acknowledged (in flight, bottleneck queues included) or not yet sent.
  const auto sent_once = ti.tcpi_bytes_sent - std::min(ti.tcpi_bytes_retrans, ti.tcpi_bytes_sent);
  const std::uint64_t ours =
      (sent_once > ti.tcpi_bytes_acked ? sent_once - ti.tcpi_bytes_acked : 0) + ti.tcpi_notsent_bytes;
  // The viewer's: acknowledged but unread, as its window says (free space = largest window - now).
  window_max_ = std::max<std::uint64_t>(window_max_, ti.tcpi_snd_wnd);
  const std::uint64_t unread = window_max_ - ti.tcpi_snd_wnd;
  const std::uint64_t consumed = ti.tcpi_bytes_acked > unread ? ti.tcpi_bytes_acked - unread : 0;

  // Rate: bytes consumed per second over intervals that were backlogged from start to end.
  const double dt = checked_at_ == clock::time_point{} ? 0 : seconds(now - checked_at_);
  // Intervals with retransmissions measure a loss or an outage, not the viewer: left out, so a
  // viewer whose link comes back is judged by the rate it had.
  const bool recovering = ti.tcpi_retransmits > 0 || ti.tcpi_bytes_retrans != retransmitted_;
  retransmitted_ = ti.tcpi_bytes_retrans;
  if (dt > 0 && !recovering && ours + unread > 0 && consumed >= consumed_) {
    const double keep = std::exp(-dt / rate_memory_s);
    rate_bytes_ = rate_bytes_ * keep + static_cast<double>(consumed - consumed_);
    rate_time_ = rate_time_ * keep + dt;
  }
  if (consumed > consumed_ || ours == 0) progress_at_ = now;
  consumed_ = std::max(consumed_, consumed);
  checked_at_ = now;

  // The viewer's window is only announced when it grows a lot: what it held at the last
  // acknowledgement drains at the consumption rate meanwhile.
  // Until the viewer has had a backlog to measure, the kernel's own delivery-rate sample stands in.
  const double measured = rate();
  const double r = measured > 0 ? measured : static_cast<double>(ti.tcpi_delivery_rate);
  const double drained = r * ti.tcpi_last_ack_recv / 1000.0;
  const auto unread_now = static_cast<std::uint64_t>(std::max(0.0, static_cast<double>(unread) - drained));
  backlog_ = ours + unread_now;

  if (backlog_ == 0) return verdict::send;
  // Nothing of ours outstanding and the viewer silent for a while: what its window said is stale,
  // and only a frame can ask again.
  if (ours == 0 && std::chrono::milliseconds{ti.tcpi_last_ack_recv} > stale_window) return verdict::send;
  if (now - progress_at_ > stall_limit_) return verdict::stalled;
  if (r <= 0) return verdict::later;  // nothing delivered yet: wait for an empty path
  const double rtt = ti.tcpi_min_rtt / 1e6;
  const double budget = std::max(r * (seconds(freshness_target) + rtt) - static_cast<double>(frame_bytes),
                                 r * (seconds(freshness_horizon) + rtt));
  return static_cast<double>(backlog_) <= budget ? verdict::send : verdict::later;
}

}  // namespace mjpeg
