#!/usr/bin/env bash
# bench/admin.sh: how fast the management API and the admin UI answer with
# many clients (part of `make bench`).
#
# Starts a Duplex broker (its own process on a random loopback port, fresh
# data folder, zero config: the API is open on loopback), then duplex-bench
# -scenario adminapi:
#
#   - BENCH_ADMIN_CONNS idle connections (default 10000), half STOMP, half
#     MQTT 3.1.1, one subscription each; connection k publishes k%5 messages
#   - BENCH_ADMIN_OFFLINE persistent MQTT sessions left offline (default
#     100000: clean session 0, one subscription, DISCONNECT), made for at
#     most BENCH_ADMIN_OFFLINE_TIME (default 2m): the line says how many
#     when the time cut it short
#   - then timed GETs, one at a time over one keep-alive connection:
#     BENCH_ADMIN_REQUESTS (default 300) of the clients list, in turn
#       /api/v1/clients?limit=100             first page
#       ... &cursor=                           pages 2..21, following next_cursor
#       ... &q=99                              a filter few ids match (a full scan)
#       ... &sort=-msgs_in                     sorted by a counter
#     a quarter as many of /api/v1/sessions?limit=100 (persistent sessions),
#     and BENCH_ADMIN_REQUESTS of /api/v1/overview, printing p50, p90, p99
#     and max of the clients list as a whole and of each kind; the idle
#     connections send a heart-beat or PINGREQ every 20 s meanwhile
#   - while the connections are still open, when Chromium and Node with
#     playwright-core (test/interop/node_modules) exist,
#     test/interop/tools/ui-load.js: the time until the UI's overview and
#     clients pages show their data
#
# Client sockets are spread over source addresses 127.0.0.2... so that
# 110,000 connections (most short-lived) fit in the ephemeral ports.
#
# Environment: BENCH_ADMIN_CONNS, BENCH_ADMIN_OFFLINE, BENCH_ADMIN_OFFLINE_TIME,
# BENCH_ADMIN_REQUESTS, BENCH_ADMIN_UI (auto (default): when Chromium is
# found; 0: never), CHROMIUM (default /usr/bin/chromium), DUPLEX_ARGS (extra
# broker flags), DUPLEX_BIN, BENCH_VERBOSE, as for bench/run.sh.
set -euo pipefail

cd "$(dirname "$0")/.."

CONNS=${BENCH_ADMIN_CONNS:-10000}
OFFLINE=${BENCH_ADMIN_OFFLINE:-100000}
OFFLINE_TIME=${BENCH_ADMIN_OFFLINE_TIME:-2m}
REQUESTS=${BENCH_ADMIN_REQUESTS:-300}
UI=${BENCH_ADMIN_UI:-auto}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
VERBOSE=${BENCH_VERBOSE:-0}
read -r -a EXTRA_BROKER <<<"${DUPLEX_ARGS:-}"

# Each side (broker, generator) needs one descriptor per open connection.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < CONNS + 200)); then
	echo "bench: open-files limit $(ulimit -n) is too low for $CONNS connections" >&2
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
status=0
# shellcheck source=bench/lib.sh
source bench/lib.sh

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	((rc == 0)) || status=$rc
	stop_bench
	if [[ -n "$DUPLEX_PID" ]]; then
		stop_pid broker "$DUPLEX_PID" 30 || status=1
	fi
	if [[ "$VERBOSE" == 1 || $status != 0 ]] && [[ -s "$WORK/duplex.log" ]]; then
		echo "bench: last lines of the broker's log:" >&2
		tail -n 20 "$WORK/duplex.log" >&2
	fi
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No per-user cap on persistent sessions (anonymous ones have none on
# loopback anyway), and group commits: the offline sessions are set-up,
# not what is measured.
flags=(-sync 200ms)
if [[ "$("$DUPLEX_BIN" -h 2>&1 || true)" == *-limits-max-sessions-per-user* ]]; then
	flags+=(-limits-max-sessions-per-user 0)
fi
if ! start_duplex "${flags[@]}"; then
	status=1
	exit 1
fi

exec_ui=()
if [[ "$UI" != 0 ]]; then
	if [[ -x "$CHROMIUM" ]] && command -v node >/dev/null && [[ -d test/interop/node_modules/playwright-core ]]; then
		exec_ui=(-exec "CHROMIUM='$CHROMIUM' node test/interop/tools/ui-load.js 'http://$DUPLEX_ADDR' >'$WORK/ui.out'")
	else
		echo "bench: admin UI load times skipped (needs $CHROMIUM, node and test/interop/node_modules/playwright-core: make interop installs them)" >&2
	fi
fi

if ! find_mqtt "$DUPLEX_ADDR"; then
	echo "bench: the broker does not answer MQTT on /mqtt or /ws: $PROBE" >&2
	status=1
	exit 1
fi
run_bench -scenario adminapi -url "ws://$DUPLEX_ADDR/ws" -mqtt-url "$MQTT_URL" \
	-conns "$CONNS" -offline "$OFFLINE" -offline-time "$OFFLINE_TIME" -requests "$REQUESTS" \
	-source-ips 8 -timeout 30s "${exec_ui[@]}"
# The result line, one field a line: "name:" then "  kind p50 ... max ...".
echo "${LINE%%: *}:"
rest=${LINE#*: }
echo "  ${rest//, /$'\n'  }"
if [[ -s "$WORK/ui.out" ]]; then
	sed 's/^/  ui: /' "$WORK/ui.out"
fi
if ((RC != 0)); then
	status=1
fi
