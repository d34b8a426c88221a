/// A server's life around its model: options, keys, signals, the process role, capture, listener,
/// and serving or supervising. Only the variants and app.cpp include this.
#pragma once

#include "mjpeg/options.hpp"
#include "mjpeg/server.hpp"

namespace mjpeg {

/// The whole life of a server: options, capture, listener, the URL line, signal handling and a
/// clean stop. Returns the process exit code (0 after a signal or --duration, 1 when the server
/// could not start, 2 for bad options).
int run_variant(int argc, const char* const* argv, const variant_info& info, const serve_function& serve);

}  // namespace mjpeg
