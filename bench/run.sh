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
# and 1, then durable messaging over MQTT (each line on a fresh broker and
# data folder):
#
#   durable: a persistent session (clean session 0) subscribed at QoS 1 and
#         offline, so that the broker stores each 64 B QoS 1 message before
#         its PUBACK; 1 publisher with 1 PUBLISH in flight, 1 with 32, 16
#         with 32 each; with -sync always, then -sync 200ms
#   restart: $DUPLEX_BENCH_RESTART_MSGS (1000000) messages queued for that
#         session (8 publishers, 256 in flight each, broker at -sync 200ms),
#         SIGTERM, then the time from exec to the listening line of a broker
#         on the same data folder (-sync always), its "store loaded" line,
#         and the time to drain them all to the resumed session
#
# Exit status 0 when every result is clean, 1 when any line says FAIL or the
# broker misbehaved (died, no listening line, non-zero exit on SIGTERM).
# Whole run: about 1 minute on 2 cores with the defaults over STOMP only,
# 2.5 minutes with MQTT, plus about 1 minute of durable messaging (up to
# 2 with a broker that fills the store with 1M messages slowly).
#
# Environment:
#   BENCH_DURATION  measured time per scenario (default 5s)
#   BENCH_WARMUP    unmeasured warm-up per scenario (default 1s)
#   BENCH_CONNS     idle connections (default 10000)
#   BENCH_RATE      latency scenario rate, messages/s (default 5000)
#   BENCH_MQTT      auto (default): MQTT scenarios when the broker answers
#                   MQTT; 0: never; 1: always (a failed probe fails the run)
#   BENCH_DURABLE   auto (default): the durable scenarios when MQTT runs;
#                   0: never; 1: always (no MQTT fails the run); only: the
#                   durable scenarios and nothing else
#   BENCH_DURABLE_SYNCS  broker -sync policies of the durable lines
#                   (default "always 200ms")
#   DUPLEX_BENCH_RESTART_MSGS  messages queued for the restart (default
#                   1000000; 0 skips the restart)
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
DURABLE=${BENCH_DURABLE:-auto}
read -r -a DURABLE_SYNCS <<<"${BENCH_DURABLE_SYNCS:-always 200ms}"
RESTART_MSGS=${DUPLEX_BENCH_RESTART_MSGS:-1000000}
if [[ ! "$RESTART_MSGS" =~ ^[0-9]+$ ]]; then
	echo "bench: DUPLEX_BENCH_RESTART_MSGS=$RESTART_MSGS: want a count" >&2
	exit 2
fi
case "$DURABLE" in
auto | 0 | 1 | only) ;;
*)
	echo "bench: BENCH_DURABLE=$DURABLE: want auto, 0, 1 or only" >&2
	exit 2
	;;
esac
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

# stop_broker [SECONDS] stops the broker, waiting up to SECONDS (default
# 10); a non-graceful stop counts as a failure.
stop_broker() {
	[[ -n "$DUPLEX_PID" ]] || return 0
	local pid=$DUPLEX_PID
	DUPLEX_PID=""
	stop_pid broker "$pid" "${1:-10}" || status=1
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

# start_broker [FLAGS...] starts a fresh broker or ends the run.
start_broker() {
	if ! start_duplex "$@"; then
		status=1
		exit 1
	fi
}

# result prints LINE and notes a failed result.
result() {
	echo "$LINE"
	if (( RC != 0 )); then
		status=1
	fi
}

# bench runs one scenario (-protocol first) and prints its result line.
bench() {
	run_bench -url "ws://$DUPLEX_ADDR/$1" -broker-pid "$DUPLEX_PID" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "${@:2}"
	result
	if ! alive "$DUPLEX_PID"; then
		echo "bench: the broker died during: ${*:2}" >&2
		wait "$DUPLEX_PID" 2>/dev/null || true
		DUPLEX_PID=""
		status=1
		exit 1
	fi
}

# durable_scenarios prints the durable throughput runs, one line each:
# sync policy, publishers, PUBLISHes in flight per publisher.
durable_scenarios() {
	local sync shape
	for sync in "${DURABLE_SYNCS[@]}"; do
		for shape in "1 1" "1 32" "16 32"; do
			echo "$sync $shape"
		done
	done
}

# durable runs the durable throughput lines, then the restart, each on a
# fresh broker and data folder. $1 is the MQTT path.
durable() {
	local path=$1 sync pubs inflight queue t0 t1
	echo "# durable: persistent session bench-durable-sub (clean session 0) subscribed at QoS 1 to bench/durable and offline;" \
		"QoS 1 64B publishes stored for it before each PUBACK; inflight = PUBLISHes per publisher not yet PUBACKed;" \
		"latency = publish to PUBACK; sync= is the broker's -sync"
	while read -r sync pubs inflight; do
		start_broker -sync "$sync" -max-session-queue 100000000
		bench "$path" -protocol mqtt -scenario durable -pubs "$pubs" -inflight "$inflight" -size 64 -label "sync=$sync"
		stop_broker
		rm -rf "$DUPLEX_DATA"
	done < <(durable_scenarios)

	(( RESTART_MSGS > 0 )) || return 0
	queue=$((2 * RESTART_MSGS + 1000))
	echo "# restart: fill $RESTART_MSGS messages for bench-durable-sub through a broker at -sync 200ms -max-session-queue $queue," \
		"SIGTERM, then a broker at -sync always on the same data folder"
	start_broker -sync 200ms -max-session-queue "$queue"
	bench "$path" -protocol mqtt -scenario fill -msgs "$RESTART_MSGS" -pubs 8 -inflight 256 -size 64 -label "sync=200ms"
	t0=$EPOCHREALTIME
	stop_broker 120
	t1=$EPOCHREALTIME
	echo "# restart: the filling broker exited $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s after SIGTERM;" \
		"data file $(du -h "$DUPLEX_DATA/duplex.db" 2>/dev/null | cut -f1 || echo '?')"
	duplex_argv "$DUPLEX_DATA" -sync always -max-session-queue "$queue"
	run_bench -protocol mqtt -scenario restart -msgs "$RESTART_MSGS" -url "ws://127.0.0.1/$path" -broker-log "$WORK/duplex.log" \
		-label "sync=always" "${EXTRA_BENCH[@]}" -- "${DUPLEX_ARGV[@]}"
	result
	rm -rf "$DUPLEX_DATA"
}

echo "# duplex bench $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(go env GOVERSION), duration $DURATION, warm-up $WARMUP"

if [[ "$DURABLE" != only ]]; then
	start_broker
	for shape in "1 1" "10 10" "1 100"; do
		read -r pubs subs <<<"$shape"
		for size in 64 1024; do
			bench ws -scenario throughput -pubs "$pubs" -subs "$subs" -size "$size"
		done
	done
	bench ws -scenario latency -pubs 1 -subs 1 -size 64 -rate "$RATE"
else
	start_broker
fi

# MQTT, on the same broker, when it answers.
mqtt_on=0
if [[ "$MQTT" != 0 || "$DURABLE" == 1 || "$DURABLE" == only ]]; then
	if find_mqtt "$DUPLEX_ADDR"; then
		mqtt_on=1
	elif [[ "$MQTT" == 1 || "$DURABLE" == 1 || "$DURABLE" == only ]]; then
		echo "mqtt: FAIL: MQTT not available: ${PROBE#*: }"
		status=1
	else
		echo "# mqtt: MQTT not available (${PROBE#*: }); MQTT scenarios skipped"
	fi
fi
if (( mqtt_on )) && [[ "$DURABLE" != only ]]; then
	mapfile -t scenarios < <(mqtt_scenarios)
	for s in "${scenarios[@]}"; do
		read -r -a args <<<"$s"
		bench "${MQTT_URL##*/}" -protocol mqtt "${args[@]}"
	done
fi
stop_broker

if [[ "$DURABLE" != only ]]; then
	start_broker
	bench ws -scenario idle -conns "$CONNS"
	stop_broker

	if (( mqtt_on )); then
		start_broker
		bench "${MQTT_URL##*/}" -protocol mqtt -scenario idle -conns "$CONNS"
		stop_broker
	fi
fi

if (( mqtt_on )) && [[ "$DURABLE" != 0 ]]; then
	durable "${MQTT_URL##*/}"
fi

exit "$status"
