#include "viewers.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <ctime>

#include <boost/asio/write.hpp>

namespace mjpeg::bench {
namespace {

steady::duration secs(double s) {
  return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>{s});
}

}  // namespace

const char* kind_name(kind k) {
  return k == kind::normal ? "normal" : k == kind::slow ? "slow" : "idle";
}

double ms_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void worker::run() {
  for (auto& v : viewers_)
    v->start();
  asio::steady_timer stop{io_, tl_.end};
  stop.async_wait([this](const error_code&) { io_.stop(); });
  io_.run();
  // The run's end closes whatever is still open.
  if (trace_ != nullptr)
    for (const auto& v : viewers_)
      if (v->connected_ && !v->finished_) trace_->record(trace_event::close, v->port_, 0);
}

viewer::viewer(worker& w, int id, kind k, steady::time_point start_at)
    : id_{id}, kind_{k}, start_at_{start_at}, w_{w}, socket_{w.io_}, timer_{w.io_} {}

void viewer::start() {
  timer_.expires_at(start_at_);
  timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    connect_started_ = steady::now();
    error_code ignored;
    socket_.open(w_.endpoint_.protocol(), ignored);
    // A slow viewer models a slow network: a small receive buffer pushes back on the server
    // soon, instead of the kernel soaking up megabytes on its behalf.
    if (kind_ == kind::slow && w_.cfg_.slow_rcvbuf > 0)
      socket_.set_option(asio::socket_base::receive_buffer_size{w_.cfg_.slow_rcvbuf}, ignored);
    // Several source addresses: each has its own ~28,000 ephemeral ports toward one server port.
    if (!w_.cfg_.source_addresses.empty()) {
      static std::atomic<std::size_t> turn{0};
      const auto& from = w_.cfg_.source_addresses[turn++ % w_.cfg_.source_addresses.size()];
      const int one = 1;
      ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      socket_.bind({asio::ip::make_address(from, ignored), 0}, ignored);
    }
    socket_.async_connect(w_.endpoint_, [this](const error_code& e) { on_connect(e); });
  });
}

void viewer::on_connect(const error_code& ec) {
  if (ec) {
    error_ = "connect: " + ec.message();
    finished_ = true;
    return;
  }
  connected_ = true;
  error_code ignored;
  if (w_.trace_ != nullptr) {
    port_ = socket_.local_endpoint(ignored).port();
    w_.trace_->record(trace_event::connect, port_, static_cast<std::uint64_t>(id_), connect_started_);
    w_.trace_->record(trace_event::open, port_, static_cast<std::uint64_t>(id_));
  }
  socket_.set_option(tcp::no_delay{true}, ignored);
  socket_.non_blocking(true, ignored);
  if (kind_ == kind::idle) {  // slowloris: never send a request, just see what the server does
    wait_readable();
    return;
  }
  // Several paths (several cameras): the viewers are spread over them in turn, by id.
  const auto& paths = w_.cfg_.paths;
  const std::string& target =
      paths.empty() ? w_.cfg_.target : paths[static_cast<std::size_t>(id_) % paths.size()];
  request_ = "GET " + target + " HTTP/1.1\r\nHost: " + w_.cfg_.host + ":" + w_.cfg_.port +
             "\r\nUser-Agent: mjpeg-load\r\nAccept: multipart/x-mixed-replace, */*\r\n\r\n";
  asio::async_write(socket_, asio::buffer(request_), [this](const error_code& e, std::size_t) {
    if (e) return finish(e);
    if (kind_ == kind::slow) {
      slow_tick();
    } else {
      wait_readable();
    }
  });
}

void viewer::wait_readable() {
  socket_.async_wait(tcp::socket::wait_read, [this](const error_code& ec) { on_readable(ec); });
}

void viewer::on_readable(const error_code& ec) {
  if (ec) return finish(ec);
  // Drain what is there with few, large reads; the buffer is shared, so parse before the next.
  for (int round = 0; round < 8; ++round) {
    error_code rec;
    const std::size_t n = socket_.read_some(asio::buffer(w_.buffer_), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) break;
    if (rec) return finish(rec);
    consume(n);
    if (finished_) return;
    if (n < w_.buffer_.size()) break;
  }
  wait_readable();
}

void viewer::slow_tick() {
  // Every 50 ms a slow viewer may read rate × 50 ms bytes; unused credit carries over a little.
  constexpr double tick = 0.05;
  credit_ = std::min(credit_ + w_.cfg_.slow_rate * tick, w_.cfg_.slow_rate * tick * 4);
  const auto allowed = std::min(static_cast<std::size_t>(credit_), w_.buffer_.size());
  if (allowed > 0) {
    error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(w_.buffer_.data(), allowed), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return finish(ec);
    if (!ec) {
      credit_ -= static_cast<double>(n);
      consume(n);
      if (finished_) return;
    }
  }
  timer_.expires_after(std::chrono::milliseconds{50});
  timer_.async_wait([this](const error_code& ec) {
    if (!ec) slow_tick();
  });
}

void viewer::consume(std::size_t n) {
  w_.now_ = steady::now();
  w_.now_wall_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  timespec raw{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &raw);
  w_.now_raw_us_ = static_cast<std::int64_t>(raw.tv_sec) * 1000000 + raw.tv_nsec / 1000;
  if (w_.now_ >= w_.tl_.window_start) bytes_window_ += n;
  parser_.feed({w_.buffer_.data(), n}, *this);
  const auto state = parser_.current();
  if (state == multipart_parser::state::failed) {
    error_ = "bad response: " + parser_.failure();
    finish({});
  } else if (state == multipart_parser::state::done && kind_ != kind::idle) {
    // A non-stream answer (503, 404 …) or the closing boundary: this viewer is over.
    if (status_ == 200) disconnected_ = true;
    finish({});
  }
}

void viewer::finish(const error_code& ec) {
  if (ec == asio::error::operation_aborted || finished_) return;
  finished_ = true;
  closed_at_ = steady::now();
  if (w_.trace_ != nullptr && connected_) w_.trace_->record(trace_event::close, port_, 0, *closed_at_);
  if (ec && ec != asio::error::eof && error_.empty()) error_ = ec.message();
  if (status_ == 0 && kind_ != kind::idle && error_.empty()) error_ = "closed before a response";
  // The server closed on us: a stream that ended, or an idle connection it timed out.
  if ((status_ == 200 && kind_ != kind::idle) || kind_ == kind::idle) disconnected_ = true;
  error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
}

void viewer::on_response(const response_head& head) {
  status_ = head.status;
  if (w_.trace_ != nullptr)
    w_.trace_->record(trace_event::status, port_, static_cast<std::uint64_t>(status_), w_.now_);
}

void viewer::on_part(const part_info& part) {
  const auto now = w_.now_;
  ++frames_total_;
  if (!first_frame_) first_frame_ = now;
  const bool in_window = now >= w_.tl_.window_start && now < w_.tl_.end;
  if (in_window) {
    ++frames_window_;
    if (part.timestamp_us || part.grab_raw_us) {
      // Age from the capture time: ustreamer states it only on its own clock (its X-Timestamp is
      // the send time, which would leave its queueing out); ours is X-Timestamp.
      const double age_ms = part.grab_raw_us
                                ? static_cast<double>(w_.now_raw_us_ - *part.grab_raw_us) / 1000.0
                                : static_cast<double>(w_.now_wall_us_ - *part.timestamp_us) / 1000.0;
      w_.ages_ms_[static_cast<int>(kind_)].push_back(age_ms);
      age_sum_ms_ += age_ms;
      age_max_ms_ = std::max(age_max_ms_, age_ms);
      ++age_count_;
    }
    if (part.seq && last_seq_ && *part.seq > *last_seq_ + 1) skipped_ += *part.seq - *last_seq_ - 1;
    if (last_frame_) {
      const double gap = ms_between(*last_frame_, now);
      max_gap_ms_ = std::max(max_gap_ms_, gap);
      if (gap > w_.cfg_.stall_ms) ++stalls_;
    }
  }
  if (part.seq) last_seq_ = part.seq;
  last_frame_ = now;
  if (w_.trace_ != nullptr) w_.trace_->record(trace_event::frame, port_, part.seq.value_or(0), now);
}

timeline plan_timeline(const config& cfg) {
  timeline tl;
  tl.start = steady::now() + std::chrono::milliseconds{50};
  // Idle connections go first, so a slowloris is in place before the real viewers arrive.
  tl.viewers_at_s = cfg.idle > 0 ? 0.2 : 0.0;
  tl.ramp_s = cfg.burst ? 0.0 : cfg.ramp;
  tl.end = tl.start + secs(cfg.duration);
  tl.window_start = tl.start + secs(std::min(tl.viewers_at_s + tl.ramp_s + cfg.warmup, cfg.duration / 2));
  return tl;
}

std::vector<std::unique_ptr<worker>> place_viewers(const config& cfg, const timeline& tl,
                                                   tcp::endpoint endpoint, trace_log* trace) {
  std::vector<std::unique_ptr<worker>> workers;
  for (int t = 0; t < cfg.threads; ++t)
    workers.push_back(std::make_unique<worker>(cfg, tl, endpoint, trace));
  int id = 0;
  const auto add = [&](kind k, steady::time_point at) {
    workers[static_cast<std::size_t>(id % cfg.threads)]->add(id, k, at);
    ++id;
  };
  for (int i = 0; i < cfg.idle; ++i)
    add(kind::idle, tl.start);
  const int streaming = cfg.viewers + cfg.slow;
  for (int i = 0; i < streaming; ++i) {
    // Spread the slow viewers among the fast ones rather than all at the end of the ramp.
    const bool slow = cfg.slow > 0 && (i * cfg.slow) / streaming != ((i + 1) * cfg.slow) / streaming;
    const double offset = streaming > 1 ? tl.ramp_s * i / (streaming - 1) : 0.0;
    add(slow ? kind::slow : kind::normal, tl.start + secs(tl.viewers_at_s + offset));
  }
  return workers;
}

}  // namespace mjpeg::bench
