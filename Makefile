# imgfs — `make help` lists the targets.
GO       ?= go
BIN      ?= bin/imgfs
SHARED   ?= $(abspath ../shared)
# The test corpus lives outside the repo. Its path must have no dot-directory (buildah derives an image
# reference from it), so not ~/.cache.
CORPUS   ?= /var/lib/imgfs-corpus
CORPUS_STEPS ?= deps rootfs layered formats export extras
DEMO     ?= demo
# How long each fuzz target runs: briefly in make test, as long as asked in make fuzz.
FUZZTIME ?= 30s
FUZZTIME_TEST ?= 5s
# Go minimises every new corpus entry for up to 60 s by default, which can eat a short run whole.
FUZZMINIMIZE ?= 100x
export IMGFS_CORPUS = $(CORPUS)

.PHONY: all build test unit integration vet deps corpus demo bench fuzz clean help

all: build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

# imgfs --version reads the VCS stamp from the build info; where Go cannot stamp it (a git worktree,
# GOFLAGS=-buildvcs=false) these are the fallback.
VCS_REV  = $(shell git rev-parse HEAD 2>/dev/null)
VCS_MOD  = $(shell git diff --quiet HEAD 2>/dev/null && echo false || echo true)

build: ## build bin/imgfs
	$(GO) build -ldflags "-X main.vcsRevision=$(VCS_REV) -X main.vcsModified=$(VCS_MOD)" -o $(BIN) ./cmd/imgfs

vet: ## go vet, gofmt, and go.mod/go.sum as go mod tidy leaves them
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./compression/... ./index/... ./archive/... ./imagewrite/... ./internal/...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

deps: ## install the Debian packages the tests need (fuse3, skopeo, umoci, ...)
	./scripts/install-deps.sh

corpus: ## build the image corpus the integration tests compare against (about 5 minutes, once)
	CORPUS=$(CORPUS) $(SHARED)/corpus/make-corpus.sh $(CORPUS_STEPS)

unit: ## unit tests only (no FUSE, no corpus)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

integration: build ## integration tests: real mounts over the corpus
	IMGFS_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 40m -v ./integration/ 2>&1 | tee integration.out | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' ; exit $${PIPESTATUS[0]}

test: deps corpus vet build ## everything: vet, unit tests, real-mount integration tests over the corpus
	IMGFS_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_TEST)

demo: build ## mount a built-in sample image, show its tree and a file, unmount
	@./scripts/demo.sh $(BIN) $(DEMO)

bench: build ## benchmarks (needs the big corpus step: make corpus CORPUS_STEPS=big); writes BENCHMARKS.md
	./bench/run.sh
	./bench/run-write.sh
	./bench/run-read.sh
	./bench/run-load.sh

fuzz: ## run every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m); crashers land in testdata/fuzz/
	GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME) $(FUZZMINIMIZE)

clean: ## remove build outputs
	rm -rf bin $(DEMO) integration.out
