#include "mjpeg/image.hpp"

#include <memory>
#include <stdexcept>
#include <string>

#include <turbojpeg.h>

namespace mjpeg {
namespace {

// One compressor per thread: tjInitCompress costs allocations, and a handle is not thread-safe.
struct compressor_deleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};

tjhandle thread_compressor() {
  thread_local const std::unique_ptr<void, compressor_deleter> handle{tjInitCompress()};
  if (!handle) throw std::runtime_error(std::string{"TurboJPEG: "} + tjGetErrorStr2(nullptr));
  return handle.get();
}

}  // namespace

std::vector<std::uint8_t> encode_jpeg(const image& pixels, int quality) {
  if (pixels.empty()) throw std::runtime_error("encode_jpeg: no picture");
  const tjhandle handle = thread_compressor();
  // TurboJPEG writes into a buffer of tjBufSize() it allocates itself (TJFLAG_NOREALLOC off); the
  // bytes are copied once into the frame's vector.
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int failed = tjCompress2(handle, pixels.bgr.data(), pixels.width, 0, pixels.height, TJPF_BGR, &jpeg,
                                 &size, TJSAMP_420, quality, 0);
  const std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned{jpeg, tjFree};
  if (failed != 0) throw std::runtime_error(std::string{"TurboJPEG: "} + tjGetErrorStr2(handle));
  return {jpeg, jpeg + size};
}

}  // namespace mjpeg
