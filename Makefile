# crew-operator — run `make help` for the targets.
SHELL := /bin/bash
CARGO ?= cargo
CACHE_DIR ?= $(HOME)/.cache/crew-operator
# The current Kubernetes (full suite, demo, bench) and the oldest the project supports (lifecycle and control tests).
K8S_VERSION ?= v1.37.2
K8S_OLDEST_VERSION ?= v1.33.13
K8S_BIN ?= $(CACHE_DIR)/k8s-$(K8S_VERSION)/bin
K8S_OLDEST_BIN ?= $(CACHE_DIR)/k8s-$(K8S_OLDEST_VERSION)/bin

.PHONY: help build test unit lint crds control-plane control-plane-current demo plane clean install

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build the operator and every tool of the workspace (debug)
	$(CARGO) build --workspace --all-targets

control-plane: ## Build both control planes (Kubernetes, etcd, KWOK from Go modules; kubectl, helm) into ~/.cache/crew-operator
	bash crates/testkit/control-plane/install.sh v1.37 v1.33 >/dev/null

control-plane-current: ## Build only the current control plane (enough for demo and bench)
	bash crates/testkit/control-plane/install.sh v1.37 >/dev/null

crds: ## Regenerate both CRD copies from the Rust types (crates/api): crds/ and the Helm chart's crds/
	$(CARGO) run --quiet -p crew-operator --bin crdgen -- crds
	rm -f charts/crew-operator/crds/*.yaml
	cp crds/*.yaml charts/crew-operator/crds/

lint: ## rustfmt and clippy (warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: ## The fast lane, the same as plain `cargo test`: every test that needs no control plane
	$(CARGO) test

test: control-plane tools dashboard lint static-binary example-worker ## Everything: lint, static image binary, the example worker, the fast lane, the cluster tests (crates/e2e, the dashboard in Chromium) on both control planes
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} $(CARGO) test --workspace --all-targets -- --test-threads=4
	@echo "--- oldest supported Kubernetes ($(K8S_OLDEST_VERSION)): lifecycle, control and schema tests"
	CREW_TEST_ASSETS=$${CREW_TEST_OLDEST_ASSETS:-$(K8S_OLDEST_BIN)} $(CARGO) test --workspace --test e2e_lifecycle --test e2e_control --test e2e_schema -- --test-threads=4

demo: control-plane-current postgres dashboard ## Start a local control plane (KWOK nodes) and the operator; apply examples/ and watch
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} $(CARGO) run --quiet -p crew-testkit --bin crew-dev -- demo examples

plane: control-plane-current ## Start only the local control plane (no operator) until Ctrl-C; prints its KUBECONFIG
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} $(CARGO) run --quiet -p crew-testkit --bin crew-dev -- plane

PREFIX ?= /usr/local
install: dashboard ## Build kubectl-crew (release, with the dashboard) and put it in $(PREFIX)/bin, where kubectl finds it as `kubectl crew`
	$(CARGO) build --release -p kubectl-crew
	install -D -m 0755 target/release/kubectl-crew $(DESTDIR)$(PREFIX)/bin/kubectl-crew

clean: ## Remove build output (keeps the control-plane cache)
	$(CARGO) clean

.PHONY: tools chart-crds bench

# Full sizes by default (many minutes on 2 cores); smoke size: make bench BENCH_ARGS="--sizes 100 --steps 1"
BENCH_ARGS ?= --sizes 1000,10000 --steps 1,3 --namespaces 10 --out target/bench/results.json

bench: control-plane-current ## Benchmark the operator against bare Jobs (BENCH_ARGS="--sizes 100 --steps 1" for a smoke run; see BENCHMARKS.md)
	$(CARGO) build --release -p crew-operator -p crew-bench -p kubectl-crew --bins
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} target/release/crew-bench $(BENCH_ARGS)

tools: postgres browser ## Install the test tools beyond the control plane (lua5.4 for the Argo CD health-check test, PostgreSQL for the archive, Chromium for the dashboard)
	bash tests/tools/install-lua.sh

.PHONY: dashboard browser screenshots
dashboard: ## Build the dashboard's front end (TypeScript; npm packages pinned in its package-lock.json) for kubectl-crew to embed
	bash crates/cli/dashboard/build.sh

browser: ## Install Chromium (Debian package chromium) for the dashboard's browser tests
	bash tests/tools/install-chromium.sh

screenshots: control-plane-current dashboard browser ## Regenerate the dashboard screenshots in docs/images (a browser test on the local control plane)
	mkdir -p docs/images
	$(CARGO) build --workspace --bins
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} CREW_DASHBOARD_SCREENSHOTS=$(CURDIR)/docs/images $(CARGO) test -p crew-e2e --test e2e_dashboard

.PHONY: postgres
postgres: ## Install PostgreSQL (Debian package postgresql) for the archive's tests and the demo
	bash tests/tools/install-postgres.sh

chart-crds: crds ## The same as `make crds` (kept for old habits)

.PHONY: static-binary
static-binary: ## Build the operator as the container image does (static) and check it needs no libc and runs
	bash tests/tools/static-binary.sh

.PHONY: example-worker
PYTHON ?= python3
example-worker: ## Run the reference worker (examples/workers/) against a stub progress endpoint (tests/tools/, standard-library Python)
	PYTHONDONTWRITEBYTECODE=1 $(PYTHON) -m unittest discover -s tests/tools -p 'test_*.py'
