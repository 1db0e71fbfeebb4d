# crew-operator — run `make help` for the targets.
SHELL := /bin/bash
CARGO ?= cargo
CACHE_DIR ?= $(HOME)/.cache/crew-operator
K8S_BIN ?= $(CACHE_DIR)/k8s-v1.20.2/bin

.PHONY: help build test unit lint crds check-crds control-plane demo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## Build the operator and tools (debug)
	$(CARGO) build --all-targets

control-plane: ## Obtain kube-apiserver, etcd, kube-controller-manager, kubectl, helm into ~/.cache/crew-operator
	bash tests/control-plane/install.sh

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --quiet --bin crdgen -- crds

lint: ## rustfmt and clippy (warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit: ## Unit tests only (no control plane)
	$(CARGO) test --lib --bins

test: control-plane tools lint static-binary ## Everything: lint, static image binary, unit tests, CRD freshness, integration tests on a real control plane
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} $(CARGO) test --all-targets -- --test-threads=4

demo: control-plane ## Start a local control plane, the operator and the pod simulator; apply examples/ and watch
	$(CARGO) build --bins
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} $(CARGO) run --quiet --bin crew-dev -- demo examples

clean: ## Remove build output (keeps the control-plane cache)
	$(CARGO) clean

.PHONY: tools chart-crds bench

# Full sizes by default (many minutes on 2 cores); smoke size: make bench BENCH_ARGS="--sizes 100 --steps 1"
BENCH_ARGS ?= --sizes 1000,10000 --steps 1,3 --namespaces 10 --out target/bench/results.json

bench: control-plane ## Benchmark the operator against bare Jobs (BENCH_ARGS="--sizes 100 --steps 1" for a smoke run; see BENCHMARKS.md)
	$(CARGO) build --release --bins
	CREW_TEST_ASSETS=$${CREW_TEST_ASSETS:-$(K8S_BIN)} target/release/crew-bench $(BENCH_ARGS)

tools: ## Install the test tools beyond the control plane (lua5.4 for the Argo CD health-check test)
	bash tests/tools/install-lua.sh

chart-crds: crds ## Regenerate crds/ (`make crds`) and copy them into the Helm chart (charts/crew-operator/crds/)
	rm -f charts/crew-operator/crds/*.yaml
	cp crds/*.yaml charts/crew-operator/crds/

.PHONY: static-binary
static-binary: ## Build the operator as the container image does (static) and check it needs no libc and runs
	bash tests/tools/static-binary.sh
