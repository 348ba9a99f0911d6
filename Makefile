# Ouroboros: the two commands of the README are `make up` and `make test`.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/ouro

.PHONY: all build deps test-deps up test fuzz bench vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/ouro

deps:
	./scripts/install-deps.sh

test-deps:
	./scripts/install-deps.sh --test

# Bring a one-machine cloud up (installs what it needs, builds, runs).
up: deps build
	./$(BIN) up

# The whole test suite, end-to-end tests with real etcd and runc included.
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
	GO=$(GO) ./scripts/fuzz.sh

# A short run of every fuzz target (FUZZTIME each); `make test` runs it too.
fuzz:
	GO=$(GO) ./scripts/fuzz.sh

bench: test-deps build
	./bench/run.sh

clean:
	rm -rf bin
