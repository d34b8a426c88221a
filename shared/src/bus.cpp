#include "mjpeg/bus.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include <zmq.hpp>

#include "mjpeg/log.hpp"
#include "mjpeg/multipart.hpp"

namespace mjpeg::bus {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view magic = "mjf1";
constexpr std::size_t header_size = 4 + 8 + 8;
constexpr int key_length = 40;  // Z85 text of a 32-byte CurveZMQ key
// The largest message a subscriber takes: the relay's limit on one JPEG plus our header. A bigger
// one drops the connection (libzmq) instead of growing the edge.
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

namespace {

// Writes one message into `out`, which has room for header_size + jpeg.size() bytes.
void write_message(std::uint8_t* out, std::uint64_t seq, wall_clock::time_point captured,
                   std::span<const std::uint8_t> jpeg) {
  std::memcpy(out, magic.data(), magic.size());
  put_u64(out + 4, seq);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(captured.time_since_epoch()).count();
  put_u64(out + 12, static_cast<std::uint64_t>(us));
  std::memcpy(out + header_size, jpeg.data(), jpeg.size());
}

}  // namespace

std::vector<std::uint8_t> encode_message(std::uint64_t seq, wall_clock::time_point captured,
                                         std::span<const std::uint8_t> jpeg) {
  std::vector<std::uint8_t> out(header_size + jpeg.size());
  write_message(out.data(), seq, captured, jpeg);
  return out;
}

std::optional<message> decode_message(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < header_size || std::memcmp(bytes.data(), magic.data(), magic.size()) != 0)
    return std::nullopt;
  message m;
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
// given. Every frame goes to both; the second copy shares the first's buffer.
struct publisher::impl {
  zmq::context_t context{1};
  std::optional<zmq::socket_t> local;
  std::optional<zmq::socket_t> remote;
  std::vector<std::string> allowed;  // binary public keys; empty without keys
  std::thread zap;
  std::thread monitor;

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

publisher::publisher(const std::vector<std::string>& endpoints, const std::optional<key_files>& keys)
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
  } catch (...) {
    impl_->local.reset();
    impl_->remote.reset();
    impl_->context.shutdown();
    if (impl_->zap.joinable()) impl_->zap.join();
    if (impl_->monitor.joinable()) impl_->monitor.join();
    throw;
  }
}

publisher::~publisher() {
  impl_->local.reset();
  impl_->remote.reset();
  impl_->context.shutdown();  // ends the ZAP handler's and the monitor's blocking calls (ETERM)
  if (impl_->zap.joinable()) impl_->zap.join();
  if (impl_->monitor.joinable()) impl_->monitor.join();
}

void publisher::send(const frame& f) {
  // One copy of the JPEG into the message; the second socket's copy shares its buffer.
  zmq::message_t message{header_size + f.jpeg().size()};
  write_message(static_cast<std::uint8_t*>(message.data()), f.seq(), f.captured(), f.jpeg());
  // PUB never blocks: a subscriber over its high-water mark simply misses this frame.
  if (impl_->remote && impl_->local) {
    zmq::message_t copy;
    copy.copy(message);
    [[maybe_unused]] const auto sent = impl_->remote->send(copy, zmq::send_flags::dontwait);
  }
  zmq::socket_t& target = impl_->local ? *impl_->local : *impl_->remote;
  [[maybe_unused]] const auto sent = target.send(message, zmq::send_flags::dontwait);
}

namespace {

// Subscribes to one endpoint. ZeroMQ reconnects by itself; the capture loop's close/open after a
// silence drops any half-dead connection and starts clean.
class bus_source final : public frame_source {
 public:
  bus_source(std::string spec, double fps, std::optional<key_files> keys)
      : spec_{std::move(spec)},
        endpoint_{spec_.substr(scheme_prefix.size())},
        silence_{std::max(1000, static_cast<int>(3000 / std::max(fps, 0.1)))},
        keys_{std::move(keys)} {
    if (keys_) {
      const fs::path dir{keys_->dir};
      server_key_ = read_key(dir / "server.pub");
      public_key_ = read_key(dir / "client.pub");
      secret_key_ = read_secret_key(dir / "client.secret");
    }
  }
  void open() override {
    close();
    socket_.emplace(context_, zmq::socket_type::sub);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->set(zmq::sockopt::conflate, 1);  // latest frame wins: a frame is news, not a task
    socket_->set(zmq::sockopt::subscribe, "");
    socket_->set(zmq::sockopt::maxmsgsize, max_message_bytes);
    if (keys_) {
      socket_->set(zmq::sockopt::curve_serverkey, server_key_);
      socket_->set(zmq::sockopt::curve_publickey, public_key_);
      socket_->set(zmq::sockopt::curve_secretkey, secret_key_);
    }
    try {
      events_ = watch_handshakes(context_, *socket_);
      socket_->connect(endpoint_);
    } catch (const zmq::error_t& e) {
      events_.reset();
      socket_.reset();
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
                                 {events_->handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::min(left, std::chrono::milliseconds{50}));
      while (const auto e = next_event(*events_))
        tell(*e);
      zmq::message_t message;
      if (!socket_->recv(message, zmq::recv_flags::dontwait)) continue;
      auto m = decode_message({static_cast<const std::uint8_t*>(message.data()), message.size()});
      if (!m) continue;  // not ours: ignore it
      told_.clear();     // delivering: a later refusal is news again
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
    events_.reset();
    socket_.reset();
  }
  void interrupt() override { interrupted_.store(true); }
  std::string describe() const override { return "bus " + endpoint_; }
  bool forwards() const override { return true; }
  std::uint64_t times_replaced() const override { return times_replaced_.load(std::memory_order_relaxed); }

 private:
  std::string spec_;
  std::string endpoint_;
  int silence_;
  std::optional<key_files> keys_;
  std::string server_key_;
  std::string public_key_;
  std::string secret_key_;
  zmq::context_t context_{1};
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> events_;  // socket_'s handshake monitor
  std::vector<std::uint32_t> told_;      // handshake failures logged since the last frame
  std::atomic<bool> interrupted_{false};
  std::atomic<std::uint64_t> times_replaced_{0};

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

}  // namespace mjpeg::bus
