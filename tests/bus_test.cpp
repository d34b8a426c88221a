// The frame bus: --publish on an origin, --source zmq+tcp://… on an edge of every variant.
// Bytes, seq and capture time cross unchanged; a lost publisher is a source loss; CurveZMQ keys
// admit the authorized subscriber and nobody else; a subscriber that never reads slows nothing.
// Several cameras travel under one topic each: an edge serves all of them, or the one it names.

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "fake_camera.hpp"
#include "mjpeg/bus.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using mjpeg::test::EveryVariant;

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stats_field;
using mjpeg::test::stream_reader;
namespace fs = std::filesystem;

std::string origin_binary() {
  return mjpeg::test::variant_binary("mjpeg_async");
}

// The /stats of the server at `port`, as text.
std::string stats(unsigned short port) {
  return get(port, "/stats").body;
}

// The tcp endpoint an origin started with "--publish 0" bound.
std::string bus_of(unsigned short port) {
  const std::string list = stats_field(stats(port), "publish");
  const auto begin = list.find("tcp://");
  return list.substr(begin, list.find('"', begin) - begin);
}

// A temporary directory removed at the end of the test.
struct temp_dir {
  fs::path path = fs::temp_directory_path() /
                  ("mjpeg-bus-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

// Parts by X-Frame-Seq, read from a stream.
TEST(BusMessage, RoundTripKeepsSeqTimeAndBytes) {
  const std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9};
  const auto t = mjpeg::wall_clock::time_point{std::chrono::microseconds{1'700'000'000'123'456}};
  const auto bytes = mjpeg::bus::encode_message(42, t, jpeg);
  const auto m = mjpeg::bus::decode_message(bytes);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->seq, 42u);
  EXPECT_EQ(m->captured, t);
  EXPECT_EQ(m->jpeg, jpeg);
}

TEST(BusMessage, RejectsWhatIsNotAFrame) {
  const std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 1, 0xFF, 0xD9};
  auto bytes = mjpeg::bus::encode_message(1, mjpeg::wall_clock::now(), jpeg);
  EXPECT_FALSE(mjpeg::bus::decode_message(std::span{bytes}.first(10)));  // truncated header
  auto wrong_magic = bytes;
  wrong_magic[0] = 'x';
  EXPECT_FALSE(mjpeg::bus::decode_message(wrong_magic));
  auto not_jpeg = bytes;
  not_jpeg.back() = 0;
  EXPECT_FALSE(mjpeg::bus::decode_message(not_jpeg));
  EXPECT_FALSE(mjpeg::bus::decode_message(mjpeg::bus::encode_message(0, mjpeg::wall_clock::now(), jpeg)));
}

TEST(BusMessage, ACamerasTopicIsEndedSoNoNameTakesAnothersFrames) {
  const std::vector<std::uint8_t> jpeg{0xFF, 0xD8, 1, 2, 0xFF, 0xD9};
  const auto t = mjpeg::wall_clock::time_point{std::chrono::microseconds{1'700'000'000'123'456}};
  const auto bytes = mjpeg::bus::encode_message(7, t, jpeg, "ab");
  const std::string text{bytes.begin(), bytes.end()};
  // What ZeroMQ's prefix subscription compares: camera a's topic must not start camera ab's frame.
  EXPECT_TRUE(text.starts_with(mjpeg::bus::frame_topic("ab")));
  EXPECT_FALSE(text.starts_with(mjpeg::bus::frame_topic("a"))) << "camera a would take camera ab's frames";
  EXPECT_FALSE(text.starts_with(mjpeg::bus::frame_topic(""))) << "the unnamed camera would take them";
  const auto m = mjpeg::bus::decode_message(bytes);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->topic, "ab");
  EXPECT_EQ(m->seq, 7u);
  EXPECT_EQ(m->captured, t);
  EXPECT_EQ(m->jpeg, jpeg);
  // The unnamed camera's frames are the format from before topics, byte for byte.
  const auto plain = mjpeg::bus::encode_message(7, t, jpeg);
  EXPECT_EQ(std::string(plain.begin(), plain.begin() + 4), "mjf1");
  EXPECT_EQ(plain.size(), 4 + 8 + 8 + jpeg.size());
  EXPECT_EQ(std::vector<std::uint8_t>(bytes.end() - static_cast<long>(plain.size()) + 4, bytes.end()),
            std::vector<std::uint8_t>(plain.begin() + 4, plain.end()));
  // A topic that is no camera name, or never ends, makes no frame.
  auto upper = bytes;
  upper[4] = 'A';
  EXPECT_FALSE(mjpeg::bus::decode_message(upper));
  std::string endless = "mjf2" + std::string(40, 'a');
  endless.append(text.substr(text.find('\n') + 1));
  EXPECT_FALSE(
      mjpeg::bus::decode_message({reinterpret_cast<const std::uint8_t*>(endless.data()), endless.size()}));
}

TEST(BusMessage, TheCatalogueListsDistinctCameraNames) {
  const std::vector<std::string> names{"a", "ab", "yard"};
  EXPECT_EQ(mjpeg::bus::decode_catalogue(mjpeg::bus::encode_catalogue(names)), names);
  const auto decode = [](const std::string& text) {
    return mjpeg::bus::decode_catalogue({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
  };
  EXPECT_EQ(decode("mjc1a\nb\n"), (std::vector<std::string>{"a", "b"}));
  for (const std::string bad : {"mjc1", "mjc1a\na\n", "mjc1A\n", "mjc1a", "mjc1\n", "mjf1a\n"})
    EXPECT_FALSE(decode(bad)) << bad;
}

TEST(BusOptions, BadValuesAreClearErrors) {
  const auto bad_publish = run_command(origin_binary(), {"--publish", "nonsense"}, 10s);
  EXPECT_EQ(bad_publish.exit_code, 2);
  EXPECT_NE(bad_publish.err.find("--publish"), std::string::npos) << bad_publish.err;
  const auto no_keys = run_command(origin_binary(), {"--bus-keys", "/nonexistent/keys"}, 10s);
  EXPECT_EQ(no_keys.exit_code, 2);
  EXPECT_NE(no_keys.err.find("--bus-keys"), std::string::npos) << no_keys.err;
  // The camera named after '#' must be a camera name.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--source", "zmq+tcp://127.0.0.1:5555#"},
        {"--source", "zmq+tcp://127.0.0.1:5555#Front"},
        {"--camera", "a=zmq+tcp://127.0.0.1:5555#a/b"},
        {"--camera", "a=zmq+ipc:///tmp/bus#a b"}}) {
    const auto bad_topic = run_command(origin_binary(), args, 10s);
    EXPECT_EQ(bad_topic.exit_code, 2) << args.back();
    EXPECT_NE(bad_topic.err.find("the camera after '#'"), std::string::npos) << bad_topic.err;
  }
  const auto bad_endpoint =
      run_command(origin_binary(), {"--port", "0", "--source", "zmq+tcp://nohost"}, 10s);
  EXPECT_EQ(bad_endpoint.exit_code, 1);
  EXPECT_NE(bad_endpoint.err.find("zmq+tcp://nohost"), std::string::npos) << bad_endpoint.err;
  const temp_dir keys;
  EXPECT_EQ(run_command(origin_binary(), {"--bus-keygen", keys.path / "k"}, 10s).exit_code, 0);
  const auto again = run_command(origin_binary(), {"--bus-keygen", keys.path / "k"}, 10s);
  EXPECT_EQ(again.exit_code, 1) << "keys must never be overwritten";
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
}

TEST_P(EveryVariant, ForwardsTheOriginsBytesSeqAndTimestamp) {
  server_process origin{origin_binary(), small_frames({"--publish", "0"})};
  server_process edge{binary(), small_frames({"--source", "zmq+" + bus_of(origin.port())})};
  const auto [from_edge, from_origin] = mjpeg::test::read_relayed(origin.port(), edge.port(), 20);
  ASSERT_GE(from_edge.size(), 10u) << edge.error_output();
  EXPECT_GE(mjpeg::test::same_parts(from_edge, from_origin), 5) << "the edge's seq must be the origin's";
  EXPECT_EQ(stats_field(stats(edge.port()), "source"), "bus " + bus_of(origin.port()));
}

// How often `needle` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

// Two cameras whose names start alike ("a" and "ab"), each replaying its own JPEGs.
struct two_cameras {
  scratch_dir dir;
  std::set<std::string> a = mjpeg::test::write_test_card_jpegs(fs::path{dir.path()} / "a", 320, 240, 1, 7, 4);
  std::set<std::string> ab =
      mjpeg::test::write_test_card_jpegs(fs::path{dir.path()} / "ab", 320, 240, 100, 7, 4);
  std::vector<std::string> args(std::vector<std::string> extra) const {
    std::vector<std::string> all{"--camera", "a=" + dir.path() + "/a", "--camera",
                                 "ab=" + dir.path() + "/ab"};
    all.insert(all.end(), extra.begin(), extra.end());
    return small_frames(all);
  }
};

// `count` parts of `path` on `port`, each required to be one of `jpegs` byte for byte.
void expect_only(unsigned short port, const std::string& path, const std::set<std::string>& jpegs,
                 int count) {
  const auto parts = mjpeg::test::parts_by_seq(port, count, path);
  ASSERT_GE(parts.size(), static_cast<std::size_t>(count) / 2) << path;
  for (const auto& [seq, part] : parts)
    EXPECT_EQ(jpegs.count(part.body), 1u) << path << " seq " << seq << ": another camera's bytes";
}

TEST(Bus, AnEdgeServesEveryCameraOfTheOriginOrTheOneItNames) {
  const two_cameras cameras;
  server_process origin{origin_binary(), cameras.args({"--publish", "0"})};
  const std::string bus = "zmq+" + bus_of(origin.port());
  server_process every{origin_binary(), small_frames({"--source", bus})};
  server_process one{origin_binary(), small_frames({"--camera", "a=" + bus + "#a"})};
  // Every camera under the origin's names, each the origin's bytes by seq.
  for (const auto& [name, jpegs] : {std::pair{"a", &cameras.a}, std::pair{"ab", &cameras.ab}}) {
    const std::string path = std::string{"/"} + name + "/stream";
    const auto [from_edge, from_origin] = mjpeg::test::read_relayed(origin.port(), every.port(), 20, path);
    ASSERT_GE(from_edge.size(), 10u) << path << every.error_output();
    EXPECT_GE(mjpeg::test::same_parts(from_edge, from_origin), 5) << path;
    for (const auto& [seq, part] : from_edge)
      EXPECT_EQ(jpegs->count(part.body), 1u) << path << " seq " << seq << ": another camera's bytes";
  }
  const std::string list = get(every.port(), "/cameras").body;
  EXPECT_LT(list.find(R"({"name":"a")"), list.find(R"({"name":"ab")")) << list;
  // The edge that names camera a serves it alone, never camera ab's frames.
  expect_only(one.port(), "/a/stream", cameras.a, 10);
  EXPECT_EQ(get(one.port(), "/ab/stream").status, 404);
}

TEST(Bus, AnEdgeStartedBeforeAnOriginOfNamedCamerasSaysSoOnce) {
  // The edge starts first: within its discovery wait it hears nothing, and serves the bus as one
  // unnamed camera. The origin that comes up later publishes named cameras only.
  const std::string port = std::to_string(mjpeg::test::free_port());
  server_process edge{origin_binary(), small_frames({"--source", "zmq+tcp://127.0.0.1:" + port})};
  const two_cameras cameras;
  server_process origin{origin_binary(), cameras.args({"--publish", port})};
  const std::string said = "publishes named cameras (a, ab), not one unnamed camera";
  EXPECT_TRUE(mjpeg::test::eventually([&] { return occurrences(edge.error_output(), said) == 1; }, 10s))
      << edge.error_output();
  // The catalogue comes every 500 ms, and the source reopens after each silence: still said once.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(occurrences(edge.error_output(), said), 1u) << edge.error_output();
  EXPECT_NE(edge.error_output().find("--camera NAME=zmq+tcp://127.0.0.1:" + port + "#NAME"),
            std::string::npos)
      << edge.error_output();
}

TEST(Bus, ACameraThePublisherDoesNotHaveIsServedAnywayAndSaidOnce) {
  server_process origin{origin_binary(), small_frames({"--camera", "card=pattern", "--publish", "0"})};
  const std::string bus = "zmq+" + bus_of(origin.port());
  server_process edge{origin_binary(), small_frames({"--camera", "porch=" + bus + "#porch", "--camera",
                                                     "card=" + bus + "#card"})};
  stream_reader viewer{edge.port(), "/card/stream"};
  ASSERT_EQ(viewer.open(), 200);
  EXPECT_TRUE(viewer.next()) << "the camera the publisher has plays";
  EXPECT_EQ(get(edge.port(), "/porch/snapshot").status, 503);
  // Reopened with backoff (0.25, 0.5, 1 s, …) while the other camera plays on: said once. (The
  // generous wait for each frame only rides out a loaded machine.)
  const auto until = std::chrono::steady_clock::now() + 2500ms;
  for (int i = 0; std::chrono::steady_clock::now() < until; ++i)
    ASSERT_TRUE(viewer.next(5s)) << "frame " << i;
  EXPECT_EQ(occurrences(edge.error_output(), "no frame from the source of camera porch yet"), 1u)
      << edge.error_output();
  EXPECT_EQ(occurrences(edge.error_output(), "#porch stopped delivering"), 1u) << edge.error_output();
  EXPECT_EQ(get(edge.port(), "/porch/snapshot").status, 503);
}

TEST(Bus, LostPublisherIsASourceLossAndFramesResume) {
  std::string bus;
  auto origin = std::make_unique<server_process>(origin_binary(), small_frames({"--publish", "0"}));
  bus = bus_of(origin->port());
  server_process edge{origin_binary(), small_frames({"--source", "zmq+" + bus})};
  stream_reader viewer{edge.port()};
  ASSERT_EQ(viewer.open(), 200);
  ASSERT_TRUE(viewer.next());

  origin->signal(SIGKILL);
  origin->wait(5s);
  origin.reset();
  std::string state;
  for (int i = 0; i < 40 && state != "down"; ++i) {
    std::this_thread::sleep_for(100ms);
    state = stats_field(stats(edge.port()), "source_state");
  }
  EXPECT_EQ(state, "down") << "the edge must report the publisher's loss";
  EXPECT_EQ(stats_field(stats(edge.port()), "viewers_now"), "1") << "the viewer stays connected";

  // A new origin on the same bus port: the same viewer connection gets frames again.
  const auto port = bus.substr(bus.rfind(':') + 1);
  server_process again{origin_binary(), small_frames({"--publish", port})};
  bool resumed = false;
  for (int i = 0; i < 100 && !resumed; ++i) {
    const auto part = viewer.next(10s);
    ASSERT_TRUE(part) << "frames must resume on the open connection";
    const double age =
        static_cast<double>(mjpeg::test::now_us()) / 1e6 - std::stod(part->headers.at("x-timestamp"));
    resumed = age < 1.0;
  }
  EXPECT_TRUE(resumed);
  EXPECT_EQ(stats_field(stats(edge.port()), "source_state"), "up");
}

// Two key sets under `keys`: good/ for the publisher and its allowed subscriber, and bad/, an
// intruder that knows the publisher's public key but whose own key is not authorized.
void make_good_and_bad_keys(const fs::path& keys) {
  ASSERT_EQ(run_command(origin_binary(), {"--bus-keygen", keys / "good"}, 10s).exit_code, 0);
  ASSERT_EQ(run_command(origin_binary(), {"--bus-keygen", keys / "bad"}, 10s).exit_code, 0);
  fs::copy_file(keys / "good" / "server.pub", keys / "bad" / "server.pub",
                fs::copy_options::overwrite_existing);
}

TEST(Bus, CurveKeysAdmitOnlyAuthorizedSubscribers) {
  const temp_dir keys;
  const auto good = keys.path / "good";
  const auto bad = keys.path / "bad";
  ASSERT_NO_FATAL_FAILURE(make_good_and_bad_keys(keys.path));

  server_process origin{origin_binary(), small_frames({"--publish", "0", "--bus-keys", good})};
  const std::string source = "zmq+" + bus_of(origin.port());
  server_process allowed{origin_binary(), small_frames({"--source", source, "--bus-keys", good})};
  server_process refused{origin_binary(), small_frames({"--source", source, "--bus-keys", bad})};
  server_process keyless{origin_binary(), small_frames({"--source", source})};

  const auto parts = mjpeg::test::parts_by_seq(allowed.port(), 3);
  EXPECT_EQ(parts.size(), 3u) << allowed.error_output();
  std::this_thread::sleep_for(1500ms);
  for (const server_process* intruder : {&refused, &keyless}) {
    EXPECT_EQ(stats_field(stats(intruder->port()), "frame_seq"), "0")
        << "an unauthorized subscriber got a frame";
    EXPECT_EQ(get(intruder->port(), "/snapshot").status, 503);
  }
  EXPECT_NE(origin.error_output().find("not authorized"), std::string::npos) << origin.error_output();
}

TEST(Bus, AKeyMismatchIsNamedOnceOnBothSides) {
  const temp_dir keys;
  const auto good = keys.path / "good";
  const auto bad = keys.path / "bad";
  ASSERT_NO_FATAL_FAILURE(make_good_and_bad_keys(keys.path));

  server_process keyed{origin_binary(), small_frames({"--publish", "0", "--bus-keys", good})};
  server_process plain{origin_binary(), small_frames({"--publish", "0"})};
  server_process keyless{origin_binary(), small_frames({"--source", "zmq+" + bus_of(keyed.port())})};
  server_process refused{origin_binary(),
                         small_frames({"--source", "zmq+" + bus_of(keyed.port()), "--bus-keys", bad})};
  server_process curve_to_plain{
      origin_binary(), small_frames({"--source", "zmq+" + bus_of(plain.port()), "--bus-keys", good})};

  const std::string no_keys = "requires CurveZMQ keys (--bus-keys)";
  const std::string not_authorized = "our key (client.pub) is not authorized there";
  const std::string not_curve = "the publisher does not use CurveZMQ";
  const std::string origin_no_keys = "failed the CurveZMQ handshake: it has no keys";
  const std::string origin_refused = "failed the CurveZMQ handshake: its key is not authorized";
  const std::string origin_not_curve = "it speaks CurveZMQ, but this publisher has no --bus-keys";
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] {
        return keyless.error_output().find(no_keys) != std::string::npos &&
               refused.error_output().find(not_authorized) != std::string::npos &&
               curve_to_plain.error_output().find(not_curve) != std::string::npos &&
               keyed.error_output().find(origin_no_keys) != std::string::npos &&
               keyed.error_output().find(origin_refused) != std::string::npos &&
               plain.error_output().find(origin_not_curve) != std::string::npos;
      },
      30s))  // five processes start and handshake at once: generous on a loaded machine
      << keyless.error_output() << refused.error_output() << curve_to_plain.error_output()
      << keyed.error_output() << plain.error_output();
  // The refused subscribers retry every 100 ms or so; each side still says it once.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(occurrences(keyless.error_output(), no_keys), 1u) << keyless.error_output();
  EXPECT_EQ(occurrences(refused.error_output(), not_authorized), 1u) << refused.error_output();
  EXPECT_EQ(occurrences(curve_to_plain.error_output(), not_curve), 1u) << curve_to_plain.error_output();
  EXPECT_EQ(occurrences(keyed.error_output(), origin_no_keys), 1u) << keyed.error_output();
  EXPECT_EQ(occurrences(keyed.error_output(), origin_refused), 1u) << keyed.error_output();
  EXPECT_EQ(occurrences(plain.error_output(), origin_not_curve), 1u) << plain.error_output();
}

// One bus message that decodes as a frame: seq, now, and a JPEG-shaped body of `size` bytes.
zmq::message_t rogue_frame(std::uint64_t seq, std::size_t size) {
  std::vector<std::uint8_t> jpeg(size, 0x55);
  jpeg[0] = 0xFF;
  jpeg[1] = 0xD8;
  jpeg[size - 2] = 0xFF;
  jpeg[size - 1] = 0xD9;
  const auto bytes = mjpeg::bus::encode_message(seq, mjpeg::wall_clock::now(), jpeg);
  return zmq::message_t{bytes.data(), bytes.size()};
}

TEST(Bus, AnOversizedMessageNeverBecomesAFrame) {
  zmq::context_t context;
  zmq::socket_t rogue{context, zmq::socket_type::pub};
  rogue.bind("tcp://127.0.0.1:*");
  server_process edge{origin_binary(),
                      small_frames({"--source", "zmq+" + rogue.get(zmq::sockopt::last_endpoint)})};
  const auto seq = [&] { return std::stoull(stats_field(stats(edge.port()), "frame_seq")); };
  std::uint64_t next = 1;
  ASSERT_TRUE(mjpeg::test::eventually(
      [&] {
        rogue.send(rogue_frame(next++, 200), zmq::send_flags::none);
        return seq() > 0;
      },
      10s))
      << edge.error_output();

  // One byte over the relay's 64 MiB JPEG limit, sent again and again (a reopened subscriber
  // misses what was sent before it connected): the edge drops it, and the connection with it.
  constexpr std::uint64_t huge_seq = 1'000'000;
  zmq::message_t huge = rogue_frame(huge_seq, 64 * 1024 * 1024 + 1);
  const auto flood_until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < flood_until) {
    zmq::message_t copy;
    copy.copy(huge);  // shares the bytes
    rogue.send(copy, zmq::send_flags::none);
    ASSERT_NE(seq(), huge_seq) << "the oversized message became a frame";
    std::this_thread::sleep_for(100ms);
  }
  // The edge reconnects and frames flow again.
  next = 2'000'000;
  EXPECT_TRUE(mjpeg::test::eventually(
      [&] {
        rogue.send(rogue_frame(next++, 200), zmq::send_flags::none);
        return seq() >= 2'000'000;
      },
      10s))
      << edge.error_output();
}

TEST(Bus, ImplausibleCaptureTimesAreReplacedAndCounted) {
  zmq::context_t context;
  zmq::socket_t rogue{context, zmq::socket_type::pub};
  rogue.bind("tcp://127.0.0.1:*");
  server_process edge{origin_binary(),
                      small_frames({"--source", "zmq+" + rogue.get(zmq::sockopt::last_endpoint)})};
  // Capture times of the epoch, before it, and int64 max microseconds, in turn.
  const std::int64_t bad_times[] = {0, -1'000'000, std::numeric_limits<std::int64_t>::max()};
  std::atomic<bool> stop{false};
  std::thread sender{[&] {
    for (std::uint64_t seq = 1; !stop.load(); ++seq) {
      zmq::message_t m = rogue_frame(seq, 200);
      const auto us = static_cast<std::uint64_t>(bad_times[seq % 3]);
      for (int i = 0; i < 8; ++i)  // the capture time: bytes 12..19, little-endian
        static_cast<std::uint8_t*>(m.data())[12 + i] = static_cast<std::uint8_t>(us >> (8 * i));
      rogue.send(m, zmq::send_flags::none);
      std::this_thread::sleep_for(30ms);
    }
  }};
  const auto replaced = [&] {
    const auto n = stats_field(stats(edge.port()), "times_replaced");
    return n.empty() ? 0ull : std::stoull(n);
  };
  EXPECT_TRUE(mjpeg::test::eventually([&] { return replaced() >= 3; }, 10s)) << edge.error_output();
  stream_reader viewer{edge.port()};
  EXPECT_EQ(viewer.open(), 200);
  for (int i = 0; i < 6; ++i) {
    const auto part = viewer.next(5s);
    ASSERT_TRUE(part) << "frame " << i;
    const double age =
        static_cast<double>(mjpeg::test::now_us()) / 1e6 - std::stod(part->headers.at("x-timestamp"));
    EXPECT_LT(std::abs(age), 60.0) << "X-Timestamp " << part->headers.at("x-timestamp");
  }
  const std::string metrics = get(edge.port(), "/metrics").body;
  EXPECT_NE(metrics.find("mjpeg_source_times_replaced_total "), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("mjpeg_frame_age_seconds_sum -"), std::string::npos) << metrics;
  stop.store(true);
  sender.join();
  EXPECT_EQ(occurrences(edge.error_output(), "sent a capture time over an hour"), 1u) << edge.error_output();
}

TEST(Bus, ASubscriberThatNeverReadsSlowsNothing) {
  server_process origin{origin_binary(), small_frames({"--publish", "0"})};
  // A plain subscriber (no conflate) that connects and never reads: its queue fills up.
  zmq::context_t context;
  zmq::socket_t stuck{context, zmq::socket_type::sub};
  stuck.set(zmq::sockopt::rcvhwm, 1);
  stuck.set(zmq::sockopt::rcvbuf, 4096);
  stuck.set(zmq::sockopt::subscribe, "");
  stuck.connect(bus_of(origin.port()));
  std::this_thread::sleep_for(500ms);

  const auto before = std::stoull(stats_field(stats(origin.port()), "frames_captured"));
  stream_reader viewer{origin.port()};
  ASSERT_EQ(viewer.open(), 200);
  for (int i = 0; i < 30; ++i)
    ASSERT_TRUE(viewer.next(2s)) << "frame " << i;
  const auto after = std::stoull(stats_field(stats(origin.port()), "frames_captured"));
  EXPECT_GE(after - before, 25u) << "capture must not wait for the bus";
}

}  // namespace
