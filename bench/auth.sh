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
# Every connection of the auth+acl runs logs in as "bench". Each of
# BENCH_AUTH_ROUNDS rounds starts a fresh pair of brokers (one process's
# luck with memory layout and scheduling moves throughput by several per
# cent, so no broker process may stand for its side in every round) and
# runs every shape (STOMP and MQTT QoS 0; 1->1, 10->10, 1->100; 64 B)
# against both, in ABBA order (the side that goes first alternates). It
# prints for each side the median throughput and the median broker CPU per
# delivery, and the throughput ratio. The idle broker of a pair costs
# nothing.
#
# Environment: BENCH_DURATION (default 3s), BENCH_WARMUP (10s),
# BENCH_AUTH_ROUNDS (3), BENCH_AUTH_SHAPES (default all: "stomp 1 1,stomp 10
# 10,...,mqtt 1 100"; e.g. "mqtt 10 10" to measure one shape more often),
# DUPLEX_BIN, BENCH_VERBOSE, as for bench/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-3s}
# A long warm-up: right after its connections log in (bcrypt, about 60 ms
# of CPU each) a broker runs MQTT 10->10 up to 15% slower for a few seconds;
# after 10 s both sides are in their steady state.
WARMUP=${BENCH_WARMUP:-10s}
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

# start_pair starts a fresh pair of brokers: ANON_* and AUTH_*.
start_pair() {
	start_duplex || exit 1
	ANON_PID=$DUPLEX_PID ANON_ADDR=$DUPLEX_ADDR
	start_duplex -password-file "$WORK/passwd" -acl-file "$WORK/acl" || exit 1
	AUTH_PID=$DUPLEX_PID AUTH_ADDR=$DUPLEX_ADDR
	DUPLEX_PID=""
}

# stop_pair stops both brokers and removes their data.
stop_pair() {
	stop_pid "anonymous broker" "$ANON_PID" || status=1
	stop_pid "auth+acl broker" "$AUTH_PID" || status=1
	ANON_PID="" AUTH_PID=""
	rm -rf "$WORK"/data.*
}

# rate LINE prints the delivered msg/s of a throughput result line; cpu LINE
# its broker CPU microseconds per delivery.
rate() { sed -n 's/.*: \([0-9][0-9]*\) msg\/s delivered.*/\1/p' <<<"$1"; }
cpu() { sed -n 's/.*broker \([0-9.]*\) cpu-us\/delivery.*/\1/p' <<<"$1"; }

# median N... prints the median of its arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# run ADDR PID [ARGS...] runs one throughput scenario and prints its rate
# and broker CPU per delivery.
run() {
	local addr=$1 pid=$2
	run_bench -url "ws://$addr/ws" -broker-pid "$pid" -duration "$DURATION" -warmup "$WARMUP" -scenario throughput "${@:3}"
	if ((RC != 0)) || [[ -z "$(rate "$LINE")" ]]; then
		echo "bench: FAIL: $LINE" >&2
		status=1
		echo "0 0"
		return
	fi
	[[ "$VERBOSE" == 1 ]] && echo "  # $LINE" >&2
	echo "$(rate "$LINE") $(cpu "$LINE")"
}

echo "# auth: throughput, anonymous vs password auth + 20-rule ACL; median of $ROUNDS rounds of $DURATION runs," \
	"each round on a fresh pair of brokers, ABBA order; us/d = broker CPU microseconds per delivery"
shapes=()
for proto in stomp mqtt; do
	for shape in "1 1" "10 10" "1 100"; do
		shapes+=("$proto $shape")
	done
done
if [[ -n "${BENCH_AUTH_SHAPES:-}" ]]; then
	IFS=, read -r -a shapes <<<"$BENCH_AUTH_SHAPES"
fi
declare -A anon auth anoncpu authcpu
for round in $(seq "$ROUNDS"); do
	start_pair
	for s in "${shapes[@]}"; do
		read -r proto pubs subs <<<"$s"
		args=(-protocol "$proto" -pubs "$pubs" -subs "$subs" -size 64)
		order=(anon auth)
		((round % 2)) || order=(auth anon)
		for who in "${order[@]}"; do
			if [[ $who == anon ]]; then
				read -r r c < <(run "$ANON_ADDR" "$ANON_PID" "${args[@]}")
				anon[$s]+="$r " anoncpu[$s]+="$c "
			else
				read -r r c < <(run "$AUTH_ADDR" "$AUTH_PID" "${args[@]}" -user bench -password bench-password)
				auth[$s]+="$r " authcpu[$s]+="$c "
			fi
		done
	done
	stop_pair
done
printf '%-28s %24s %24s %7s\n' "shape" "anonymous" "auth+acl" "ratio"
for s in "${shapes[@]}"; do
	read -r proto pubs subs <<<"$s"
	# shellcheck disable=SC2086 # the lists are space-separated numbers
	a=$(median ${anon[$s]}) b=$(median ${auth[$s]}) ac=$(median ${anoncpu[$s]}) bc=$(median ${authcpu[$s]})
	printf '%-28s %9s msg/s %5s us/d %9s msg/s %5s us/d %7s\n' "$proto throughput $pubs->$subs 64B" "$a" "$ac" "$b" "$bc" \
		"$(awk -v a="$a" -v b="$b" 'BEGIN{ if (a > 0) printf "%.3f", b/a; else print "-" }')"
done
exit "$status"
