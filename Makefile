# Ferrocast developer commands. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
CONFORMANCE := tests/conformance
BIN := target/release/ferrocast

.PHONY: build run test test-deps test-rust test-conformance lint fmt clean

## Release build of the `ferrocast` binary.
build:
	$(CARGO) build --release --locked

## Build and start one node with the embedded default (demo app, in-process backplane).
run: build
	./$(BIN)

## Install what the tests need when missing: redis-server (apt) and the pinned npm clients.
test-deps:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		echo "installing redis-server"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	fi
	@command -v redis-server >/dev/null || { echo "redis-server is required but could not be installed" >&2; exit 1; }
	@command -v node >/dev/null || { echo "node is required (Node.js 20+)" >&2; exit 1; }
	@if [ ! -d $(CONFORMANCE)/node_modules ] || [ $(CONFORMANCE)/package-lock.json -nt $(CONFORMANCE)/node_modules/.package-lock.json ]; then \
		echo "installing conformance test packages (npm ci)"; \
		(cd $(CONFORMANCE) && npm ci --no-audit --no-fund --loglevel=error); \
	fi

## Every test: the Rust workspace, then the conformance suite against the release binary.
test: test-deps test-rust test-conformance

test-rust:
	$(CARGO) test --workspace --locked

test-conformance: build
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) npm test

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(CONFORMANCE)/node_modules
