// A V4L2 camera read directly, its own MJPEG passed through byte for byte.
//
// OpenCV's V4L2 backend, asked for the raw buffer (CAP_PROP_CONVERT_RGB off), does not always hand
// over the bytes the driver filled: a frame a few bytes longer than the one before it arrives cut to
// the previous length, without its end marker. ustreamer, mjpg-streamer and camera-streamer read
// V4L2 themselves, and so do we: the buffers are mapped once, and each frame is copied out by the
// length the driver wrote (bytesused) and its buffer handed back at once, so the driver always has
// buffers to fill and never drops a frame for want of one.
//
// What a real USB camera does that a tidy one would not, and what happens here:
//   EAGAIN after poll() said ready   poll again (the frame comes a moment later)
//   EIO                              try again (vb2 dequeued nothing)
//   a buffer flagged ERROR           queue it again at once, its frame dropped and counted
//   a truncated JPEG (no EOI)        dropped and counted (bad_frames)
//   zero padding after the EOI       stripped
//   ENODEV (unplugged)               read() fails; capture closes and reopens the path with backoff
//                                    (a /dev/v4l/by-id/… link comes back when the camera does)
//   EBUSY (another program streams)  a clear error naming the device
//   no S_PARM / G_PARM               the rate is the camera's own: "unknown"

#include "mjpeg/v4l2_camera.hpp"

#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "mjpeg/clock.hpp"
#include "mjpeg/frame.hpp"
#include "mjpeg/log.hpp"

namespace mjpeg {
namespace {

// ioctl, retried when a signal interrupts it. Returns 0 or the errno.
int xioctl(int fd, unsigned long request, void* arg) {
  for (;;) {
    if (::ioctl(fd, request, arg) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

std::string error_text(int error) {
  return std::generic_category().message(error);
}

std::string fourcc_text(std::uint32_t code) {
  std::string text;
  for (int i = 0; i < 4; ++i) {
    const auto c = static_cast<char>((code >> (8 * i)) & 0xFF);
    text += (c >= 0x20 && c < 0x7F) ? c : '?';
  }
  return text;
}

bool is_mjpeg(std::uint32_t format) {
  return format == V4L2_PIX_FMT_MJPEG || format == V4L2_PIX_FMT_JPEG;
}

// The descriptor of an open device; closed on destruction.
class device_fd {
 public:
  device_fd() = default;
  explicit device_fd(int fd) : fd_{fd} {}
  device_fd(device_fd&& other) noexcept : fd_{std::exchange(other.fd_, -1)} {}
  device_fd& operator=(device_fd&& other) noexcept {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~device_fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

[[noreturn]] void fail_busy(const std::string& device, const char* call) {
  throw std::runtime_error("camera " + device + " is busy: another program is using it (" + call + ": " +
                           error_text(EBUSY) + ")");
}

// Opens the device and checks that it captures video; throws with the reason otherwise.
device_fd open_capture_device(const std::string& device, v4l2_capability& cap) {
  struct stat st {};
  if (::stat(device.c_str(), &st) != 0)
    throw std::runtime_error("cannot open camera " + device + ": " + error_text(errno));
  if (S_ISDIR(st.st_mode)) throw std::runtime_error(device + " is a directory, not a camera");
  if (!S_ISCHR(st.st_mode))
    throw std::runtime_error(device + " is not a camera: not a device file, and not a video OpenCV can open");
  device_fd fd{::open(device.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)};
  if (fd.get() < 0) {
    const int error = errno;
    if (error == EBUSY) fail_busy(device, "open");
    throw std::runtime_error("cannot open camera " + device + ": " + error_text(error));
  }
  std::memset(&cap, 0, sizeof cap);
  if (const int error = xioctl(fd.get(), VIDIOC_QUERYCAP, &cap); error != 0)
    throw std::runtime_error(device + " is not a V4L2 device (VIDIOC_QUERYCAP: " + error_text(error) + ")");
  const std::uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
  const std::string card = reinterpret_cast<const char*>(cap.card);
  if (!(caps & V4L2_CAP_VIDEO_CAPTURE))
    throw std::runtime_error(device + " (" + card + ") is not a video capture device");
  if (!(caps & V4L2_CAP_STREAMING))
    throw std::runtime_error(device + " (" + card + ") cannot stream (no mmap I/O)");
  return fd;
}

bool offers_mjpeg(int fd) {
  for (std::uint32_t index = 0; index < 64; ++index) {
    v4l2_fmtdesc desc{};
    desc.index = index;
    desc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (xioctl(fd, VIDIOC_ENUM_FMT, &desc) != 0) return false;
    if (is_mjpeg(desc.pixelformat)) return true;
  }
  return false;
}

class v4l2_camera final : public frame_source {
 public:
  v4l2_camera(std::string device, const source_config& config) : config_{config} {
    info_.device = std::move(device);
    info_.requested_width = config.width;
    info_.requested_height = config.height;
    info_.requested_fps = config.fps;
    info_.passthrough = true;
    wake_ = device_fd{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    if (wake_.get() < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~v4l2_camera() override { close(); }
  v4l2_camera(const v4l2_camera&) = delete;
  v4l2_camera& operator=(const v4l2_camera&) = delete;

  void open() override {
    close();
    const std::string& device = info_.device;
    v4l2_capability cap{};
    device_fd fd = open_capture_device(device, cap);

    // The format: MJPEG at the requested size; the driver answers with what it will deliver.
    v4l2_format format{};
    format.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    format.fmt.pix.width = static_cast<std::uint32_t>(config_.width);
    format.fmt.pix.height = static_cast<std::uint32_t>(config_.height);
    format.fmt.pix.pixelformat = V4L2_PIX_FMT_MJPEG;
    format.fmt.pix.field = V4L2_FIELD_ANY;
    if (const int error = xioctl(fd.get(), VIDIOC_S_FMT, &format); error != 0) {
      if (error == EBUSY) fail_busy(device, "VIDIOC_S_FMT");
      throw std::runtime_error("camera " + device + ": cannot set MJPEG " + std::to_string(config_.width) +
                               "x" + std::to_string(config_.height) + " (VIDIOC_S_FMT: " + error_text(error) +
                               ")");
    }
    if (!is_mjpeg(format.fmt.pix.pixelformat))
      throw std::runtime_error("camera " + device + " gives " + fourcc_text(format.fmt.pix.pixelformat) +
                               " when asked for MJPEG");
    info_.pixel_format = fourcc_text(format.fmt.pix.pixelformat);
    info_.width = static_cast<int>(format.fmt.pix.width);
    info_.height = static_cast<int>(format.fmt.pix.height);

    // The rate, where the driver lets us ask; otherwise it is the camera's own, and unknown here.
    info_.fps = 0;
    v4l2_streamparm parm{};
    parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    parm.parm.capture.timeperframe = {1000, static_cast<std::uint32_t>(std::lround(config_.fps * 1000))};
    if (xioctl(fd.get(), VIDIOC_S_PARM, &parm) == 0 &&
        (parm.parm.capture.capability & V4L2_CAP_TIMEPERFRAME) &&
        parm.parm.capture.timeperframe.numerator != 0 && parm.parm.capture.timeperframe.denominator != 0)
      info_.fps = static_cast<double>(parm.parm.capture.timeperframe.denominator) /
                  parm.parm.capture.timeperframe.numerator;

    // Buffers: six, mapped once, all queued: 200 ms at 30 fps for this thread to fall behind
    // (a busy machine) before the driver has none to fill and loses a frame.
    v4l2_requestbuffers request{};
    request.count = 6;
    request.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    request.memory = V4L2_MEMORY_MMAP;
    if (const int error = xioctl(fd.get(), VIDIOC_REQBUFS, &request); error != 0) {
      if (error == EBUSY) fail_busy(device, "VIDIOC_REQBUFS");
      throw std::runtime_error("camera " + device +
                               ": no mmap buffers (VIDIOC_REQBUFS: " + error_text(error) + ")");
    }
    if (request.count < 2)
      throw std::runtime_error("camera " + device + ": the driver gave fewer than 2 buffers");
    fd_ = std::move(fd);
    for (std::uint32_t index = 0; index < request.count; ++index) {
      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      b.index = index;
      if (const int error = xioctl(fd_.get(), VIDIOC_QUERYBUF, &b); error != 0) {
        close();
        throw std::runtime_error("camera " + device + ": VIDIOC_QUERYBUF: " + error_text(error));
      }
      void* p = ::mmap(nullptr, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), b.m.offset);
      if (p == MAP_FAILED) {
        const int error = errno;
        close();
        throw std::runtime_error("camera " + device + ": mmap: " + error_text(error));
      }
      buffers_.push_back({static_cast<const std::uint8_t*>(p), b.length});
      if (const int error = queue(index); error != 0) {
        close();
        throw std::runtime_error("camera " + device + ": VIDIOC_QBUF: " + error_text(error));
      }
    }
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (const int error = xioctl(fd_.get(), VIDIOC_STREAMON, &type); error != 0) {
      close();
      if (error == EBUSY) fail_busy(device, "VIDIOC_STREAMON");
      throw std::runtime_error("camera " + device + ": VIDIOC_STREAMON: " + error_text(error));
    }
    streaming_ = true;

    // --width/--height/--fps are requests; say so when the camera gives something else.
    const std::string rate = info_.fps > 0 ? format_fps(info_.fps) + " fps" : "an unknown rate";
    log::write(log::level::info, "camera %s: %s %dx%d at %s, passthrough (V4L2 direct, %s)", device.c_str(),
               info_.pixel_format.c_str(), info_.width, info_.height, rate.c_str(),
               reinterpret_cast<const char*>(cap.card));
    const bool same = info_.width == config_.width && info_.height == config_.height &&
                      (info_.fps <= 0 || std::abs(info_.fps - config_.fps) < 0.5);
    if (!same)
      log::write(log::level::warning, "camera %s: asked for %dx%d at %s fps, the camera gives %dx%d at %s",
                 device.c_str(), config_.width, config_.height, format_fps(config_.fps).c_str(), info_.width,
                 info_.height, rate.c_str());
  }

  bool read(source_image& out) override {
    if (fd_.get() < 0) return false;
    // A frame comes at least every few intervals from a live camera; after that long without
    // one (good or broken), the camera counts as stalled and capture reopens it.
    const double fps = info_.fps > 0 ? info_.fps : std::max(config_.fps, 1.0);
    const int timeout_ms = std::max(2000, static_cast<int>(4000 / fps));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{timeout_ms};
    constexpr int max_bad_in_a_row = 30;
    int bad_in_a_row = 0;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        log::write(log::level::warning, "camera %s: no frame within %d ms", info_.device.c_str(), timeout_ms);
        return false;
      }
      pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
      if (fds[1].revents != 0) {  // interrupt(): shutdown
        std::uint64_t count = 0;
        [[maybe_unused]] const auto n = ::read(wake_.get(), &count, sizeof count);
        return false;
      }
      if (fds[0].revents == 0) continue;

      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      b.index = static_cast<std::uint32_t>(buffers_.size());  // "none": set by the driver on dequeue
      const int error = xioctl(fd_.get(), VIDIOC_DQBUF, &b);
      if (error == EAGAIN) continue;  // poll() said ready a moment early
      if (error == ENODEV) {
        log::write(log::level::warning, "camera %s: unplugged (ENODEV)", info_.device.c_str());
        return false;
      }
      if (error == EIO) {  // a transfer error: nothing was dequeued; the next try usually works
        if (++bad_in_a_row >= max_bad_in_a_row) return false;
        continue;
      }
      if (error != 0) {
        log::write(log::level::warning, "camera %s: VIDIOC_DQBUF: %s", info_.device.c_str(),
                   error_text(error).c_str());
        return false;
      }
      if (b.index >= buffers_.size()) return false;
      const auto& mapped = buffers_[b.index];
      const std::span<const std::uint8_t> bytes{mapped.data,
                                                std::min<std::size_t>(b.bytesused, mapped.length)};
      std::size_t length = 0;
      // A buffer flagged ERROR holds damaged data: it goes back like any other, its frame dropped.
      const bool good =
          !(b.flags & V4L2_BUF_FLAG_ERROR) && plausible_camera_jpeg(bytes, info_.width, info_.height, length);
      if (good) out.jpeg.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length));
      // The buffer goes back at once, before anything else: the driver fills it again meanwhile.
      if (const int qerror = queue(b.index); qerror != 0) {
        log::write(log::level::warning, "camera %s: VIDIOC_QBUF: %s", info_.device.c_str(),
                   error_text(qerror).c_str());
        return false;
      }
      if (!good) {
        const auto bad = ++bad_;
        if ((bad & (bad - 1)) == 0)  // 1, 2, 4, 8, …: visible without flooding the log
          log::write(log::level::warning, "camera %s: dropped a broken JPEG of %zu bytes (%llu so far)",
                     info_.device.c_str(), bytes.size(), static_cast<unsigned long long>(bad));
        if (++bad_in_a_row >= max_bad_in_a_row) return false;
        continue;
      }
      out.pixels.release();
      out.seq = static_cast<std::uint64_t>(b.sequence) + 1;  // gaps: frames lost anywhere, driver included
      out.captured = capture_time(b);
      return true;
    }
  }

  void close() override {
    if (streaming_) {
      int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      xioctl(fd_.get(), VIDIOC_STREAMOFF, &type);
      streaming_ = false;
    }
    for (const auto& b : buffers_)
      ::munmap(const_cast<std::uint8_t*>(b.data), b.length);
    buffers_.clear();
    fd_.reset();
  }

  std::string describe() const override { return "camera " + info_.device; }
  bool self_paced() const override { return true; }
  std::optional<camera_info> camera() const override { return info_; }
  std::uint64_t bad_frames() const override { return bad_; }
  void interrupt() override {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_.get(), &one, sizeof one);
  }

 private:
  struct mapping {
    const std::uint8_t* data;
    std::size_t length;
  };

  int queue(std::uint32_t index) {
    v4l2_buffer b{};
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_MMAP;
    b.index = index;
    return xioctl(fd_.get(), VIDIOC_QBUF, &b);
  }

  static std::string format_fps(double fps) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", fps);
    return text;
  }

  // The driver stamps a buffer on CLOCK_MONOTONIC (uvcvideo: when its first bytes arrived); as
  // wall-clock time that is now minus the buffer's age. Another clock, or none: now.
  static wall_clock::time_point capture_time(const v4l2_buffer& b) {
    const auto wall_now = wall_clock::now();
    if ((b.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK) != V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC) return wall_now;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const auto age = std::chrono::seconds{now.tv_sec - b.timestamp.tv_sec} +
                     std::chrono::microseconds{now.tv_nsec / 1000 - b.timestamp.tv_usec};
    if (age < std::chrono::microseconds::zero() || age > std::chrono::seconds{10}) return wall_now;
    return wall_now - std::chrono::duration_cast<wall_clock::duration>(age);
  }

  source_config config_;
  camera_info info_;
  device_fd fd_;
  device_fd wake_;
  std::vector<mapping> buffers_;
  bool streaming_ = false;
  std::uint64_t bad_ = 0;
};

}  // namespace

v4l2_device_kind probe_v4l2_device(const std::string& device) {
  v4l2_capability cap{};
  const device_fd fd = open_capture_device(device, cap);
  return {offers_mjpeg(fd.get())};
}

std::unique_ptr<frame_source> make_v4l2_camera(std::string device, const source_config& config) {
  return std::make_unique<v4l2_camera>(std::move(device), config);
}

}  // namespace mjpeg
