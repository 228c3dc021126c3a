#!/usr/bin/env bash
# bench/auth.sh: what authentication and a 20-rule ACL cost (part of `make bench`).
#
# Starts two brokers side by side, each its own process on a random loopback
# port with a fresh data folder:
#
#   anonymous  zero config
#   auth+acl   a password file (bcrypt) with user "bench", and an ACL file of 20
#              Mosquitto-style rules whose only rule that allows the benchmark's
#              topics (bench/#) comes last, after two deny rules that are checked
#              on every publish
#
# Every connection of the auth+acl runs logs in as "bench". For each shape
# (STOMP and MQTT QoS 0; 1->1, 10->10, 1->100; 64 B) it runs the throughput
# scenario against one broker and then the other, BENCH_AUTH_ROUNDS times
# alternating, and prints both medians and their ratio. The brokers stay up
# between runs, so the idle one costs nothing.
#
# Environment: BENCH_DURATION (default 3s), BENCH_WARMUP (1s),
# BENCH_AUTH_ROUNDS (3), DUPLEX_BIN, BENCH_VERBOSE, as for bench/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-3s}
WARMUP=${BENCH_WARMUP:-1s}
ROUNDS=${BENCH_AUTH_ROUNDS:-3}
VERBOSE=${BENCH_VERBOSE:-0}
EXTRA_BROKER=()
ulimit -n "$(ulimit -Hn)"

mkdir -p bin
if [[ -z "${DUPLEX_BIN:-}" ]]; then
	go build -o bin/duplex ./cmd/duplex
	DUPLEX_BIN=bin/duplex
fi
go build -o bin/duplex-bench ./cmd/duplex-bench
BENCH=bin/duplex-bench

WORK=$(mktemp -d)
# shellcheck source=bench/lib.sh
source bench/lib.sh
status=0
ANON_PID="" AUTH_PID=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_bench
	[[ -n "$ANON_PID" ]] && { stop_pid "anonymous broker" "$ANON_PID" || status=1; }
	[[ -n "$AUTH_PID" ]] && { stop_pid "auth+acl broker" "$AUTH_PID" || status=1; }
	if [[ "$VERBOSE" == 1 || $status != 0 ]] && [[ -s "$WORK/duplex.log" ]]; then
		echo "bench: last lines of the brokers' log:" >&2
		tail -n 20 "$WORK/duplex.log" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DUPLEX_BIN" passwd -b "$WORK/passwd" bench bench-password >/dev/null
cat >"$WORK/acl" <<'ACL'
# 20 rules for user bench; the one that allows the benchmark's topics is last.
user bench
topic deny secret/#
topic deny bench/private/#
topic read $SYS/broker/#
topic readwrite alerts/+/critical
topic write telemetry/+/up
topic read telemetry/+/down
topic readwrite home/+/+/state
topic readwrite home/+/+/set
topic read config/#
topic write logs/#
topic readwrite chat/+
topic readwrite rooms/+/messages
topic read news/#
topic readwrite orders/+/status
topic readwrite sensors/+/temperature
topic readwrite sensors/+/humidity
queue readwrite jobs
pattern readwrite devices/%u/#
pattern readwrite clients/%c/#
topic readwrite bench/#
ACL

start_duplex || exit 1
ANON_PID=$DUPLEX_PID ANON_ADDR=$DUPLEX_ADDR
start_duplex -password-file "$WORK/passwd" -acl-file "$WORK/acl" || exit 1
AUTH_PID=$DUPLEX_PID AUTH_ADDR=$DUPLEX_ADDR
DUPLEX_PID=""

# rate LINE prints the delivered msg/s of a throughput result line.
rate() { sed -n 's/.*: \([0-9][0-9]*\) msg\/s delivered.*/\1/p' <<<"$1"; }

# median N... prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# run ADDR PID [ARGS...] runs one throughput scenario and prints its rate.
run() {
	local addr=$1 pid=$2
	run_bench -url "ws://$addr/ws" -broker-pid "$pid" -duration "$DURATION" -warmup "$WARMUP" -scenario throughput "${@:3}"
	if ((RC != 0)) || [[ -z "$(rate "$LINE")" ]]; then
		echo "bench: FAIL: $LINE" >&2
		status=1
		echo 0
		return
	fi
	[[ "$VERBOSE" == 1 ]] && echo "  # $LINE" >&2
	rate "$LINE"
}

echo "# auth: throughput, anonymous vs password auth + 20-rule ACL; median of $ROUNDS alternating runs of $DURATION"
printf '%-34s %14s %14s %8s\n' "shape" "anonymous" "auth+acl" "ratio"
for proto in stomp mqtt; do
	for shape in "1 1" "10 10" "1 100"; do
		read -r pubs subs <<<"$shape"
		args=(-protocol "$proto" -pubs "$pubs" -subs "$subs" -size 64)
		anon=() auth=()
		for _ in $(seq "$ROUNDS"); do
			anon+=("$(run "$ANON_ADDR" "$ANON_PID" "${args[@]}")")
			auth+=("$(run "$AUTH_ADDR" "$AUTH_PID" "${args[@]}" -user bench -password bench-password)")
		done
		a=$(median "${anon[@]}") b=$(median "${auth[@]}")
		printf '%-34s %10s msg/s %10s msg/s %7s\n' "$proto throughput $pubs->$subs 64B" "$a" "$b" \
			"$(awk -v a="$a" -v b="$b" 'BEGIN{ if (a > 0) printf "%.3f", b/a; else print "-" }')"
	done
done
exit "$status"
