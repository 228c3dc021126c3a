# Duplex: `make run` starts the broker, `make test` runs every test.
GO       ?= go
BIN      := bin
INTEROP  := test/interop
FUZZTIME ?= 20s

.PHONY: all build run test unit interop lint fuzz soak bench bench-peers clean

all: build

build:
	$(GO) build -o $(BIN)/duplex ./cmd/duplex
	$(GO) build -o $(BIN)/duplex-bench ./cmd/duplex-bench

## run: the broker with zero config: ws://127.0.0.1:8080/ws, data in ./data
run:
	$(GO) build -o $(BIN)/duplex ./cmd/duplex
	./$(BIN)/duplex

## test: lint, Go tests with -race, then the STOMP.js interop suite
test: lint unit interop

unit:
	$(GO) test -race -count=1 ./...

# The interop suite drives a -race build of the broker, so data races that
# only real clients provoke fail the run (GORACE halt_on_error).
# admin-ui.test.js drives Debian's chromium (playwright-core, executablePath
# /usr/bin/chromium): installed here when missing (sudo only when not root).
interop:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing chromium for the admin UI browser test"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
		else echo "not root and no sudo: cannot install chromium (admin-ui.test.js will skip)"; exit 0; fi; \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
			|| echo "chromium install failed: admin-ui.test.js will skip"; \
	fi
	$(GO) build -race -o $(BIN)/duplex-race ./cmd/duplex
	cd $(INTEROP) && npm ci --no-audit --no-fund
	cd $(INTEROP) && GORACE=halt_on_error=1 DUPLEX_BIN=$(CURDIR)/$(BIN)/duplex-race npm test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## fuzz: a short run of every fuzz target (package:target)
FUZZ_TARGETS := \
	./broker/:FuzzIndex ./broker/:FuzzRetained \
	./subprotocol/stomp/:FuzzReader ./subprotocol/mqtt/:FuzzReadPacket \
	./store/:FuzzDecodeMsg \
	./broker/auth/:FuzzACL ./broker/auth/:FuzzCoversIntersects ./broker/auth/:FuzzParseACLFile \
	./broker/auth/:FuzzJWTVerify ./broker/auth/:FuzzParseJWKS \
	./cmd/duplex/:FuzzConfig \
	./broker/cluster/:FuzzSubjectRoundTrip ./broker/cluster/:FuzzDecodeMsg

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s "$${t%%:*}"; \
	done

## soak: the kill -9 harness with 30 kill points (replay a run with DUPLEX_CRASH_SEED=<seed from its log>), and on a
## three-node cluster with 20 (every kind asserted; replay with DUPLEX_CHAOS_SEED=<seed>)
soak:
	DUPLEX_CRASH_KILLS=30 $(GO) test -count=1 -run TestKill9 -timeout 30m -v ./test/crash/
	DUPLEX_CHAOS_KILLS=20 DUPLEX_CHAOS_ALL=1 $(GO) test -count=1 -run 'TestClusterChaos|TestClusterPartition' -timeout 30m -v ./test/cluster/

## bench: the load generator against a real broker process (STOMP, and MQTT; auth cost; admin API latency; 1->100 over a three-node cluster)
bench: build
	bash bench/run.sh
	bash bench/auth.sh
	bash bench/admin.sh
	bash bench/cluster.sh

## bench-peers: Duplex's MQTT against Mosquitto in one run (installs mosquitto when missing)
bench-peers: build
	bash bench/peers.sh

clean:
	rm -rf $(BIN)
