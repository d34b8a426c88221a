#include "mjpeg/bus.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <zmq.hpp>

#include "mjpeg/http.hpp"
#include "mjpeg/log.hpp"
#include "mjpeg/multipart.hpp"

namespace mjpeg::bus {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view magic = "mjf1";        // a frame of the unnamed camera
constexpr std::string_view named_magic = "mjf2";  // a frame of a named camera: its name and '\n' follow
constexpr char topic_end = '\n';
constexpr std::size_t header_size = 4 + 8 + 8;
// The longest frame topic: "mjf2", a camera name of at most 32 characters, '\n'.
constexpr std::size_t max_topic_size = 4 + 32 + 1;
constexpr int key_length = 40;  // Z85 text of a 32-byte CurveZMQ key
// The largest message a subscriber takes: the relay's limit on one JPEG plus our header (and the
// camera's topic, see max_message_bytes_of). A bigger one drops the connection (libzmq) instead
// of growing the edge.
constexpr std::int64_t max_message_bytes =
    static_cast<std::int64_t>(header_size + http::multipart_parser::body_limit);
// The handshake outcomes a socket monitor reports to us.
constexpr int handshake_events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
// A publisher says the same handshake failure at most this often: a refused peer retries forever.
constexpr auto handshake_log_interval = std::chrono::seconds{60};
// A forwarded capture time further than this from our clock is not believed (0, negative, int64
// max, a publisher with a broken clock): the frame gets its arrival time instead.
constexpr auto plausible_clock_skew = std::chrono::hours{1};

// One event from a socket monitor: what happened, its value (a protocol error or ZAP status) and
// the endpoint it concerns.
struct monitor_event {
  std::uint16_t event = 0;
  std::uint32_t value = 0;
  std::string endpoint;
};

// Starts monitoring `socket`'s handshakes and returns the PAIR socket the events arrive on.
zmq::socket_t watch_handshakes(zmq::context_t& context, zmq::socket_t& socket) {
  static std::atomic<int> next{0};
  const std::string address = "inproc://mjpeg-bus-monitor-" + std::to_string(next.fetch_add(1));
  if (zmq_socket_monitor(socket.handle(), address.c_str(), handshake_events) != 0) throw zmq::error_t{};
  zmq::socket_t events{context, zmq::socket_type::pair};
  events.set(zmq::sockopt::linger, 0);
  events.connect(address);
  return events;
}

// The next event waiting on a monitor's PAIR socket, if any (two parts: event and value, endpoint).
std::optional<monitor_event> next_event(zmq::socket_t& events) {
  zmq::message_t head;
  if (!events.recv(head, zmq::recv_flags::dontwait)) return std::nullopt;
  zmq::message_t endpoint;
  if (head.more() && !events.recv(endpoint)) return std::nullopt;
  if (head.size() < 6) return std::nullopt;
  monitor_event e;
  std::memcpy(&e.event, head.data(), 2);
  std::memcpy(&e.value, static_cast<const char*>(head.data()) + 2, 4);
  e.endpoint = endpoint.to_string();
  return e;
}

void put_u64(std::uint8_t* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    at[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint64_t get_u64(const std::uint8_t* at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<std::uint64_t>(at[i]) << (8 * i);
  return v;
}

std::string read_key(const fs::path& path) {
  std::ifstream in{path};
  std::string key;
  in >> key;
  if (key.size() != key_length)
    throw std::runtime_error("--bus-keys: " + path.string() + " missing or not a Z85 CurveZMQ key");
  return key;
}

// A secret key: read as any key, with one warning (as ssh gives) when group or others may read it.
std::string read_secret_key(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
    log::write(log::level::warning, "--bus-keys: %s can be read by %s (mode %04o): chmod 600 it",
               path.c_str(), (st.st_mode & S_IROTH) != 0 ? "every local user" : "its group",
               static_cast<unsigned>(st.st_mode & 07777));
  return read_key(path);
}

void write_key(const fs::path& path, const char* key, bool secret) {
  std::ofstream out{path};
  out << key << "\n";
  if (!out) throw std::runtime_error("--bus-keygen: cannot write " + path.string());
  out.close();
  fs::permissions(path, secret ? fs::perms::owner_read | fs::perms::owner_write
                               : fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                     fs::perms::others_read);
}

// Public keys (binary, 32 bytes) of the subscribers a publisher accepts: authorized/*.pub.
std::vector<std::string> authorized_keys(const fs::path& dir) {
  std::vector<std::string> keys;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir / "authorized", ec)) {
    if (entry.path().extension() != ".pub") continue;
    const std::string text = read_key(entry.path());
    std::string binary(32, '\0');
    if (!zmq_z85_decode(reinterpret_cast<std::uint8_t*>(binary.data()), text.c_str()))
      throw std::runtime_error("--bus-keys: " + entry.path().string() + " is not a Z85 key");
    keys.push_back(std::move(binary));
  }
  if (keys.empty())
    throw std::runtime_error("--bus-keys: no authorized subscriber keys in " + (dir / "authorized").string());
  return keys;
}

bool is_loopback_tcp(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return true;  // ipc and inproc stay on this host
  const std::string rest = endpoint.substr(6);
  return rest.rfind("127.", 0) == 0 || rest.rfind("localhost:", 0) == 0 || rest.rfind("[::1]:", 0) == 0;
}

}  // namespace

bool is_bus_source(std::string_view spec) noexcept {
  return spec.rfind("zmq+tcp://", 0) == 0 || spec.rfind("zmq+ipc://", 0) == 0;
}

source_spec split_source(std::string_view spec) {
  const auto hash = spec.find(topic_separator);
  if (hash == std::string_view::npos) return {std::string{spec}, {}};
  return {std::string{spec.substr(0, hash)}, std::string{spec.substr(hash + 1)}};
}

std::string topic_problem(std::string_view spec) {
  if (!is_bus_source(spec) || spec.find(topic_separator) == std::string_view::npos) return "";
  const std::string topic = split_source(spec).topic;
  if (http::valid_camera_name(topic)) return "";
  return "the camera after '#' must be the name of a camera of the origin: 1 to 32 of a-z, 0-9, _ and -";
}

std::string frame_topic(std::string_view topic) {
  if (topic.empty()) return std::string{magic};
  std::string prefix{named_magic};
  prefix += topic;
  prefix += topic_end;
  return prefix;
}

namespace {

// max_message_bytes for the frames of camera `topic`: the same JPEG limit, whatever its name.
std::int64_t max_message_bytes_of(std::string_view topic) {
  return max_message_bytes + static_cast<std::int64_t>(frame_topic(topic).size() - magic.size());
}

}  // namespace

namespace {

// Writes one message into `out`, which has room for prefix.size() + header_size + jpeg.size()
// bytes; `prefix` is frame_topic(the camera's name).
void write_message(std::uint8_t* out, std::string_view prefix, std::uint64_t seq,
                   wall_clock::time_point captured, std::span<const std::uint8_t> jpeg) {
  std::memcpy(out, prefix.data(), prefix.size());
  out += prefix.size() - magic.size();  // seq and time follow the topic as they follow "mjf1"
  put_u64(out + 4, seq);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(captured.time_since_epoch()).count();
  put_u64(out + 12, static_cast<std::uint64_t>(us));
  std::memcpy(out + header_size, jpeg.data(), jpeg.size());
}

}  // namespace

std::vector<std::uint8_t> encode_message(std::uint64_t seq, wall_clock::time_point captured,
                                         std::span<const std::uint8_t> jpeg, std::string_view topic) {
  const std::string prefix = frame_topic(topic);
  std::vector<std::uint8_t> out(prefix.size() - magic.size() + header_size + jpeg.size());
  write_message(out.data(), prefix, seq, captured, jpeg);
  return out;
}

std::optional<message> decode_message(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < magic.size()) return std::nullopt;
  message m;
  const std::string_view head{reinterpret_cast<const char*>(bytes.data()),
                              std::min(bytes.size(), max_topic_size)};
  if (head.starts_with(named_magic)) {
    const auto end = head.find(topic_end);
    if (end == std::string_view::npos) return std::nullopt;
    m.topic = head.substr(named_magic.size(), end - named_magic.size());
    if (!http::valid_camera_name(m.topic)) return std::nullopt;
    bytes = bytes.subspan(end + 1 - magic.size());  // now shaped as an "mjf1" message
  } else if (!head.starts_with(magic)) {
    return std::nullopt;
  }
  if (bytes.size() < header_size) return std::nullopt;
  m.seq = get_u64(bytes.data() + 4);
  // Saturated, not overflowed, when the clock cannot hold it (int64 max µs is not a nanosecond count).
  const auto us = std::chrono::microseconds{static_cast<std::int64_t>(get_u64(bytes.data() + 12))};
  constexpr auto latest = std::chrono::duration_cast<std::chrono::microseconds>(wall_clock::duration::max());
  constexpr auto earliest =
      std::chrono::duration_cast<std::chrono::microseconds>(wall_clock::duration::min());
  m.captured = us >= latest ? wall_clock::time_point::max()
               : us <= earliest
                   ? wall_clock::time_point::min()
                   : wall_clock::time_point{std::chrono::duration_cast<wall_clock::duration>(us)};
  m.jpeg.assign(bytes.begin() + header_size, bytes.end());
  if (m.seq == 0 || !looks_like_jpeg(m.jpeg)) return std::nullopt;
  return m;
}

std::vector<std::uint8_t> encode_catalogue(const std::vector<std::string>& names) {
  std::vector<std::uint8_t> out{catalogue_topic.begin(), catalogue_topic.end()};
  for (const std::string& name : names) {
    out.insert(out.end(), name.begin(), name.end());
    out.push_back(static_cast<std::uint8_t>(topic_end));
  }
  return out;
}

std::optional<std::vector<std::string>> decode_catalogue(std::span<const std::uint8_t> bytes) {
  std::string_view text{reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  if (!text.starts_with(catalogue_topic)) return std::nullopt;
  text.remove_prefix(catalogue_topic.size());
  std::vector<std::string> names;
  std::set<std::string_view> seen;
  while (!text.empty()) {
    const auto end = text.find(topic_end);
    if (end == std::string_view::npos) return std::nullopt;
    const auto name = text.substr(0, end);
    if (!http::valid_camera_name(name) || !seen.insert(name).second) return std::nullopt;
    names.emplace_back(name);
    text.remove_prefix(end + 1);
  }
  if (names.empty()) return std::nullopt;
  return names;
}

void generate_keys(const std::string& dir) {
  const fs::path root{dir};
  fs::create_directories(root / "authorized");
  for (const char* name : {"server.secret", "server.pub", "client.secret", "client.pub"})
    if (fs::exists(root / name))
      throw std::runtime_error("--bus-keygen: " + (root / name).string() + " exists");
  char pub[key_length + 1];
  char sec[key_length + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw std::runtime_error("--bus-keygen: this libzmq has no CurveZMQ support");
  write_key(root / "server.secret", sec, true);
  write_key(root / "server.pub", pub, false);
  zmq_curve_keypair(pub, sec);
  write_key(root / "client.secret", sec, true);
  write_key(root / "client.pub", pub, false);
  write_key(root / "authorized" / "client.pub", pub, false);
}

std::string publish_endpoint(const std::string& spec) {
  if (!spec.empty() && std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return "tcp://127.0.0.1:" + (spec == "0" ? std::string{"*"} : spec);
  return spec;
}

// Two PUB sockets: a plain one for the private ipc endpoints (worker processes on this host, in
// a directory only we can open) and one for the rest, which is a CurveZMQ server when keys are
// given. Every frame goes to both; the second copy shares the first's buffer. Every camera's
// capture thread sends on them, and the catalogue thread too: one lock around the sockets (a
// ZeroMQ socket is not thread-safe; a send never blocks, so the lock is held only briefly).
struct publisher::impl {
  zmq::context_t context{1};
  std::mutex sockets;  // guards local and remote once the publisher is built
  std::optional<zmq::socket_t> local;
  std::optional<zmq::socket_t> remote;
  std::vector<std::string> allowed;  // binary public keys; empty without keys
  std::thread zap;
  std::thread monitor;
  std::thread catalogue;  // with named cameras: their list, every catalogue_interval
  std::condition_variable stop_catalogue;
  bool stopping = false;  // under `sockets`

  // Sends `message` on both sockets without waiting (a subscriber over its high-water mark misses
  // it). Under `sockets`.
  void send_locked(zmq::message_t& message) {
    if (remote && local) {
      zmq::message_t copy;
      copy.copy(message);
      [[maybe_unused]] const auto sent = remote->send(copy, zmq::send_flags::dontwait);
    }
    zmq::socket_t& target = local ? *local : *remote;
    [[maybe_unused]] const auto sent = target.send(message, zmq::send_flags::dontwait);
  }

  // Sends the cameras' catalogue now and then until the publisher goes: an edge that starts
  // later, or reconnects, finds it within one interval (PUB keeps nothing for late joiners).
  void run_catalogue(const std::vector<std::string>& cameras) {
    const auto bytes = encode_catalogue(cameras);
    std::unique_lock lock{sockets};
    while (!stopping) {
      zmq::message_t message{bytes.data(), bytes.size()};
      send_locked(message);
      stop_catalogue.wait_for(lock, catalogue_interval, [this] { return stopping; });
    }
  }

  // Stops the catalogue thread, then closes the sockets and ends the helper threads.
  void close() {
    {
      std::lock_guard lock{sockets};
      stopping = true;
    }
    stop_catalogue.notify_all();
    if (catalogue.joinable()) catalogue.join();
    local.reset();
    remote.reset();
    context.shutdown();  // ends the ZAP handler's and the monitor's blocking calls (ETERM)
    if (zap.joinable()) zap.join();
    if (monitor.joinable()) monitor.join();
  }

  zmq::socket_t make_pub() {
    zmq::socket_t s{context, zmq::socket_type::pub};
    s.set(zmq::sockopt::sndhwm, 2);  // two frames in flight per subscriber, then drop
    s.set(zmq::sockopt::linger, 0);  // closing never waits for a subscriber
    return s;
  }

  // The ZeroMQ Authentication Protocol handler: libzmq asks it about every CurveZMQ client.
  void run_zap(zmq::socket_t handler) {
    // Said once a minute at most: a refused subscriber retries every few seconds.
    std::optional<std::chrono::steady_clock::time_point> refusal_told;
    try {
      for (;;) {
        std::vector<zmq::message_t> request;
        for (bool more = true; more;) {
          zmq::message_t part;
          if (!handler.recv(part)) break;
          more = part.more();
          request.push_back(std::move(part));
        }
        if (request.size() < 7) continue;
        const std::string key = request[6].to_string();
        const bool ok = std::find(allowed.begin(), allowed.end(), key) != allowed.end();
        handler.send(zmq::buffer(std::string_view{"1.0"}), zmq::send_flags::sndmore);
        handler.send(request[1], zmq::send_flags::sndmore);
        handler.send(zmq::buffer(std::string_view{ok ? "200" : "400"}), zmq::send_flags::sndmore);
        handler.send(zmq::buffer(std::string_view{ok ? "OK" : "key not authorized"}),
                     zmq::send_flags::sndmore);
        handler.send(zmq::buffer(std::string_view{}), zmq::send_flags::sndmore);
        handler.send(zmq::buffer(std::string_view{}), zmq::send_flags::none);
        const auto now = std::chrono::steady_clock::now();
        if (!ok && (!refusal_told || now - *refusal_told >= handshake_log_interval)) {
          log::write(log::level::warning,
                     "bus: subscriber %s failed the CurveZMQ handshake: its key is not authorized "
                     "(not in authorized/*.pub)",
                     request[3].to_string().c_str());
          refusal_told = now;
        }
      }
    } catch (const zmq::error_t&) {
      // ETERM: the context is shutting down.
    }
  }

  // Names, once a minute at most per kind, the subscribers that fail the handshake for a reason
  // the ZAP handler never sees (it only sees subscribers that speak CurveZMQ with our key).
  void run_monitor(zmq::socket_t events, bool curve) {
    std::map<std::uint32_t, std::chrono::steady_clock::time_point> told;
    try {
      for (;;) {
        zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds{-1});
        while (const auto e = next_event(events)) {
          if (e->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;  // the ZAP handler said it
          const auto now = std::chrono::steady_clock::now();
          const auto last = told.find(e->value);
          if (last != told.end() && now - last->second < handshake_log_interval) continue;
          told[e->value] = now;
          const char* why = e->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                                ? (curve ? "it has no keys (start it with --bus-keys)"
                                         : "it speaks CurveZMQ, but this publisher has no --bus-keys")
                            : e->value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                                ? "it holds another publisher's server.pub"
                                : "protocol error";
          log::write(log::level::warning, "bus: a subscriber on %s failed the %s handshake: %s (0x%x)",
                     e->endpoint.c_str(), curve ? "CurveZMQ" : "ZeroMQ", why, e->value);
        }
      }
    } catch (const zmq::error_t&) {
      // ETERM: the context is shutting down.
    }
  }
};

publisher::publisher(const std::vector<std::string>& endpoints, const std::optional<key_files>& keys,
                     std::vector<std::string> cameras)
    : impl_{std::make_unique<impl>()} {
  try {
    std::vector<std::string> local;
    std::vector<std::string> remote;
    for (const auto& e : endpoints)
      (e.rfind("ipc://", 0) == 0 ? local : remote).push_back(e);
    if (!remote.empty()) {
      impl_->remote = impl_->make_pub();
      if (keys) {
        impl_->allowed = authorized_keys(keys->dir);
        zmq::socket_t handler{impl_->context, zmq::socket_type::rep};
        handler.bind("inproc://zeromq.zap.01");
        impl_->zap = std::thread{[this, h = std::move(handler)]() mutable { impl_->run_zap(std::move(h)); }};
        impl_->remote->set(zmq::sockopt::curve_server, true);
        impl_->remote->set(zmq::sockopt::curve_secretkey,
                           read_secret_key(fs::path{keys->dir} / "server.secret"));
        impl_->remote->set(zmq::sockopt::zap_domain, "mjpeg");
      }
      impl_->monitor = std::thread{[this, curve = keys.has_value(),
                                    events = watch_handshakes(impl_->context, *impl_->remote)]() mutable {
        impl_->run_monitor(std::move(events), curve);
      }};
      for (const auto& e : remote) {
        if (!keys && !is_loopback_tcp(e))
          log::write(
              log::level::warning,
              "bus: %s is reachable from other hosts and --bus-keys is not set: anyone there can subscribe",
              e.c_str());
        try {
          impl_->remote->bind(e);
        } catch (const zmq::error_t& x) {
          throw std::runtime_error("--publish " + e + ": " + x.what());
        }
        bound_.push_back(impl_->remote->get(zmq::sockopt::last_endpoint));
      }
    }
    if (!local.empty()) {
      impl_->local = impl_->make_pub();
      for (const auto& e : local) {
        try {
          impl_->local->bind(e);
        } catch (const zmq::error_t& x) {
          throw std::runtime_error("bus " + e + ": " + x.what());
        }
        bound_.push_back(e);
      }
    }
    if (!cameras.empty() && (impl_->local || impl_->remote))
      impl_->catalogue = std::thread{[this, cameras = std::move(cameras)] { impl_->run_catalogue(cameras); }};
  } catch (...) {
    impl_->close();
    throw;
  }
}

publisher::~publisher() {
  impl_->close();
}

void publisher::send(const frame& f, std::string_view topic) {
  // One copy of the JPEG into the message; the second socket's copy shares its buffer. Built
  // before taking the lock: other cameras' threads wait only for the sends.
  const std::string prefix = frame_topic(topic);
  zmq::message_t message{prefix.size() - magic.size() + header_size + f.jpeg().size()};
  write_message(static_cast<std::uint8_t*>(message.data()), prefix, f.seq(), f.captured(), f.jpeg());
  // PUB never blocks: a subscriber over its high-water mark simply misses this frame.
  std::lock_guard lock{impl_->sockets};
  if (!impl_->local && !impl_->remote) return;
  impl_->send_locked(message);
}

namespace {

// A subscriber's CurveZMQ keys, read once from a key directory.
struct client_keys {
  std::string server;
  std::string client_public;
  std::string client_secret;

  explicit client_keys(const key_files& keys) {
    const fs::path dir{keys.dir};
    server = read_key(dir / "server.pub");
    client_public = read_key(dir / "client.pub");
    client_secret = read_secret_key(dir / "client.secret");
  }
  // Makes `socket` a CurveZMQ client of the publisher holding server.secret.
  void apply(zmq::socket_t& socket) const {
    socket.set(zmq::sockopt::curve_serverkey, server);
    socket.set(zmq::sockopt::curve_publickey, client_public);
    socket.set(zmq::sockopt::curve_secretkey, client_secret);
  }
};

// Subscribes to one camera's topic on one endpoint, on a socket of its own: ZMQ_CONFLATE keeps
// the last message of the whole socket, so one socket per camera is what keeps the latest frame
// of each. ZeroMQ reconnects by itself; the capture loop's close/open after a silence drops any
// half-dead connection and starts clean.
class bus_source final : public frame_source {
 public:
  bus_source(std::string spec, double fps, const std::optional<key_files>& keys)
      : spec_{std::move(spec)},
        endpoint_{split_source(spec_).endpoint.substr(scheme_prefix.size())},
        topic_{split_source(spec_).topic},
        silence_{std::max(1000, static_cast<int>(3000 / std::max(fps, 0.1)))} {
    if (keys) keys_.emplace(*keys);
  }
  void open() override {
    close();
    socket_.emplace(context_, zmq::socket_type::sub);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->set(zmq::sockopt::conflate, 1);  // latest frame wins: a frame is news, not a task
    // ZeroMQ's own prefix match, at the publisher: only this camera's frames come our way.
    socket_->set(zmq::sockopt::subscribe, frame_topic(topic_));
    socket_->set(zmq::sockopt::maxmsgsize, max_message_bytes_of(topic_));
    if (keys_) keys_->apply(*socket_);
    try {
      events_ = watch_handshakes(context_, *socket_);
      socket_->connect(endpoint_);
      // The unnamed camera also listens for a catalogue, which only a publisher of named cameras
      // sends (see tell_named). On a socket of its own: a conflating socket passes on only one
      // subscription.
      if (topic_.empty() && !told_named_) {
        catalogue_.emplace(context_, zmq::socket_type::sub);
        catalogue_->set(zmq::sockopt::linger, 0);
        catalogue_->set(zmq::sockopt::conflate, 1);
        catalogue_->set(zmq::sockopt::subscribe, catalogue_topic);
        catalogue_->set(zmq::sockopt::maxmsgsize, max_message_bytes);
        if (keys_) keys_->apply(*catalogue_);
        catalogue_->connect(endpoint_);
      }
    } catch (const zmq::error_t& e) {
      close();
      throw std::runtime_error("--source " + spec_ + ": " + e.what());
    }
  }
  bool read(source_image& out) override {
    if (!socket_) return false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{silence_};
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || interrupted_.load()) return false;  // quiet publisher: a source loss
      zmq::pollitem_t items[] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                                 {events_->handle(), 0, ZMQ_POLLIN, 0},
                                 {catalogue_ ? catalogue_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, catalogue_ ? 3 : 2, std::min(left, std::chrono::milliseconds{50}));
      while (const auto e = next_event(*events_))
        tell(*e);
      if (zmq::message_t listed; catalogue_ && catalogue_->recv(listed, zmq::recv_flags::dontwait))
        if (const auto names =
                decode_catalogue({static_cast<const std::uint8_t*>(listed.data()), listed.size()});
            names && !names->empty())
          tell_named(*names);
      zmq::message_t message;
      if (!socket_->recv(message, zmq::recv_flags::dontwait)) continue;
      auto m = decode_message({static_cast<const std::uint8_t*>(message.data()), message.size()});
      if (!m || m->topic != topic_) continue;  // not ours: ignore it
      told_.clear();                           // delivering: a later refusal is news again
      out.pixels.release();
      out.jpeg = std::move(m->jpeg);
      out.seq = m->seq;
      const auto now = wall_clock::now();
      if (m->captured < now - plausible_clock_skew || m->captured > now + plausible_clock_skew) {
        if (times_replaced_.fetch_add(1, std::memory_order_relaxed) == 0)
          log::write(log::level::warning,
                     "bus: %s sent a capture time over an hour from our clock; using the arrival time "
                     "(counted in times_replaced)",
                     endpoint_.c_str());
        out.captured = now;
      } else {
        out.captured = m->captured;
      }
      return true;
    }
  }
  void close() override {
    catalogue_.reset();
    events_.reset();
    socket_.reset();
  }
  void interrupt() override { interrupted_.store(true); }
  std::string describe() const override {
    return "bus " + endpoint_ + (topic_.empty() ? "" : topic_separator + topic_);
  }
  bool forwards() const override { return true; }
  std::uint64_t times_replaced() const override { return times_replaced_.load(std::memory_order_relaxed); }

 private:
  std::string spec_;
  std::string endpoint_;
  std::string topic_;  // the camera's name; empty for the unnamed camera
  int silence_;
  std::optional<client_keys> keys_;
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> events_;     // socket_'s handshake monitor
  std::optional<zmq::socket_t> catalogue_;  // the unnamed camera's ear for a catalogue (tell_named)
  std::vector<std::uint32_t> told_;         // handshake failures logged since the last frame
  std::atomic<bool> interrupted_{false};
  std::atomic<std::uint64_t> times_replaced_{0};
  bool told_named_ = false;  // the publisher's named cameras were logged

  // An edge that heard nothing at start (its origin was down) serves one unnamed camera; when the
  // origin turns out to publish named cameras, that camera never gets a frame. Said once, with
  // what to do (the list of cameras is read at start only), and not listened for again.
  void tell_named(const std::vector<std::string>& names) {
    told_named_ = true;
    catalogue_.reset();
    std::string listed;
    for (const std::string& name : names)
      listed += (listed.empty() ? "" : ", ") + name;
    log::write(log::level::error,
               "bus %s publishes named cameras (%s), not one unnamed camera; this server started before "
               "it could hear them and serves none of them: restart it, or name each with --camera "
               "NAME=%s%cNAME",
               endpoint_.c_str(), listed.c_str(), spec_.c_str(), topic_separator);
  }

  // Says why the publisher refused us, once until frames flow again (ZeroMQ retries every 100 ms).
  void tell(const monitor_event& e) {
    const std::uint32_t kind = e.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? 0 : e.value;
    if (std::find(told_.begin(), told_.end(), kind) != told_.end()) return;
    told_.push_back(kind);
    const char* why = e.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                          ? "our key (client.pub) is not authorized there"
                      : e.value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                          ? (keys_ ? "the publisher does not use CurveZMQ (it has no --bus-keys)"
                                   : "the publisher requires CurveZMQ keys (--bus-keys)")
                          : "protocol error";
    log::write(log::level::error, "bus: %s refused our handshake: %s (0x%x)", endpoint_.c_str(), why,
               e.value);
  }
};

}  // namespace

std::unique_ptr<frame_source> make_bus_source(const std::string& spec, double fps,
                                              const std::optional<key_files>& keys) {
  return std::make_unique<bus_source>(spec, fps, keys);
}

std::optional<std::vector<std::string>> discover_cameras(const std::string& spec,
                                                         const std::optional<key_files>& keys,
                                                         std::chrono::milliseconds wait,
                                                         const std::function<bool()>& cancelled) {
  const std::string endpoint = split_source(spec).endpoint.substr(scheme_prefix.size());
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::sub};
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, max_message_bytes);
  // Whichever comes first tells: a catalogue (named cameras) or an unnamed camera's frame.
  socket.set(zmq::sockopt::subscribe, catalogue_topic);
  socket.set(zmq::sockopt::subscribe, magic);
  if (keys) client_keys{*keys}.apply(socket);
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("--source " + spec + ": " + e.what());
  }
  const auto until = std::chrono::steady_clock::now() + wait;
  while (!cancelled()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::min(left, std::chrono::milliseconds{50}));
    zmq::message_t message;
    while (socket.recv(message, zmq::recv_flags::dontwait)) {
      const std::span<const std::uint8_t> bytes{static_cast<const std::uint8_t*>(message.data()),
                                                message.size()};
      if (auto names = decode_catalogue(bytes)) return names;
      if (decode_message(bytes)) return std::vector<std::string>{};
    }
  }
  return std::nullopt;
}

}  // namespace mjpeg::bus
