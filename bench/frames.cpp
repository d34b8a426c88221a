// mjpeg-frames: writes a fixed set of test-card JPEGs, made by the project's own pattern source and
// encoder, for the replay source (--source FOLDER). Every benchmark run then sends identical bytes.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "mjpeg/capture.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/source_factory.hpp"

int main(int argc, char** argv) {
  std::string folder;
  int width = 640;
  int height = 480;
  int quality = 80;
  int count = 60;
  CLI::App app{"mjpeg-frames: write COUNT test-card JPEGs into FOLDER for --source FOLDER"};
  app.add_option("folder", folder, "Output folder (created)")->required();
  app.add_option("--width", width, "Frame width")->check(CLI::Range(16, 7680));
  app.add_option("--height", height, "Frame height")->check(CLI::Range(16, 4320));
  app.add_option("--quality", quality, "JPEG quality")->check(CLI::Range(1, 100));
  app.add_option("--count", count, "Number of frames")->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);

  std::filesystem::create_directories(folder);
  auto source = mjpeg::make_source({"pattern", width, height, 30});
  source->open();
  mjpeg::source_image image;
  std::size_t total = 0;
  for (int i = 0; i < count; ++i) {
    source->read(image);
    const auto jpeg = mjpeg::encode_jpeg(image.pixels, quality);
    char name[32];
    std::snprintf(name, sizeof name, "/frame-%05d.jpg", i);
    std::ofstream out{folder + name, std::ios::binary};
    out.write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    if (!out) {
      std::fprintf(stderr, "mjpeg-frames: cannot write %s%s\n", folder.c_str(), name);
      return 1;
    }
    total += jpeg.size();
  }
  std::printf("mjpeg-frames: %d frames %dx%d q%d in %s, mean %zu bytes\n", count, width, height, quality,
              folder.c_str(), total / static_cast<std::size_t>(count));
  return 0;
}
