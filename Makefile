# berth — GitOps agent for container hosts.
SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN ?= bin/berth
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TEST_TIMEOUT ?= 20m
# Integration test packages run one after another: on a small machine,
# packages that each start containers at once starve one another's probes
# and timers.
TEST_PACKAGES ?= 1

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/berth and bin/berth-log (its small container log driver, installed next to it)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(dir $(BIN))berth-log ./cmd/berth-log

deps: ## install the Debian packages berth and its tests need (apt-get update first)
	$(SUDO) scripts/install-deps.sh

demo: deps build ## set up a private containerd, turn examples/ into a Git repo and apply it
	$(SUDO) scripts/demo.sh

demo-clean: ## remove the demo's pods, stop its containerd and delete its state
	$(SUDO) scripts/demo.sh clean

test: deps ## run unit and integration tests (as root: real containerd, runc, CNI)
	$(SUDO) env "PATH=$$PATH" BERTH_TEST_SSH=1 $(GO) test -p $(TEST_PACKAGES) -count=1 -timeout $(TEST_TIMEOUT) ./...

test-faults: deps build ## fault suite (as root): kill bin/berth apply and containerd at random points, two applies at once, a reboot, a pod worker's panic; check convergence and leaks
	CGO_ENABLED=0 $(GO) build -trimpath -tags faults -ldflags '$(LDFLAGS)' -o $(dir $(BIN))berth-faults ./cmd/berth
	$(SUDO) env "PATH=$$PATH" BERTH_BIN=$(abspath $(BIN)) BERTH_FAULTS_BIN=$(abspath $(dir $(BIN))berth-faults) $(GO) test -tags faults -count=1 -timeout $(TEST_TIMEOUT) ./internal/faults/

test-unit: ## run only the tests that need neither root nor containerd (no private containerd starts)
	$(GO) test -count=1 -short ./...

vet: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags faults ./internal/faults/

bench: deps build ## cost as pods grow, 1 to 200, plotted to docs/growth.svg (bench/growth.sh; installs gnuplot-nox), berth against podman on 10 and 50 pods (bench/compare.sh), binary size (bench/binsize.sh)
	$(SUDO) bench/growth.sh
	$(SUDO) env -u SIZES bench/compare.sh
	bench/binsize.sh

bench-apply: deps build ## apply wall time only: from nothing, no change, remove all (bench/apply.sh)
	$(SUDO) bench/apply.sh

bench-size: ## size of bin/berth and what each linked module adds (bench/binsize.sh)
	bench/binsize.sh

bench-compare: deps build ## berth against podman kube play on the same 10- and 50-pod repositories, with ratios and PSS per pod
	$(SUDO) bench/compare.sh

bench-plan: build ## measure berth plan --inventory: 500 devices in 10 label groups over 50 objects (no containerd)
	bench/plan.sh

bench-vet: build ## measure berth vet on 1000 objects in YAML and in CUE (no containerd)
	bench/vet.sh

bench-agent: deps build ## berth agent with 50 pods: push to pod replaced (webhook, local directory), idle footprint, exit to restart, a Deployment of 3 rolled (bench/agent.sh)
	$(SUDO) bench/agent.sh

bench-fleet: deps build ## a three-wave rollout on 500 agents with the simulated runtime, one git daemon and one mosquitto on loopback (no containerd)
	bench/fleet.sh

clean: ## remove build output
	rm -rf bin

.PHONY: help build deps demo demo-clean test test-faults test-unit vet bench bench-apply bench-size bench-compare bench-plan bench-vet clean bench-agent bench-fleet
