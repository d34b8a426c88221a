/// The replies that are not the stream (page, stats, snapshot, errors), ready for one gather write.
#pragma once

#include <array>
#include <string>

#include <boost/asio/buffer.hpp>

#include "mjpeg/frame.hpp"
#include "mjpeg/http.hpp"
#include "mjpeg/server.hpp"

namespace mjpeg {

/// A complete non-stream reply: the head (and any text body) plus, for a snapshot, the JPEG
/// shared with the frame, so one gather write sends it without copying the image.
struct reply {
  std::string head;  ///< Status line, headers and any text body.
  frame_ptr image;   ///< Snapshot frame whose JPEG follows `head`, or null.
  /// The buffers for one gather write.
  std::array<boost::asio::const_buffer, 2> buffers() const noexcept;
};

/// Builds the reply for every route but the stream (page, stats, snapshot, errors, and the head
/// of HEAD /stream), and counts error statuses in the stats.
reply make_reply(const http::route_result& plan, const server_context& ctx);

}  // namespace mjpeg
