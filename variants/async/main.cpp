// mjpeg-async: thousands of viewers on a few threads.
//
// Boost.Asio with C++20 coroutines. Each connection is a coroutine that reads like the blocking
// serve_client line for line, but every wait (for a request, a frame, a writable socket) suspends
// the coroutine instead of a thread. One io_context runs them all on --threads threads (default 1).
// The machinery (awaiting the hub, deadlines, graceful close, accept) is shared/src/async.cpp, the
// twin of blocking.cpp; this file keeps the model: where a viewer's state lives, how connections
// meet coroutines and threads, how it all stops.

#include <cstddef>
#include <exception>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "mjpeg/app.hpp"
#include "mjpeg/async.hpp"
#include "mjpeg/freshness.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/reply.hpp"

namespace {

namespace asio = boost::asio;
using namespace mjpeg;
using asio::use_awaitable;
using async::awaitable;
using async::deadline_stream;
using boost::system::error_code;

// The stream: preamble, then whatever frame is newest each time the viewer can take one.
awaitable<void> stream_frames(server_context& ctx, camera_feed& camera, deadline_stream& stream,
                              viewer_state& viewer, std::string peer, http::stream_type type) {
  const viewer_scope scope{camera.stats, viewer, std::move(peer)};
  error_code ec;
  const std::string preamble = http::stream_preamble(type);
  co_await asio::async_write(stream, asio::buffer(preamble), asio::redirect_error(use_awaitable, ec));
  freshness_gate gate{stream.native_handle(), seconds(ctx.opts.send_timeout), ctx.opts.freshness_gate};
  while (!ec) {
    frame_ptr f = co_await async::wait_newer(
        camera.hub, gate.after(viewer.last_seq.load(std::memory_order_relaxed)), stream);
    if (!f) break;            // shutdown, or the viewer left
    f = camera.hub.latest();  // the newest by now: the wake-up may have waited in the executor's queue
    // Only a whole frame the path can deliver fresh; otherwise a newer one later (freshness.hpp).
    // A viewer that keeps up has taken everything before the next frame comes: the gate's look
    // at the kernel finds nothing queued, so the socket has room and we send at once.
    auto v = gate.check(*f);
    if (v != freshness_gate::verdict::send || gate.backlog() != 0) {
      // Otherwise wait until the kernel has taken the previous frame, then send the newest one:
      // frames published meanwhile are skipped rather than queued, so a slow viewer sees fresh frames.
      co_await stream.wait_writable(ec);
      if (ec) break;
      f = camera.hub.latest();
      v = gate.check(*f);
    }
    if (v != freshness_gate::verdict::send) {
      if (v == freshness_gate::verdict::stalled) {
        ec = asio::error::timed_out;
        break;
      }
      continue;
    }
    // The gate found room, so the frame nearly always goes whole at once: one non-blocking send,
    // no trip through the io_context. Only what the kernel did not take waits, with the deadline.
    const auto buffers = f->buffers();
    const std::size_t sent = stream.send_now(buffers, ec);
    if (!ec && sent < asio::buffer_size(buffers)) {
      boost::beast::buffers_suffix rest{buffers};
      rest.consume(sent);
      co_await asio::async_write(stream, rest, asio::redirect_error(use_awaitable, ec));
    }
    if (!ec) camera.stats.frame_sent(viewer, *f);
  }
  viewer.ended = stream.timed_out()         ? end_reason::send_timeout
                 : ctx.shutdown.triggered() ? end_reason::shutdown
                                            : end_reason_of(ec);
}

awaitable<void> serve_client(server_context& ctx, async::sessions& all, connection c) {
  tune_for_streaming(c.socket.native_handle());
  deadline_stream stream{c.socket, all};
  // Per-viewer state lives in this coroutine's frame. thread_local, the tool of the
  // thread-per-client chapter, is wrong here: one thread takes turns serving thousands of
  // viewers, so a thread_local would be shared by all of them (and with --threads, a coroutine
  // may even resume on another thread than it started on).
  viewer_state viewer;

  // Read the request head; a client that dawdles past --header-timeout (from accept) gets 408.
  boost::beast::flat_buffer buffer;
  http::request_parser parser;
  error_code ec;
  stream.read_deadline(c.accepted + seconds(ctx.opts.header_timeout));
  co_await boost::beast::http::async_read_header(stream, buffer, parser,
                                                 asio::redirect_error(use_awaitable, ec));
  if (ec && stream.timed_out()) ec = asio::error::timed_out;  // the watchdog shut the read side
  const auto plan = plan_request(ctx, ec, parser, buffer, c.socket);

  // Answer it; a viewer that stops taking bytes is dropped after --send-timeout.
  stream.write_timeout(seconds(ctx.opts.send_timeout));
  stream.max_fps(plan.max_fps);
  if (plan.what == http::resource::none) co_return;
  if (plan.what == http::resource::stream && !plan.head_only) {
    co_await stream_frames(ctx, ctx.camera(plan), stream, viewer, peer_name(c.socket), plan.type);
    co_return;
  }
  const reply r = make_reply(plan, ctx);
  co_await asio::async_write(stream, r.buffers(), asio::redirect_error(use_awaitable, ec));
  if (!ec) co_await stream.close_gracefully();
}

// Accepts connections until shutdown, and starts a coroutine for each.
awaitable<void> accept_loop(server_context& ctx, async::sessions& all) {
  for (;;) {
    connection client{ctx.io};
    if (!co_await async::accept_next(ctx, all, client)) co_return;
    // A session that fails (out of memory) ends alone; the server keeps serving.
    asio::co_spawn(ctx.io, serve_client(ctx, all, std::move(client)), [&ctx](std::exception_ptr e) {
      try {
        if (e) std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log::write(log::level::error, "session: %s", x.what());
      }
    });
  }
}

void serve(server_context& ctx) {
  async::sessions all{ctx.hubs()};

  // The acceptor is used by the accept loop and by the stop below, which may run on different
  // threads: a strand takes them in turn. Sessions need no strand: each is a single chain of
  // operations, one at a time, and what they share (`all`, the hub, the stats) has its own lock.
  const auto control = asio::make_strand(ctx.io);
  asio::co_spawn(control, accept_loop(ctx, all), asio::detached);
  asio::co_spawn(control, all.watchdog(), asio::detached);

  // On SIGINT/SIGTERM (after the hub's close has woken every viewer waiting for a frame): stop
  // accepting and end every socket's I/O; the coroutines unwind and io_context::run returns once
  // nothing is left to do.
  ctx.shutdown.on_trigger([&all, control, &acceptor = ctx.acceptor] {
    all.stop();
    asio::post(control, [&acceptor] {
      error_code ignored;
      acceptor.close(ignored);
    });
  });

  // One io_context, run by --threads threads; this thread is one of them.
  std::vector<std::thread> threads;
  for (int i = 1; i < ctx.opts.threads; ++i)
    threads.emplace_back([&io = ctx.io] { io.run(); });
  ctx.io.run();
  for (auto& t : threads)
    t.join();
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(
      argc, argv,
      {"async", "MJPEG server: Boost.Asio C++20 coroutines, many viewers on a few threads", {1, {}, 10000}},
      serve);
}
