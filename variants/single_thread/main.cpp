// mjpeg-single-thread: one viewer at a time.
//
// The simplest server there is: accept a connection, serve it until it leaves, accept the next.
// The lesson is what happens to viewer two: it connects (the kernel completes the handshake and
// queues it in the listen backlog), then waits, receiving nothing, until viewer one leaves.
// The same goes for the page's /stats requests while a stream is open.

#include "mjpeg/app.hpp"
#include "mjpeg/blocking.hpp"

namespace {

void serve(mjpeg::server_context& ctx) {
  // One viewer at a time, so its state can be a plain local reused for each in turn.
  mjpeg::viewer_state viewer;
  mjpeg::connection client{ctx.io};
  while (mjpeg::blocking::accept_next(ctx, client)) {
    // Everything happens on this thread: while this call streams to a viewer, nobody else
    // is even accepted.
    mjpeg::blocking::serve_client(ctx, std::move(client), viewer);
    client = mjpeg::connection{ctx.io};
  }
}

}  // namespace

int main(int argc, char** argv) {
  return mjpeg::run_variant(argc, argv,
                            {"single_thread", "MJPEG server that serves one viewer at a time", {}}, serve);
}
