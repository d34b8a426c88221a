/// The frame bus between processes and machines: ZeroMQ PUB/SUB, one message per frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
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

/// Ends the endpoint in a bus source spec that names one camera: "zmq+tcp://origin:5555#front".
/// ("/front" would be ambiguous: an ipc endpoint is a path.)
inline constexpr char topic_separator = '#';

/// A bus source spec taken apart.
struct source_spec {
  std::string endpoint;  ///< The ZeroMQ endpoint ("tcp://origin:5555", "ipc:///path").
  std::string topic;     ///< The camera it names after '#'; empty when it names none.
};

/// Splits a "zmq+…" spec at its first '#' (an ipc path cannot hold one).
source_spec split_source(std::string_view spec);

/// Why the camera a bus source spec names after '#' cannot be a topic (empty, not a camera
/// name), or "" when it names none or a good one. For the options' exit 2.
std::string topic_problem(std::string_view spec);

/// One frame as it travels on the bus, one message part, so a subscriber can keep only the newest.
/// The camera's topic, then seq (u64 LE), capture time (µs since the epoch, i64 LE), the JPEG:
/// "mjf1" + seq + time + JPEG for the one unnamed camera of a server without --camera (the format
/// from before there were topics, unchanged), "mjf2" + NAME + "\n" + seq + time + JPEG for camera
/// NAME. The newline ends the topic, so a subscription to camera "a" never takes camera "ab".
std::vector<std::uint8_t> encode_message(std::uint64_t seq, wall_clock::time_point captured,
                                         std::span<const std::uint8_t> jpeg, std::string_view topic = {});

/// The prefix a subscriber subscribes to for `topic`'s frames (empty: the unnamed camera's),
/// everything in a message before its seq.
std::string frame_topic(std::string_view topic);

/// A decoded bus message.
struct message {
  std::string topic;                ///< The camera's name; empty for an unnamed camera.
  std::uint64_t seq = 0;            ///< The origin's sequence number.
  wall_clock::time_point captured;  ///< The origin's capture time.
  std::vector<std::uint8_t> jpeg;   ///< The JPEG bytes, as the origin encoded them.
};

/// Decodes a bus message; nullopt when it is not one (wrong magic, bad topic, too short, not a JPEG).
std::optional<message> decode_message(std::span<const std::uint8_t> bytes);

/// The topic of the catalogue a publisher of named cameras sends every catalogue_interval:
/// "mjc1" + NAME + "\n" for each camera, in order. An edge told only the endpoint reads it at
/// start to serve every camera under the origin's names.
inline constexpr std::string_view catalogue_topic = "mjc1";
/// How often a publisher of named cameras sends its catalogue.
inline constexpr std::chrono::milliseconds catalogue_interval{500};

/// The catalogue message for `names`.
std::vector<std::uint8_t> encode_catalogue(const std::vector<std::string>& names);

/// Decodes a catalogue: nullopt unless it lists one or more distinct, valid camera names.
std::optional<std::vector<std::string>> decode_catalogue(std::span<const std::uint8_t> bytes);

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
  /// subscribers must complete CurveZMQ with an authorized key. With `cameras` (the names of
  /// named cameras, in order) it also sends their catalogue every catalogue_interval. Throws
  /// with a clear message.
  publisher(const std::vector<std::string>& endpoints, const std::optional<key_files>& keys,
            std::vector<std::string> cameras = {});
  /// Closes the socket and stops the authentication handler.
  ~publisher();
  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;

  /// Sends `f` under `topic` (a camera's name; empty for the unnamed camera) to every subscriber
  /// of it that has room; drops it for the others. Any camera's capture thread may call it.
  void send(const frame& f, std::string_view topic = {});
  /// The endpoints as bound (a "tcp://host:0" endpoint shows its real port).
  const std::vector<std::string>& endpoints() const noexcept { return bound_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::vector<std::string> bound_;
};

/// Turns a `--publish` value into an endpoint: a bare port means tcp on loopback.
std::string publish_endpoint(const std::string& spec);

/// A frame source that subscribes to one camera's topic on a bus endpoint ("zmq+tcp://host:port",
/// the unnamed camera; "…#NAME", camera NAME): latest frame wins (ZMQ_CONFLATE, one socket per
/// camera), the JPEG is forwarded as it is and the origin's seq and capture time are kept.
std::unique_ptr<frame_source> make_bus_source(const std::string& spec, double fps,
                                              const std::optional<key_files>& keys);

/// What the publisher at `spec` (a bus source spec without a topic) serves, asked at start: its
/// cameras' names from its catalogue, an empty list when its frames are the unnamed camera's
/// (they come without a catalogue), nullopt when neither arrives within `wait` or `cancelled`
/// returns true (checked every 50 ms). Throws when the endpoint is not one.
std::optional<std::vector<std::string>> discover_cameras(const std::string& spec,
                                                         const std::optional<key_files>& keys,
                                                         std::chrono::milliseconds wait,
                                                         const std::function<bool()>& cancelled);

}  // namespace mjpeg::bus
