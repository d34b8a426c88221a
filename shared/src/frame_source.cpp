#include "mjpeg/frame_source.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>

#include "mjpeg/frame.hpp"
#include "mjpeg/opencv_module.hpp"

namespace mjpeg {
namespace {

namespace fs = std::filesystem;

// Ready JPEGs from a file or a folder, loaded once and sent as they are, so every benchmark run
// (ours and peer servers') moves identical bytes.
class replay_source final : public frame_source {
 public:
  explicit replay_source(fs::path path) : path_{std::move(path)} {}
  void open() override {
    std::vector<fs::path> files;
    if (fs::is_directory(path_)) {
      for (const auto& entry : fs::directory_iterator(path_)) {
        auto ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (entry.is_regular_file() && (ext == ".jpg" || ext == ".jpeg")) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path_);
    }
    std::vector<std::vector<std::uint8_t>> loaded;
    for (const auto& file : files) {
      std::ifstream in{file, std::ios::binary};
      std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>{in}, {}};
      if (!in.eof() && !in) throw std::runtime_error("cannot read " + file.string());
      if (!looks_like_jpeg(bytes)) throw std::runtime_error(file.string() + " is not a JPEG file");
      loaded.push_back(std::move(bytes));
    }
    if (loaded.empty()) throw std::runtime_error("no .jpg or .jpeg files in " + path_.string());
    frames_ = std::move(loaded);
    next_ = 0;
  }
  bool read(source_image& out) override {
    if (frames_.empty()) return false;
    out.pixels.release();
    out.jpeg = frames_[next_];
    next_ = (next_ + 1) % frames_.size();
    return true;
  }
  void close() override { frames_.clear(); }
  std::string describe() const override { return "replay " + redact_source(path_.string()); }

 private:
  fs::path path_;
  std::vector<std::vector<std::uint8_t>> frames_;
  std::size_t next_ = 0;
};

}  // namespace

std::unique_ptr<frame_source> make_replay_source(std::string path) {
  return std::make_unique<replay_source>(std::move(path));
}

std::unique_ptr<frame_source> make_opencv_source(std::string spec) {
  opencv_request request;
  request.what = opencv_request::kind::video;
  request.shown = redact_source(spec);
  request.spec = std::move(spec);
  return make_module_source(std::move(request));
}

std::string redact_source(std::string_view spec) {
  // userinfo: everything between "://" and the last "@" before the path, of every URL in spec.
  std::string shown;
  for (std::size_t at = 0; at < spec.size();) {
    const auto separator = spec.find("://", at);
    if (separator == std::string_view::npos) {
      shown += spec.substr(at);
      break;
    }
    const auto start = separator + 3;
    const auto end = std::min(spec.find_first_of("/?# \t", start), spec.size());
    const std::string_view authority = spec.substr(start, end - start);
    const auto userinfo_end = authority.rfind('@');
    shown += spec.substr(at, start - at);
    shown += userinfo_end == std::string_view::npos ? authority
                                                    : "***" + std::string{authority.substr(userinfo_end)};
    at = end;
  }
  // A query parameter whose name holds a secret-looking word keeps its name, not its value.
  constexpr std::string_view secret_words[] = {"token", "key",     "pass", "pwd", "secret", "auth",
                                               "sig",   "session", "cred", "jwt", "ticket"};
  constexpr std::string_view value_ends = "&;# \t";
  std::string out;
  for (std::size_t at = 0; at < shown.size();) {
    const char c = shown[at++];
    out += c;
    if (c != '?' && c != '&' && c != ';') continue;
    const auto name_end = shown.find_first_of("=&;# \t", at);
    if (name_end == std::string::npos || shown[name_end] != '=') continue;
    std::string name = shown.substr(at, name_end - at);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char x) { return std::tolower(x); });
    if (std::none_of(std::begin(secret_words), std::end(secret_words),
                     [&](std::string_view word) { return name.find(word) != std::string::npos; }))
      continue;
    out.append(shown, at, name_end + 1 - at);
    out += "***";
    at = std::min(shown.find_first_of(value_ends, name_end + 1), shown.size());
  }
  return out;
}

}  // namespace mjpeg
