# The two commands of the README: `make demo` and `make test`.
# Everything else is a building block of those.
PRESET ?= dev
BUILD_DIR := build
# `make install` (after `make build`): PREFIX/bin, user units, completions,
# man page, sample config; DESTDIR for packaging (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: deps configure build test demo clean format bench install

deps:
	@scripts/install-deps

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET) >/dev/null; fi

build: configure
	@cmake --build --preset $(PRESET)

test: build
	@ctest --preset $(PRESET)

install:
	@scripts/install "$(BUILD_DIR)" "$(PREFIX)" "$(DESTDIR)"

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR) build-release

demo: build
	@scripts/demo

# amld beside its anchors (task-spooler, nq, git, restic, rsync, tar+zstd); BENCH_QUICK=1 for a short run.
# Figures come from the release preset (optimized, dependencies linked statically).
bench: deps
	@if [ ! -f build-release/build.ninja ]; then cmake --preset release >/dev/null; fi
	@cmake --build --preset release
	@BUILD_DIR=build-release bench/run
