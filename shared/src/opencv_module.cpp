// Loading the OpenCV module: one dlopen on first use, never closed (its sources' code lives there).

#include "mjpeg/opencv_module.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "mjpeg/log.hpp"

namespace mjpeg {
namespace {

namespace fs = std::filesystem;

void module_log(int level, const char* line) {
  log::write(static_cast<log::level>(level), "%s", line);
}

struct loaded_module {
  opencv_make_source_fn make = nullptr;
  std::string error;  // why it could not be loaded, once and for all
};

const loaded_module& load_module() {
  static const loaded_module loaded = [] {
    loaded_module m;
    const auto path = opencv_module_path();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      m.error = why != nullptr ? why : path.string() + ": cannot be loaded";
      return m;
    }
    void* symbol = ::dlsym(handle, opencv_make_source_symbol);
    if (symbol == nullptr) {
      m.error = path.string() + " has no " + opencv_make_source_symbol;
      return m;
    }
    m.make = reinterpret_cast<opencv_make_source_fn>(symbol);
    return m;
  }();
  return loaded;
}

}  // namespace

fs::path opencv_module_path() {
  if (const char* dir = std::getenv("MJPEG_MODULE_DIR"); dir != nullptr && *dir != '\0')
    return fs::path{dir} / opencv_module_file;
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto installed = exe.parent_path().parent_path() / MJPEG_MODULE_RELDIR / opencv_module_file;
    if (fs::exists(installed, ec)) return installed;
  }
#ifdef MJPEG_BUILD_MODULE_DIR
  if (auto built = fs::path{MJPEG_BUILD_MODULE_DIR} / opencv_module_file; fs::exists(built, ec)) return built;
#endif
  // Not found anywhere: name where an installed one would be.
  return (ec ? fs::path{"/usr"} : exe.parent_path().parent_path()) / MJPEG_MODULE_RELDIR / opencv_module_file;
}

std::unique_ptr<frame_source> make_module_source(opencv_request request) {
  const auto& module = load_module();
  const std::string what = request.what == opencv_request::kind::camera
                               ? "camera " + request.shown + " (no MJPEG, or --encode)"
                               : "source '" + request.shown + "'";
  if (module.make == nullptr)
    throw std::runtime_error(what + " needs the OpenCV module, which cannot be loaded (" + module.error +
                             "): apt install " + opencv_module_package);
  request.log = module_log;
  frame_source* source = module.make(opencv_module_abi, request);
  if (source == nullptr)
    throw std::runtime_error(what + ": the OpenCV module at " + opencv_module_path().string() +
                             " is from another version of the server: reinstall " + opencv_module_package);
  return std::unique_ptr<frame_source>{source};
}

}  // namespace mjpeg
