// Installing and packaging, without containers: `cmake --install` into a scratch root (DESTDIR
// and a plain prefix), the systemd units through `systemd-analyze verify`, and the .deb that
// `make package` builds taken apart with dpkg-deb. The installed binaries are run for real.

#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace std::chrono_literals;
using mjpeg::test::get;
using mjpeg::test::run_command;
using mjpeg::test::scratch_dir;
using mjpeg::test::server_process;

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, {}};
}

std::vector<std::string> listing(const std::string& folder) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(folder.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

const std::vector<std::string> servers = {"mjpeg-async", "mjpeg-io-uring", "mjpeg-single-thread",
                                          "mjpeg-thread-per-client", "mjpeg-thread-pool"};

// `cmake --install` of this build into `root` with `prefix` (DESTDIR when root is not empty).
mjpeg::test::run_result install(const std::string& root, const std::string& prefix) {
  const std::string destdir = root.empty() ? "" : "DESTDIR=" + root + " ";
  return run_command(
      "/bin/sh",
      {"-c", destdir + "exec '" MJPEG_CMAKE_COMMAND "' --install '" MJPEG_BINARY_DIR "' --prefix " + prefix},
      120s);
}

// The installed server runs: --version, then one snapshot served with the installed config file.
void runs_from(const std::string& bin, const std::string& config) {
  const auto version = run_command(bin + "/mjpeg-async", {"--version"}, 10s);
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out, std::string{"mjpeg-async "} + MJPEG_PROJECT_VERSION + "\n");
  server_process server{bin + "/mjpeg-async",
                        {"--config", config, "--port", "0", "--width", "160", "--height", "120"}};
  const auto snapshot = get(server.port(), "/snapshot");
  EXPECT_EQ(snapshot.status, 200) << server.error_output();
  EXPECT_EQ(snapshot.body.substr(0, 2), "\xff\xd8") << "a JPEG";
}

TEST(Install, DestdirWithTheUsrPrefix) {
  scratch_dir root;
  const auto result = install(root.path(), "/usr");
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const std::string r = root.path();
  EXPECT_EQ(listing(r + "/usr/bin"), servers) << "the five servers, no tests or benchmarks";
  EXPECT_TRUE(exists(r + "/usr/lib/systemd/system/mjpeg-concurrency.service"));
  EXPECT_TRUE(exists(r + "/usr/lib/systemd/system/mjpeg-concurrency.socket"));
  EXPECT_TRUE(exists(r + "/etc/mjpeg-concurrency/mjpeg-concurrency.conf")) << "/usr keeps its config in /etc";
  EXPECT_TRUE(exists(r + "/usr/share/doc/mjpeg-concurrency/README.md"));
  EXPECT_TRUE(exists(r + "/usr/share/doc/mjpeg-concurrency/examples/nginx/mjpeg-concurrency.conf"));
  const std::string unit = slurp(r + "/usr/lib/systemd/system/mjpeg-concurrency.service");
  EXPECT_NE(
      unit.find("\nExecStart=/usr/bin/mjpeg-async --config /etc/mjpeg-concurrency/mjpeg-concurrency.conf\n"),
      std::string::npos)
      << unit;
  runs_from(r + "/usr/bin", r + "/etc/mjpeg-concurrency/mjpeg-concurrency.conf");
}

TEST(Install, AnyPrefixAndTheUnitsVerify) {
  // A real prefix (no DESTDIR), so the unit's ExecStart names a binary that exists and
  // systemd-analyze can check everything; it needs no running systemd.
  scratch_dir root;
  const std::string prefix = root.path() + "/opt";
  const auto result = install("", prefix);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const std::string unit_dir = prefix + "/lib/systemd/system/";
  const std::string unit = slurp(unit_dir + "mjpeg-concurrency.service");
  EXPECT_NE(unit.find("ExecStart=" + prefix + "/bin/mjpeg-async --config " + prefix +
                      "/etc/mjpeg-concurrency/mjpeg-concurrency.conf\n"),
            std::string::npos)
      << unit;
  for (const char* setting :
       {"\nDynamicUser=yes\n", "\nSupplementaryGroups=video\n", "\nNoNewPrivileges=yes\n",
        "\nProtectSystem=strict\n", "\nPrivateTmp=yes\n", "\nRestart=on-failure\n"})
    EXPECT_NE(unit.find(setting), std::string::npos) << setting;
  for (const char* name : {"mjpeg-concurrency.service", "mjpeg-concurrency.socket"}) {
    const auto verify = run_command("/usr/bin/systemd-analyze", {"verify", unit_dir + name}, 30s);
    EXPECT_EQ(verify.exit_code, 0) << name << ": " << verify.out << verify.err;
    EXPECT_EQ(verify.out + verify.err, "") << name << ": systemd-analyze has remarks";
  }
  runs_from(prefix + "/bin", prefix + "/etc/mjpeg-concurrency/mjpeg-concurrency.conf");
}

TEST(Package, DebsHaveTheirLibrariesAsDependenciesAndRun) {
  scratch_dir dir;
  const std::string d = dir.path();
  const auto built = run_command("/bin/sh",
                                 {"-c", "cd '" + d +
                                            "' && exec '" MJPEG_CPACK_COMMAND "' --config '" MJPEG_BINARY_DIR
                                            "/CPackConfig.cmake' -G DEB -B '" +
                                            d + "'"},
                                 240s);
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  std::string deb, module_deb;
  for (const auto& name : listing(d)) {
    if (name.starts_with("mjpeg-concurrency_") && name.ends_with(".deb")) deb = d + "/" + name;
    if (name.starts_with("mjpeg-concurrency-opencv_") && name.ends_with(".deb")) module_deb = d + "/" + name;
  }
  ASSERT_FALSE(deb.empty()) << built.out;
  ASSERT_FALSE(module_deb.empty()) << built.out;
  const auto field = [](const std::string& package, const char* name) {
    const auto r = run_command("/usr/bin/dpkg-deb", {"-f", package, name}, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };

  // Depends comes from dpkg-shlibdeps: the real runtime libraries, by Debian package name. The
  // servers' package has no OpenCV and recommends the module's, which has OpenCV and needs it.
  const auto depends = field(deb, "Depends");
  for (const char* library : {"libc6", "libstdc++6", "libturbojpeg0", "liburing2", "libzmq5"})
    EXPECT_NE(depends.find(library), std::string::npos) << library << " in " << depends;
  EXPECT_EQ(depends.find("opencv"), std::string::npos) << depends;
  EXPECT_EQ(field(deb, "Recommends"), "mjpeg-concurrency-opencv\n");
  const auto module_depends = field(module_deb, "Depends");
  for (const char* library : {"mjpeg-concurrency (= ", "libopencv-core", "libopencv-videoio"})
    EXPECT_NE(module_depends.find(library), std::string::npos) << library << " in " << module_depends;
  // A maintainer that is not root@localhost, and no placeholder home page.
  for (const auto& package : {deb, module_deb}) {
    EXPECT_EQ(field(package, "Maintainer").find("localhost"), std::string::npos);
    EXPECT_EQ(field(package, "Homepage").find("example.org"), std::string::npos);
  }

  const auto control = run_command("/usr/bin/dpkg-deb", {"-e", deb, d + "/control"}, 30s);
  ASSERT_EQ(control.exit_code, 0) << control.err;
  EXPECT_EQ(slurp(d + "/control/conffiles"), "/etc/mjpeg-concurrency/mjpeg-concurrency.conf\n");
  for (const char* script : {"postinst", "prerm", "postrm"})
    EXPECT_TRUE(exists(d + "/control/" + script)) << script;
  // Every script is valid shell.
  for (const char* script : {"postinst", "prerm", "postrm"})
    EXPECT_EQ(run_command("/bin/sh", {"-n", d + "/control/" + script}, 10s).exit_code, 0) << script;

  const auto unpacked = run_command("/usr/bin/dpkg-deb", {"-x", deb, d + "/root"}, 60s);
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;
  EXPECT_EQ(listing(d + "/root/usr/bin"), servers) << "tests and benchmarks are not packaged";
  // A man page per server, made from its --help: every option is in it.
  // (help2man and lintian come with `make test`'s set: scripts/install-deps test.)
  std::vector<std::string> pages;
  for (const auto& server : servers)
    pages.push_back(server + ".1.gz");
  EXPECT_EQ(listing(d + "/root/usr/share/man/man1"), pages);
  const auto page =
      run_command("/bin/sh", {"-c", "zcat '" + d + "/root/usr/share/man/man1/mjpeg-async.1.gz'"}, 10s);
  for (const char* option : {"\\-\\-source", "\\-\\-workers", "\\-\\-max\\-clients"})
    EXPECT_NE(page.out.find(option), std::string::npos) << option;
  EXPECT_TRUE(exists(d + "/root/usr/lib/systemd/system/mjpeg-concurrency.service"));
  const std::string unit = slurp(d + "/root/usr/lib/systemd/system/mjpeg-concurrency.service");
  EXPECT_NE(
      unit.find("\nExecStart=/usr/bin/mjpeg-async --config /etc/mjpeg-concurrency/mjpeg-concurrency.conf\n"),
      std::string::npos)
      << unit;
  runs_from(d + "/root/usr/bin", d + "/root/etc/mjpeg-concurrency/mjpeg-concurrency.conf");

  // The module lands where the installed servers look for it (../lib/<triplet>/mjpeg-concurrency).
  const auto module_unpacked = run_command("/usr/bin/dpkg-deb", {"-x", module_deb, d + "/module"}, 60s);
  ASSERT_EQ(module_unpacked.exit_code, 0) << module_unpacked.err;
  EXPECT_TRUE(exists(d + "/module/usr/" MJPEG_MODULE_RELDIR "/libmjpeg-opencv.so"));

  // apt resolves every dependency by name (a simulation: nothing is installed).
  if (::geteuid() == 0 && exists("/usr/bin/apt-get")) {
    const auto apt = run_command("/usr/bin/apt-get", {"install", "--simulate", "-q", deb, module_deb}, 120s);
    EXPECT_EQ(apt.exit_code, 0) << apt.out << apt.err;
  }

  // lintian finds nothing but what deploy/debian/*.lintian-overrides explains.
  const auto lint = run_command("/usr/bin/lintian", {"--fail-on", "error,warning", deb, module_deb}, 240s);
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
}

}  // namespace
