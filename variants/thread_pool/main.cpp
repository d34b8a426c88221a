// mjpeg-thread-pool: a fixed pool of workers fed by a bounded queue.
//
// The Python original's third step: a ThreadPoolExecutor caps the threads, because with one thread
// per connection anyone could open thousands of connections and exhaust the server. One task is one
// whole viewer, so --threads N workers serve N viewers; the next --queue connections wait, connected
// but receiving nothing, for a worker to come free; beyond that a connection gets 503 at once.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "mjpeg/app.hpp"
#include "mjpeg/blocking.hpp"

namespace {

// The viewer's subscription, one per thread: thread_local is the C++ twin of Python's
// threading.local(). Like it, each thread sees its own object; unlike it, there is one such variable
// for the whole program (not one per local() instance), it is constructed on first use in each
// thread and destroyed only when that thread exits. Here a thread is a worker that serves viewer
// after viewer, so the object outlives each viewer and the next one on this worker inherits it:
// it must be reset per viewer, or viewer two would carry on viewer one's id and counters.
thread_local mjpeg::viewer_state viewer;

// Serves one connection from request to close on the calling thread. serve_client's viewer_scope
// is the original's __enter__/__exit__ pair: it resets `viewer` with a new id and lists it in
// /stats, and unlists it when the viewer leaves (before the worker takes its next connection).
void serve_connection(mjpeg::server_context& ctx, mjpeg::connection client) {
  mjpeg::blocking::serve_client(ctx, std::move(client), viewer);
}

// Accepted connections on their way from the acceptor to the workers, written out: a mutex, a
// condition variable, and waits with a predicate, so an idle worker sleeps instead of spinning.
class connection_queue {
 public:
  connection_queue(std::size_t capacity, std::size_t workers) : free_{workers}, capacity_{capacity} {}

  // Queues `client` (moving from it) unless more than `capacity` connections would then wait for
  // a worker. Free workers (not yet or no longer serving a viewer) each take one, adding room.
  bool try_push(mjpeg::connection& client) {
    {
      std::lock_guard lock{mutex_};
      if (waiting_.size() >= capacity_ + free_) return false;
      waiting_.push_back(std::move(client));
    }
    ready_.notify_one();  // after unlocking, so the woken worker does not block on the mutex
    return true;
  }

  // Takes the next connection, sleeping until there is one; nullopt once the queue is closed.
  std::optional<mjpeg::connection> pop() {
    std::unique_lock lock{mutex_};
    ready_.wait(lock, [this] { return closed_ || !waiting_.empty(); });
    if (closed_) return std::nullopt;
    mjpeg::connection client = std::move(waiting_.front());
    waiting_.pop_front();
    --free_;
    return client;
  }

  // A worker has finished its viewer and is free again.
  void finished() {
    std::lock_guard lock{mutex_};
    ++free_;
  }

  // Wakes every worker for good (shutdown); connections still waiting are closed with the queue.
  void close() {
    {
      std::lock_guard lock{mutex_};
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<mjpeg::connection> waiting_;  // guarded by mutex_, like the two fields below
  std::size_t free_;                       // workers not serving a connection
  bool closed_ = false;
  const std::size_t capacity_;
};

// A worker: one whole viewer at a time, then the next waiting connection, until shutdown.
void work(mjpeg::server_context& ctx, connection_queue& queue) {
  while (std::optional<mjpeg::connection> client = queue.pop()) {
    serve_connection(ctx, std::move(*client));
    queue.finished();
  }
}

// Joins every worker; the queue is closed first so the idle ones wake up and leave.
void stop(connection_queue& queue, std::vector<std::thread>& workers) {
  queue.close();
  for (std::thread& worker : workers)
    worker.join();
}

void serve(mjpeg::server_context& ctx) {
  connection_queue queue{static_cast<std::size_t>(ctx.opts.queue),
                         static_cast<std::size_t>(ctx.opts.threads)};
  std::vector<std::thread> workers;
  try {
    for (int i = 0; i < ctx.opts.threads; ++i)
      workers.emplace_back(work, std::ref(ctx), std::ref(queue));
  } catch (...) {
    stop(queue, workers);  // could not start them all: a setup error, but never leave one behind
    throw;
  }
  mjpeg::connection client{ctx.io};
  while (mjpeg::blocking::accept_next(ctx, client)) {
    // The acceptor never waits for a worker: a connection that finds the queue full is turned
    // away at once with 503 and Retry-After, and the pool's cap protects the server.
    if (!queue.try_push(client)) mjpeg::reject_busy(ctx.stats, std::move(client.socket));
    client = mjpeg::connection{ctx.io};
  }
  // Shutdown wakes every busy worker at once (their polls watch the same eventfd and the hub is
  // closed); closing the queue wakes the idle ones, so joining them all takes milliseconds.
  stop(queue, workers);
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(argc, argv,
                            {"thread_pool",
                             "MJPEG server with a fixed pool of workers",
                             {.threads = 64, .queue = 8, .max_clients = {}}},
                            serve);
}
