# The two commands of the README: `make demo` and `make test`.
# Everything else is a building block of those.
PRESET ?= dev
BUILD_DIR := build
# `make install` (after `make build`): PREFIX/bin, user units, completions,
# man page, sample config; DESTDIR for packaging (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: deps configure build test test-asan test-asan-ci test-tsan fuzz demo clean format bench install

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
# end-to-end, Python, Slurm and SSH tests stay with `make test` for now.
# Python itself needs no LD_PRELOAD of libasan to join: the SDK is pure
# Python and only starts the ASan-built aml/amld/amld-shim; but a daemon
# started by `aml daemon start` has no terminal, so its reports must go to
# files (ASAN_OPTIONS log_path) that a last step checks, and the ASan daemon
# and the e2e binaries add ~90 objects to build: not done yet (issue 19).
# Dependencies (gRPC, protobuf, SQLite) are Debian's, uninstrumented: their
# own bugs are out of sight, and container overflow checks are off (they
# misfire across that boundary). Cold, this build is ~257 objects, an estimated
# 75 CPU-minutes (ASan objects of this tree take ~16 CPU-s each on average
# here): too long for CI, which runs test-asan-ci below.
test-asan: deps
	@if [ ! -f build-asan/build.ninja ]; then cmake --preset asan >/dev/null; fi
	@cmake --build --preset asan
	@ctest --preset asan

# The tests of the daemon's own threads under ThreadSanitizer (build-tsan/;
# preset "tsan"): so far the task runner's pool and CAS GC beside writers
# (tests/CMakeLists.txt names the next ones). Debian's libraries are not
# instrumented: amld's absl::Mutex and CondVar are made visible to TSan by
# tests/tsan/absl_sync_annotations.cc (without it every guarded field is
# reported); gRPC's lock-free atomics and completion queues stay invisible,
# so the tests that go through gRPC (daemon_test, follow_test) are left out:
# a race ordered only by gRPC internals would be reported falsely. Not in CI.
test-tsan: deps
	@if [ ! -f build-tsan/build.ninja ]; then cmake --preset tsan >/dev/null; fi
	@cmake --build --preset tsan
	@ctest --preset tsan

# The part of test-asan that CI (.ci/run, 2 cores, after `make test`) can
# afford: the tests of base/, storage/ and the shim, the code that parses
# what others wrote (ignore files, Directory protos, the stat cache, the
# database, exit.json). 70 objects, an estimated 19 CPU-minutes cold (~10 min on
# CI's 2 cores) and 7 s of tests. Left out, for their build time: the
# daemon, client and executor unit tests (the other ~187 objects).
test-asan-ci: deps
	@if [ ! -f build-asan/build.ninja ]; then cmake --preset asan >/dev/null; fi
	@cmake --build --preset asan-ci
	@ctest --preset asan-ci

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
	rm -rf $(BUILD_DIR) build-release build-asan build-tsan build-fuzz

demo: build
	@scripts/demo

# amld beside its anchors (task-spooler, nq, git, restic, rsync, tar+zstd); BENCH_QUICK=1 for a short run.
# Figures come from the release preset (optimized, dependencies linked statically).
bench: deps
	@if [ ! -f build-release/build.ninja ]; then cmake --preset release >/dev/null; fi
	@cmake --build --preset release
	@BUILD_DIR=build-release bench/run
