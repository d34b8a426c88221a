#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "mjpeg/capture.hpp"
#include "mjpeg/frame.hpp"
#include "mjpeg/frame_source.hpp"
#include "mjpeg/source_factory.hpp"

namespace {

using namespace std::chrono_literals;

TEST(Frame, PartHeaderGoldenBytes) {
  const mjpeg::wall_clock::time_point t{std::chrono::microseconds{1'700'000'000'123'456}};
  const mjpeg::frame f{42, t, {0xFF, 0xD8, 0x00, 0xFF, 0xD9}};
  EXPECT_EQ(f.part_header(),
            "Content-Type: image/jpeg\r\nContent-Length: 5\r\nX-Timestamp: 1700000000.123456\r\n"
            "X-Frame-Seq: 42\r\n\r\n");
  EXPECT_EQ(f.wire_size(), f.part_header().size() + 5 + mjpeg::part_trailer.size());
  const auto buffers = f.buffers();
  EXPECT_EQ(buffers[1].size(), 5u);
  EXPECT_EQ(std::string_view(static_cast<const char*>(buffers[2].data()), buffers[2].size()),
            "\r\n--mjpegconcurrencyframe\r\n");
}

TEST(Frame, TimestampKeepsLeadingZerosOfMicroseconds) {
  const mjpeg::wall_clock::time_point t{std::chrono::microseconds{5'000'042}};
  EXPECT_EQ(mjpeg::format_timestamp(t), "5.000042");
}

TEST(Frame, LooksLikeJpeg) {
  EXPECT_TRUE(mjpeg::looks_like_jpeg(std::vector<std::uint8_t>{0xFF, 0xD8, 0xFF, 0xD9}));
  EXPECT_FALSE(mjpeg::looks_like_jpeg(std::vector<std::uint8_t>{0xFF, 0xD8, 0xFF}));
  EXPECT_FALSE(mjpeg::looks_like_jpeg(std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', 0xFF, 0xD9}));
}

TEST(PatternSource, DrawsRequestedSizeAndMoves) {
  auto source = mjpeg::make_source({"pattern", 320, 240, 30});
  source->open();
  mjpeg::source_image a, b;
  ASSERT_TRUE(source->read(a));
  ASSERT_TRUE(source->read(b));
  EXPECT_EQ(a.pixels.width, 320);
  EXPECT_EQ(a.pixels.height, 240);
  EXPECT_EQ(a.pixels.bgr.size(), 320u * 240u * 3u);
  EXPECT_NE(a.pixels.bgr, b.pixels.bgr) << "consecutive frames must differ";
}

TEST(PatternSource, JpegSizeLooksLikeAWebcam) {
  auto source = mjpeg::make_source({"pattern", 640, 480, 30});
  source->open();
  mjpeg::source_image image;
  ASSERT_TRUE(source->read(image));
  const auto jpeg = mjpeg::encode_jpeg(image.pixels, 80);
  EXPECT_TRUE(mjpeg::looks_like_jpeg(jpeg));
  EXPECT_GE(jpeg.size(), 20'000u);
  EXPECT_LE(jpeg.size(), 80'000u);
}

TEST(ReplaySource, SendsFilesUnchangedInNameOrder) {
  const auto dir = std::filesystem::temp_directory_path() / ("mjpeg-replay-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::vector<std::uint8_t> one{0xFF, 0xD8, 1, 0xFF, 0xD9};
  const std::vector<std::uint8_t> two{0xFF, 0xD8, 2, 2, 0xFF, 0xD9};
  const auto write = [&](const char* name, const std::vector<std::uint8_t>& bytes) {
    std::ofstream{dir / name, std::ios::binary}.write(reinterpret_cast<const char*>(bytes.data()),
                                                      static_cast<std::streamsize>(bytes.size()));
  };
  write("b.jpg", two);
  write("a.jpg", one);
  write("notes.txt", {1, 2, 3});
  auto source = mjpeg::make_source({dir.string(), 640, 480, 30});
  source->open();
  mjpeg::source_image image;
  ASSERT_TRUE(source->read(image));
  EXPECT_EQ(image.jpeg, one);
  ASSERT_TRUE(source->read(image));
  EXPECT_EQ(image.jpeg, two);
  ASSERT_TRUE(source->read(image));
  EXPECT_EQ(image.jpeg, one) << "replay loops";
  std::filesystem::remove_all(dir);
}

TEST(ReplaySource, RejectsNonJpegAndEmptyFolders) {
  const auto dir = std::filesystem::temp_directory_path() / ("mjpeg-empty-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_THROW(mjpeg::make_source({dir.string(), 640, 480, 30})->open(), std::runtime_error);
  std::ofstream{dir / "fake.jpg"} << "not a jpeg";
  EXPECT_THROW(mjpeg::make_source({(dir / "fake.jpg").string(), 640, 480, 30})->open(), std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST(SourceDescription, CredentialsAreRedacted) {
  using mjpeg::redact_source;
  EXPECT_EQ(redact_source("http://user:secret@cam.local/stream"), "http://***@cam.local/stream");
  EXPECT_EQ(redact_source("rtsp://admin:p@ss@10.0.0.5:554/h264"), "rtsp://***@10.0.0.5:554/h264");
  EXPECT_EQ(redact_source("http://token@cam.local"), "http://***@cam.local");
  EXPECT_EQ(redact_source("https://cam.local/video?token=abc&fps=10&api_key=k1;Signature=s#x"),
            "https://cam.local/video?token=***&fps=10&api_key=***;Signature=***#x");
  EXPECT_EQ(redact_source("http://cam/?action=stream&PASSWORD=hunter2&user=bob&auth=1"),
            "http://cam/?action=stream&PASSWORD=***&user=bob&auth=***");
  EXPECT_EQ(redact_source("http://cam/s?access_token=a&sessionid=b&x_sig=c&secret=d&pwd=e"),
            "http://cam/s?access_token=***&sessionid=***&x_sig=***&secret=***&pwd=***");
  // A pipeline with a URL inside, and specs without secrets, unchanged but for the secrets.
  EXPECT_EQ(redact_source("souphttpsrc location=http://u:p@h/x ! jpegdec"),
            "souphttpsrc location=http://***@h/x ! jpegdec");
  for (const char* plain : {"pattern", "0", "/dev/video0", "clip.mp4", "frames/",
                            "http://cam.local:8080/stream?fps=5", "rtsp://cam/live", "file@name.mp4"})
    EXPECT_EQ(redact_source(plain), plain);
}

TEST(OpenCvSource, MissingFileFailsToOpen) {
  EXPECT_THROW(mjpeg::make_source({"/nonexistent/video.avi", 640, 480, 30})->open(), std::runtime_error);
}

}  // namespace
