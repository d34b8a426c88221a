# Thin wrapper over CMake presets: `make run` and `make test` do all set-up on a fresh Debian 12.
PRESET  ?= default
VARIANT ?= async
ARGS    ?=

BUILD_DIR = build/$(PRESET)
BINARY    = $(BUILD_DIR)/variants/$(subst -,_,$(VARIANT))/mjpeg-$(VARIANT)

FUZZ_SECONDS ?= 60

.PHONY: all deps configure build run test bench figures fuzz package format format-check clean cluster

all: build

# The Debian packages: building and serving need the base set; `make test` adds the programs the
# tests drive (browsers, nginx, HAProxy, Prometheus, …), `make format-check` clang-format.
DEPS ?=
deps:
	@scripts/install-deps $(DEPS)

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
	cmake --build --preset $(PRESET) --target mjpeg-single-thread mjpeg-thread-per-client mjpeg-thread-pool mjpeg-async mjpeg-load
	bench/figures --preset $(PRESET)

## make package: the Debian package (build/<preset>/mjpeg-concurrency_<version>_<arch>.deb).
package: build
	@scripts/install-deps package
	cd $(BUILD_DIR) && cpack -G DEB

format:
	@scripts/format

format-check: DEPS = format
format-check: deps
	@scripts/format --check

clean:
	rm -rf build
