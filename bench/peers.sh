#!/usr/bin/env bash
# bench/peers.sh: Duplex's MQTT against Mosquitto (`make bench-peers`).
#
# Installs Mosquitto from Debian when it is missing, builds bin/duplex and
# bin/duplex-bench, starts both brokers as separate processes on loopback
# (Mosquitto from a temporary config: a WebSocket listener, anonymous
# access, Mosquitto's defaults otherwise; Duplex as bench/run.sh starts it,
# MQTT at ws://ADDR/mqtt) and runs the same MQTT 3.1.1 over WebSocket
# scenarios against each, back to back:
#
#   throughput 1->1, 10->10 and 1->100, 64 B and 1 KiB bodies, QoS 0 and 1
#   latency 1->1 at 5000 messages/s, QoS 0 and 1
#   idle: 10000 connections with one subscription each (fresh brokers)
#
# For every scenario it prints the Duplex line, the Mosquitto line and a
# ratio line, for example
#
#   ratio duplex/mosquitto mqtt throughput 1->1 64B qos0: 1.23x msg/s, 0.80x cpu-us/delivery, p99 0.95x
#
# (above 1x is better for msg/s, below 1x for CPU, latency and memory). When
# Duplex does not answer MQTT yet (connection refused, subprotocol rejected,
# ...), its lines read "duplex: MQTT not available" and Mosquitto still runs.
#
# Exit status 0 when every line that ran is clean (Duplex's MQTT being
# unavailable included), 1 when a line says FAIL or a broker misbehaved.
# Whole run: about 3 minutes on 2 cores with the defaults (1.5 without
# Duplex's MQTT); each scenario has a hard deadline.
#
# Environment:
#   BENCH_DURATION    measured time per scenario, whole seconds (default 4s)
#   BENCH_WARMUP      unmeasured warm-up per scenario (default 1s)
#   BENCH_CONNS       idle connections (default 10000)
#   BENCH_RATE        latency scenario rate, messages/s (default 5000)
#   BENCH_SOURCE_IPS  source addresses for the idle connections (default 4)
#   BENCH_ARGS        extra duplex-bench flags for every scenario
#   DUPLEX_ARGS       extra Duplex flags
#   DUPLEX_BIN        use this broker binary instead of building ./cmd/duplex
#   MOSQUITTO_BIN     Mosquitto binary (default: mosquitto on PATH or
#                     /usr/sbin/mosquitto, installed when missing)
#   BENCH_VERBOSE     1: show duplex-bench diagnostics and the brokers' logs
#   BENCH_ONLY        run only the scenarios whose flags match this extended
#                     regular expression (e.g. 'latency', 'idle'); default all
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-4s}
WARMUP=${BENCH_WARMUP:-1s}
CONNS=${BENCH_CONNS:-10000}
RATE=${BENCH_RATE:-5000}
SOURCE_IPS=${BENCH_SOURCE_IPS:-4}
read -r -a EXTRA_BENCH <<<"${BENCH_ARGS:-}"
read -r -a EXTRA_BROKER <<<"${DUPLEX_ARGS:-}"
VERBOSE=${BENCH_VERBOSE:-0}

# Every scenario but idle must end within its measured time plus this.
SLACK=30
if [[ ! "${DURATION%s}" =~ ^[0-9]+$ || ! "${WARMUP%s}" =~ ^[0-9]+$ ]]; then
	echo "peers: BENCH_DURATION and BENCH_WARMUP must be whole seconds (like 4s)" >&2
	exit 2
fi
DEADLINE="$((${DURATION%s} + ${WARMUP%s} + SLACK))s"

ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < CONNS + 100)); then
	echo "peers: open-files limit $(ulimit -n) is too low for $CONNS idle connections" >&2
	exit 1
fi

# install_mosquitto installs Debian's mosquitto package when no binary is
# found (as root directly, otherwise through sudo), without starting it as
# a service where the machine has no init system to do so.
install_mosquitto() {
	MOSQUITTO_BIN=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
	[[ -x "$MOSQUITTO_BIN" ]] && return 0
	local sudo=()
	if (($(id -u) != 0)); then
		sudo=(sudo)
	fi
	echo "peers: installing mosquitto (apt-get install -y mosquitto)" >&2
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto >/dev/null 2>&1; then
		"${sudo[@]}" apt-get update -q >/dev/null
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto >/dev/null
	fi
	MOSQUITTO_BIN=$(command -v mosquitto || echo /usr/sbin/mosquitto)
	[[ -x "$MOSQUITTO_BIN" ]]
}
install_mosquitto

mkdir -p bin
if [[ -z "${DUPLEX_BIN:-}" ]]; then
	go build -o bin/duplex ./cmd/duplex
	DUPLEX_BIN=bin/duplex
fi
go build -o bin/duplex-bench ./cmd/duplex-bench
BENCH=bin/duplex-bench

WORK=$(mktemp -d)
DUPLEX_PID=""
DUPLEX_ADDR=""
MOSQ_PID=""
MOSQ_PORT=""
status=0
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/peers_lib.sh
source bench/peers_lib.sh

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_bench
	stop_brokers
	if [[ "$VERBOSE" == 1 || $status != 0 ]]; then
		for log in duplex mosquitto; do
			if [[ -s "$WORK/$log.log" ]]; then
				echo "peers: last lines of $log's log:" >&2
				tail -n 20 "$WORK/$log.log" >&2
			fi
		done
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# duplex vs mosquitto, MQTT 3.1.1 over WebSocket, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(go env GOVERSION), $("$MOSQUITTO_BIN" -h 2>/dev/null | head -n 1), duration $DURATION, warm-up $WARMUP"

ONLY=${BENCH_ONLY:-.}
mapfile -t scenarios < <(mqtt_scenarios | grep -E -e "$ONLY" || true)
if ((${#scenarios[@]} > 0)); then
	start_brokers
	for s in "${scenarios[@]}"; do
		read -r -a args <<<"$s"
		pair -deadline "$DEADLINE" "${args[@]}"
	done
	stop_brokers
fi

if grep -qE -e "$ONLY" <<<"-scenario idle"; then
	start_brokers
	pair -scenario idle -conns "$CONNS" -source-ips "$SOURCE_IPS"
	stop_brokers
fi

exit "$status"
