// A fake V4L2 camera, loaded with LD_PRELOAD: the program it is loaded into (our servers, directly
// or through OpenCV's V4L2 backend, ustreamer) sees a capture device at FAKE_V4L2_PATH. This machine
// can load no kernel module (no v4l2loopback, no vivid), so this is how the real V4L2 code paths get
// tested.
//
// It behaves like uvcvideo, awkward habits included. STREAMON starts a driver thread that, once per
// frame interval, takes the oldest buffer the program queued, fills it (the program's own mmap of
// it) and marks it done, in queue order; with no buffer queued the frame is lost and its sequence
// number skipped, as a real driver does. The device fd is an eventfd counting done buffers, so
// poll() and select() on it work unchanged; VIDIOC_DQBUF hands out the oldest done buffer (blocking
// or not, per the fd's own O_NONBLOCK). bytesused is below length; frames vary in size (whatever
// the folder holds: ffmpeg's testsrc, a noisy photo-like picture).
//
// Environment (read once, at the first open of the path):
//   FAKE_V4L2_PATH            device path (default /dev/video-test; a /dev/v4l/by-id/... name works)
//   FAKE_V4L2_MODE            mjpeg (default) or yuyv
//   FAKE_V4L2_JPEGS           folder of .jpg files served in name order, looping (mjpeg mode):
//                             the frame of sequence number n is file n % count
//   FAKE_V4L2_SIZE            WxH the camera reports and, in yuyv mode, draws (default 640x480)
//   FAKE_V4L2_FPS             frames per second (default 30)
//   FAKE_V4L2_TRUNCATE_EVERY  every Nth frame is cut to half its length, without its EOI marker
//   FAKE_V4L2_PAD_EVERY       every Nth frame has zero bytes after its EOI marker (inside bytesused)
//   FAKE_V4L2_EAGAIN_EVERY    every Nth frame, poll says ready but DQBUF fails with EAGAIN 3 times
//   FAKE_V4L2_EIO_EVERY       every Nth frame, DQBUF first fails with EIO (nothing dequeued), then
//                             hands the buffer out flagged V4L2_BUF_FLAG_ERROR (its data damaged)
//   FAKE_V4L2_NO_PARM         1: no G_PARM or S_PARM (ENOTTY), the frame rate cannot be asked for
//   FAKE_V4L2_BUSY            1: another program streams from the camera (S_FMT, REQBUFS: EBUSY)
//   FAKE_V4L2_GONE_AFTER      after N frames per open, DQBUF fails with ENODEV (unplugged)
//   FAKE_V4L2_GONE_FILE       while this file exists, open fails with ENOENT and DQBUF with ENODEV
//   FAKE_V4L2_LOG             file to log every ioctl (name and result) for finding out what a
//                             program calls; unknown ones answer ENOTTY like the kernel

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// Zero bytes a padded frame carries after its EOI marker.
constexpr std::size_t padding = 64;

struct config {
  std::string path = "/dev/video-test";
  bool mjpeg = true;
  std::vector<std::vector<unsigned char>> jpegs;
  unsigned width = 640;
  unsigned height = 480;
  unsigned fps = 30;
  unsigned truncate_every = 0;
  unsigned pad_every = 0;
  unsigned eagain_every = 0;
  unsigned eio_every = 0;
  bool no_parm = false;
  bool busy = false;
  unsigned gone_after = 0;
  std::string gone_file;
  std::string log;
  std::size_t max_jpeg = 0;
};

unsigned env_unsigned(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : fallback;
}

std::vector<std::vector<unsigned char>> load_jpegs(const std::string& folder) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(folder.c_str())) {
    while (const dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (n.size() > 4 && (n.ends_with(".jpg") || n.ends_with(".jpeg"))) names.push_back(folder + "/" + n);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::vector<unsigned char>> out;
  for (const auto& n : names) {
    std::ifstream in{n, std::ios::binary};
    out.emplace_back(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
  }
  return out;
}

const config& settings() {
  static const config c = [] {
    config r;
    if (const char* v = std::getenv("FAKE_V4L2_PATH"); v && *v) r.path = v;
    if (const char* v = std::getenv("FAKE_V4L2_MODE"); v && std::strcmp(v, "yuyv") == 0) r.mjpeg = false;
    if (const char* v = std::getenv("FAKE_V4L2_JPEGS"); v && *v) r.jpegs = load_jpegs(v);
    if (const char* v = std::getenv("FAKE_V4L2_SIZE"); v && *v) std::sscanf(v, "%ux%u", &r.width, &r.height);
    r.fps = std::max(1u, env_unsigned("FAKE_V4L2_FPS", 30));
    r.truncate_every = env_unsigned("FAKE_V4L2_TRUNCATE_EVERY", 0);
    r.pad_every = env_unsigned("FAKE_V4L2_PAD_EVERY", 0);
    r.eagain_every = env_unsigned("FAKE_V4L2_EAGAIN_EVERY", 0);
    r.eio_every = env_unsigned("FAKE_V4L2_EIO_EVERY", 0);
    r.no_parm = env_unsigned("FAKE_V4L2_NO_PARM", 0) != 0;
    r.busy = env_unsigned("FAKE_V4L2_BUSY", 0) != 0;
    r.gone_after = env_unsigned("FAKE_V4L2_GONE_AFTER", 0);
    if (const char* v = std::getenv("FAKE_V4L2_GONE_FILE")) r.gone_file = v;
    if (const char* v = std::getenv("FAKE_V4L2_LOG")) r.log = v;
    for (const auto& j : r.jpegs)
      r.max_jpeg = std::max(r.max_jpeg, j.size());
    r.max_jpeg += padding;
    return r;
  }();
  return c;
}

// The next function of that name after ours (libc's, or a sanitizer's interceptor's target).
template <typename F>
F next_fn(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

struct buffer {
  std::uint32_t length = 0;
  void* mapped = nullptr;  // the program's mapping of this buffer, if any
  bool queued = false;
  std::uint32_t bytesused = 0;
};

// A buffer the driver filled, waiting for DQBUF.
struct done_buffer {
  std::uint32_t index = 0;
  std::uint32_t bytesused = 0;
  std::uint32_t sequence = 0;
  timeval timestamp{};
  bool eio = false;  // DQBUF fails with EIO once before it, and it comes flagged ERROR
  bool error = false;
};

struct session {
  int fd = -1;  // the eventfd the program holds
  std::vector<buffer> buffers;
  std::deque<std::uint32_t> queue;  // indices in QBUF order, waiting to be filled
  std::deque<done_buffer> done;     // filled, in fill order, waiting for DQBUF
  bool streaming = false;
  bool stopping = false;   // the driver thread is to end
  bool unplugged = false;  // DQBUF fails with ENODEV from now on
  std::uint32_t sequence = 0;
  std::uint64_t frames = 0;  // produced in this open, lost or not
  unsigned eagain_left = 0;  // EAGAINs to answer before the next frame
  std::condition_variable wake;
  std::thread driver;
};

// Fake fds open now: while none is, every call passes straight through without the lock.
std::atomic<int> open_fakes{0};

std::mutex& lock() {
  static std::mutex m;
  return m;
}
std::map<int, std::shared_ptr<session>>& sessions() {
  static std::map<int, std::shared_ptr<session>> s;
  return s;
}
std::map<void*, std::pair<int, std::uint32_t>>& mappings() {
  static std::map<void*, std::pair<int, std::uint32_t>> m;
  return m;
}

void log_line(const char* fmt, ...) {
  const auto& c = settings();
  if (c.log.empty()) return;
  static auto real_fopen = next_fn<FILE* (*)(const char*, const char*)>("fopen");
  FILE* f = real_fopen(c.log.c_str(), "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(f, fmt, ap);
  va_end(ap);
  std::fputc('\n', f);
  std::fclose(f);
}

bool is_device(const char* path) {
  return path && settings().path == path;
}

bool gone() {
  const auto& c = settings();
  if (c.gone_file.empty()) return false;
  struct stat st {};
  static auto real_stat = next_fn<int (*)(const char*, struct stat*)>("stat");
  return real_stat(c.gone_file.c_str(), &st) == 0;
}

std::uint32_t pixel_format() {
  return settings().mjpeg ? V4L2_PIX_FMT_MJPEG : V4L2_PIX_FMT_YUYV;
}

std::uint32_t image_size() {
  const auto& c = settings();
  const std::uint32_t raw = c.width * c.height * 2;
  return c.mjpeg ? std::max<std::uint32_t>(raw, static_cast<std::uint32_t>(c.max_jpeg)) : raw;
}

void fill_format(v4l2_format& f) {
  const auto& c = settings();
  std::memset(&f.fmt, 0, sizeof f.fmt);
  f.fmt.pix.width = c.width;
  f.fmt.pix.height = c.height;
  f.fmt.pix.pixelformat = pixel_format();
  f.fmt.pix.field = V4L2_FIELD_NONE;
  f.fmt.pix.bytesperline = c.mjpeg ? 0 : c.width * 2;
  f.fmt.pix.sizeimage = image_size();
  f.fmt.pix.colorspace = c.mjpeg ? V4L2_COLORSPACE_JPEG : V4L2_COLORSPACE_SRGB;
}

// A raw frame: luma stripes that move one step per frame, neutral chroma.
void draw_yuyv(unsigned char* out, std::uint64_t n) {
  const auto& c = settings();
  for (unsigned y = 0; y < c.height; ++y) {
    unsigned char* row = out + static_cast<std::size_t>(y) * c.width * 2;
    for (unsigned x = 0; x < c.width; ++x) {
      row[2 * x] = static_cast<unsigned char>(((x + n * 4) / 32 % 2) ? 200 : 60);
      row[2 * x + 1] = 128;
    }
  }
}

int fail(int e) {
  errno = e;
  return -1;
}

// Counts one more readable event on the device fd (a done buffer, or an unplug to report).
void signal_readable(const session& s) {
  const std::uint64_t one = 1;
  static auto real_write = next_fn<ssize_t (*)(int, const void*, size_t)>("write");
  [[maybe_unused]] const ssize_t n = real_write(s.fd, &one, sizeof one);
}

// The driver: once per frame interval, fill the oldest queued buffer with the next frame.
void fill_next(session& s) {
  const auto& c = settings();
  if (gone() || (c.gone_after != 0 && s.frames >= c.gone_after)) {
    if (!s.unplugged) {
      s.unplugged = true;
      signal_readable(s);  // poll() wakes and DQBUF reports ENODEV, as on a USB unplug
    }
    return;
  }
  const std::uint64_t number = s.frames++;
  const std::uint32_t sequence = s.sequence++;
  if (s.queue.empty()) return;  // no buffer to fill: the frame is lost, its sequence skipped
  const std::uint32_t index = s.queue.front();
  s.queue.pop_front();
  buffer& buf = s.buffers[index];
  const auto every = [&](unsigned n) { return n != 0 && (number + 1) % n == 0; };
  std::uint32_t used = 0;
  if (c.mjpeg) {
    if (!c.jpegs.empty()) {
      const auto& j = c.jpegs[number % c.jpegs.size()];
      used = static_cast<std::uint32_t>(std::min<std::size_t>(j.size(), buf.length));
      if (buf.mapped) std::memcpy(buf.mapped, j.data(), used);
      if (every(c.truncate_every)) {
        used /= 2;  // the end of the frame never came: no EOI marker
      } else if (every(c.pad_every) && used + padding <= buf.length) {
        if (buf.mapped) std::memset(static_cast<unsigned char*>(buf.mapped) + used, 0, padding);
        used += padding;
      }
    }
  } else {
    used = c.width * c.height * 2;
    if (buf.mapped) draw_yuyv(static_cast<unsigned char*>(buf.mapped), number);
  }
  buf.bytesused = used;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  s.done.push_back({index, used, sequence, {now.tv_sec, now.tv_nsec / 1000}, every(c.eio_every)});
  if (every(c.eagain_every)) s.eagain_left = 3;
  signal_readable(s);
}

void drive(std::shared_ptr<session> s) {
  const auto interval = std::chrono::nanoseconds{1000000000L / settings().fps};
  auto due = std::chrono::steady_clock::now() + interval;
  std::unique_lock held{lock()};
  while (!s->stopping) {
    if (s->wake.wait_until(held, due, [&] { return s->stopping; })) break;
    fill_next(*s);
    due += interval;
  }
}

void start_streaming(const std::shared_ptr<session>& s) {
  if (s->streaming) return;
  s->streaming = true;
  s->stopping = false;
  s->driver = std::thread{drive, s};
}

// Ends the driver thread; called with the lock held, returns with it held.
void stop_streaming(session& s, std::unique_lock<std::mutex>& held) {
  s.streaming = false;
  s.stopping = true;
  s.wake.notify_all();
  if (s.driver.joinable()) {
    std::thread driver = std::move(s.driver);
    held.unlock();
    driver.join();
    held.lock();
  }
  s.queue.clear();
  s.done.clear();
  for (auto& b : s.buffers)
    b.queued = false;
  // Drain the count of done buffers nobody will dequeue now.
  std::uint64_t count = 0;
  static auto real_read = next_fn<ssize_t (*)(int, void*, size_t)>("read");
  const int flags = ::fcntl(s.fd, F_GETFL);
  ::fcntl(s.fd, F_SETFL, flags | O_NONBLOCK);
  while (real_read(s.fd, &count, sizeof count) == sizeof count) {
  }
  ::fcntl(s.fd, F_SETFL, flags);
}

int dequeue(std::shared_ptr<session> s, v4l2_buffer& b, std::unique_lock<std::mutex>& held) {
  if (!s->streaming) return fail(EINVAL);
  if (s->unplugged) return fail(ENODEV);
  if (s->eagain_left > 0) {  // poll() said ready, and yet
    --s->eagain_left;
    return fail(EAGAIN);
  }
  // Wait for a done buffer as the device would (blocking or not, per the fd's own flag), without
  // holding the lock, so the driver thread and other calls (QBUF, STREAMOFF) go on meanwhile.
  static auto real_read = next_fn<ssize_t (*)(int, void*, size_t)>("read");
  std::uint64_t count = 0;
  held.unlock();
  const ssize_t n = real_read(s->fd, &count, sizeof count);
  const int read_errno = errno;
  held.lock();
  if (n != sizeof count) return fail(read_errno == EAGAIN ? EAGAIN : EIO);
  if (!s->streaming) return fail(EINVAL);
  if (s->unplugged) return fail(ENODEV);
  if (s->done.empty()) return fail(EAGAIN);
  if (s->done.front().eio) {
    // A transfer error, as vb2 reports one: nothing dequeued, the kernel copies nothing back.
    s->done.front().eio = false;
    s->done.front().error = true;
    signal_readable(*s);  // the buffer is still done: poll() stays ready
    return fail(EIO);
  }
  const done_buffer d = s->done.front();
  s->done.pop_front();
  buffer& buf = s->buffers[d.index];
  buf.queued = false;
  b.index = d.index;
  b.bytesused = d.bytesused;
  b.flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
            V4L2_BUF_FLAG_TSTAMP_SRC_SOE | (d.error ? V4L2_BUF_FLAG_ERROR : 0u);
  b.field = V4L2_FIELD_NONE;
  b.timestamp = d.timestamp;
  b.sequence = d.sequence;
  b.memory = V4L2_MEMORY_MMAP;
  b.length = buf.length;
  b.m.offset = d.index * 0x100000u;
  return 0;
}

const char* ioctl_name(unsigned long request) {
  switch (request) {
#define NAME(x) \
  case x:       \
    return #x;
    NAME(VIDIOC_QUERYCAP)
    NAME(VIDIOC_ENUM_FMT)
    NAME(VIDIOC_G_FMT)
    NAME(VIDIOC_S_FMT)
    NAME(VIDIOC_TRY_FMT)
    NAME(VIDIOC_G_PARM)
    NAME(VIDIOC_S_PARM)
    NAME(VIDIOC_REQBUFS)
    NAME(VIDIOC_QUERYBUF)
    NAME(VIDIOC_QBUF)
    NAME(VIDIOC_DQBUF)
    NAME(VIDIOC_STREAMON)
    NAME(VIDIOC_STREAMOFF)
    NAME(VIDIOC_ENUM_FRAMESIZES)
    NAME(VIDIOC_ENUM_FRAMEINTERVALS)
    NAME(VIDIOC_G_INPUT)
    NAME(VIDIOC_S_INPUT)
    NAME(VIDIOC_ENUMINPUT)
    NAME(VIDIOC_QUERYCTRL)
    NAME(VIDIOC_QUERY_EXT_CTRL)
    NAME(VIDIOC_G_CTRL)
    NAME(VIDIOC_S_CTRL)
    NAME(VIDIOC_G_EXT_CTRLS)
    NAME(VIDIOC_S_EXT_CTRLS)
    NAME(VIDIOC_G_STD)
    NAME(VIDIOC_S_STD)
    NAME(VIDIOC_QUERYSTD)
    NAME(VIDIOC_ENUMSTD)
    NAME(VIDIOC_G_JPEGCOMP)
    NAME(VIDIOC_S_JPEGCOMP)
    NAME(VIDIOC_CROPCAP)
    NAME(VIDIOC_G_CROP)
    NAME(VIDIOC_S_CROP)
    NAME(VIDIOC_G_SELECTION)
    NAME(VIDIOC_S_SELECTION)
    NAME(VIDIOC_EXPBUF)
    NAME(VIDIOC_QUERY_DV_TIMINGS)
    NAME(VIDIOC_S_DV_TIMINGS)
    NAME(VIDIOC_G_DV_TIMINGS)
    NAME(VIDIOC_SUBSCRIBE_EVENT)
    NAME(VIDIOC_DQEVENT)
    NAME(VIDIOC_G_PRIORITY)
    NAME(VIDIOC_S_PRIORITY)
#undef NAME
    default:
      return nullptr;
  }
}

// One V4L2 request on a fake fd; returns the ioctl result with errno set.
int device_ioctl(int fd, unsigned long request, void* arg) {
  std::unique_lock held{lock()};
  auto it = sessions().find(fd);
  if (it == sessions().end()) return fail(EBADF);
  const std::shared_ptr<session> shared = it->second;
  session& s = *shared;
  const auto& c = settings();
  switch (request) {
    case VIDIOC_QUERYCAP: {
      auto* cap = static_cast<v4l2_capability*>(arg);
      std::memset(cap, 0, sizeof *cap);
      std::strncpy(reinterpret_cast<char*>(cap->driver), "fake_v4l2", sizeof cap->driver - 1);
      std::strncpy(reinterpret_cast<char*>(cap->card), "mjpeg-concurrency fake camera", sizeof cap->card - 1);
      std::strncpy(reinterpret_cast<char*>(cap->bus_info), "platform:fake_v4l2", sizeof cap->bus_info - 1);
      cap->version = (6u << 16) | (1u << 8);
      cap->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
      cap->capabilities = cap->device_caps | V4L2_CAP_DEVICE_CAPS;
      return 0;
    }
    case VIDIOC_ENUM_FMT: {
      auto* f = static_cast<v4l2_fmtdesc*>(arg);
      if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || f->index != 0) return fail(EINVAL);
      const std::uint32_t index = f->index;
      std::memset(f, 0, sizeof *f);
      f->index = index;
      f->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      f->flags = c.mjpeg ? V4L2_FMT_FLAG_COMPRESSED : 0;
      std::strncpy(reinterpret_cast<char*>(f->description), c.mjpeg ? "Motion-JPEG" : "YUYV 4:2:2",
                   sizeof f->description - 1);
      f->pixelformat = pixel_format();
      return 0;
    }
    case VIDIOC_G_FMT:
    case VIDIOC_S_FMT:
    case VIDIOC_TRY_FMT: {
      auto* f = static_cast<v4l2_format*>(arg);
      if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      if (request == VIDIOC_S_FMT && (c.busy || !s.buffers.empty())) return fail(EBUSY);
      fill_format(*f);  // one size, one format: the driver adjusts whatever was asked
      return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
      if (c.no_parm) return fail(ENOTTY);  // as some UVC cameras: the rate is the camera's
      auto* p = static_cast<v4l2_streamparm*>(arg);
      if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      std::memset(&p->parm, 0, sizeof p->parm);
      p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
      p->parm.capture.timeperframe = {1, c.fps};
      p->parm.capture.readbuffers = 0;
      return 0;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
      auto* f = static_cast<v4l2_frmsizeenum*>(arg);
      if (f->index != 0 || f->pixel_format != pixel_format()) return fail(EINVAL);
      f->type = V4L2_FRMSIZE_TYPE_DISCRETE;
      f->discrete = {c.width, c.height};
      return 0;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
      auto* f = static_cast<v4l2_frmivalenum*>(arg);
      if (f->index != 0 || f->pixel_format != pixel_format() || f->width != c.width || f->height != c.height)
        return fail(EINVAL);
      f->type = V4L2_FRMIVAL_TYPE_DISCRETE;
      f->discrete = {1, c.fps};
      return 0;
    }
    case VIDIOC_G_INPUT:
      *static_cast<int*>(arg) = 0;
      return 0;
    case VIDIOC_S_INPUT:
      return *static_cast<int*>(arg) == 0 ? 0 : fail(EINVAL);
    case VIDIOC_ENUMINPUT: {
      auto* in = static_cast<v4l2_input*>(arg);
      if (in->index != 0) return fail(EINVAL);
      std::memset(in, 0, sizeof *in);
      std::strncpy(reinterpret_cast<char*>(in->name), "Camera 1", sizeof in->name - 1);
      in->type = V4L2_INPUT_TYPE_CAMERA;
      return 0;
    }
    case VIDIOC_REQBUFS: {
      auto* r = static_cast<v4l2_requestbuffers*>(arg);
      if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
      if (s.streaming || c.busy) return fail(EBUSY);
      s.buffers.clear();
      s.queue.clear();
      r->count = std::min<std::uint32_t>(r->count, 32);
      s.buffers.resize(r->count);
      for (auto& b : s.buffers)
        b.length = image_size();
      r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP;
      return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF: {
      auto* b = static_cast<v4l2_buffer*>(arg);
      if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->index >= s.buffers.size()) return fail(EINVAL);
      buffer& buf = s.buffers[b->index];
      if (request == VIDIOC_QBUF) {
        if (buf.queued) return fail(EINVAL);
        buf.queued = true;
        s.queue.push_back(b->index);
      }
      b->memory = V4L2_MEMORY_MMAP;
      b->length = buf.length;
      b->m.offset = b->index * 0x100000u;
      b->bytesused = buf.bytesused;
      b->flags = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | (buf.mapped ? V4L2_BUF_FLAG_MAPPED : 0u) |
                 (buf.queued ? V4L2_BUF_FLAG_QUEUED : 0u);
      b->field = V4L2_FIELD_NONE;
      return 0;
    }
    case VIDIOC_DQBUF: {
      auto* b = static_cast<v4l2_buffer*>(arg);
      if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
      return dequeue(shared, *b, held);
    }
    case VIDIOC_STREAMON:
      if (gone()) return fail(ENODEV);
      if (s.buffers.empty()) return fail(EINVAL);
      start_streaming(shared);
      return 0;
    case VIDIOC_STREAMOFF:
      stop_streaming(s, held);
      return 0;
    default:
      return fail(ENOTTY);  // no controls, no TV standards, no DV timings, no events
  }
}

int open_device(int flags) {
  if (gone()) return fail(ENOENT);
  const int fd = ::eventfd(
      0, EFD_SEMAPHORE | ((flags & O_NONBLOCK) ? EFD_NONBLOCK : 0) | ((flags & O_CLOEXEC) ? EFD_CLOEXEC : 0));
  if (fd < 0) return fd;
  std::lock_guard held{lock()};
  auto s = std::make_shared<session>();
  s->fd = fd;
  sessions()[fd] = std::move(s);
  open_fakes.fetch_add(1);
  log_line("open %s -> fd %d", settings().path.c_str(), fd);
  return fd;
}

bool is_fake(int fd) {
  if (open_fakes.load() == 0 || fd < 0) return false;
  std::lock_guard held{lock()};
  return sessions().count(fd) != 0;
}

void fill_stat(struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_mode = S_IFCHR | 0660;
  st->st_rdev = makedev(81, 99);
  st->st_nlink = 1;
  st->st_blksize = 4096;
}

// The mode argument of open()/openat(), present only when a file may be created.
mode_t mode_of(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

}  // namespace

extern "C" {

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_of(flags, ap);
  va_end(ap);
  if (is_device(path)) return open_device(flags);
  static auto real = next_fn<int (*)(const char*, int, ...)>("open");
  return real(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_of(flags, ap);
  va_end(ap);
  if (is_device(path)) return open_device(flags);
  static auto real = next_fn<int (*)(const char*, int, ...)>("open64");
  return real(path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_of(flags, ap);
  va_end(ap);
  if (is_device(path)) return open_device(flags);
  static auto real = next_fn<int (*)(int, const char*, int, ...)>("openat");
  return real(dirfd, path, flags, mode);
}

int close(int fd) {
  if (open_fakes.load() != 0) {
    std::unique_lock held{lock()};
    if (auto it = sessions().find(fd); it != sessions().end()) {
      const std::shared_ptr<session> s = it->second;
      stop_streaming(*s, held);  // closing a streaming device stops it, as the kernel does
      sessions().erase(fd);
      open_fakes.fetch_sub(1);
      log_line("close fd %d", fd);
    }
  }
  static auto real = next_fn<int (*)(int)>("close");
  return real(fd);
}

int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (!is_fake(fd)) {
    static auto real = next_fn<int (*)(int, unsigned long, ...)>("ioctl");
    return real(fd, request, arg);
  }
  // The kernel reads the request as 32 bits; a program passing an int gets it sign-extended.
  request = static_cast<std::uint32_t>(request);
  const int result = device_ioctl(fd, request, arg);
  const int saved = errno;
  if (const char* name = ioctl_name(request))
    log_line("ioctl %s -> %d %s", name, result, result ? std::strerror(saved) : "");
  else
    log_line("ioctl unknown 0x%lx -> %d %s", request, result, std::strerror(saved));
  errno = saved;
  return result;
}

void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  static auto real = next_fn<void* (*)(void*, size_t, int, int, int, off_t)>("mmap");
  if (!is_fake(fd)) return real(addr, length, prot, flags, fd, offset);
  std::unique_lock held{lock()};
  auto it = sessions().find(fd);
  if (it == sessions().end()) {
    held.unlock();
    return real(addr, length, prot, flags, fd, offset);
  }
  const auto index = static_cast<std::uint32_t>(offset / 0x100000);
  auto& buffers = it->second->buffers;
  if (offset % 0x100000 != 0 || index >= buffers.size() || length > buffers[index].length) {
    errno = EINVAL;
    return MAP_FAILED;
  }
  void* p = real(addr, length, prot | PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return p;
  buffers[index].mapped = p;
  mappings()[p] = {fd, index};
  return p;
}

void* mmap64(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  return mmap(addr, length, prot, flags, fd, offset);
}

int munmap(void* addr, size_t length) {
  if (open_fakes.load() != 0) {
    std::lock_guard held{lock()};
    if (auto m = mappings().find(addr); m != mappings().end()) {
      auto s = sessions().find(m->second.first);
      if (s != sessions().end() && m->second.second < s->second->buffers.size())
        s->second->buffers[m->second.second].mapped = nullptr;
      mappings().erase(m);
    }
  }
  static auto real = next_fn<int (*)(void*, size_t)>("munmap");
  return real(addr, length);
}

int stat(const char* path, struct stat* st) {
  if (is_device(path)) {
    if (gone()) return fail(ENOENT);
    fill_stat(st);
    return 0;
  }
  static auto real = next_fn<int (*)(const char*, struct stat*)>("stat");
  return real(path, st);
}

int stat64(const char* path, struct stat64* st) {
  return stat(path, reinterpret_cast<struct stat*>(st));
}

int fstat(int fd, struct stat* st) {
  if (is_fake(fd)) {
    fill_stat(st);
    return 0;
  }
  static auto real = next_fn<int (*)(int, struct stat*)>("fstat");
  return real(fd, st);
}

int fstat64(int fd, struct stat64* st) {
  return fstat(fd, reinterpret_cast<struct stat*>(st));
}

int access(const char* path, int mode) {
  if (is_device(path)) return gone() ? fail(ENOENT) : 0;
  static auto real = next_fn<int (*)(const char*, int)>("access");
  return real(path, mode);
}

}  // extern "C"
