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
# Exit status 0 when every result is clean, 1 when any line says FAIL or the
# broker misbehaved (died, no listening line, non-zero exit on SIGTERM).
# Whole run: about 1.5 minutes on 2 cores with the defaults.
#
# Environment:
#   BENCH_DURATION  measured time per scenario (default 5s)
#   BENCH_WARMUP    unmeasured warm-up per scenario (default 1s)
#   BENCH_CONNS     idle connections (default 10000)
#   BENCH_RATE      latency scenario rate, messages/s (default 5000)
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
BROKER_PID=""
BENCH_PID=""
URL=""
status=0

# alive tells whether process $1 runs (a zombie, dead but not yet waited
# for, does not).
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$state" && "$state" != Z ]]
}

# stop_broker sends SIGTERM and waits up to 10 s for a graceful exit, then
# SIGKILL. A non-zero exit on SIGTERM counts as a failure.
stop_broker() {
	[[ -n "$BROKER_PID" ]] || return 0
	local pid=$BROKER_PID rc=0
	BROKER_PID=""
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		echo "bench: broker $pid still running 10s after SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
		status=1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if (( rc != 0 )); then
		echo "bench: broker exited with status $rc after SIGTERM (want 0)" >&2
		status=1
	fi
}

cleanup() {
	if [[ -n "$BENCH_PID" ]]; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	stop_broker
	if [[ "$VERBOSE" == 1 || $status != 0 ]] && [[ -s "$WORK/broker.log" ]]; then
		echo "bench: last lines of the broker's log:" >&2
		tail -n 20 "$WORK/broker.log" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_broker starts a fresh broker in its own subshell (with the raised
# open-files limit) and waits up to 10 s for its listening line.
start_broker() {
	local data out
	data=$(mktemp -d "$WORK/data.XXXXXX")
	out="$WORK/broker.out"
	: >"$out"
	(
		ulimit -n "$(ulimit -Hn)"
		exec "$DUPLEX_BIN" -addr 127.0.0.1:0 -data "$data" "${EXTRA_BROKER[@]}"
	) >"$out" 2>>"$WORK/broker.log" &
	BROKER_PID=$!
	local line=""
	for _ in $(seq 100); do
		line=$(grep -m1 '^duplex listening on ' "$out" || true)
		[[ -n "$line" ]] && break
		if ! alive "$BROKER_PID"; then
			echo "bench: broker exited before listening" >&2
			BROKER_PID=""
			status=1
			exit 1
		fi
		sleep 0.1
	done
	if [[ -z "$line" ]]; then
		echo "bench: no 'duplex listening on' line from the broker within 10s" >&2
		status=1
		exit 1
	fi
	URL="ws://${line#duplex listening on }/ws"
}

# bench runs one scenario and prints its result line.
bench() {
	local line rc=0 errfile="$WORK/bench.err"
	# In the background, so that a signal interrupts `wait` at once.
	"$BENCH" -url "$URL" -broker-pid "$BROKER_PID" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "$@" >"$WORK/bench.out" 2>"$errfile" &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	line=$(head -n 1 "$WORK/bench.out")
	if [[ -n "$line" ]]; then
		echo "$line"
	else
		echo "stomp $*: FAIL: duplex-bench printed no result (exit $rc)"
	fi
	if [[ "$VERBOSE" == 1 || ($rc != 0 && $rc != 1) ]]; then
		sed 's/^/  # /' "$errfile" >&2
	fi
	if (( rc != 0 )); then
		status=1
	fi
	if ! alive "$BROKER_PID"; then
		echo "bench: the broker died during: $*" >&2
		BROKER_PID=""
		status=1
		exit 1
	fi
}

echo "# duplex bench $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(go env GOVERSION), duration $DURATION, warm-up $WARMUP"

start_broker
for shape in "1 1" "10 10" "1 100"; do
	read -r pubs subs <<<"$shape"
	for size in 64 1024; do
		bench -scenario throughput -pubs "$pubs" -subs "$subs" -size "$size"
	done
done
bench -scenario latency -pubs 1 -subs 1 -size 64 -rate "$RATE"
stop_broker

start_broker
bench -scenario idle -conns "$CONNS"
stop_broker

exit "$status"
