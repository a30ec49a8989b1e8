# safepool's tasks. `make` alone lists them.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Every guest module built from Go: the examples' (SDK reactors, built with
# -buildmode=c-shared) and the test fixtures (reactors when they import the
# guest SDK, WASI commands otherwise).
EXAMPLE_GUESTS := $(sort $(patsubst %/,%,$(dir $(wildcard examples/*/guest/*.go examples/*/guests/*/*.go))))  # Go guests (the C plugin is committed compiled)
FIXTURES       := $(sort $(patsubst %/,%,$(dir $(wildcard internal/testguest/testdata/*/*.go))))  # Go fixtures (wat and c are built otherwise)

.DEFAULT_GOAL := help
.PHONY: help demo test guests fmt lint bench bench-metrics soak check tidy-check report-png build install

help: ## list the targets
	@echo "usage: make TARGET"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

DEMO_REPORT ?= $(or $(TMPDIR),/tmp)/safepool-demo

demo: ## run the seed example: a worker is SIGKILLed mid-map, under skip, retry and abort; writes an HTML report of it
	$(GO) run ./examples/seed -report $(DEMO_REPORT)

BIN ?= bin

build: ## build the command and its lean worker side by side into $(BIN)/ (safepool, safepool-worker)
	$(GO) build -o $(BIN)/ ./cmd/safepool ./cmd/safepool-worker

install: ## go install the command and its lean worker into the same directory (GOBIN, or GOPATH/bin), so that safepool starts its workers with safepool-worker
	$(GO) install ./cmd/safepool ./cmd/safepool-worker

report-png: ## render the demo's report in headless Chromium to docs/report.png (the README's picture)
	$(GO) run ./examples/seed -report $(DEMO_REPORT)
	SAFEPOOL_REPORT_STATS=$(DEMO_REPORT)/stats.jsonl SAFEPOOL_REPORT_PNG=$(CURDIR)/docs/report.png \
		$(GO) test -count=1 -run '^TestReportInBrowser$$' ./internal/report

test: guests fmt ## build the guests, check gofmt, go vet, go test -race ./..., then go vet and go test in engine/wasmtime (a module of its own): the conformance suite on wasmtime, and its build of the CLI end to end
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...
	cd engine/wasmtime && $(GO) vet ./... && $(GO) test ./...

guests: ## build the test fixtures and the examples' guest modules into their caches
	$(GO) test -count=1 -run '^TestPathGivesEveryFixture$$' ./internal/testguest
	$(GO) test -count=1 -run '^TestBuildGuests$$' ./internal/guestbuild

fmt: ## fail if gofmt would change a file, and name the files
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt would change these files (run gofmt -w on them):"; echo "$$files"; exit 1; fi

lint: fmt ## gofmt, go vet and staticcheck
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: ## install the Python peers (Debian packages), run the hot-path benchmarks, then the side-by-side harness (writes bench/RESULTS.md, bench/results.svg and README.md's targets and comparison tables)
	bench/install-peers.sh
	$(GO) test -run '^$$' -bench . ./internal/wire ./pool ./internal/testguest
	$(GO) test -run '^$$' -bench KillToDeath -benchtime 20x ./internal/hostconn
	$(GO) run ./bench/cmd/safepool-bench -out bench/RESULTS.md -readme README.md -readme-tables targets
	$(GO) run ./bench/cmd/safepool-bench -only kills,oom -out bench/matrix/RESULTS.md -readme README.md

bench-metrics: ## the metrics collector's cost alone, with nine times the full run's rounds so that its interval is narrow enough to judge 2% (about 15 minutes; writes bench/metrics/RESULTS.md; -rounds is harness.MetricsLongRounds)
	$(GO) run ./bench/cmd/safepool-bench -only metrics -rounds 27 -python none -peer-python none -chart "" -out bench/metrics/RESULTS.md

soak: ## the chaos test for minutes (SOAK=5m by default), then start-up storms, then the cluster's chaos (three servers, agent processes SIGKILLed and SIGSTOPped) for SOAK; prints tasks, kills, retries, breaker trips, recoveries, hangs, lost, doubled
	SAFEPOOL_SOAK=$${SOAK:-5m} $(GO) test -run TestChaos -count=1 -timeout 0 -v ./pool/
	SAFEPOOL_SOAK_CLUSTER=$${SOAK:-5m} $(GO) test -run 'TestClusterFaults/chaos' -count=1 -timeout 0 -v ./cluster/

check: ## cross-build the guests for wasip1, go mod tidy and go vet (here and in engine/wasmtime); fail if the tree changed
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guest/... $(addprefix ./,$(EXAMPLE_GUESTS))
	@for d in $(EXAMPLE_GUESTS); do \
		echo "GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o /dev/null ./$$d"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o /dev/null ./$$d || exit 1; \
	done
	@for d in $(FIXTURES); do \
		mode=; grep -qs '"github.com/safepool/safepool/guest"' $$d/*.go && mode=-buildmode=c-shared; \
		echo "GOOS=wasip1 GOARCH=wasm $(GO) build $$mode -o /dev/null ./$$d"; \
		GOOS=wasip1 GOARCH=wasm $(GO) build $$mode -o /dev/null ./$$d || exit 1; \
	done
	$(GO) mod tidy
	$(GO) vet ./...
	cd engine/wasmtime && $(GO) mod tidy && $(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	cd engine/wasmtime && CGO_ENABLED=0 $(GO) build ./...
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "check: the tree is not clean (uncommitted changes, or go mod tidy changed go.mod/go.sum):"; \
		git status --porcelain; \
		exit 1; \
	fi
	@echo "check: ok"

tidy-check: ## show that go mod tidy in a module that imports only the pool downloads no wasmtime-go (needs the module proxy)
	GO=$(GO) scripts/check-tidy.sh
