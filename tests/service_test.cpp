// Running it for real, over the real binaries: --version, the --config file, /metrics checked by
// promtool, the log lines a person reads (viewer joins and leaves with the reason, rate limit,
// --quiet, the journal's format) and systemd socket activation.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "every_variant.hpp"
#include "server_process.hpp"

namespace {

using mjpeg::test::EveryVariant;

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;
using mjpeg::test::small_frames;
using mjpeg::test::stream_reader;
using steady = std::chrono::steady_clock;

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
    ++n;
  return n;
}

// Waits until `server`'s stderr contains `what` (log lines arrive after the event that causes them).
bool log_shows(const server_process& server, const std::string& what, std::chrono::milliseconds timeout) {
  const auto until = steady::now() + timeout;
  while (server.error_output().find(what) == std::string::npos) {
    if (steady::now() >= until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// The value of one sample in a Prometheus text page ("name{labels} value"), or -1 if absent.
double sample(const std::string& page, const std::string& series) {
  const auto at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(page.c_str() + at + series.size() + 2, nullptr);
}

// `promtool check metrics` on `page`: its exit code and what it said.
mjpeg::test::run_result promtool_check(const scratch_dir& dir, const std::string& page) {
  const std::string file = dir.write("metrics.txt", page);
  return run_command("/bin/sh", {"-c", "promtool check metrics < " + file}, 30s);
}

// --- --version -------------------------------------------------------------------------------

TEST_P(EveryVariant, VersionPrintsTheProjectVersion) {
  const auto result = run_command(binary(), {"--version"}, 10s);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::string name = GetParam();
  std::replace(name.begin(), name.end(), '_', '-');
  EXPECT_EQ(result.out, name + " " + MJPEG_PROJECT_VERSION + "\n");
}

// --- /metrics --------------------------------------------------------------------------------

TEST_P(EveryVariant, MetricsPassPromtoolAndCountWhatHappened) {
  scratch_dir dir;
  server_process server{binary(), small_frames()};
  {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(viewer.next()) << server.error_output();
  }
  ASSERT_EQ(get(server.port(), "/no-such-page").status, 404);
  // The viewer's end is counted once the server notices it left (at its next frame).
  std::string page;
  const auto until = steady::now() + 10s;
  do {
    const auto r = get(server.port(), "/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    page = r.body;
  } while (sample(page, "mjpeg_viewers_ended_total{reason=\"closed\"}") < 1 && steady::now() < until);

  const auto check = promtool_check(dir, page);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << page;
  EXPECT_EQ(check.out + check.err, "") << "promtool has remarks";
  EXPECT_EQ(sample(page, "mjpeg_viewers_ended_total{reason=\"closed\"}"), 1) << page;
  EXPECT_EQ(sample(page, "mjpeg_viewers"), 0) << page;
  EXPECT_GE(sample(page, "mjpeg_frames_sent_total"), 3) << page;
  EXPECT_GE(sample(page, "mjpeg_frame_age_seconds_count"), 3) << page;
  EXPECT_EQ(sample(page, "mjpeg_frame_age_seconds_count"),
            sample(page, "mjpeg_frame_age_seconds_bucket{le=\"+Inf\"}"));
  EXPECT_GT(sample(page, "mjpeg_frames_captured_total"), 0) << page;
  EXPECT_EQ(sample(page, "mjpeg_bad_requests_total{status=\"404\"}"), 1) << page;
  EXPECT_EQ(sample(page, "mjpeg_source_state{state=\"up\"}"), 1) << page;
  EXPECT_GE(sample(page, "mjpeg_connections_accepted_total"), 3) << page;
  EXPECT_EQ(sample(page, "mjpeg_connections_rejected_total{reason=\"capacity\"}"), 0) << page;
  EXPECT_NE(page.find("mjpeg_build_info{variant=\""), std::string::npos) << page;
}

// With several cameras every camera's series carry its name, and promtool still has no remarks.
TEST(Metrics, SeveralCamerasAreLabelledAndPassPromtool) {
  scratch_dir dir;
  server_process server{mjpeg::test::variant_binary("mjpeg_async"),
                        small_frames({"--camera", "front=pattern", "--camera", "yard=pattern"})};
  {
    stream_reader viewer{server.port(), "/yard/stream"};
    ASSERT_EQ(viewer.open(), 200);
    ASSERT_TRUE(viewer.next());
  }
  const std::string page = get(server.port(), "/metrics").body;
  const auto check = promtool_check(dir, page);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << page;
  EXPECT_EQ(check.out + check.err, "") << "promtool has remarks";
  EXPECT_EQ(sample(page, "mjpeg_source_up{camera=\"front\"}"), 1) << page;
  EXPECT_GE(sample(page, "mjpeg_frames_sent_total{camera=\"yard\"}"), 1) << page;
  EXPECT_EQ(sample(page, "mjpeg_frames_sent_total{camera=\"front\"}"), 0) << page;
  EXPECT_GT(sample(page, "mjpeg_frames_captured_total{camera=\"front\"}"), 0) << page;
}

TEST(Metrics, SameAccessControlAsEveryEndpoint) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--auth", "user:secret"})};
  EXPECT_EQ(get(server.port(), "/metrics").status, 401);
  const auto ok = mjpeg::test::request(
      server.port(),
      "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n");
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("mjpeg_bad_requests_total{status=\"401\"} 1"), std::string::npos) << ok.body;
}

// --- The --config file -----------------------------------------------------------------------

TEST(ConfigFile, SetsOptionsAndTheCommandLineWins) {
  scratch_dir dir;
  const std::string config = dir.write("server.conf",
                                       "# comment\n"
                                       "width = 320\n"
                                       "height = 240\n"
                                       "fps = 12\n"
                                       "source = \"pattern\"\n"
                                       "send-timeout = 3\n");
  server_process server{mjpeg::test::variant_binary("mjpeg_thread_pool"),
                        {"--config", config, "--fps", "25"}};
  const auto stats = get(server.port(), "/stats").body;
  EXPECT_NE(stats.find("\"width\":320,\"height\":240"), std::string::npos) << "from the file: " << stats;
  EXPECT_NE(stats.find("\"fps_target\":25,"), std::string::npos) << "the command line wins: " << stats;
}

TEST(ConfigFile, EveryOptionIsAccepted) {
  // Each option of --help, set in a file with its default value: none is refused. Options added
  // later are covered without touching this test.
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_async");
  const auto help = run_command(binary, {"--help"}, 10s).out;
  std::string config;
  const std::regex option{R"(--([a-z][a-z-]+)(?: (?:TEXT|INT|FLOAT)[^=\n]*=([^ \n]+))?)"};
  std::size_t options = 0;
  for (auto it = std::sregex_iterator(help.begin(), help.end(), option); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (name == "help" || name == "version" || name == "config" || (*it)[2].str().empty()) continue;
    config += name + " = " + (*it)[2].str() + "\n";
    ++options;
  }
  EXPECT_GE(options, 12u) << help;
  const auto result = run_command(binary,
                                  {"--config", dir.write("all.conf", config), "--duration", "0.2", "--port",
                                   "0", "--width", "64", "--height", "48"},
                                  20s);
  EXPECT_EQ(result.exit_code, 0) << config << result.err;
}

TEST(ConfigFile, BadFilesAreOneLineNamingTheProblem) {
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  struct bad {
    std::string text;  // the file
    std::string says;  // in the error line
  };
  const std::vector<bad> cases = {
      {"port = 0\nwidth = 320\nbogus = 3\n", "line 3: unknown key 'bogus'"},
      {"  frames-per-second=9\n", "line 1: unknown key 'frames-per-second'"},
      {"[server]\nport = 0\n", "unknown section [server]"},
      {"port = 99999\n", "--port"},
      {"fps = fast\n", "--fps"},
  };
  for (const auto& c : cases) {
    const auto result = run_command(binary, {"--config", dir.write("bad.conf", c.text)}, 10s);
    EXPECT_EQ(result.exit_code, 2) << c.text << result.err;
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.text << result.err;
    EXPECT_EQ(count_of(result.err, "\n"), 1u) << "one line: " << result.err;
  }
  const auto missing = run_command(binary, {"--config", dir.path() + "/missing.conf"}, 10s);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("missing.conf"), std::string::npos) << missing.err;
}

// What --config refuses before reading: anything that is not a regular file once links are
// followed, and files over 1 MB. Each is exit 2 at once with one line (a FIFO without a writer
// used to block in open(), /dev/zero to be read for ever, a read error to count as an empty file).
TEST(ConfigFile, OnlyARegularFileOfSaneSizeIsRead) {
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  const std::string fifo = dir.path() + "/fifo.conf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string link = dir.path() + "/random.conf";
  ASSERT_EQ(::symlink("/dev/urandom", link.c_str()), 0);
  std::filesystem::create_directory(dir.path() + "/conf.d");
  const std::string big =
      dir.write("big.conf", "# padding\n" + std::string(1100 * 1024, '#') + "\nport = 0\n");
  struct bad {
    std::string path;
    std::string says;
  };
  const std::vector<bad> cases = {
      {"/dev/zero", "not a regular file (a character device)"},
      {link, "not a regular file (a character device)"},
      {fifo, "not a regular file (a FIFO)"},
      {dir.path() + "/conf.d", "is a directory"},
      {big, "larger than 1 MB"},
      {"/proc/self/mem", "cannot read it: Input/output error"},
      {dir.path() + "/missing.conf", "No such file or directory"},
  };
  for (const auto& c : cases) {
    // A server that read /dev/zero for ever or blocked on the FIFO would be killed at the cap (-1).
    const auto result = run_command(binary, {"--config", c.path, "--port", "0"}, 20s);
    EXPECT_EQ(result.exit_code, 2) << c.path << ": " << result.err;
    EXPECT_NE(result.err.find("config file " + c.path + ": " + c.says), std::string::npos) << result.err;
    EXPECT_EQ(count_of(result.err, "\n"), 1u) << "one line: " << result.err;
  }
}

// A key set twice is refused, naming both lines: the first value used to win silently, so an
// override appended at the end of the file was ignored (a repeat on the next line was an error).
TEST(ConfigFile, ARepeatedKeyIsRefusedNamingBothLines) {
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  for (const std::string text : {"port = 0\nwidth = 320\nport = 8081\n", "port = 0\nport = 8081\n",
                                 "allow-host = \"a.example\"\n# more\nallow-host = \"b.example\"\n"}) {
    const auto result = run_command(binary, {"--config", dir.write("twice.conf", text)}, 20s);
    EXPECT_EQ(result.exit_code, 2) << text << result.err;
    const std::string key = text.substr(0, text.find(' '));
    const std::string second = text.starts_with("port = 0\nport") ? "2" : "3";
    EXPECT_NE(result.err.find("line " + second + ": '" + key + "' is already set on line 1"),
              std::string::npos)
        << text << result.err;
    EXPECT_EQ(count_of(result.err, "\n"), 1u) << result.err;
  }
  // A list over several lines is one setting.
  const auto list =
      run_command(binary,
                  {"--config", dir.write("list.conf",
                                         "allow-host = [\"a.example\",\n  \"b.example\"]\n"
                                         "duration = 0.2\nport = 0\nwidth = 64\nheight = 48\n")},
                  20s);
  EXPECT_EQ(list.exit_code, 0) << list.err;
}

// Messages show printable text only, and say precisely what is wrong.
TEST(ConfigFile, MessagesArePrintableAndPrecise) {
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  const auto printable = [](const std::string& text) {
    return std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return c == '\n' || (c >= 0x20 && c < 0x7f); });
  };
  // A binary file: which line, which byte, no raw bytes echoed.
  const char raw[] = "port = 0\n\x1b[2J\xff\xd8\xff\x00 = 1\n";
  const auto binary_file =
      run_command(binary, {"--config", dir.write("image.conf", std::string(raw, sizeof raw - 1))}, 20s);
  EXPECT_EQ(binary_file.exit_code, 2);
  EXPECT_TRUE(printable(binary_file.err)) << binary_file.err;
  EXPECT_NE(binary_file.err.find("line 2: not text (byte \\x1b)"), std::string::npos) << binary_file.err;
  // A value that is not a number says so, with its line.
  const auto port =
      run_command(binary, {"--config", dir.write("port.conf", "width = 320\nport = \"8080abc\"\n")}, 20s);
  EXPECT_EQ(port.exit_code, 2);
  EXPECT_NE(port.err.find("line 2: --port: '8080abc' is not a number"), std::string::npos) << port.err;
  EXPECT_EQ(count_of(port.err, "\n"), 1u) << port.err;
  // A UTF-8 byte order mark (Windows editors write one) is no part of the first key.
  const auto bom = run_command(
      binary,
      {"--config", dir.write("bom.conf", "\xef\xbb\xbfport = 0\nduration = 0.2\nwidth = 64\nheight = 48\n")},
      10s);
  EXPECT_EQ(bom.exit_code, 0) << bom.err;
}

TEST(ConfigFile, TheShippedSampleIsValid) {
  // deploy/mjpeg-concurrency.conf, as the service reads it, with a free port for the test.
  const auto result = run_command(mjpeg::test::variant_binary("mjpeg_async"),
                                  {"--config", MJPEG_SOURCE_DIR "/deploy/mjpeg-concurrency.conf", "--port",
                                   "0", "--duration", "0.2", "--width", "64", "--height", "48"},
                                  20s);
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

// --- Secrets ---------------------------------------------------------------------------------

// An --auth-file or a bus secret key that group or others may read is used, with one warning
// naming it and its mode, as ssh gives for a key; mode 600 gets none.
TEST(Secrets, ASecretOthersCanReadIsWarnedAbout) {
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_async");
  const std::string auth = dir.write("auth", "viewer:secret-42\n");
  const std::vector<std::string> quick = {"--duration", "0.2", "--port",   "0",
                                          "--width",    "64",  "--height", "48"};
  const auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), quick.begin(), quick.end());
    return args;
  };
  ASSERT_EQ(::chmod(auth.c_str(), 0644), 0);
  const auto open_file = run_command(binary, with({"--auth-file", auth}), 20s);
  EXPECT_EQ(open_file.exit_code, 0) << open_file.err;
  EXPECT_NE(
      open_file.err.find("--auth-file " + auth + " can be read by every local user (mode 0644): chmod 600"),
      std::string::npos)
      << open_file.err;
  ASSERT_EQ(::chmod(auth.c_str(), 0600), 0);
  const auto closed_file = run_command(binary, with({"--auth-file", auth}), 20s);
  EXPECT_EQ(closed_file.exit_code, 0) << closed_file.err;
  EXPECT_EQ(closed_file.err.find("can be read by"), std::string::npos) << closed_file.err;

  const std::string keys = dir.path() + "/keys";
  ASSERT_EQ(run_command(binary, {"--bus-keygen", keys}, 20s).exit_code, 0);
  ASSERT_EQ(::chmod((keys + "/server.secret").c_str(), 0640), 0);
  const auto publisher = run_command(binary, with({"--publish", "0", "--bus-keys", keys}), 20s);
  EXPECT_EQ(publisher.exit_code, 0) << publisher.err;
  EXPECT_NE(publisher.err.find(keys + "/server.secret can be read by its group (mode 0640)"),
            std::string::npos)
      << publisher.err;
}

// --- Logs ------------------------------------------------------------------------------------

// One line when a viewer joins and one when it leaves, with peer, duration, counts and the reason:
// closed by the viewer, send timeout, shutdown. Blocking machinery and async each set the reason.
TEST_P(EveryVariant, ViewerLinesSayWhoCameAndWhyTheyLeft) {
  server_process server{binary(),
                        {"--width", "640", "--height", "480", "--fps", "30", "--send-timeout", "0.5"}};
  {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    ASSERT_TRUE(viewer.next());
  }
  EXPECT_TRUE(log_shows(server, "closed by viewer", 5s)) << server.error_output();
  const std::regex joined{R"(viewer (\d+) from 127\.0\.0\.1:\d+ connected \(1 watching\))"};
  const std::regex left{
      R"(viewer (\d+) from 127\.0\.0\.1:\d+ left after \d+\.\d s: \d+ frames sent, \d+ skipped, [0-9.]+ [kMG]?B; closed by viewer \(0 watching\))"};
  const std::string log = server.error_output();
  EXPECT_TRUE(std::regex_search(log, joined)) << log;
  EXPECT_TRUE(std::regex_search(log, left)) << log;

  stream_reader stalled{server.port()};
  stalled.conn().set_receive_buffer(4096);
  ASSERT_EQ(stalled.open(), 200);  // and never reads again
  EXPECT_TRUE(log_shows(server, "; send timeout", 20s)) << server.error_output();

  stream_reader watching{server.port()};
  ASSERT_EQ(watching.open(), 200);
  ASSERT_TRUE(watching.next());
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0);
  EXPECT_NE(server.error_output().find("; shutdown"), std::string::npos) << server.error_output();
}

TEST(Logs, QuietLeavesOutViewerLines) {
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames({"--quiet"})};
  {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200);
    ASSERT_TRUE(viewer.next());
  }
  std::this_thread::sleep_for(300ms);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0);
  EXPECT_EQ(server.error_output(), "");
}

TEST(Logs, AFloodIsRateLimitedAndSaysSo) {
  const auto started = steady::now();
  server_process server{mjpeg::test::variant_binary("mjpeg_async"), small_frames()};
  // 150 viewers that come and go: 300 lines wanted, more than the burst allows.
  for (int i = 0; i < 150; ++i) {
    stream_reader viewer{server.port()};
    ASSERT_EQ(viewer.open(), 200) << i;
  }
  EXPECT_TRUE(log_shows(server, "connected", 5s));
  std::this_thread::sleep_for(500ms);
  server.signal(SIGTERM);
  ASSERT_EQ(server.wait(5s), 0);
  const double seconds = std::chrono::duration<double>(steady::now() - started).count();
  const std::string log = server.error_output();
  // A burst of 100 lines, then 20 a second, each perhaps with a "dropped" line before it.
  EXPECT_LE(static_cast<double>(count_of(log, "\n")), 105 + 40 * seconds) << log;
  EXPECT_NE(log.find("log lines dropped by the rate limit"), std::string::npos) << log;
}

TEST(Logs, NoTimestampsOfOurOwnInTheJournal) {
  // systemd names the journal stream in JOURNAL_STREAM (device:inode of stderr); lines then carry
  // sd-daemon priority prefixes instead of a time.
  scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_async");
  const std::string err = dir.path() + "/err";
  const auto run = [&](bool journal) {
    const std::string env = journal ? "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); " : "";
    run_command("/bin/sh", {"-c", "exec 2>" + err + "; " + env + "exec " + binary + " --port x"}, 10s);
    std::ifstream in{err};
    return std::string{std::istreambuf_iterator<char>{in}, {}};
  };
  const std::string journal = run(true);
  EXPECT_EQ(journal.rfind("<3>--port", 0), 0u) << journal;
  const std::string terminal = run(false);
  EXPECT_TRUE(std::regex_search(
      terminal, std::regex{R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mjpeg-async: error: --port)"}))
      << terminal;
}

// --- Socket activation -----------------------------------------------------------------------

TEST_P(EveryVariant, AdoptsTheListeningSocketFromSystemd) {
  // What systemd does for mjpeg-concurrency.socket: a bound, listening socket as fd 3, and
  // LISTEN_PID/LISTEN_FDS naming the process.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);  // inherited: no CLOEXEC
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), size), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size), 0);
  const unsigned short port = ntohs(address.sin_port);

  const std::string script =
      "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\" 3<&" + std::to_string(listener);
  std::vector<std::string> args = {"-c", script, binary()};
  for (const auto& a : small_frames({"--port", "1"}))  // a port it could not bind: proof it adopted
    args.push_back(a);
  server_process server{"/bin/sh", args};
  ::close(listener);
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(get(port, "/snapshot").status, 200) << server.error_output();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0);
}

}  // namespace
