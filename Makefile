# ebridge: `make` builds build/ebridge; `make test` builds and runs every test
# (also under ASan+UBSan, TSan, and short fuzz runs); `make run` starts it.
# CMake does the real work underneath.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build deps test test-fast test-asan test-tsan test-fuzz run bench bench-load fuzz-long clean

all: build

deps:
	@tools/bootstrap.sh

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

# the server on the embedded store: 127.0.0.1:4010, data in ./ebridge-data (Ctrl-C stops it)
run: deps build
	@build/ebridge serve

test: deps
	@$(MAKE) --no-print-directory test-fast test-asan test-tsan test-fuzz

test-fast: build
	cd build && ctest --output-on-failure -j $(JOBS)

test-asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEB_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -E '^stress_'

test-tsan:
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEB_TSAN=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target test_stress
	build-tsan/test_stress

test-fuzz:
	@tools/fuzz.sh replay

# long fuzzing: make fuzz-long FUZZ_LONG_SECONDS=600 (per target, two at a time)
FUZZ_LONG_SECONDS ?= 600
fuzz-long:
	@tools/fuzz.sh long $(FUZZ_LONG_SECONDS)

bench: build
	@bench/run_citylots.sh

# the API server under load (wrk, 64 connections, durable): DURATION=10 make bench-load for a short run
bench-load: deps build
	@bench/load/run.sh build/ebridge

clean:
	rm -rf build build-asan build-tsan build-fuzz

# the delivery engine end to end: PutEvents -> one rule -> function targets over HTTP, paced
# load generator and receiver on this machine (~7 minutes; DURATION=15 RAMP_SECONDS=8 for a short run)
.PHONY: bench-delivery
bench-delivery: deps build
	@bench/delivery/run.sh build/ebridge
