# Cross-compiling for 64-bit ARM (Raspberry Pi OS 64-bit, Debian bookworm arm64) on a Debian 12
# amd64 host with Debian's multiarch: crossbuild-essential-arm64 gives aarch64-linux-gnu-g++, and
# the :arm64 -dev packages (scripts/install-deps cross-arm64) put their headers in /usr/include and
# /usr/include/aarch64-linux-gnu and their libraries in /usr/lib/aarch64-linux-gnu, beside the
# amd64 ones. Used by the arm64 preset (make package ARCH=arm64).
#
# MJPEG_ARM64_SYSROOT (cache or environment) points at a whole arm64 root instead, such as one
# unpacked by `mmdebstrap --variant=extract --architectures=arm64` or a Raspberry Pi OS image
# mounted read-only: then headers and libraries come from there and nothing is searched on the host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT MJPEG_ARM64_SYSROOT AND DEFINED ENV{MJPEG_ARM64_SYSROOT})
  set(MJPEG_ARM64_SYSROOT "$ENV{MJPEG_ARM64_SYSROOT}")
endif()
set(MJPEG_ARM64_SYSROOT "${MJPEG_ARM64_SYSROOT}" CACHE PATH "An arm64 root to build against instead of the host's multiarch directories")

if(MJPEG_ARM64_SYSROOT)
  set(CMAKE_SYSROOT "${MJPEG_ARM64_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH "${MJPEG_ARM64_SYSROOT}")
  # A root unpacked without running maintainer scripts has no ld.so.conf and no alternatives
  # (libblas.so.3 and liblapack.so.3 stay in their own folders): name those directories for the
  # linker's search of libraries' own dependencies, and for qemu's loader (MJPEG_ARM64_LIBRARY_PATH).
  set(MJPEG_ARM64_LIBRARY_PATH "${MJPEG_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu:${MJPEG_ARM64_SYSROOT}/lib/aarch64-linux-gnu:${MJPEG_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/blas:${MJPEG_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/lapack")
  string(REPLACE ":" ";" dirs "${MJPEG_ARM64_LIBRARY_PATH}")
  foreach(dir IN LISTS dirs)
    string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -Wl,-rpath-link,${dir}")
  endforeach()
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${MJPEG_ARM64_SYSROOT}")
  set(ENV{PKG_CONFIG_LIBDIR}
      "${MJPEG_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${MJPEG_ARM64_SYSROOT}/usr/share/pkgconfig")
else()
  # Multiarch: the host's / is the arm64 root too; only aarch64-linux-gnu library directories count.
  set(CMAKE_FIND_ROOT_PATH /)
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# What runs an arm64 program at build time (the man pages run each server's --help): qemu-user,
# without binfmt, with the same library prefix scripts/arm64-check uses.
find_program(MJPEG_QEMU_AARCH64 qemu-aarch64-static)
if(MJPEG_QEMU_AARCH64)
  if(MJPEG_ARM64_SYSROOT)
    set(CMAKE_CROSSCOMPILING_EMULATOR env "LD_LIBRARY_PATH=${MJPEG_ARM64_LIBRARY_PATH}" ${MJPEG_QEMU_AARCH64}
        -L ${MJPEG_ARM64_SYSROOT})
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR env "LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib:/usr/lib/aarch64-linux-gnu:/lib/aarch64-linux-gnu"
        ${MJPEG_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
  endif()
endif()

# The Debian package is arm64 (CPack would ask dpkg, which answers amd64 here).
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE arm64)
