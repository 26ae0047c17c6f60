# Ferrocast developer commands. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
CONFORMANCE := tests/conformance
BIN := target/release/ferrocast

.PHONY: build run test test-deps redis-deps postgres-deps npm-deps test-rust test-conformance test-hostile lint fmt clean
.PHONY: example test-example example-deps chromium-deps

## $(call need,COMMAND,PACKAGE[,WHY]): install the Debian PACKAGE (apt, sudo unless root) when
## COMMAND is missing, then fail loudly if it still is: no test skips for a missing tool.
define need
	@if ! command -v $(1) >/dev/null 2>&1; then \
		echo "installing $(2)$(if $(3), ($(3)))"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	fi
	@command -v $(1) >/dev/null || { echo "$(1) is required but could not be installed (Debian package $(2))" >&2; exit 1; }
endef

## Release build of the workspace: the `ferrocast` binary (and the load tester, the example app).
build:
	$(CARGO) build --release --locked

## Build and start one node with the embedded default (demo app, in-process backplane).
run: build
	./$(BIN)

## Install what the tests need when missing: redis-server, promtool and chromium (apt), the pinned
## npm clients (tests/conformance, examples/secure-chat) and cargo-fuzz.
test-deps: fuzz-deps redis-deps postgres-deps npm-deps chromium-deps example-deps
	$(call need,promtool,prometheus,for promtool)

## redis-server and redis-cli (apt) when missing, and openssl (the TLS tests make their CA with
## it). Debian's redis-server has TLS, Sentinel (`redis-server --sentinel`) and Cluster built in.
redis-deps:
	$(call need,redis-server,redis-server)
	$(call need,redis-cli,redis-tools,the Redis Cluster tests create their cluster with it)
	$(call need,openssl,openssl)

## PostgreSQL server binaries (apt package postgresql) for the postgres app registry tests
## (tests/conformance/lib/postgres.mjs). Debian puts initdb and pg_ctl off PATH, in
## /usr/lib/postgresql/<version>/bin, so this checks there rather than with $(call need,...).
PG_INITDB = ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
postgres-deps:
	@if ! $(PG_INITDB); then \
		echo "installing postgresql (the postgres app registry tests)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi
	@$(PG_INITDB) || { echo "initdb is required in /usr/lib/postgresql/*/bin but could not be installed (Debian package postgresql)" >&2; exit 1; }

## Node.js check and the pinned npm clients of tests/conformance (npm ci) when missing or stale.
npm-deps:
	@command -v node >/dev/null || { echo "node is required (Node.js 20+)" >&2; exit 1; }
	@if [ ! -d $(CONFORMANCE)/node_modules ] || [ $(CONFORMANCE)/package-lock.json -nt $(CONFORMANCE)/node_modules/.package-lock.json ]; then \
		echo "installing conformance test packages (npm ci)"; \
		(cd $(CONFORMANCE) && npm ci --no-audit --no-fund --loglevel=error); \
	fi

## Every test: the Rust workspace, then the conformance suite against the release binary.
test: test-deps test-rust fuzz-smoke test-conformance test-hostile soak-smoke loadtest-smoke test-deploy test-helm test-example

## The Rust workspace's tests. The SDK's (crates/sdk/tests) need the release binary (a REST and
## encrypted-channel test against a real node) and the pinned npm packages (cross-checks against
## the official Node SDK and pusher-js): they fail, never skip, without them.
test-rust: build npm-deps redis-deps
	FERROCAST_BIN=$(CURDIR)/$(BIN) $(CARGO) test --workspace --locked
	@echo "the Redis backplane's tests again on a one-node Redis Cluster with 16 buckets (a script that reaches another slot than its KEYS fails there)"
	@# The binaries built above, run again: `cargo test -p` would build them a second time (its
	@# feature set differs from the workspace's), ~45 s on 2 cores.
	@bins=$$($(CARGO) test --workspace --locked --no-run --message-format=json 2>/dev/null \
		| grep '"package_id":"[^"]*crates/backplane-redis#' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4); \
	[ -n "$$bins" ] || { echo "no test binaries of ferrocast-backplane-redis found" >&2; exit 1; }; \
	for bin in $$bins; do \
		echo "FERROCAST_TEST_REDIS=one-node-cluster $$bin"; \
		(cd crates/backplane-redis && FERROCAST_TEST_REDIS=one-node-cluster $$bin) || exit 1; \
	done

test-conformance: build
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) npm test
	@echo "conformance suite again on a two-node cluster through Redis (clients on node A, REST on node B)"
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) npm run test:cluster
	@echo "the Redis tests again on the redis-cluster driver (each file its own 3-primary Redis Cluster)"
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) npm run test:redis-cluster

## Hostile clients (tests/conformance/hostile): one attack per test against the release binary.
test-hostile: build
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) npm run test:hostile

.PHONY: metrics-reference

## Rewrite the metrics reference table of docs/operations.md from the /metrics of the release binary
## (fresh nodes: without arguments, and a full config on the memory and Redis backplanes). The
## conformance suite (metrics-reference.test.mjs) fails while the table differs from it.
metrics-reference: build redis-deps npm-deps
	cd $(CONFORMANCE) && FERROCAST_BIN=$(CURDIR)/$(BIN) node gen-metrics-reference.mjs

## ---- Chaos soak: tests/soak (see tests/soak/README.md and docs/operations.md) ----

.PHONY: soak soak-smoke

SOAK := tests/soak
## Minutes of load for `make soak`.
SOAK_MINUTES ?= 10

## A 3-node cluster on one Redis (AOF) under steady load for SOAK_MINUTES (default 10) with node
## SIGKILLs, Redis SIGSTOPs and Redis SIGKILLs at random intervals, then the audits (no lost event
## for connected clients, no ghost member, no lost webhook, memory back to baseline). Not part of
## `make test`. Figures: target/soak/last.json.
soak: build redis-deps npm-deps
	cd $(SOAK) && node --test --test-reporter=dot audit.test.mjs
	cd $(SOAK) && FERROCAST_BIN=$(CURDIR)/$(BIN) SOAK_MINUTES=$(SOAK_MINUTES) node soak.mjs

## The same for ~45 s of load with one chaos action of each kind on a fixed schedule (≤ 90 s wall).
## Part of `make test`. Figures: target/soak/last-smoke.json.
soak-smoke: build redis-deps npm-deps
	cd $(SOAK) && node --test --test-reporter=dot audit.test.mjs
	cd $(SOAK) && FERROCAST_BIN=$(CURDIR)/$(BIN) node soak.mjs --smoke

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(CONFORMANCE)/node_modules $(EXAMPLE)/node_modules

## ---- Deployment: deploy/ (image, node config, HAProxy) and docker-compose.yml ----

DEPLOY_TESTS := tests/deploy
DEPLOY_VENV := $(DEPLOY_TESTS)/.venv

.PHONY: test-deploy docker

## Check the deployment files without a Docker engine: Compose schema and layout, the nodes'
## stop_grace_period against their drain (shutdown_grace_s + leave_delay_ms + flush_timeout_s),
## Dockerfile (BuildKit parser, hadolint, structure), `haproxy -c`, HAProxy's retry policy (the
## real haproxy in front of loopback stubs: an unanswered POST is never replayed), and
## deploy/ferrocast.toml against the release binary. Installs haproxy (apt) and the pinned
## Python tools (tests/deploy/.venv) when missing.
test-deploy: build
	$(call need,haproxy,haproxy)
	@if [ ! -x $(DEPLOY_VENV)/bin/pip ]; then \
		echo "creating $(DEPLOY_VENV)"; \
		rm -rf $(DEPLOY_VENV); \
		python3 -m venv $(DEPLOY_VENV) || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	@$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(DEPLOY_TESTS)/requirements.txt
	PYTHONDONTWRITEBYTECODE=1 FERROCAST_BIN=$(CURDIR)/$(BIN) \
		$(DEPLOY_VENV)/bin/python -m pytest -p no:cacheprovider -v $(DEPLOY_TESTS)/check_deploy.py

## Container image of one node (needs a Docker engine with BuildKit). See docker-compose.yml.
docker:
	docker build -f deploy/Dockerfile -t ferrocast:local \
		--build-arg FERROCAST_BUILD_COMMIT=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) .

## ---- Helm chart (helm/ferrocast) and Grafana dashboard (deploy/grafana-dashboard.json) ----

HELM_TESTS := tests/helm
HELM_VENV := $(HELM_TESTS)/.venv

.PHONY: test-helm

## Check the chart without a helm binary or a cluster: render and `helm lint --strict` it with
## Helm's Go SDK (helm-python-sdk), validate every manifest against the Kubernetes schemas, check
## its semantics, run the rendered ferrocast.toml on the release binary, run the `helm test`
## pod's command with busybox against it, and check the Grafana dashboard's queries against the
## metrics the binary exposes. Installs the pinned Python tools (tests/helm/.venv) and busybox
## (apt) when missing.
test-helm: build
	$(call need,busybox,busybox,the helm test pod's tools)
	@if [ ! -x $(HELM_VENV)/bin/pip ]; then \
		echo "creating $(HELM_VENV)"; \
		rm -rf $(HELM_VENV); \
		python3 -m venv $(HELM_VENV) || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	@$(HELM_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(HELM_TESTS)/requirements.txt
	@$(HELM_VENV)/bin/python -c 'import helm_python as h, kubernetes_validate.utils as k; \
		print(f"Helm SDK {h.helm_sdk_version()} (helm-python-sdk {h.__version__}); Kubernetes schemas up to {k.latest_version()}")'
	PYTHONDONTWRITEBYTECODE=1 FERROCAST_BIN=$(CURDIR)/$(BIN) \
		$(HELM_VENV)/bin/python -m pytest -p no:cacheprovider -v $(HELM_TESTS)/check_helm.py

## ---- Load tester and benchmarks: loadtest/ (see docs/benchmarks.md) ----

.PHONY: bench loadtest-smoke

CRITERION_ARGS ?= --warm-up-time 1 --measurement-time 3

## Criterion micro-benchmarks, then real nodes under ferrocast-loadtest; writes docs/benchmarks.md.
## Not part of `make test`: takes minutes and wants an otherwise idle machine.
bench:
	$(CARGO) bench --locked --no-run -p ferrocast-protocol -p ferrocast-broker --bench protocol --bench fanout
	loadtest/scripts/wait_quiet.sh
	$(CARGO) bench --locked -p ferrocast-protocol -p ferrocast-broker --bench protocol --bench fanout -- $(CRITERION_ARGS)
	loadtest/scripts/bench.sh

## Tiny run of every load tester scenario against one real node (~10 s after the build); fails
## unless every event was delivered exactly once, with no error and no server-side close.
loadtest-smoke:
	$(CARGO) build --release --locked -p ferrocast-server -p ferrocast-loadtest
	loadtest/scripts/smoke.sh

## ---- Fuzzing: fuzz/ (cargo-fuzz, libFuzzer; see README.md "Fuzzing") ----

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-deps

FUZZ_TARGETS := frame_reader client_message channel_name rest_signature envelope
## Seconds per target for `make fuzz` and for the smoke run in `make test`.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 10
## cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with this.
CARGO_FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
FUZZ_FLAGS := -O --debug-assertions
LIBFUZZER_FLAGS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

## cargo-fuzz, installed when missing.
fuzz-deps:
	@if ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
		echo "installing cargo-fuzz"; \
		$(CARGO) install cargo-fuzz --locked; \
	fi
	@$(CARGO) fuzz --version >/dev/null 2>&1 || { echo "cargo-fuzz is required but could not be installed" >&2; exit 1; }

fuzz-build: fuzz-deps
	cd fuzz && $(CARGO_FUZZ) build $(FUZZ_FLAGS)

## Each target for FUZZ_SECONDS (default 300), growing its corpus in fuzz/corpus/<target>
## (only the committed seed-* files are tracked). A crash stops the run and is saved in
## fuzz/artifacts/<target>/; reproduce it with `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run
## -O <target> artifacts/<target>/<file>` and turn it into a regression test.
fuzz: fuzz-build
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		(cd fuzz && $(CARGO_FUZZ) run $(FUZZ_FLAGS) $$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) $(LIBFUZZER_FLAGS)) || exit 1; \
	done

## In `make test`: replay each target's committed corpus, then fuzz it for FUZZ_SMOKE_SECONDS
## (default 10) from there. New inputs go to a throw-away directory; crashes to fuzz/artifacts/.
## Built unoptimized and without AddressSanitizer (debug assertions and overflow checks stay on):
## 1.5 min to build on 2 cores instead of 5, which is most of a smoke run's cost; every crate of
## ours forbids unsafe code, and `make fuzz` keeps the optimized ASan build for long runs.
FUZZ_SMOKE_FLAGS := --dev --sanitizer none
fuzz-smoke: fuzz-deps
	cd fuzz && $(CARGO_FUZZ) build $(FUZZ_SMOKE_FLAGS)
	@work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	for target in $(FUZZ_TARGETS); do \
		echo "fuzz smoke: $$target ($(FUZZ_SMOKE_SECONDS) s)"; \
		mkdir -p "$$work/$$target"; \
		(cd fuzz && $(CARGO_FUZZ) run $(FUZZ_SMOKE_FLAGS) $$target "$$work/$$target" corpus/$$target -- \
			-max_total_time=$(FUZZ_SMOKE_SECONDS) $(LIBFUZZER_FLAGS)) || exit 1; \
	done

## ---- Example: end-to-end encrypted chat (examples/secure-chat, see its README.md) ----

EXAMPLE := examples/secure-chat
EXAMPLE_BIN := target/release/secure-chat
## Ports of `make example`: the page, and the broker's client/REST and metrics ports.
EXAMPLE_PORT ?= 3000
EXAMPLE_BROKER_PORT ?= 6001
EXAMPLE_METRICS_PORT ?= 9601

## Debian's chromium (apt) when missing, for the example's browser test (driven by playwright-core
## from npm; never `npx playwright install`).
chromium-deps:
	$(call need,chromium,chromium)

## The example's pinned npm packages (pusher-js for the page; playwright-core and ws for its test),
## npm ci when missing or stale.
example-deps:
	@command -v node >/dev/null || { echo "node is required (Node.js 20+)" >&2; exit 1; }
	@if [ ! -d $(EXAMPLE)/node_modules ] || [ $(EXAMPLE)/package-lock.json -nt $(EXAMPLE)/node_modules/.package-lock.json ]; then \
		echo "installing the secure-chat example's packages (npm ci)"; \
		(cd $(EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error); \
	fi

## Start a broker (demo app) and the secure-chat app with a fresh master key, for a person to try;
## Ctrl-C stops both.
## (`build` builds the whole workspace, the example included: one feature set, no rebuild.)
example: build example-deps
	@command -v openssl >/dev/null || { echo "openssl is required (apt-get install openssl)" >&2; exit 1; }
	@fc=""; sc=""; \
	trap 'kill $$sc $$fc 2>/dev/null || true; wait 2>/dev/null || true' EXIT; trap 'exit 130' INT TERM; \
	FERROCAST_SERVER__PORT=$(EXAMPLE_BROKER_PORT) FERROCAST_SERVER__METRICS_PORT=$(EXAMPLE_METRICS_PORT) ./$(BIN) & fc=$$!; \
	for _ in $$(seq 100); do \
		kill -0 $$fc 2>/dev/null || { echo "ferrocast did not start (port $(EXAMPLE_BROKER_PORT) or $(EXAMPLE_METRICS_PORT) taken? set EXAMPLE_BROKER_PORT / EXAMPLE_METRICS_PORT)" >&2; exit 1; }; \
		(exec 3<>/dev/tcp/127.0.0.1/$(EXAMPLE_BROKER_PORT)) 2>/dev/null && break; \
		sleep 0.1; \
	done; \
	SECURE_CHAT_MASTER_KEY="$$(openssl rand -base64 32)" SECURE_CHAT_LISTEN=127.0.0.1:$(EXAMPLE_PORT) \
		SECURE_CHAT_BROKER_URL=http://127.0.0.1:$(EXAMPLE_BROKER_PORT) ./$(EXAMPLE_BIN) & sc=$$!; \
	sleep 0.5; kill -0 $$sc 2>/dev/null || exit 1; \
	echo; \
	echo "Open http://127.0.0.1:$(EXAMPLE_PORT) in two browser windows (one private), log in as alice and bob,"; \
	echo "and chat; log in as carol to be refused (403). Ctrl-C stops the broker and the app."; \
	wait $$sc

## The example's end-to-end test: the release broker and app, two headless Chromium pages, and a
## raw WebSocket listener that must see only ciphertext. Screenshot: target/artifacts/secure-chat.png.
test-example: build example-deps
	cd $(EXAMPLE) && FERROCAST_BIN=$(CURDIR)/$(BIN) SECURE_CHAT_BIN=$(CURDIR)/$(EXAMPLE_BIN) npm test
