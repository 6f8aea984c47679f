# The two commands of the README: `make demo` and `make test`.
# Everything else is a building block of those.
PRESET ?= dev
BUILD_DIR := build
# `make install` (after `make build`): PREFIX/bin, user units, completions,
# man page, sample config; DESTDIR for packaging (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: deps configure build test test-asan fuzz demo clean format bench install

deps:
	@scripts/install-deps

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET) >/dev/null; fi

build: configure
	@cmake --build --preset $(PRESET)

test: build
	@ctest --preset $(PRESET)

# The unit and daemon tests again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/; CMakePresets.json "asan"). The
# end-to-end, Python, Slurm and SSH tests stay with `make test`: they add
# little here for their time. Dependencies (gRPC, protobuf, SQLite) are
# Debian's, uninstrumented: their own bugs are out of sight, and container
# overflow checks are off (they misfire across that boundary).
test-asan: deps
	@if [ ! -f build-asan/build.ninja ]; then cmake --preset asan >/dev/null; fi
	@cmake --build --preset asan
	@ctest --preset asan

# Each libFuzzer target of tests/fuzz for FUZZ_SECONDS (default 60) over
# its checked-in seeds (tests/fuzz/corpus/<target>/); new inputs go to
# build-fuzz/corpus/, crashes to build-fuzz/crashes/. Built by clang.
fuzz: deps
	@if [ ! -f build-fuzz/build.ninja ]; then cmake --preset fuzz >/dev/null; fi
	@cmake --build --preset fuzz
	@BUILD_DIR=build-fuzz tests/fuzz/run

install:
	@scripts/install "$(BUILD_DIR)" "$(PREFIX)" "$(DESTDIR)"

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR) build-release build-asan build-fuzz

demo: build
	@scripts/demo

# amld beside its anchors (task-spooler, nq, git, restic, rsync, tar+zstd); BENCH_QUICK=1 for a short run.
# Figures come from the release preset (optimized, dependencies linked statically).
bench: deps
	@if [ ! -f build-release/build.ninja ]; then cmake --preset release >/dev/null; fi
	@cmake --build --preset release
	@BUILD_DIR=build-release bench/run
