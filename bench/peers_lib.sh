# shellcheck shell=bash disable=SC2034 # globals shared with the caller
# bench/peers_lib.sh: the brokers and result pairs of bench/peers.sh.
# Sourced after bench/lib.sh; uses its globals (WORK, BENCH, status, ...).

DUPLEX_URL=""  # Duplex's MQTT WebSocket URL; empty when it does not answer
DUPLEX_WHY=""  # why it does not
DUPLEX_NOTE="" # appended to "duplex: MQTT not available" when Duplex itself failed
MOSQ_URL=""

# free_port prints a loopback TCP port nobody listens on, below the
# ephemeral range.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 10000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# write_mosquitto_conf WS_PORT TCP_PORT writes $WORK/mosquitto.conf.
write_mosquitto_conf() {
	cat >"$WORK/mosquitto.conf" <<EOF
# duplex-bench's peer: MQTT over WebSocket on loopback, anonymous, nothing
# persisted, Mosquitto's defaults otherwise.
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
# Mosquitto's defaults, stated: per subscriber at most 20 QoS 1 messages in
# flight and 1000 queued (QoS 0 beyond that is dropped); the generator keeps
# at most 256 (-window) unseen by any subscriber, well below.
max_inflight_messages 20
max_queued_messages 1000
# Mosquitto 2.0.11 does not start with WebSocket listeners only, hence a
# plain MQTT one too (unused).
listener $2 127.0.0.1
protocol mqtt
listener $1 127.0.0.1
protocol websockets
EOF
}

# start_mosquitto starts Mosquitto on free ports (raised open-files limit)
# and waits up to 10 s until its WebSocket listener accepts connections.
# It sets MOSQ_PID, MOSQ_PORT and MOSQ_URL, and fails after saying why.
start_mosquitto() {
	for _ in 1 2 3; do
		MOSQ_PORT=$(free_port) || break
		write_mosquitto_conf "$MOSQ_PORT" "$(free_port)"
		(
			ulimit -n "$(ulimit -Hn)"
			exec "$MOSQUITTO_BIN" -c "$WORK/mosquitto.conf"
		) >>"$WORK/mosquitto.log" 2>&1 &
		MOSQ_PID=$!
		for _ in $(seq 100); do
			if ! alive "$MOSQ_PID"; then
				wait "$MOSQ_PID" 2>/dev/null || true
				MOSQ_PID=""
				break # a port was taken meanwhile, perhaps: try again
			fi
			if (exec 3<>"/dev/tcp/127.0.0.1/$MOSQ_PORT") 2>/dev/null; then
				MOSQ_URL="ws://127.0.0.1:$MOSQ_PORT/mqtt"
				return 0
			fi
			sleep 0.1
		done
		[[ -z "$MOSQ_PID" ]] || break
	done
	echo "peers: mosquitto did not start listening (log: $(tail -n 3 "$WORK/mosquitto.log" 2>/dev/null | tr '\n' ' '))" >&2
	return 1
}

# start_brokers starts fresh Duplex and Mosquitto processes and probes
# Duplex's MQTT. A broker that cannot start fails the run; Duplex without
# MQTT does not.
start_brokers() {
	DUPLEX_URL=""
	DUPLEX_NOTE=""
	if start_duplex; then
		if find_mqtt "$DUPLEX_ADDR"; then
			DUPLEX_URL=$MQTT_URL
		else
			if [[ -z "$DUPLEX_WHY" ]]; then # say why once
				echo "# duplex: MQTT not available (${PROBE#*: })"
			fi
			DUPLEX_WHY=${PROBE#*: }
		fi
	else
		DUPLEX_WHY="the broker did not start"
		DUPLEX_NOTE=" ($DUPLEX_WHY)"
		status=1
	fi
	if ! start_mosquitto; then
		status=1
		exit 1
	fi
}

# stop_brokers stops both; a non-graceful stop counts as a failure.
stop_brokers() {
	local pid
	if [[ -n "$DUPLEX_PID" ]]; then
		pid=$DUPLEX_PID
		DUPLEX_PID=""
		stop_pid duplex "$pid" || status=1
	fi
	if [[ -n "$MOSQ_PID" ]]; then
		pid=$MOSQ_PID
		MOSQ_PID=""
		stop_pid mosquitto "$pid" || status=1
	fi
}

# on BROKER URL PID ARGS... runs one scenario against a broker and sets
# LINE. A FAIL or a dead broker fails the run; a dead broker also ends
# its part of the run (its PID variable is cleared by the caller).
on() {
	local who=$1 url=$2 pid=$3
	shift 3
	run_bench -protocol mqtt -url "$url" -broker-pid "$pid" -duration "$DURATION" -warmup "$WARMUP" \
		"${EXTRA_BENCH[@]}" "$@"
	if ((RC != 0)); then
		status=1
	fi
	if ! alive "$pid"; then
		echo "peers: $who died during: $*" >&2
		wait "$pid" 2>/dev/null || true
		status=1
		return 1
	fi
}

# pair ARGS... runs one scenario against Duplex (when it answers MQTT) and
# Mosquitto and prints both lines and their ratio.
pair() {
	local dline="" mline
	if [[ -n "$DUPLEX_URL" ]]; then
		if on duplex "$DUPLEX_URL" "$DUPLEX_PID" "$@"; then
			dline=$LINE
		else
			dline=$LINE
			DUPLEX_PID=""
			DUPLEX_URL=""
			DUPLEX_WHY="the broker died"
			DUPLEX_NOTE=" ($DUPLEX_WHY)"
		fi
	fi
	if ! on mosquitto "$MOSQ_URL" "$MOSQ_PID" "$@"; then
		MOSQ_PID=""
		echo "duplex:    ${dline:-MQTT not available$DUPLEX_NOTE}"
		echo "mosquitto: $LINE"
		exit 1
	fi
	mline=$LINE
	if [[ -n "$dline" ]]; then
		echo "duplex:    $dline"
	else
		echo "duplex: MQTT not available$DUPLEX_NOTE"
	fi
	echo "mosquitto: $mline"
	if [[ -n "$dline" ]]; then
		ratio_line "$dline" "$mline"
	fi
}

# field LINE REGEX prints REGEX's first group in LINE, if it matches.
field() {
	if [[ $1 =~ $2 ]]; then
		echo "${BASH_REMATCH[1]}"
	fi
}

# ratio A B prints A/B as "1.23x", or "n/a" when either is missing or B is 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2fx\n", a / b }'
}

# bytes "12.5 KiB" prints the amount in bytes.
bytes() {
	awk -v s="$1" 'BEGIN {
		split(s, f, " "); m = 1
		if (f[2] == "KiB") m = 1024; else if (f[2] == "MiB") m = 1048576; else if (f[2] == "GiB") m = 1073741824
		if (f[1] != "") print f[1] * m
	}'
}

# ratio_line DUPLEX_LINE MOSQUITTO_LINE prints "ratio duplex/mosquitto NAME:
# ..." comparing the two result lines.
ratio_line() {
	local d=$1 m=$2 name=${2%%:*}
	local head="ratio duplex/mosquitto $name"
	if [[ "$d" == *FAIL* || "$m" == *FAIL* ]]; then
		echo "$head: n/a (a run failed)"
		return
	fi
	local num='([0-9.]+)' cpu p50 p99
	cpu="$(ratio "$(field "$d" "broker $num cpu-us/delivery")" "$(field "$m" "broker $num cpu-us/delivery")") cpu-us/delivery"
	p50="p50 $(ratio "$(field "$d" "p50 $num ms")" "$(field "$m" "p50 $num ms")")"
	p99="p99 $(ratio "$(field "$d" "p99 $num ms")" "$(field "$m" "p99 $num ms")")"
	case "$name" in
	*" idle "*)
		local dm mm
		dm=$(field "$d" '(-?[0-9.]+ [KMG]?i?B)/conn broker RSS')
		mm=$(field "$m" '(-?[0-9.]+ [KMG]?i?B)/conn broker RSS')
		echo "$head: $(ratio "$(bytes "$dm")" "$(bytes "$mm")") bytes/conn (duplex ${dm:-?}, mosquitto ${mm:-?} of broker RSS per connection)"
		;;
	*" latency "*)
		echo "$head: $p50, $p99, $cpu"
		;;
	*)
		local rate
		rate=$(ratio "$(field "$d" "$num msg/s delivered")" "$(field "$m" "$num msg/s delivered")")
		echo "$head: $rate msg/s, $cpu, $p99"
		;;
	esac
}
