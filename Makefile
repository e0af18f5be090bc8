# Thin wrapper over CMake so nobody needs to know it. See README.md.
#   make            build (build/)
#   make test       bootstrap, then the whole suite in the plain build (gcc) and in an
#                   ASan+UBSan build (clang, build-asan/); fails on any failure or sanitizer report
#   make run        build, then run the main job on a copy of examples/demo
#   make bench      run every benchmark and print one Markdown table
#   make soak       run every soak scenario (faults and load, minutes), print one Markdown
#                   table; fails when any scenario had a failure
#   make fuzz       build the libFuzzer targets (clang), run each for FUZZ_SECONDS (60), print a table
#   make format     clang-format every C file (make test fails on any difference: format-check)
#   make install    PREFIX=/usr/local by default
#   make clean
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CMAKE_FLAGS ?=
WERROR ?= ON
CTEST_FLAGS ?= --output-on-failure --timeout 300
FUZZ_SECONDS ?= 60

.PHONY: all build bootstrap test test-plain test-asan run bench soak fuzz format format-check install clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANDBAR_WERROR=$(WERROR) \
		-DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSANDBAR_SANITIZE=ON \
		-DSANDBAR_BENCH=OFF -DSANDBAR_WERROR=$(WERROR) $(CMAKE_FLAGS)

test: bootstrap format-check test-plain test-asan

# A test that cannot run here (no sandbox, root or sshd) fails; with SANDBAR_ALLOW_SKIP=1 it is
# skipped instead, and every skipped case is listed after the run (tests/meta, sbt_skip).
SKIPPED_LIST = if [ -s Testing/sandbar-skipped.txt ]; then \
		echo "== cases SKIPPED in $(1) (SANDBAR_ALLOW_SKIP=1): they did not run =="; \
		cat Testing/sandbar-skipped.txt; fi

test-plain: build
	cd $(BUILD) && { ctest $(CTEST_FLAGS) -j $(JOBS); rc=$$?; $(call SKIPPED_LIST,$(BUILD)); exit $$rc; }

test-asan: bootstrap $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_FLAGS) -j $(JOBS); \
		rc=$$?; $(call SKIPPED_LIST,$(ASAN_BUILD)); exit $$rc

run: build
	@scripts/run-demo $(BUILD)

# The build's chatter goes to stderr: stdout is the one Markdown table.
bench: bootstrap $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) >&2
	@scripts/bench $(BUILD)

soak: bootstrap $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) >&2
	@scripts/soak $(BUILD)

fuzz: bootstrap
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSANDBAR_FUZZ=ON \
		-DSANDBAR_TESTS=OFF -DSANDBAR_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

format:
	find include src tests bench fuzz -name '*.[ch]' -print0 | xargs -0 clang-format -i

# Every C file as .clang-format wants it; `make format` fixes a difference.
format-check: bootstrap
	@find include src tests bench fuzz -name '*.[ch]' -print0 | \
		xargs -0 clang-format --dry-run --Werror || \
		{ echo "format-check: run \`make format\`" >&2; exit 1; }

install: bootstrap
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)
	@scripts/create-sandbar-user || true
	@scripts/create-token

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
