# Ouroboros: the two commands of the README are `make up` and `make test`.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/ouro

.PHONY: all build release console-assets deps test-deps up test fuzz bench vet clean

all: build

build: console-assets
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/ouro

# Release builds: one static binary per architecture (amd64 for PCs and
# servers, arm64 for Raspberry Pi 4/5 and other 64-bit ARM boards), with
# the console embedded, and their SHA-256 sums, in bin/release/.
RELEASE_ARCHES := amd64 arm64
release: console-assets
	mkdir -p bin/release
	for arch in $(RELEASE_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -o bin/release/ouro-linux-$$arch ./cmd/ouro || exit 1; \
	done
	cd bin/release && sha256sum ouro-linux-* > SHA256SUMS

# The console's third-party browser code (xterm.js and its fit addon):
# installed by npm from console/package-lock.json, and only the files the
# console loads copied into console/web/vendor/, which the binary embeds.
# Neither node_modules nor vendor/ is committed; `go build` without them
# still compiles and the console's terminal says how to build them.
VENDOR := console/web/vendor
VENDOR_FILES := $(VENDOR)/xterm.js $(VENDOR)/xterm.css $(VENDOR)/addon-fit.js

console-assets: $(VENDOR_FILES)

$(VENDOR_FILES) &: console/package.json console/package-lock.json
	@command -v npm >/dev/null || { echo "console-assets: npm is missing: run make deps (Debian's nodejs and npm)" >&2; exit 1; }
	npm ci --prefix console --ignore-scripts --no-audit --no-fund
	cp console/node_modules/@xterm/xterm/lib/xterm.js console/node_modules/@xterm/xterm/css/xterm.css \
		console/node_modules/@xterm/addon-fit/lib/addon-fit.js $(VENDOR)/

deps:
	./scripts/install-deps.sh

test-deps:
	./scripts/install-deps.sh --test

# Bring a one-machine cloud up (installs what it needs, builds, runs).
up: deps build
	./$(BIN) up

# The whole test suite, end-to-end tests with real etcd and runc included.
test: test-deps console-assets
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 70m ./...
	GO=$(GO) ./scripts/fuzz.sh

# A short run of every fuzz target (FUZZTIME inputs each); `make test` runs it too.
fuzz:
	GO=$(GO) ./scripts/fuzz.sh

bench: test-deps build
	./bench/run.sh

clean:
	rm -rf bin console/node_modules $(VENDOR_FILES)
