// mjpeg-thread-per-client: one thread per viewer.
//
// The Python original's second step: ThreadingTCPServer starts a thread for every connection, so
// every viewer is served at once and nobody waits for anybody. The lesson is the price: a flood of
// connections is a flood of threads (a stack each, a scheduler entry each), and nothing bounds it
// unless --max-clients does. The default is unlimited, as in the original.

#include <atomic>
#include <cstdio>
#include <list>
#include <system_error>
#include <thread>

#include "mjpeg/app.hpp"
#include "mjpeg/blocking.hpp"

namespace {

// The viewer's subscription, one per thread: thread_local is the C++ twin of Python's
// threading.local(). Like it, each thread sees its own object; unlike it, there is one such variable
// for the whole program (not one per local() instance), it is constructed on first use in each
// thread and destroyed only when that thread exits. Here a thread serves exactly one connection,
// so per thread is per viewer: the object is born and dies with the viewer's thread.
thread_local mjpeg::viewer_state viewer;

// Serves one connection from request to close on the calling thread. serve_client's viewer_scope
// is the original's __enter__/__exit__ pair: it resets `viewer` with a new id and lists it in
// /stats, and unlists it when the viewer leaves (before the thread, and the object, go away).
void serve_connection(mjpeg::server_context& ctx, mjpeg::connection client) {
  mjpeg::blocking::serve_client(ctx, std::move(client), viewer);
}

// One connection's thread, kept in a list so it can be joined: nothing is detached.
struct client {
  explicit client(mjpeg::connection c) : connection{std::move(c)} {}
  mjpeg::connection connection;  // handed to the thread; kept here only if the thread never starts
  std::thread thread;
  std::atomic<bool> done{false};  // set by the thread as its last act: it can be joined at once
};

// Joins the threads that have finished (or all of them), so the list holds live connections only.
void reap(std::list<client>& clients, bool all) {
  for (auto it = clients.begin(); it != clients.end();) {
    if (all || it->done.load(std::memory_order_acquire)) {
      it->thread.join();
      it = clients.erase(it);
    } else {
      ++it;
    }
  }
}

// Starts the connection's thread. When the system has no thread to give, the flood has won:
// turn the connection away with 503 instead of crashing.
void start_client(mjpeg::server_context& ctx, std::list<client>& clients, mjpeg::connection connection) {
  client& c = clients.emplace_back(std::move(connection));
  try {
    c.thread = std::thread{[&ctx, &c] {
      serve_connection(ctx, std::move(c.connection));
      c.done.store(true, std::memory_order_release);
    }};
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: cannot start a thread: %s\n", ctx.name.data(), e.what());
    mjpeg::reject_busy(ctx.stats, std::move(c.connection.socket));
    clients.pop_back();
  }
}

void serve(mjpeg::server_context& ctx) {
  std::list<client> clients;
  mjpeg::connection client{ctx.io};
  while (mjpeg::blocking::accept_next(ctx, client)) {
    // Reap as we go, before counting, so --max-clients counts live connections only. (Threads
    // that finish while nobody connects wait here until the next accept or shutdown.)
    reap(clients, false);
    const bool full =
        ctx.opts.max_clients != 0 && clients.size() >= static_cast<std::size_t>(ctx.opts.max_clients);
    if (full)
      mjpeg::reject_busy(ctx.stats, std::move(client.socket));
    else
      start_client(ctx, clients, std::move(client));
    client = mjpeg::connection{ctx.io};
  }
  // Shutdown wakes every thread at once (their polls watch the same eventfd and the hub is
  // closed), so joining them all takes milliseconds.
  reap(clients, true);
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(argc, argv,
                            {"thread_per_client",
                             "MJPEG server with one thread per viewer",
                             {.threads = {}, .queue = {}, .max_clients = 0}},
                            serve);
}
