# postline — the two set-up commands are `make run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CTEST_JOBS ?= 2

.PHONY: all bootstrap build run test bench clean format

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR)

# The main job on the embedded default (SQLite queue, file outbox): queue the
# example e-mails and invoices and deliver them with the worker.
run: bootstrap
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD_DIR) --target postline
	@scripts/run-demo $(BUILD_DIR)/src/app/postline

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS) --timeout 600

# Benchmarks against the peer and the machine's limit -> docs/benchmarks.md
# (`make bench QUICK=1` for a run of under a minute).
bench: build
	@scripts/bootstrap-bench
	@QUICK="$(QUICK)" scripts/bench $(BUILD_DIR)

format:
	@find include src bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	@rm -rf $(BUILD_DIR)
