/// The frame bus between processes and machines: ZeroMQ PUB/SUB, one message per frame.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"

namespace mjpeg::bus {

/// A `--source` spec that names the bus starts with this ("zmq+tcp://host:port", "zmq+ipc:///path").
inline constexpr std::string_view scheme_prefix = "zmq+";

/// True when `spec` names a bus endpoint (zmq+tcp:// or zmq+ipc://).
bool is_bus_source(std::string_view spec) noexcept;

/// One frame as it travels on the bus: "mjf1", seq (u64 LE), capture time (µs since the epoch,
/// i64 LE), then the JPEG bytes. One message part, so a subscriber can keep only the newest.
std::vector<std::uint8_t> encode_message(std::uint64_t seq, wall_clock::time_point captured,
                                         std::span<const std::uint8_t> jpeg);

/// A decoded bus message.
struct message {
  std::uint64_t seq = 0;            ///< The origin's sequence number.
  wall_clock::time_point captured;  ///< The origin's capture time.
  std::vector<std::uint8_t> jpeg;   ///< The JPEG bytes, as the origin encoded them.
};

/// Decodes a bus message; nullopt when it is not one (wrong magic, too short, not a JPEG).
std::optional<message> decode_message(std::span<const std::uint8_t> bytes);

/// CurveZMQ keys as files in one directory (made by `--bus-keygen DIR`):
/// server.secret / server.pub (the publisher's pair), client.secret / client.pub (a subscriber's
/// pair), and authorized/*.pub (the subscriber public keys a publisher accepts). Keys are Z85 text.
struct key_files {
  std::string dir;  ///< The directory.
};

/// Writes a new server pair, a new client pair and authorizes that client. Throws when the
/// directory already holds keys (never overwrite a key someone deployed).
void generate_keys(const std::string& dir);

/// Publishes each captured frame on one or more endpoints; never blocks on a subscriber.
///
/// The send high-water mark is small and PUB drops for a subscriber that is not keeping up, so a
/// slow or dead edge costs the origin nothing but the frames it misses.
class publisher {
 public:
  /// Binds every endpoint ("tcp://127.0.0.1:5555", "ipc:///path"); with `keys` set, tcp
  /// subscribers must complete CurveZMQ with an authorized key. Throws with a clear message.
  publisher(const std::vector<std::string>& endpoints, const std::optional<key_files>& keys);
  /// Closes the socket and stops the authentication handler.
  ~publisher();
  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;

  /// Sends `f` to every subscriber that has room; drops it for the others. Capture thread only.
  void send(const frame& f);
  /// The endpoints as bound (a "tcp://host:0" endpoint shows its real port).
  const std::vector<std::string>& endpoints() const noexcept { return bound_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::vector<std::string> bound_;
};

/// Turns a `--publish` value into an endpoint: a bare port means tcp on loopback.
std::string publish_endpoint(const std::string& spec);

/// A frame source that subscribes to a bus endpoint: latest frame wins (ZMQ_CONFLATE), the JPEG
/// is forwarded as it is and the origin's seq and capture time are kept.
std::unique_ptr<frame_source> make_bus_source(const std::string& spec, double fps,
                                              const std::optional<key_files>& keys);

}  // namespace mjpeg::bus
