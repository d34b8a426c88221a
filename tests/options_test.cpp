#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "mjpeg/options.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;

const mjpeg::variant_info pool_like{"test", "test variant", {8, 4, 0}};

std::variant<mjpeg::options, int> parse(std::vector<std::string> args,
                                        const mjpeg::variant_info& info = pool_like) {
  args.insert(args.begin(), "mjpeg-test");
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  return mjpeg::parse_options(static_cast<int>(argv.size()), argv.data(), info);
}

TEST(Options, Defaults) {
  const auto parsed = parse({});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(parsed));
  const auto& o = std::get<mjpeg::options>(parsed);
  EXPECT_EQ(o.host, "127.0.0.1") << "bind loopback unless told otherwise";
  EXPECT_EQ(o.port, 8080);
  EXPECT_EQ(o.source, "pattern");
  EXPECT_EQ(o.width, 640);
  EXPECT_EQ(o.height, 480);
  EXPECT_EQ(o.threads, 8);
  EXPECT_EQ(o.queue, 4);
  EXPECT_EQ(o.max_clients, 0);
  EXPECT_TRUE(o.auth.empty());
}

TEST(Options, ValuesAreTaken) {
  const auto parsed =
      parse({"--port", "0", "--fps", "12.5", "--quality", "55", "--threads", "3", "--source", "0"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(parsed));
  const auto& o = std::get<mjpeg::options>(parsed);
  EXPECT_EQ(o.port, 0);
  EXPECT_DOUBLE_EQ(o.fps, 12.5);
  EXPECT_EQ(o.quality, 55);
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.source, "0");
}

TEST(Options, ModelOptionsOnlyWhereTheModelHasThem) {
  const mjpeg::variant_info single{"single", "one at a time", {}};
  EXPECT_EQ(std::get<int>(parse({"--threads", "4"}, single)), 2);
  EXPECT_EQ(std::get<int>(parse({"--max-clients", "4"}, single)), 2);
}

// Every bad value: exit code 2 and a one-line message naming the option, from the real binary.
TEST(Options, BadValuesExitWithCode2AndNameTheOption) {
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--port", "70000"}, "--port"},
      {{"--port", "abc"}, "--port"},
      {{"--port", "-1"}, "--port"},
      {{"--fps", "0"}, "--fps"},
      {{"--fps", "fast"}, "--fps"},
      {{"--quality", "101"}, "--quality"},
      {{"--width", "0"}, "--width"},
      {{"--height", "99999"}, "--height"},
      {{"--duration", "-3"}, "--duration"},
      {{"--header-timeout", "0"}, "--header-timeout"},
      {{"--send-timeout", "x"}, "--send-timeout"},
      {{"--auth", "nocolon"}, "--auth"},
      {{"--auth", ":"}, "--auth"},
      {{"--auth", "user:"}, "--auth"},
      {{"--auth", ":pass"}, "--auth"},
      {{"--idle-stop", "-1"}, "--idle-stop"},
      {{"--trace", "/nonexistent-dir/trace"}, "--trace"},
      {{"--bogus"}, "--bogus"},
      {{"--port"}, "--port"},
  };
  for (const auto& [args, option] : cases) {
    const auto result = mjpeg::test::run_command(binary, args, 10s);
    EXPECT_EQ(result.exit_code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": "
                                   << result.err;
    EXPECT_NE(result.err.find(option), std::string::npos) << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line: " << result.err;
  }
  // Credentials from a file with an empty password: refused the same way.
  const mjpeg::test::scratch_dir dir;
  const std::string auth = dir.write("auth", "user:\n");
  std::filesystem::permissions(auth,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto from_file = mjpeg::test::run_command(binary, {"--auth-file", auth}, 10s);
  EXPECT_EQ(from_file.exit_code, 2) << from_file.err;
  EXPECT_EQ(std::count(from_file.err.begin(), from_file.err.end(), '\n'), 1) << "one line: " << from_file.err;
}

// --- issue 15, item 4: credentials never empty, and kept out of ps ---------------------------------

// A file in the temporary directory, removed with the object.
struct temp_file {
  explicit temp_file(const std::string& text)
      : path{std::filesystem::temp_directory_path() / ("mjpeg-auth-" + std::to_string(::getpid()))} {
    std::ofstream{path} << text;
  }
  ~temp_file() { std::filesystem::remove(path); }
  std::string path;
};

std::string auth_of(const std::variant<mjpeg::options, int>& parsed) {
  return std::holds_alternative<mjpeg::options>(parsed) ? std::get<mjpeg::options>(parsed).auth : "<exit>";
}

TEST(Options, CamerasAreNamedSources) {
  const auto parsed = parse({"--camera", "front=/dev/video0", "--camera", "yard=http://10.0.0.2:8080/stream",
                             "--camera", "door=/srv/jpegs"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(parsed));
  const auto& cameras = std::get<mjpeg::options>(parsed).cameras;
  ASSERT_EQ(cameras.size(), 3u);
  EXPECT_EQ(cameras[1].name, "yard");
  EXPECT_EQ(cameras[1].source, "http://10.0.0.2:8080/stream");
  // Without --camera: the one unnamed camera on --source.
  const auto plain = parse({"--source", "/srv/jpegs"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(plain));
  ASSERT_EQ(std::get<mjpeg::options>(plain).cameras.size(), 1u);
  EXPECT_EQ(std::get<mjpeg::options>(plain).cameras[0].name, "");
  EXPECT_EQ(std::get<mjpeg::options>(plain).cameras[0].source, "/srv/jpegs");
  // Bad names, a repeated name, an empty source, two cameras on one device, --source beside them,
  // a bus source whose '#' is not followed by a camera name.
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--camera", "pattern"},
           {"--camera", "=pattern"},
           {"--camera", "a b=pattern"},
           {"--camera", "a/b=pattern"},
           {"--camera", "a?=pattern"},
           {"--camera", "Front=pattern"},
           {"--camera", "a="},
           {"--camera", "a=pattern", "--camera", "a=/srv/jpegs"},
           {"--camera", "a=/dev/video0", "--camera", "b=/dev/video0"},
           {"--camera", "a=0", "--camera", "b=0"},
           {"--camera", "a=pattern", "--source", "pattern"},
           {"--camera", "a=pattern", "--camera", "b=zmq+tcp://127.0.0.1:5555#A b"}})
    EXPECT_EQ(std::get<int>(parse(bad)), 2) << bad.back();
  // The same folder or test card twice is fine: nothing is held open. Workers and the bus carry
  // every camera, and a bus source may name one.
  EXPECT_TRUE(
      std::holds_alternative<mjpeg::options>(parse({"--camera", "a=pattern", "--camera", "b=pattern"})));
  EXPECT_TRUE(std::holds_alternative<mjpeg::options>(
      parse({"--camera", "a=pattern", "--camera", "b=zmq+tcp://127.0.0.1:5555#front", "--workers", "2",
             "--publish", "0"})));
}

// One [camera.NAME] section per camera in the config file: its keys override the global
// --width, --height, --fps and --quality for that camera only; --camera cameras come first and
// take the global ones.
TEST(Options, ConfigSectionsAreCamerasWithTheirOwnSettings) {
  const mjpeg::test::scratch_dir dir;
  const std::string config = dir.write("cameras.conf",
                                       "quality = 70\n"
                                       "[camera.front]\n"
                                       "source = \"/dev/v4l/by-id/usb-046d_C270-video-index0\"\n"
                                       "width = 1280\n"
                                       "height = 720\n"
                                       "fps = 15\n"
                                       "quality = 60\n"
                                       "\n"
                                       "[camera.yard]\n"
                                       "source = \"http://10.0.0.7:8080/stream\"\n");
  const auto parsed =
      parse({"--config", config, "--width", "320", "--fps", "10", "--camera", "door=pattern"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(parsed));
  const auto& cameras = std::get<mjpeg::options>(parsed).cameras;
  ASSERT_EQ(cameras.size(), 3u);
  const auto expect = [](const mjpeg::camera_spec& c, const std::string& name, const std::string& source,
                         int width, int height, double fps, int quality) {
    EXPECT_EQ(c.name, name);
    EXPECT_EQ(c.source, source) << name;
    EXPECT_EQ(c.width, width) << name;
    EXPECT_EQ(c.height, height) << name;
    EXPECT_DOUBLE_EQ(c.fps, fps) << name;
    EXPECT_EQ(c.quality, quality) << name;
  };
  expect(cameras[0], "door", "pattern", 320, 480, 10, 70);
  expect(cameras[1], "front", "/dev/v4l/by-id/usb-046d_C270-video-index0", 1280, 720, 15, 60);
  expect(cameras[2], "yard", "http://10.0.0.7:8080/stream", 320, 480, 10, 70);
  // The one unnamed camera takes the global settings too.
  const auto plain = parse({"--width", "160", "--height", "120", "--fps", "5", "--quality", "40"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(plain));
  expect(std::get<mjpeg::options>(plain).cameras.at(0), "", "pattern", 160, 120, 5, 40);
}

// A bad camera section: exit 2 and one line naming the file's line, the section and the key.
TEST(Options, BadCameraSectionsExitWithCode2AndNameTheSectionAndKey) {
  const mjpeg::test::scratch_dir dir;
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  struct bad {
    std::string text;                // the file
    std::vector<std::string> extra;  // more arguments
    std::string says;                // in the error line
  };
  const std::vector<bad> cases = {
      {"[camera.front]\nsource = \"pattern\"\nzoom = 2\n", {}, "line 3: [camera.front]: unknown key 'zoom'"},
      {"[camera.front]\nsource = \"pattern\"\nwidth = 99999\n",
       {},
       "line 3: [camera.front] width: 99999 is not in range"},
      {"[camera.front]\nsource = \"pattern\"\nfps = fast\n",
       {},
       "line 3: [camera.front] fps: 'fast' is not a number"},
      {"[camera.front]\nsource = \"pattern\"\nquality = 7.5\n",
       {},
       "line 3: [camera.front] quality: '7.5' is not a whole"},
      {"[camera.front]\nsource = \"\"\n", {}, "line 2: [camera.front] source: the source is empty"},
      {"port = 0\n[camera.front]\nwidth = 320\n", {}, "line 2: [camera.front] has no source"},
      {"[camera.Front]\nsource = \"pattern\"\n", {}, "line 1: [camera.Front]: the name 'Front' must be"},
      {"[camera]\nsource = \"pattern\"\n", {}, "line 1: [camera] needs the camera's name"},
      {"[camera.front]\nsource = \"pattern\"\n",
       {"--camera", "front=pattern"},
       "line 2: [camera.front]: the name front is given twice (also --camera front)"},
      {"[camera.a]\nsource = \"/dev/video0\"\n[camera.b]\nsource = \"/dev/video0\"\n",
       {},
       "both on /dev/video0"},
      {"[camera.a]\nsource = \"pattern\"\n", {"--source", "pattern"}, "--source and [camera.a]"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"--config", dir.write("cameras.conf", c.text), "--port", "0"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    const auto result = mjpeg::test::run_command(binary, args, 10s);
    EXPECT_EQ(result.exit_code, 2) << c.text << result.err;
    EXPECT_NE(result.err.find(c.says), std::string::npos) << c.text << result.err;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << "one line: " << result.err;
  }
}

TEST(Options, EmptyUserOrPasswordIsRefused) {
  ::unsetenv(mjpeg::auth_variable);
  for (const char* bad : {":", "user:", ":pass", "nocolon", "user:pa\nss"})
    EXPECT_EQ(std::get<int>(parse({"--auth", bad})), 2) << bad;
  EXPECT_EQ(auth_of(parse({"--auth", "user:pa:ss"})), "user:pa:ss") << "the password may hold a colon";
}

TEST(Options, CredentialsFromAFile) {
  ::unsetenv(mjpeg::auth_variable);
  {
    const temp_file file{"watcher:s3cret\n"};
    EXPECT_EQ(auth_of(parse({"--auth-file", file.path})), "watcher:s3cret");
    EXPECT_EQ(std::get<int>(parse({"--auth-file", file.path, "--auth", "a:b"})), 2) << "one or the other";
  }
  EXPECT_EQ(auth_of(parse({"--auth-file", temp_file{"watcher:s3cret\r\n"}.path})), "watcher:s3cret");
  for (const char* bad : {"", "\n", "watcher:\n", ":s3cret", "watcher:s3cret\nsecond line\n"})
    EXPECT_EQ(std::get<int>(parse({"--auth-file", temp_file{bad}.path})), 2) << bad;
  EXPECT_EQ(std::get<int>(parse({"--auth-file", "/nonexistent/auth"})), 2);
}

TEST(Options, CredentialsFromTheEnvironment) {
  ::setenv(mjpeg::auth_variable, "watcher:s3cret", 1);
  EXPECT_EQ(auth_of(parse({})), "watcher:s3cret");
  EXPECT_EQ(auth_of(parse({"--auth", "other:pass"})), "other:pass") << "the command line wins";
  {
    const temp_file file{"fromfile:pass"};
    EXPECT_EQ(auth_of(parse({"--auth-file", file.path})), "fromfile:pass");
  }
  for (const char* bad : {"", ":", "watcher:"}) {
    ::setenv(mjpeg::auth_variable, bad, 1);
    EXPECT_EQ(std::get<int>(parse({})), 2) << bad;
  }
  ::unsetenv(mjpeg::auth_variable);
  EXPECT_EQ(auth_of(parse({})), "");
}

TEST(Options, AllowHostIsRepeatableAndChecked) {
  const auto parsed =
      parse({"--allow-host", "cam.example", "--allow-host", "fd00::1", "--allow-host", "[fd00::2]"});
  ASSERT_TRUE(std::holds_alternative<mjpeg::options>(parsed));
  EXPECT_EQ(std::get<mjpeg::options>(parsed).allow_hosts,
            (std::vector<std::string>{"cam.example", "[fd00::1]", "[fd00::2]"}));
  for (const char* bad : {"cam.example:8080", "a b", "a/b", "", "[::1]:80"})
    EXPECT_EQ(std::get<int>(parse({"--allow-host", bad})), 2) << bad;
}

TEST(Options, HelpDescribesEveryOptionAndExitsZero) {
  const auto result =
      mjpeg::test::run_command(mjpeg::test::variant_binary("mjpeg_single_thread"), {"--help"}, 10s);
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--host", "--port", "--source", "--width", "--height", "--fps", "--quality",
                             "--duration", "--header-timeout", "--send-timeout", "--auth", "--idle-stop",
                             "--auth-file", "--allow-host", "MJPEG_AUTH"})
    EXPECT_NE(result.out.find(option), std::string::npos) << option;
}

TEST(Options, StartupErrorsAreOneClearLine) {
  const std::string binary = mjpeg::test::variant_binary("mjpeg_single_thread");
  const auto missing =
      mjpeg::test::run_command(binary, {"--source", "/nonexistent/clip.mp4", "--port", "0"}, 20s);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot open source"), std::string::npos) << missing.err;
  const auto host = mjpeg::test::run_command(binary, {"--host", "not-an-ip", "--port", "0"}, 20s);
  EXPECT_EQ(host.exit_code, 1);
  EXPECT_NE(host.err.find("--host"), std::string::npos) << host.err;
}

}  // namespace
