# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with the caller
# bench/lib.sh: helpers shared by bench/run.sh and bench/peers.sh. Source
# it after setting WORK (a scratch folder), BENCH (the generator),
# DUPLEX_BIN, EXTRA_BROKER (an array of extra broker flags) and VERBOSE.
# The caller's EXIT trap must call stop_bench.

BENCH_PID=""

# alive PID tells whether the process runs (a zombie, dead but not yet
# waited for, does not).
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$state" && "$state" != Z ]]
}

# stop_pid NAME PID [SECONDS] sends SIGTERM and waits up to SECONDS
# (default 10) for a graceful exit, then SIGKILL. It fails (after saying why
# on standard error) when the process had to be killed or exited non-zero.
# PID must be a child of this shell.
stop_pid() {
	local name=$1 pid=$2 secs=${3:-10} rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq $((secs * 50))); do
		alive "$pid" || break
		sleep 0.02
	done
	if alive "$pid"; then
		echo "bench: $name $pid still running ${secs}s after SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if ((rc != 0)); then
		echo "bench: $name exited with status $rc after SIGTERM (want 0)" >&2
		return 1
	fi
}

# duplex_argv DATA [FLAGS...] sets DUPLEX_ARGV to the broker's command line
# with data folder DATA: random loopback port, no plain TCP listeners (the
# benchmark speaks WebSocket only, and their fixed default ports may be
# taken, by a Mosquitto service on 1883 for one), no per-address connection
# cap or connect rate (the generator opens thousands of connections in a
# burst from one address), then FLAGS, then EXTRA_BROKER.
duplex_argv() {
	local help tcp_off=() per_ip_off=()
	help=$("$DUPLEX_BIN" -h 2>&1 || true)
	if [[ "$help" == *-mqtt-tcp-addr* ]]; then
		tcp_off=(-stomp-tcp-addr= -mqtt-tcp-addr=)
	fi
	if [[ "$help" == *-limits-connect-rate-per-ip* ]]; then
		per_ip_off=(-limits-max-connections-per-ip 0 -limits-connect-rate-per-ip 0)
	fi
	DUPLEX_ARGV=("$DUPLEX_BIN" -addr 127.0.0.1:0 -data "$1" "${tcp_off[@]}" "${per_ip_off[@]}" "${@:2}" "${EXTRA_BROKER[@]}")
}

# start_duplex [FLAGS...] starts a fresh Duplex broker (its own process,
# raised open-files limit, empty data folder, the command line of
# duplex_argv with FLAGS) and waits up to 10 s for its listening line. It
# sets DUPLEX_PID, DUPLEX_ADDR (host:port) and DUPLEX_DATA (its data
# folder) and fails after saying why on standard error. Its log goes to
# $WORK/duplex.log.
start_duplex() {
	local out line=""
	DUPLEX_DATA=$(mktemp -d "$WORK/data.XXXXXX")
	duplex_argv "$DUPLEX_DATA" "$@"
	out="$WORK/duplex.out"
	: >"$out"
	(
		ulimit -n "$(ulimit -Hn)"
		exec "${DUPLEX_ARGV[@]}"
	) >"$out" 2>>"$WORK/duplex.log" &
	DUPLEX_PID=$!
	for _ in $(seq 100); do
		line=$(grep -m1 '^duplex listening on ' "$out" || true)
		[[ -n "$line" ]] && break
		if ! alive "$DUPLEX_PID"; then
			echo "bench: duplex exited before listening" >&2
			wait "$DUPLEX_PID" 2>/dev/null || true
			DUPLEX_PID=""
			return 1
		fi
		sleep 0.1
	done
	if [[ -z "$line" ]]; then
		echo "bench: no 'duplex listening on' line from the broker within 10s" >&2
		return 1
	fi
	DUPLEX_ADDR=${line#duplex listening on }
}

# run_bench ARGS... runs the generator with ARGS in the background (so that a
# signal interrupts the wait) and sets LINE to its result line (a FAIL line
# when it printed none) and RC to its exit status. Its diagnostics are shown
# when VERBOSE is 1 or it crashed.
run_bench() {
	local errfile="$WORK/bench.err"
	RC=0
	"$BENCH" "$@" >"$WORK/bench.out" 2>"$errfile" &
	BENCH_PID=$!
	wait "$BENCH_PID" || RC=$?
	BENCH_PID=""
	LINE=$(head -n 1 "$WORK/bench.out")
	if [[ -z "$LINE" ]]; then
		LINE="$*: FAIL: duplex-bench printed no result (exit $RC)"
	fi
	if [[ "$VERBOSE" == 1 || ($RC != 0 && $RC != 1) ]]; then
		sed 's/^/  # /' "$errfile" >&2
	fi
}

# stop_bench ends a generator still running (for the EXIT trap).
stop_bench() {
	if [[ -n "$BENCH_PID" ]]; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
		BENCH_PID=""
	fi
}

# mqtt_probe URL tells whether the broker at URL speaks MQTT over WebSocket
# (one CONNECT, SUBSCRIBE, DISCONNECT within 3 s). It sets PROBE to the
# probe's result line.
mqtt_probe() {
	local rc=0
	PROBE=$("$BENCH" -protocol mqtt -url "$1" -scenario probe -timeout 3s -deadline 10s 2>/dev/null) || rc=$?
	return "$rc"
}

# find_mqtt ADDR sets MQTT_URL to the first of ws://ADDR/mqtt and
# ws://ADDR/ws that answers MQTT, or fails with PROBE saying why /mqtt
# does not.
find_mqtt() {
	local path why=""
	for path in mqtt ws; do
		if mqtt_probe "ws://$1/$path"; then
			MQTT_URL="ws://$1/$path"
			return 0
		fi
		why=${why:-$PROBE}
	done
	PROBE=$why
	return 1
}

# mqtt_scenarios prints the MQTT scenarios, one duplex-bench argument list
# a line: throughput 1->1, 10->10 and 1->100 with 64 B and 1 KiB bodies at
# QoS 0 and 1, then latency 1->1 at $RATE/s at QoS 0 and 1.
mqtt_scenarios() {
	local shape size qos
	for shape in "1 1" "10 10" "1 100"; do
		for size in 64 1024; do
			for qos in 0 1; do
				echo "-scenario throughput -pubs ${shape% *} -subs ${shape#* } -size $size -qos $qos"
			done
		done
	done
	for qos in 0 1; do
		echo "-scenario latency -pubs 1 -subs 1 -size 64 -qos $qos -rate $RATE"
	done
}
