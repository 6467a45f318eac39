# buzon — build, run, test, bench.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 3s
FUZZLONG  ?= 2m
export BUZON_BIN := $(CURDIR)/$(BIN)/buzon

.PHONY: all build run test test-unit test-fuzz test-interop interop-deps fuzz bench lint clean

all: build

build:
	$(GO) build -o $(BIN)/buzon ./cmd/buzon
	$(GO) build -o $(BIN)/admin_monitor ./cmd/admin_monitor

# Quick start: the example config keeps its data under ./var and, with no
# admin.password set, writes the first admin password to var/admin-password.
run: build
	./$(BIN)/buzon serve --config buzon.example.yaml

test: build test-unit test-fuzz

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# One `go test -fuzz` call per target: the tool fuzzes one target at a time.
test-fuzz:
	@./scripts/fuzz-all $(FUZZTIME)

fuzz:
	@./scripts/fuzz-all $(FUZZLONG)

# Real Debian clients and servers against buzon (swaks, msmtp, fetchmail,
# mpop, Dovecot); `make interop-deps` installs them.
test-interop: build
	$(GO) test -tags interop -count=1 -v ./interop/

interop-deps:
	./scripts/install-debian-deps

# The load suite of issue 6: a fresh buzon on loopback, every scenario with
# fixed parameters, one table, the targets; results in bench/results.json.
# It raises its own file-descriptor limit (10,000 connections need ~20,000).
bench:
	$(GO) build -o $(BIN)/buzon ./cmd/buzon
	$(GO) build -o $(BIN)/buzon-bench ./cmd/buzon-bench
	./$(BIN)/buzon-bench suite --buzon $(BIN)/buzon --out bench/results.json

# Go micro-benchmarks of the hot paths.
.PHONY: bench-micro
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf $(BIN)
