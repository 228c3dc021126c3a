#!/usr/bin/env bash
# bench/cluster.sh: 1->100 with the 100 subscribers spread over a three-node
# cluster, next to the same shape on a single node, in one run (issue 11,
# "Must show").
#
# For each shape (default: MQTT 3.1.1 QoS 0, MQTT QoS 1 and STOMP, 64 B):
#
#   single   one broker (bin/duplex), 1 publisher and 100 subscribers on it
#   cluster  three brokers joined by their embedded NATS servers' routes on
#            loopback (-cluster-listen/-cluster-peers), the publisher on
#            node 1 and the 100 subscribers round robin over nodes 1, 2, 3
#            (34/33/33; duplex-bench -sub-urls), the brokers' CPU summed
#            (duplex-bench -broker-pids)
#
# first as fast as flow control allows, then with the publisher at a steady
# BENCH_CLUSTER_RATE messages/s (default 1000, so 100000 deliveries/s; 0
# skips): the same load on both, where CPU per delivery compares best
# (flat out, the cluster runs at a lower rate, and a broker's CPU per
# delivery grows as its batches shrink). Then one line per pair compares
# the brokers' CPU per delivered message: the cluster's (all three
# brokers) against the single node's.
# Each cluster starts fresh and is ready (/readyz 200 on every node) before
# its run. The generator, the publisher and all three brokers share the
# machine: compare CPU per delivery more than throughput.
#
# With BENCH_CLUSTER_ELSEWHERE=1, before each cluster run an MQTT
# persistent session on node 2 subscribes (QoS 1) to bench/durable, a topic
# the run does not publish to, and goes offline (duplex-bench -scenario
# fill -msgs 1): the cluster then has a persistent subscription, but none
# that wants the run's messages.
#
# Environment: BENCH_DURATION (default 5s), BENCH_WARMUP (default 2s: the
# remote subscribers' interest must cross the routes before the first
# message counts), BENCH_CLUSTER_SHAPES (default "mqtt 0;mqtt 1;stomp -":
# protocol and MQTT QoS, ';' between shapes), BENCH_CLUSTER_RATE,
# BENCH_ARGS, DUPLEX_ARGS,
# DUPLEX_BIN, BENCH_VERBOSE as in bench/run.sh. Exit status 1 when any line
# says FAIL or a broker misbehaved.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-2s}
IFS=';' read -r -a SHAPES <<<"${BENCH_CLUSTER_SHAPES:-mqtt 0;mqtt 1;stomp -}"
RATE=${BENCH_CLUSTER_RATE:-1000}
read -r -a EXTRA_BENCH <<<"${BENCH_ARGS:-}"
read -r -a EXTRA_BROKER <<<"${DUPLEX_ARGS:-}"
VERBOSE=${BENCH_VERBOSE:-0}
ELSEWHERE=${BENCH_CLUSTER_ELSEWHERE:-0}

mkdir -p bin
if [[ -z "${DUPLEX_BIN:-}" ]]; then
	go build -o bin/duplex ./cmd/duplex
	DUPLEX_BIN=bin/duplex
fi
go build -o bin/duplex-bench ./cmd/duplex-bench
BENCH=bin/duplex-bench

WORK=$(mktemp -d)
DUPLEX_PID=""
NODE_PIDS=()
NODE_ADDRS=()
status=0
# shellcheck source=bench/lib.sh
source bench/lib.sh

# stop_all stops the single broker and the cluster's nodes; a non-graceful
# stop counts as a failure.
stop_all() {
	local pid
	if [[ -n "$DUPLEX_PID" ]]; then
		pid=$DUPLEX_PID
		DUPLEX_PID=""
		stop_pid broker "$pid" 10 || status=1
	fi
	for pid in "${NODE_PIDS[@]}"; do
		stop_pid "cluster node" "$pid" 15 || status=1
	done
	NODE_PIDS=()
	NODE_ADDRS=()
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_bench
	stop_all
	if [[ "$VERBOSE" == 1 || $status != 0 ]]; then
		for f in "$WORK"/*.log; do
			[[ -s "$f" ]] || continue
			echo "bench: last lines of $f:" >&2
			tail -n 10 "$f" >&2
		done
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nobody listens on (checked by
# connecting; the route listener binds it a moment later), below the
# kernel's usual ephemeral range (32768 up), where client sockets and the
# embedded servers' random client ports live.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# http_status ADDR PATH prints the HTTP status code of GET http://ADDR/PATH.
http_status() {
	local line
	exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
	read -r line <&3 || true
	exec 3>&-
	line=${line#* }
	echo "${line%% *}"
}

# start_cluster starts three nodes routed to each other and waits until
# each answers /readyz 200. It sets NODE_PIDS and NODE_ADDRS.
start_cluster() {
	local routes=() i j peers data out line=""
	for i in 0 1 2; do
		routes+=("127.0.0.1:$(free_port)")
	done
	for i in 0 1 2; do
		peers=""
		for j in 0 1 2; do
			((j == i)) || peers+="${peers:+,}${routes[j]}"
		done
		data=$(mktemp -d "$WORK/node$i.XXXXXX")
		duplex_argv "$data" -cluster-name bench -cluster-listen "${routes[i]}" -cluster-peers "$peers"
		out="$WORK/node$i.out"
		: >"$out"
		(
			ulimit -n "$(ulimit -Hn)"
			exec "${DUPLEX_ARGV[@]}"
		) >"$out" 2>>"$WORK/node$i.log" &
		NODE_PIDS+=($!)
	done
	for i in 0 1 2; do
		line=""
		for _ in $(seq 300); do
			line=$(grep -m1 '^duplex listening on ' "$WORK/node$i.out" || true)
			[[ -n "$line" ]] && break
			alive "${NODE_PIDS[i]}" || break
			sleep 0.1
		done
		if [[ -z "$line" ]]; then
			echo "bench: cluster node $((i + 1)) did not start listening within 30s" >&2
			return 1
		fi
		NODE_ADDRS+=("${line#duplex listening on }")
	done
	for i in 0 1 2; do
		for _ in $(seq 300); do
			[[ "$(http_status "${NODE_ADDRS[i]}" /readyz 2>/dev/null || true)" == 200 ]] && continue 2
			sleep 0.1
		done
		echo "bench: cluster node $((i + 1)) not ready (/readyz) within 30s" >&2
		return 1
	done
}

# cpu_per_delivery prints the "broker X cpu-us/delivery" figure of LINE.
cpu_per_delivery() {
	sed -n 's/.*broker \([0-9.]*\) cpu-us\/delivery.*/\1/p' <<<"$1"
}

echo "# duplex cluster bench $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(go env GOVERSION), duration $DURATION, warm-up $WARMUP;" \
	"cluster = 3 nodes (embedded NATS routes on loopback), publisher on node 1, subscribers round robin over the 3 nodes, CPU of all 3 brokers"

summary=()

# pair NAME ARGS... runs ARGS (duplex-bench flags) on a single broker,
# then on a fresh three-node cluster, prints both lines and notes the CPU
# comparison under NAME.
pair() {
	local name=$1 path=ws single clustered subs a pid pids
	shift
	[[ " $* " == *" -protocol mqtt "* ]] && path=mqtt

	start_duplex || { status=1; exit 1; }
	run_bench -url "ws://$DUPLEX_ADDR/$path" -broker-pid "$DUPLEX_PID" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "$@" -label single
	echo "$LINE"
	((RC == 0)) || status=1
	single=$(cpu_per_delivery "$LINE")
	stop_all

	# A route port taken between free_port and the node's bind: try again
	# on other ports.
	local try saved=$status
	for try in 1 2 3; do
		start_cluster && break
		stop_all 2>/dev/null || true
		status=$saved # the failed start's nodes do not count
		if ((try == 3)); then
			echo "bench: no cluster after 3 tries" >&2
			status=1
			exit 1
		fi
	done
	if [[ "$ELSEWHERE" == 1 ]]; then
		run_bench -url "ws://${NODE_ADDRS[1]}/mqtt" -protocol mqtt -scenario fill -msgs 1 -client-id bench-elsewhere
		if ((RC != 0)); then
			echo "bench: the persistent subscription elsewhere was not made: $LINE" >&2
			status=1
		fi
	fi
	subs=""
	for a in "${NODE_ADDRS[@]}"; do
		subs+="${subs:+,}ws://$a/$path"
	done
	pids=$(
		IFS=,
		echo "${NODE_PIDS[*]}"
	)
	local label="cluster 3 nodes"
	[[ "$ELSEWHERE" == 1 ]] && label+=", a persistent subscription elsewhere"
	run_bench -url "ws://${NODE_ADDRS[0]}/$path" -sub-urls "$subs" -broker-pids "$pids" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "$@" -label "$label"
	echo "$LINE"
	((RC == 0)) || status=1
	clustered=$(cpu_per_delivery "$LINE")
	for pid in "${NODE_PIDS[@]}"; do
		if ! alive "$pid"; then
			echo "bench: a cluster node died during: $*" >&2
			status=1
		fi
	done
	stop_all

	if [[ -n "$single" && -n "$clustered" ]]; then
		summary+=("$(awk -v n="$name" -v s="$single" -v c="$clustered" \
			'BEGIN{printf "# %s: brokers cpu-us/delivery single %.2f, cluster %.2f (sum of 3): x%.2f, +%.2f us per delivery", n, s, c, c/s, c-s}')")
	fi
}

for shape in "${SHAPES[@]}"; do
	read -r proto qos <<<"$shape"
	args=(-protocol "$proto" -scenario throughput -pubs 1 -subs 100 -size 64)
	name="$proto 1->100 64B"
	if [[ "$proto" == mqtt ]]; then
		args+=(-qos "$qos")
		name+=" qos$qos"
	fi
	pair "$name" "${args[@]}"
	if [[ "$RATE" != 0 ]]; then
		pair "$name at $RATE/s" "${args[@]}" -rate "$RATE"
	fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
