# Thin wrapper over CMake presets: `make run` and `make test` do all set-up on a fresh Debian 12.
PRESET  ?= default
# ARCH=arm64 cross-builds the servers for 64-bit ARM (Raspberry Pi OS 64-bit) in build/arm64.
ARCH    ?=
ifeq ($(ARCH),arm64)
PRESET  = arm64
DEPS_ARCH = cross-arm64
else ifneq ($(ARCH),)
$(error ARCH=$(ARCH): only arm64 is cross-built; leave ARCH unset for this machine's own)
endif
VARIANT ?= async
ARGS    ?=

BUILD_DIR = build/$(PRESET)
BINARY    = $(BUILD_DIR)/variants/$(subst -,_,$(VARIANT))/mjpeg-$(VARIANT)

FUZZ_SECONDS ?= 60

.PHONY: all deps configure build run test bench figures fuzz package package-check arm64-check table format format-check clean cluster demo exercise \
        exercises-check

# `make exercise 1.1`: the word after `exercise` is the exercise's number, not a target of its own.
ifeq (exercise,$(firstword $(MAKECMDGOALS)))
  EXERCISE := $(word 2,$(MAKECMDGOALS))
  $(if $(EXERCISE),$(eval $(EXERCISE):;@:))
endif

all: build

# The Debian packages: building and serving need the base set; `make test` adds the programs the
# tests drive (browsers, nginx, HAProxy, Prometheus, …), `make format-check` clang-format.
DEPS ?=
deps:
	@scripts/install-deps $(DEPS) $(DEPS_ARCH)

configure: deps
	cmake --preset $(PRESET)

build: configure
	cmake --build --preset $(PRESET)

## make run [VARIANT=async|single-thread|thread-per-client|thread-pool|io-uring] [ARGS="--port 9000 --source 0"]: serve the synthetic camera.
run: configure
	cmake --build --preset $(PRESET) --target mjpeg-$(VARIANT)
	$(BINARY) $(ARGS)

## make cluster [FRONT_PORT=8080 BUS_PORT=5555 VARIANT=async]: origin, two edges and HAProxy on loopback; Ctrl-C stops.
cluster: DEPS = test
cluster: build
	scripts/cluster $(BUILD_DIR)

## make test [PRESET=asan|tsan]: build, then every test with output on failure.
test: DEPS = test
test: build
	ctest --preset $(PRESET)

## make fuzz [FUZZ_SECONDS=60]: libFuzzer over request parsing, routing and error writing.
fuzz:
	@scripts/install-deps fuzz
	cmake --preset fuzz
	cmake --build --preset fuzz
	rm -rf build/fuzz/corpus && mkdir -p build/fuzz/corpus
	build/fuzz/fuzz/mjpeg-request-fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  build/fuzz/corpus fuzz/corpus/request

## make bench [ARGS=--quick]: every variant built, across viewer counts and scenarios, into bench/results/<date>/; then make figures' timelines.
bench: build
	@scripts/install-deps bench
	bench/compare --preset $(PRESET) $(ARGS)
	bench/figures --preset $(PRESET)

## make figures: the chapters' timelines, drawn from real traces, into bench/results/2026-12-04-timelines/ (about a minute).
figures: configure
	cmake --build --preset $(PRESET) --target mjpeg-single-thread mjpeg-thread-per-client mjpeg-thread-pool mjpeg-async mjpeg-io-uring \
	    mjpeg-load
	bench/figures --preset $(PRESET)

## make table [ARGS=--quick]: the one table of chapter 5: every model on one client, against the floor, into bench/results/<date>-five-models/.
table: build
	@scripts/install-deps bench
	bench/table --preset $(PRESET) $(ARGS)

## make demo CHAPTER=1|2|2b|3|4|4b|6|7 [SECONDS=20] [LINK=1]: the chapter's lesson live, a line a second,
## stops by itself (LINK=1: chapter 7 on a shaped link, as root).
CHAPTER ?=
SECONDS ?= 20
demo: configure
	cmake --build --preset $(PRESET) --target mjpeg-single-thread mjpeg-thread-per-client mjpeg-thread-pool \
	  mjpeg-async mjpeg-io-uring mjpeg-load $(if $(LINK),mjpeg-lan)
	bench/demo $(CHAPTER) --seconds $(SECONDS) --preset $(PRESET) $(if $(LINK),--link)

## make exercise N [ANSWER=1]: the checks of exercise N (1.1, 3.2, …) against your change (ANSWER=1: the answer's).
exercise: DEPS = exercises
exercise: deps
	scripts/exercise $(if $(ANSWER),--answer )$(EXERCISE)

## make exercises-check: every exercise's checks fail on the unchanged code and pass with its answer.
exercises-check: DEPS = exercises
exercises-check: deps
	scripts/exercise --check

## make package: the Debian packages (build/<preset>/mjpeg-concurrency{,-opencv}_<version>_<arch>.deb).
package: DEPS = package
package: build
	cd $(BUILD_DIR) && cpack -G DEB

## make package-check: installs the package on a fresh minimal Debian 12 root (mmdebstrap), serves a frame, purges it.
package-check: package
	@scripts/install-deps package-check
	scripts/package-check $(BUILD_DIR)

## make arm64-check: the arm64 servers under qemu-aarch64-static, frames checked byte for byte.
arm64-check:
	$(MAKE) package ARCH=arm64
	@scripts/install-deps cross-arm64
	scripts/arm64-check build/arm64

format:
	@scripts/format

format-check: DEPS = format
format-check: deps
	@scripts/format --check

clean:
	rm -rf build
