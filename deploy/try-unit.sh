#!/bin/sh
# deploy/try-unit.sh: run Duplex the way deploy/duplex.service does, on a
# machine where systemd is not PID 1 (a container, CI), and check it works
# there. Run as root from the repository root:  sh deploy/try-unit.sh
#
# What it does (deploy/README.md says what this does and does not cover):
#  1. builds duplex with the Dockerfile's go build line, duplex-bench, and a
#     test PKI (go run ./test/certgen);
#  2. systemd-analyze verify on a copy of the unit with ExecStart pointing at
#     that binary, and systemd-analyze security --offline;
#  3. writes deploy/duplex.toml with /etc/duplex and /var/lib/duplex moved
#     into a scratch folder (the listeners stay as they are: 127.0.0.1:9090,
#     0.0.0.0:8443, 0.0.0.0:8883, 0.0.0.0:61614, which must be free), and a
#     password file with duplex passwd;
#  4. starts the broker in a private mount namespace that mimics the unit:
#     / read-only except the state folder (ProtectSystem=strict +
#     StateDirectory), an empty /tmp (PrivateTmp), empty read-only /home and
#     /root (ProtectHome), a /dev with only null, zero, full, random, urandom
#     (PrivateDevices), read-only /proc/sys and /sys (ProtectKernelTunables,
#     ProtectControlGroups); as a non-root uid with no capabilities at all
#     and no_new_privs (User=, CapabilityBoundingSet=, AmbientCapabilities=,
#     NoNewPrivileges=), LimitNOFILE=65536 and UMask=0077; under strace;
#  5. drives it: /healthz and /readyz on the admin listener, /healthz over
#     HTTPS on the wss listener, TLS handshakes on the MQTT and STOMP TLS
#     ports, STOMP and MQTT QoS 1 traffic with a login (duplex-bench, which
#     speaks ws:// only: through one plain loopback listener added for the
#     try, -addr 127.0.0.1:0), a SIGHUP reload;
#  6. SIGTERM: it must exit 0 and log "duplex stopped";
#  7. compares the system calls it made with SystemCallFilter=@system-service
#     and looks for writable+executable mappings (MemoryDenyWriteExecute=).
set -eu

[ "$(id -u)" = 0 ] || { echo "try-unit.sh: run as root (it uses unshare and setpriv)" >&2; exit 1; }
for tool in go unshare setpriv strace curl systemd-analyze; do
	command -v "$tool" >/dev/null || { echo "try-unit.sh: $tool is missing" >&2; exit 1; }
done

UID_DUPLEX=${UID_DUPLEX:-64990} # the unit's User=duplex: any unused uid
TRY=$(mktemp -d /var/tmp/duplex-unit.XXXXXX)
echo "== scratch folder $TRY"
mkdir -p "$TRY/bin" "$TRY/etc/tls" "$TRY/state" "$TRY/dev"

echo "== 1. build"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=try-unit" -o "$TRY/bin/duplex" ./cmd/duplex
go build -o "$TRY/bin/duplex-bench" ./cmd/duplex-bench
go run ./test/certgen "$TRY/pki" >/dev/null
cp "$TRY/pki/server.pem" "$TRY/etc/tls/cert.pem"
cp "$TRY/pki/server-key.pem" "$TRY/etc/tls/key.pem"
"$TRY/bin/duplex" -version

echo "== 2. systemd-analyze verify and security"
sed "s#/usr/local/bin/duplex#$TRY/bin/duplex#" deploy/duplex.service >"$TRY/duplex.service"
systemd-analyze verify "$TRY/duplex.service"
echo "verify: no warnings"
systemd-analyze security --offline=true "$TRY/duplex.service" | tail -1

echo "== 3. config"
sed -e "s#/etc/duplex/#$TRY/etc/#g" -e "s#/var/lib/duplex#$TRY/state#g" deploy/duplex.toml >"$TRY/etc/duplex.toml"
PASSWORD=try-unit-$(date +%s)
"$TRY/bin/duplex" passwd -b "$TRY/etc/passwd" admin "$PASSWORD"
# As the install steps: root:duplex 0640 config and key, the password file
# the user's own and 0600 (duplex passwd keeps 0600), state owned by the user.
chown -R root:"$UID_DUPLEX" "$TRY/etc"
chmod 0750 "$TRY/etc" "$TRY/etc/tls"
chmod 0640 "$TRY/etc/duplex.toml" "$TRY/etc/tls/"*
chown "$UID_DUPLEX:$UID_DUPLEX" "$TRY/etc/passwd"
chown "$UID_DUPLEX:$UID_DUPLEX" "$TRY/state"
chmod 0750 "$TRY/state"
# The scratch folder itself must be reachable by the service user.
chmod 0755 "$TRY"
"$TRY/bin/duplex" config check "$TRY/etc/duplex.toml"

echo "== 4. start under the sandbox"
: >"$TRY/duplex.log"
# LimitNOFILE=65536, or the hard limit when raising it is not allowed here.
ulimit -n 65536 2>/dev/null || { echo "LimitNOFILE: 65536 refused here, using the hard limit $(ulimit -Hn)"; ulimit -n "$(ulimit -Hn)"; }
umask 0077
TRY="$TRY" UID_DUPLEX="$UID_DUPLEX" strace -f -qq -o "$TRY/strace.log" \
	unshare --mount --propagation private -- sh -ec '
		mount --bind "$TRY/state" "$TRY/state"
		mount -t tmpfs -o mode=755,nosuid,noexec tmpfs "$TRY/dev"
		for d in null zero full random urandom; do
			touch "$TRY/dev/$d"; mount --bind "/dev/$d" "$TRY/dev/$d"
		done
		mount -o remount,bind,ro /
		mount --rbind "$TRY/dev" /dev
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
		mount -t tmpfs -o ro,mode=755 tmpfs /home
		mount -t tmpfs -o ro,mode=700 tmpfs /root
		mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys
		mount --bind /sys /sys; mount -o remount,bind,ro /sys
		exec setpriv --reuid "$UID_DUPLEX" --regid "$UID_DUPLEX" --clear-groups --no-new-privs \
			--bounding-set -all --inh-caps -all --ambient-caps -all -- \
			"$TRY/bin/duplex" -config "$TRY/etc/duplex.toml" -data "$TRY/state" -addr 127.0.0.1:0
	' >>"$TRY/duplex.log" 2>&1 &
TRACER=$!

# Stop the broker if this script fails from here on.
trap '[ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null; true' EXIT
# The broker is the one process that runs $TRY/bin/duplex (setpriv execs it).
PID=""
for _ in $(seq 100); do
	grep -q '"duplex started"' "$TRY/duplex.log" 2>/dev/null && break
	kill -0 "$TRACER" 2>/dev/null || { cat "$TRY/duplex.log"; echo "try-unit.sh: the broker exited" >&2; exit 1; }
	sleep 0.1
done
for p in $(pgrep -f "^$TRY/bin/duplex -config" || true); do PID=$p; done
[ -n "$PID" ] || { cat "$TRY/duplex.log"; echo "try-unit.sh: broker not found" >&2; exit 1; }
echo "broker pid $PID: $(grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs)' /proc/$PID/status | tr -s '\t\n' '  ')"
echo "open files limit: $(grep 'Max open files' /proc/$PID/limits | tr -s ' ')"
grep '"duplex started"' "$TRY/duplex.log"

PLAIN=$(sed -n 's/^duplex listening on //p' "$TRY/duplex.log")
echo "== 5. traffic (plain loopback listener for duplex-bench: $PLAIN)"
curl -sf http://127.0.0.1:9090/healthz
curl -sf http://127.0.0.1:9090/readyz
curl -sf --cacert "$TRY/pki/ca.pem" https://127.0.0.1:8443/healthz
for port in 8883 61614; do
	openssl s_client -connect 127.0.0.1:$port -CAfile "$TRY/pki/ca.pem" -verify_return_error </dev/null 2>/dev/null |
		grep -E '^(Verification: OK|Verify return code: 0)' | head -1 | sed "s/^/TLS $port: /"
done
"$TRY/bin/duplex-bench" -url ws://$PLAIN/ws -protocol stomp -user admin -password "$PASSWORD" \
	-duration 2s -warmup 500ms -pubs 2 -subs 2
"$TRY/bin/duplex-bench" -url ws://$PLAIN/mqtt -protocol mqtt -qos 1 -user admin -password "$PASSWORD" \
	-duration 2s -warmup 500ms -pubs 2 -subs 2
kill -HUP "$PID"
for _ in $(seq 50); do grep -q '"reload done"' "$TRY/duplex.log" && break; sleep 0.1; done
grep -q '"reload done"' "$TRY/duplex.log" && echo "SIGHUP: reload done"
# Files the broker made in its state folder (UMask=0077).
ls -ln "$TRY/state"

echo "== 6. SIGTERM"
kill -TERM "$PID"
STATUS=0
wait "$TRACER" || STATUS=$?
PID=""
grep -E '"duplex (shutting down|stopped)"' "$TRY/duplex.log"
echo "exit status $STATUS"

echo "== 7. system calls"
# The broker's calls: every line of the traced processes from the execve
# of the binary on (setpriv's own setup calls come before it, and systemd
# makes those itself).
awk -v bin="$TRY/bin/duplex" '
	index($0, "execve(\"" bin "\"") && $0 !~ /= -1/ { on = 1 }
	on { print }
' "$TRY/strace.log" >"$TRY/strace.broker.log"
sed -E 's/^[0-9]+ +//' "$TRY/strace.broker.log" | grep -oE '^[a-z_0-9]+\(' | tr -d '(' | sort -u >"$TRY/syscalls.used"
expand() { # expand a systemd syscall group, recursively
	systemd-analyze syscall-filter "$1" | sed -n '2,$p' | sed -E 's/^ +//; /^#/d; /^$/d' | while read -r s; do
		case $s in @*) expand "$s" ;; *) echo "$s" ;; esac
	done
}
expand @system-service | sort -u >"$TRY/syscalls.allowed"
echo "system calls made: $(wc -l <"$TRY/syscalls.used")"
OUTSIDE=$(comm -23 "$TRY/syscalls.used" "$TRY/syscalls.allowed" | tr '\n' ' ')
if [ -n "$OUTSIDE" ]; then
	echo "OUTSIDE @system-service: $OUTSIDE"
	STATUS=1
else
	echo "all within @system-service"
fi
if grep -E '(mmap|mprotect)\(.*PROT_WRITE\|PROT_EXEC|(mmap|mprotect)\(.*PROT_READ\|PROT_WRITE\|PROT_EXEC' "$TRY/strace.broker.log" | grep -v '= -1' | head -3 | grep .; then
	echo "a writable and executable mapping: MemoryDenyWriteExecute=yes would refuse it"
	STATUS=1
else
	echo "no writable+executable mapping (MemoryDenyWriteExecute=yes is safe)"
fi
echo "== done: exit status $STATUS; logs in $TRY"
exit "$STATUS"
