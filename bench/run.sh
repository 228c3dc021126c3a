#!/usr/bin/env bash
# bench/run.sh: Duplex's benchmark (`make bench`).
#
# Builds bin/duplex and bin/duplex-bench, starts the broker as a separate
# process on a random loopback port with a fresh data folder, runs the
# duplex-bench scenarios against it and prints one result line each:
#
#   throughput 1->1, 10->10 and 1->100, each with 64 B and 1 KiB bodies
#   latency 1->1 at 5000 messages/s
#   idle: 10000 connections with one subscription each (on a fresh broker,
#         so that earlier heap growth does not hide its memory cost)
#
# first over STOMP, then, when the broker answers MQTT over WebSocket on
# /mqtt or /ws (a quick probe decides), the same over MQTT 3.1.1 at QoS 0
# and 1.
#
# Exit status 0 when every result is clean, 1 when any line says FAIL or the
# broker misbehaved (died, no listening line, non-zero exit on SIGTERM).
# Whole run: about 1 minute on 2 cores with the defaults over STOMP only,
# 2.5 minutes with MQTT.
#
# Environment:
#   BENCH_DURATION  measured time per scenario (default 5s)
#   BENCH_WARMUP    unmeasured warm-up per scenario (default 1s)
#   BENCH_CONNS     idle connections (default 10000)
#   BENCH_RATE      latency scenario rate, messages/s (default 5000)
#   BENCH_MQTT      auto (default): MQTT scenarios when the broker answers
#                   MQTT; 0: never; 1: always (a failed probe fails the run)
#   BENCH_ARGS      extra duplex-bench flags for every scenario
#   DUPLEX_ARGS     extra broker flags
#   DUPLEX_BIN      use this broker binary instead of building ./cmd/duplex
#   BENCH_VERBOSE   1: show duplex-bench diagnostics and the broker's log
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
CONNS=${BENCH_CONNS:-10000}
RATE=${BENCH_RATE:-5000}
MQTT=${BENCH_MQTT:-auto}
read -r -a EXTRA_BENCH <<<"${BENCH_ARGS:-}"
read -r -a EXTRA_BROKER <<<"${DUPLEX_ARGS:-}"
VERBOSE=${BENCH_VERBOSE:-0}

# Each side (broker, generator) needs one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < CONNS + 100 )); then
	echo "bench: open-files limit $(ulimit -n) is too low for $CONNS idle connections" >&2
	exit 1
fi

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
status=0
# shellcheck source=bench/lib.sh
source bench/lib.sh

# stop_broker stops the broker; a non-graceful stop counts as a failure.
stop_broker() {
	[[ -n "$DUPLEX_PID" ]] || return 0
	local pid=$DUPLEX_PID
	DUPLEX_PID=""
	stop_pid broker "$pid" || status=1
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_bench
	stop_broker
	if [[ "$VERBOSE" == 1 || $status != 0 ]] && [[ -s "$WORK/duplex.log" ]]; then
		echo "bench: last lines of the broker's log:" >&2
		tail -n 20 "$WORK/duplex.log" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_broker starts a fresh broker or ends the run.
start_broker() {
	if ! start_duplex; then
		status=1
		exit 1
	fi
}

# bench runs one scenario (-protocol first) and prints its result line.
bench() {
	run_bench -url "ws://$DUPLEX_ADDR/$1" -broker-pid "$DUPLEX_PID" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "${@:2}"
	echo "$LINE"
	if (( RC != 0 )); then
		status=1
	fi
	if ! alive "$DUPLEX_PID"; then
		echo "bench: the broker died during: ${*:2}" >&2
		wait "$DUPLEX_PID" 2>/dev/null || true
		DUPLEX_PID=""
		status=1
		exit 1
	fi
}

echo "# duplex bench $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(go env GOVERSION), duration $DURATION, warm-up $WARMUP"

start_broker
for shape in "1 1" "10 10" "1 100"; do
	read -r pubs subs <<<"$shape"
	for size in 64 1024; do
		bench ws -scenario throughput -pubs "$pubs" -subs "$subs" -size "$size"
	done
done
bench ws -scenario latency -pubs 1 -subs 1 -size 64 -rate "$RATE"

# MQTT, on the same broker, when it answers.
mqtt_on=0
if [[ "$MQTT" != 0 ]]; then
	if find_mqtt "$DUPLEX_ADDR"; then
		mqtt_on=1
	elif [[ "$MQTT" == 1 ]]; then
		echo "mqtt: FAIL: MQTT not available: ${PROBE#*: }"
		status=1
	else
		echo "# mqtt: MQTT not available (${PROBE#*: }); MQTT scenarios skipped"
	fi
fi
if (( mqtt_on )); then
	mapfile -t scenarios < <(mqtt_scenarios)
	for s in "${scenarios[@]}"; do
		read -r -a args <<<"$s"
		bench "${MQTT_URL##*/}" -protocol mqtt "${args[@]}"
	done
fi
stop_broker

start_broker
bench ws -scenario idle -conns "$CONNS"
stop_broker

if (( mqtt_on )); then
	start_broker
	bench "${MQTT_URL##*/}" -protocol mqtt -scenario idle -conns "$CONNS"
	stop_broker
fi

exit "$status"
