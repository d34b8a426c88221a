// mjpeg-io-uring: completion-based I/O, one ring, one thread.
//
// The other models are readiness-based: a thread blocks until a socket can take bytes, or epoll
// says it can, and then each send is its own system call. Here nothing waits on a socket: accepts,
// request reads and sends are submissions to one io_uring, and their completions come back
// together. For each new frame one submission carries the sends to every viewer that is ready.
// The machinery (the ring, the hub's bell, the request reader, the gather send) is
// shared/src/uring.cpp, the twin of blocking.cpp and async.cpp; this file keeps the model: where
// a viewer's state lives, how completions find it, how it all stops.

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mjpeg/access.hpp"
#include "mjpeg/app.hpp"
#include "mjpeg/freshness.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/rate_cap.hpp"
#include "mjpeg/reply.hpp"
#include "mjpeg/uring.hpp"

namespace {

using namespace mjpeg;
using namespace std::chrono_literals;
using boost::system::error_code;

// Per-connection state lives in a slot of a table, and a completion's user data is the slot's
// index. thread_local would be shared by every viewer (one thread serves them all), and there is
// no coroutine frame: a connection is not a call stack here, only this struct between completions.
// Each connection has at most one operation in flight, so its phase says which one completed.
struct client {
  enum class phase { request, reply, draining, preamble, waiting, sending } now = phase::request;
  explicit client(boost::asio::ip::tcp::socket s) : socket{std::move(s)}, fd{socket.native_handle()} {}
  boost::asio::ip::tcp::socket socket;
  int fd;
  steady_clock::time_point accepted = steady_clock::now();
  steady_clock::time_point deadline = steady_clock::time_point::max();  // of the operation in flight
  int how = SHUT_RD;                                                    // what the tick shuts at the deadline
  bool timed_out = false;                                               // the tick did
  std::size_t drained = 0;
  uring::request_reader request;
  reply answer;  // a reply that is not the stream
  std::string preamble;
  uring::gather out;
  frame_ptr sending;  // the frame in flight, kept alive until its completion
  steady_clock::time_point waiting_since;
  std::size_t camera = 0;  // whose stream it is
  viewer_state viewer;
  std::optional<viewer_scope> scope;
  std::optional<freshness_gate> gate;
  rate_cap pace;  // /stream?fps=N
};

// User data of the ring's own operations; clients are 0 … N-1, camera k's bell is bell_tag(k).
constexpr std::uint64_t accept_tag = ~0ULL, tick_tag = ~2ULL, stop_tag = ~3ULL;
constexpr std::uint64_t bell_tag(std::size_t camera) {
  return ~4ULL - camera;
}

class server {
 public:
  explicit server(server_context& ctx)
      : ctx_{ctx}, fd_{ctx.acceptor.native_handle()}, protocol_{ctx.acceptor.local_endpoint().protocol()} {
    // One bell and one list of waiting viewers per camera.
    for (camera_feed& camera : ctx.cameras)
      bells_.push_back(std::make_unique<uring::hub_bell>(camera.hub));
    waiting_.resize(ctx.cameras.size());
  }

  void run() {
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);  // the ring waits, never EAGAIN
    accept();
    for (std::size_t k = 0; k < bells_.size(); ++k)
      bells_[k]->arm(ring_, bell_tag(k), 0);
    tick();
    io_uring_prep_poll_add(&ring_.prepare(stop_tag), ctx_.shutdown.fd(), POLLIN);
    // One system call submits what the last round queued and waits for the next completions.
    while (!stopping_ || live_ > 0)
      ring_.submit_and_reap([this](std::uint64_t tag, int res) { complete(tag, res); });
  }

 private:
  void complete(std::uint64_t tag, int res) {
    if (tag == accept_tag) return accepted(res);
    if (tag <= bell_tag(0) && tag > bell_tag(bells_.size())) return new_frame(bell_tag(0) - tag);
    if (tag == tick_tag) return on_tick();
    if (tag == stop_tag) return stop();
    client& c = *clients_[tag];
    switch (c.now) {
      case client::phase::request:
        return on_request(c, tag, res);
      case client::phase::draining:
        if (res > 0 && (c.drained += static_cast<std::size_t>(res)) < 64 * 1024) return recv(c, tag);
        return finish(tag);
      default:
        return on_sent(c, tag, res);
    }
  }

  // A new connection: a slot for it (or 503 over --max-clients), then its request head.
  void accepted(int res) {
    if (res < 0) {
      if (stopping_) return;
      if (res == -ECONNABORTED || res == -EINTR || res == -EAGAIN) return accept();
      // Out of descriptors or memory: pause instead of spinning (the tick accepts again).
      if (!accept_paused_) log::write(log::level::error, "accept: %s; pausing", std::strerror(-res));
      accept_paused_ = true;
      return;
    }
    count_accepted(ctx_.stats, res);
    accept();
    boost::asio::ip::tcp::socket s{ctx_.io};
    error_code ec;
    s.assign(protocol_, res, ec);
    if (ec) {
      ::close(res);
      return;
    }
    if (stopping_) return;
    if (ctx_.opts.max_clients > 0 && live_ >= ctx_.opts.max_clients)
      return reject_busy(ctx_.stats, std::move(s));
    std::uint64_t tag = clients_.size();
    if (free_.empty()) {
      clients_.emplace_back();
    } else {
      tag = free_.back();
      free_.pop_back();
    }
    clients_[tag] = std::make_unique<client>(std::move(s));
    ++live_;
    client& c = *clients_[tag];
    c.deadline = c.accepted + seconds(ctx_.opts.header_timeout);
    recv(c, tag);
  }

  // The request head, answered as every variant answers it.
  void on_request(client& c, std::uint64_t tag, int res) {
    error_code ec;
    if (!c.request.received(res, ec)) return recv(c, tag);
    if (ec && c.timed_out) ec = boost::asio::error::timed_out;  // the tick shut the read side
    const auto plan = plan_request(ctx_, ec, c.request.parser(), c.request.buffer(), c.socket);
    if (plan.what == http::resource::none) return finish(tag);
    c.deadline = steady_clock::time_point::max();
    c.pace.set(plan.max_fps);
    c.camera = plan.camera;
    if (plan.what == http::resource::stream && !plan.head_only) {
      c.scope.emplace(ctx_.camera(plan).stats, c.viewer, peer_name(c.socket));
      tune_for_streaming(c.fd);
      c.preamble = http::stream_preamble(plan.type);
      c.now = client::phase::preamble;
      c.out.set(std::array{boost::asio::const_buffer{c.preamble.data(), c.preamble.size()}});
    } else {
      c.answer = make_reply(plan, ctx_);
      c.now = client::phase::reply;
      c.out.set(c.answer.buffers());
    }
    send(c, tag);
  }

  // A send completed (perhaps short: the rest goes at once).
  void on_sent(client& c, std::uint64_t tag, int res) {
    if (res <= 0) return end_stream(c, tag, res == 0 ? -EPIPE : res);
    c.deadline = steady_clock::time_point::max();  // progress: the send timeout starts again
    if (!c.out.advance(static_cast<std::size_t>(res))) return send(c, tag);
    switch (c.now) {
      case client::phase::reply:
        // Half-close, then drain briefly: closing with unread input would reset the reply away.
        ::shutdown(c.fd, SHUT_WR);
        c.now = client::phase::draining;
        c.deadline = steady_clock::now() + 200ms;
        c.how = SHUT_RD;
        return recv(c, tag);
      case client::phase::preamble:
        c.gate.emplace(c.fd, seconds(ctx_.opts.send_timeout), ctx_.opts.freshness_gate);
        break;
      default:
        ctx_.cameras[c.camera].stats.frame_sent(c.viewer, *c.sending);
        c.sending.reset();
    }
    // Ready for the next frame: the newest, if it is one this viewer has not had.
    c.now = client::phase::waiting;
    c.waiting_since = steady_clock::now();
    if (const frame_ptr f = ctx_.cameras[c.camera].hub.latest(); f && offer(c, tag, f)) return;
    waiting_[c.camera].push_back(tag);
  }

  // A camera's bell: a frame newer than the last one rung for. One pass queues a send to every
  // viewer waiting for that camera; the loop submits them all in one system call.
  void new_frame(std::size_t camera) {
    frame_hub& hub = ctx_.cameras[camera].hub;
    const frame_ptr f = hub.latest();
    if (hub.closed() || !f) return;
    std::vector<std::uint64_t> still;
    for (const std::uint64_t tag : waiting_[camera])
      if (clients_[tag] && clients_[tag]->now == client::phase::waiting && !offer(*clients_[tag], tag, f))
        still.push_back(tag);
    waiting_[camera].swap(still);
    bells_[camera]->arm(ring_, bell_tag(camera), f->seq());
  }

  // The one place a viewer meets a frame: it wants a frame newer than the one it was sent (or
  // the gate skipped), and only when the path can deliver it fresh (freshness.hpp). True when the
  // viewer is no longer waiting (a send is queued, or it has ended).
  bool offer(client& c, std::uint64_t tag, const frame_ptr& f) {
    if (f->seq() <= c.gate->after(c.viewer.last_seq.load(std::memory_order_relaxed))) return false;
    // A capped viewer (?fps=N) takes the first frame that rings after its turn comes round.
    const auto now = steady_clock::now();
    if (now < c.pace.due()) return false;
    switch (c.gate->check(*f)) {
      case freshness_gate::verdict::later:
        return false;
      case freshness_gate::verdict::stalled:
        c.timed_out = true;
        end_stream(c, tag, -ETIMEDOUT);
        return true;
      case freshness_gate::verdict::send:
        break;
    }
    c.pace.took(now);
    c.sending = f;
    c.now = client::phase::sending;
    c.out.set(f->buffers());
    send(c, tag);
    return true;
  }

  // Every 100 ms: deadlines (header, send, drain), viewers who left while no frames flow, and an
  // accept paused by a lack of descriptors.
  void on_tick() {
    if (stopping_) return;
    const auto now = steady_clock::now();
    for (std::uint64_t tag = 0; tag < clients_.size(); ++tag) {
      client* c = clients_[tag].get();
      if (c == nullptr) continue;
      if (c->deadline <= now) {
        c->deadline = steady_clock::time_point::max();
        c->timed_out = true;
        ::shutdown(c->fd, c->how);  // its pending operation completes with the error
      }
      if (c->now == client::phase::waiting && now - c->waiting_since > 1s && peer_gone(c->fd))
        end_stream(*c, tag, -ECONNRESET);
    }
    if (accept_paused_) {
      accept_paused_ = false;
      accept();
    }
    tick();
  }

  // SIGINT/SIGTERM: no more accepts; every socket's I/O ends; waiting viewers end at once.
  void stop() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // the pending accept completes with an error
    for (std::uint64_t tag = 0; tag < clients_.size(); ++tag) {
      if (!clients_[tag]) continue;
      ::shutdown(clients_[tag]->fd, SHUT_RDWR);
      if (clients_[tag]->now == client::phase::waiting) end_stream(*clients_[tag], tag, 0);
    }
  }

  void end_stream(client& c, std::uint64_t tag, int res) {
    if (c.scope) {
      const error_code ec{-res, boost::system::system_category()};
      c.viewer.ended = c.timed_out ? end_reason::send_timeout
                       : stopping_ ? end_reason::shutdown
                                   : end_reason_of(ec);
    }
    finish(tag);
  }

  // The slot is free again (the viewer leaves /stats with its scope, the socket closes).
  void finish(std::uint64_t tag) {
    clients_[tag].reset();
    free_.push_back(tag);
    --live_;
  }

  void accept() {
    if (!stopping_) io_uring_prep_accept(&ring_.prepare(accept_tag), fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }
  void recv(client& c, std::uint64_t tag) {
    const auto room = c.now == client::phase::draining ? boost::asio::buffer(sink_) : c.request.room();
    io_uring_prep_recv(&ring_.prepare(tag), c.fd, room.data(), room.size(), 0);
  }
  void send(client& c, std::uint64_t tag) {
    if (c.deadline == steady_clock::time_point::max())
      c.deadline = steady_clock::now() + seconds(ctx_.opts.send_timeout);
    c.how = SHUT_RDWR;
    c.out.prepare(ring_.prepare(tag), c.fd);
  }
  void tick() { io_uring_prep_timeout(&ring_.prepare(tick_tag), &tick_period_, 0, 0); }

  server_context& ctx_;
  int fd_;  // the listening socket
  boost::asio::ip::tcp::acceptor::protocol_type protocol_;
  std::vector<std::unique_ptr<client>> clients_;
  std::vector<std::uint64_t> free_;                  // slots to reuse
  std::vector<std::vector<std::uint64_t>> waiting_;  // per camera: viewers waiting for a frame
  int live_ = 0;
  bool stopping_ = false;
  bool accept_paused_ = false;
  __kernel_timespec tick_period_{0, 100'000'000};
  std::array<char, 4096> sink_{};                        // what draining reads is thrown away
  std::vector<std::unique_ptr<uring::hub_bell>> bells_;  // one per camera
  uring::ring ring_{4096};  // destroyed first: the kernel cancels what is still pending
};

void serve(server_context& ctx) {
  server s{ctx};
  s.run();
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(argc, argv,
                            {"io_uring",
                             "MJPEG server: io_uring completions, one ring on one thread",
                             {std::nullopt, std::nullopt, 10000}},
                            serve);
}
