#include "fake_camera.hpp"

#include <cstdlib>
#include <fstream>

#include "mjpeg/image.hpp"
#include "mjpeg/pattern.hpp"

namespace mjpeg::test {

scoped_env::~scoped_env() {
  for (const auto& name : names_)
    ::unsetenv(name.c_str());
}

void scoped_env::set(const std::string& name, const std::string& value) {
  ::setenv(name.c_str(), value.c_str(), 1);
  names_.push_back(name);
}

std::set<std::string> write_test_card_jpegs(const std::filesystem::path& dir, int width, int height,
                                            std::uint64_t first, std::uint64_t step, int count) {
  std::filesystem::create_directories(dir);
  const image background = pattern_background(width, height);
  image picture;
  std::set<std::string> jpegs;
  for (int n = 0; n < count; ++n) {
    draw_pattern(picture, background, first + static_cast<std::uint64_t>(n) * step);
    const auto jpeg = encode_jpeg(picture, 70);
    std::ofstream{dir / ("frame" + std::to_string(n + 1) + ".jpg"), std::ios::binary}.write(
        reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    jpegs.emplace(jpeg.begin(), jpeg.end());
  }
  return jpegs;
}

}  // namespace mjpeg::test
