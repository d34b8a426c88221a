/// What a variant serves with: the shutdown signal, the serving context and the serve function's
/// type. Lower layers (blocking, async, reply, workers) include this, never app.hpp.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "mjpeg/access.hpp"
#include "mjpeg/frame_hub.hpp"
#include "mjpeg/http.hpp"
#include "mjpeg/options.hpp"
#include "mjpeg/socket.hpp"
#include "mjpeg/stats.hpp"

namespace mjpeg {

/// The one shutdown signal of a server: set by SIGINT, SIGTERM or --duration.
///
/// Blocking code polls fd() beside its socket; asynchronous code registers a callback.
class shutdown_signal {
 public:
  /// Creates the eventfd.
  shutdown_signal();
  /// Closes the eventfd.
  ~shutdown_signal();
  shutdown_signal(const shutdown_signal&) = delete;
  shutdown_signal& operator=(const shutdown_signal&) = delete;

  /// Requests shutdown: fd() becomes readable for good and the callbacks run once. Idempotent.
  void trigger();
  /// True once triggered.
  bool triggered() const noexcept { return triggered_.load(std::memory_order_acquire); }
  /// Readable once triggered; poll it beside a socket to wake up at once.
  int fd() const noexcept { return fd_; }
  /// Runs `callback` on trigger (at once if already triggered), on the triggering thread.
  void on_trigger(std::function<void()> callback);

 private:
  int fd_;
  std::atomic<bool> triggered_{false};
  std::mutex mutex_;
  std::vector<std::function<void()>> callbacks_;
};

/// One camera as the serving code sees it: its own hub and counters. Cameras share nothing else.
struct camera_feed {
  std::string name;     ///< --camera NAME; empty for the only camera of a server without --camera.
  std::string source;   ///< Its source spec, as given.
  frame_hub& hub;       ///< Where its frames come from.
  server_stats& stats;  ///< Its capture and viewer counters.
};

/// Everything a variant's serving code needs; built by run_variant.
struct server_context {
  std::string_view variant;     ///< The variant's name ("thread_pool").
  std::string_view name;        ///< The binary's name ("mjpeg-thread-pool"), every log line's prefix.
  const options& opts;          ///< Parsed options.
  frame_hub& hub;               ///< Where the first camera's frames come from.
  server_stats& stats;          ///< Counters behind /stats: the server's, and the first camera's.
  shutdown_signal& shutdown;    ///< Set when the server must stop.
  http::route_options routes;   ///< Access control for the router.
  boost::asio::io_context& io;  ///< The io_context the acceptor belongs to.
  boost::asio::ip::tcp::acceptor& acceptor;  ///< Bound and listening.
  login_limiter& logins;                     ///< Wrong credentials per client address.
  std::vector<camera_feed> cameras;          ///< Every camera, in --camera order; the first is hub and stats.

  /// The camera a routed request is for (the router has checked the index).
  camera_feed& camera(const http::route_result& plan) { return cameras.at(plan.camera); }
  /// Every camera's hub (what waits on frames must be woken in all of them).
  std::vector<frame_hub*> hubs() const {
    std::vector<frame_hub*> all;
    for (const camera_feed& c : cameras)
      all.push_back(&c.hub);
    return all;
  }
};

/// The variant's serving loop: returns once ctx.shutdown is triggered.
using serve_function = std::function<void(server_context&)>;

/// plan_request with the context's route options and login limiter.
inline http::route_result plan_request(server_context& ctx, const boost::beast::error_code& ec,
                                       const http::request_parser& parser,
                                       const boost::beast::flat_buffer& buffer,
                                       const boost::asio::ip::tcp::socket& peer) {
  return plan_request(ctx.routes, ctx.logins, ec, parser, buffer, peer);
}

}  // namespace mjpeg
