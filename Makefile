# The two commands of the README: `make demo` and `make test`.
# Everything else is a building block of those.
PRESET ?= dev
BUILD_DIR := build
# `make install` (after `make build`): PREFIX/bin, user units, completions,
# man page, sample config; DESTDIR for packaging (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=

# The sanitizers' options of test-asan and test-asan-ci. Reports go to files
# (log_path) in a folder outside the clone, one per clone, that runs of the
# multi-user tests can write as their users (the clone may be in /root).
SANITIZER_DIR := /var/tmp/amld-sanitizer-$(shell printf %s '$(CURDIR)' | sha256sum | cut -c1-12)
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:detect_container_overflow=0:abort_on_error=1:strict_string_checks=1:log_path=$(SANITIZER_DIR)/report \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SANITIZER_DIR)/report \
  LSAN_OPTIONS=suppressions=$(SANITIZER_DIR)/lsan.supp:print_suppressions=0
# ctest PRESET under the sanitizers, then every report printed; fails if
# either failed.
define sanitized_ctest
	@tests/asan/sanitizer_reports.sh clear $(SANITIZER_DIR) tests/asan/lsan.supp
	@status=0; $(SANITIZER_ENV) ctest --preset $(1) || status=$$?; \
	  tests/asan/sanitizer_reports.sh check $(SANITIZER_DIR) || status=1; exit $$status
endef

.PHONY: deps configure build test test-asan test-asan-ci test-tsan fuzz demo clean format bench install

deps:
	@scripts/install-deps

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET) >/dev/null; fi

build: configure
	@cmake --build --preset $(PRESET)

test: build
	@ctest --preset $(PRESET)

# The whole suite again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/; CMakePresets.json "asan"): unit,
# daemon, end-to-end, Python, Slurm, SSH and multi-user tests. The daemons,
# shims and CLIs the tests start have no terminal for a report, so every
# test runs with the sanitizers' log_path set (SANITIZER_ENV above), and
# tests/asan/sanitizer_reports.sh empties that folder first and fails last
# if any process wrote a report. Python needs no
# LD_PRELOAD of libasan: the SDK is pure Python and only starts the ASan-built
# aml/amld/amld-shim. Dependencies (gRPC, protobuf, SQLite) are Debian's,
# uninstrumented: their own bugs are out of sight, and container overflow
# checks are off (they misfire across that boundary). Cold, this build is the
# whole tree (~400 objects, ~16 CPU-s each here): too long for CI, which runs
# test-asan-ci below.
test-asan: deps
	@if [ ! -f build-asan/build.ninja ]; then cmake --preset asan >/dev/null; fi
	@cmake --build --preset asan
	$(call sanitized_ctest,asan)

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
	$(call sanitized_ctest,asan-ci)

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
