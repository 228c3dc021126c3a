#!/bin/sh
# deploy/try-image.sh: try deploy/Dockerfile without a Docker engine. Run as
# root from the repository root:  sh deploy/try-image.sh
#
#  1. copies the repository into a build context filtered like
#     deploy/Dockerfile.dockerignore, and runs the build stage's commands
#     there (go mod download; the same go build line, CGO_ENABLED=0
#     -trimpath; duplex -version); checks the binary is static;
#  2. lays out the final stage's file system as the Dockerfile does
#     (/usr/local/bin/duplex, /data owned by 65532, /tmp, /etc/passwd with
#     the distroless "nonroot" user), takes its ENV and ENTRYPOINT from the
#     Dockerfile, and runs the ENTRYPOINT chrooted there as 65532:65532, as
#     PID 1 of its own PID namespace, in its own network namespace, with a
#     password file at /run/secrets/duplex-passwd (bind-mounted read-only,
#     as docker -v or a compose secret would);
#  3. checks: without the secret it refuses to start and says why; with
#     DUPLEX_PASSWORD_FILE= DUPLEX_ALLOW_ANONYMOUS=true it starts; with the
#     secret /healthz and /readyz answer on :8080, anonymous MQTT is refused,
#     MQTT QoS 1 messages with a login are stored in the /data volume, a
#     SIGTERM (docker stop) exits 0, and after a restart on the same volume
#     the messages are still there and delivered.
set -eu

[ "$(id -u)" = 0 ] || { echo "try-image.sh: run as root (it uses unshare and chroot)" >&2; exit 1; }
for tool in go unshare chroot curl ip; do
	command -v "$tool" >/dev/null || { echo "try-image.sh: $tool is missing" >&2; exit 1; }
done
DOCKERFILE=deploy/Dockerfile
TRY=$(mktemp -d /var/tmp/duplex-image.XXXXXX)
echo "== scratch folder $TRY"

echo "== 1. build stage"
mkdir -p "$TRY/ctx" "$TRY/bin"
# deploy/Dockerfile.dockerignore, for tar.
tar -c --exclude=./.git --exclude=./bin --exclude=./build --exclude=./data --exclude=node_modules \
	--exclude=./test --exclude=./bench --exclude='*.test' --exclude='*.prof' . | tar -x -C "$TRY/ctx"
(
	cd "$TRY/ctx"
	go mod download
	VERSION=try-image
	# The Dockerfile's RUN line, with /out -> $TRY/out:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o "$TRY/out/duplex" ./cmd/duplex &&
		"$TRY/out/duplex" -version &&
		mkdir -p "$TRY/out/data"
)
file "$TRY/out/duplex" | sed "s#$TRY/##"
if ldd "$TRY/out/duplex" >/dev/null 2>&1; then
	echo "try-image.sh: the binary is dynamically linked" >&2
	exit 1
fi
echo "static: ldd says not a dynamic executable"
# The test client, from the full repository (not part of the image).
go build -o "$TRY/bin/duplex-bench" ./cmd/duplex-bench

echo "== 2. final stage layout"
ROOT="$TRY/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/proc" "$ROOT/run/secrets" "$ROOT/home/nonroot"
chmod 1777 "$ROOT/tmp"
cp "$TRY/out/duplex" "$ROOT/usr/local/bin/duplex"
# COPY --from=build --chown=65532:65532 /out/data /data
cp -a "$TRY/out/data" "$ROOT/data"
chown 65532:65532 "$ROOT/data" "$ROOT/home/nonroot"
# distroless/static's /etc/passwd and /etc/group.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$ROOT/etc/group"
# ENV and ENTRYPOINT as the Dockerfile says.
IMAGE_ENV=$(awk '/\\$/ { sub(/\\$/, ""); line = line $0; next } { print line $0; line = "" }' "$DOCKERFILE" |
	sed -n 's/^ENV //p' | tr -s ' \t' '\n\n' | grep = | tr '\n' ' ')
ENTRYPOINT=$(sed -n 's/^ENTRYPOINT \[\(.*\)\]$/\1/p' "$DOCKERFILE" | tr -d '",')
USERSPEC=$(sed -n 's/^USER //p' "$DOCKERFILE")
echo "USER $USERSPEC"
echo "ENV $IMAGE_ENV"
echo "ENTRYPOINT $ENTRYPOINT"
# The secret: a password file made with duplex passwd, then given to the
# image's user (duplex passwd writes 0600 files; the container runs as 65532).
PASSWORD=try-image-$(date +%s)
"$TRY/out/duplex" passwd -b "$TRY/passwd" admin "$PASSWORD" >/dev/null
chown 65532:65532 "$TRY/passwd"

cat >"$TRY/run.sh" <<EOF
#!/bin/sh
# run.sh NAME SECRET [KEY=VALUE...]: one "docker run" of the image.
name=\$1 secret=\$2; shift 2
exec unshare --pid --fork --mount --propagation private -- sh -ec '
	root=\$1 secret=\$2; shift 2
	mount -t proc proc "\$root/proc"
	if [ "\$secret" = yes ]; then
		touch "\$root/run/secrets/duplex-passwd"
		mount --bind -o ro "$TRY/passwd" "\$root/run/secrets/duplex-passwd"
	fi
	exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/nonroot $IMAGE_ENV "\$@" \
		$(command -v chroot) --userspec=$USERSPEC "\$root" $ENTRYPOINT
' sh "$ROOT" "\$secret" "\$@" >"$TRY/\$name.log" 2>&1
EOF

# The rest runs in a network namespace of its own: the image's ports do
# not meet the host's.
cat >"$TRY/checks.sh" <<EOF
#!/bin/sh
set -eu
ip link set lo up
TRY=$TRY
PASSWORD=$PASSWORD
EOF
cat >>"$TRY/checks.sh" <<'EOF'
STATUS=0
fail() { echo "FAIL: $*"; STATUS=1; }
# waitlog NAME TEXT: wait up to 10 s for TEXT in NAME.log
waitlog() {
	for _ in $(seq 100); do grep -q "$2" "$TRY/$1.log" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# stop PID NAME: SIGTERM to the broker (docker stop), wait, report the exit
# status. PID is unshare's; the broker is its one child (PID 1 inside).
stop() {
	kill -TERM "$(pgrep -P "$1")"
	s=0; wait "$1" || s=$?
	echo "$2: exit status $s after SIGTERM"
	[ "$s" = 0 ] || fail "$2 exited $s"
}

echo "== 3a. no secret mounted"
s=0; sh "$TRY/run.sh" nosecret no || s=$?
echo "exit status $s: $(cat "$TRY/nosecret.log")"
[ "$s" = 1 ] && grep -q 'password_file: open /run/secrets/duplex-passwd: no such file' "$TRY/nosecret.log" ||
	fail "without the secret"

echo "== 3b. anonymous, said explicitly"
sh "$TRY/run.sh" anon no DUPLEX_PASSWORD_FILE= DUPLEX_ALLOW_ANONYMOUS=true &
pid=$!
waitlog anon "duplex started" || fail "anonymous: not started: $(cat "$TRY/anon.log")"
curl -sf http://127.0.0.1:8080/readyz || fail "anonymous: /readyz"
stop $pid anonymous
rm -f "$TRY/rootfs/data/duplex.db"

echo "== 3c. with the secret"
sh "$TRY/run.sh" run1 yes &
pid=$!
waitlog run1 "duplex started" || fail "not started: $(cat "$TRY/run1.log")"
grep "duplex started" "$TRY/run1.log"
grep '^duplex .*listening' "$TRY/run1.log"
curl -sf http://127.0.0.1:8080/healthz
curl -sf http://127.0.0.1:8080/readyz
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/api/v1/overview)
echo "/api/v1/overview without a login: HTTP $code"
[ "$code" = 401 ] || fail "/api/v1/overview without a login: $code"
if "$TRY/bin/duplex-bench" -url ws://127.0.0.1:8080/mqtt -protocol mqtt -scenario probe >/dev/null 2>&1; then
	fail "anonymous MQTT was accepted"
else
	echo "anonymous MQTT client refused"
fi
"$TRY/bin/duplex-bench" -url ws://127.0.0.1:8080/mqtt -protocol mqtt -qos 1 -scenario fill -msgs 200 \
	-user admin -password "$PASSWORD" -client-id try-image
stop $pid run1
grep -E 'duplex (shutting down|stopped)' "$TRY/run1.log"
ls -ln "$TRY/rootfs/data"
owner=$(stat -c %u:%g "$TRY/rootfs/data/duplex.db")
[ "$owner" = 65532:65532 ] || fail "duplex.db owned by $owner"

echo "== 3d. restart on the same volume"
sh "$TRY/run.sh" run2 yes &
pid=$!
waitlog run2 "duplex started" || fail "restart: not started: $(cat "$TRY/run2.log")"
grep "store loaded" "$TRY/run2.log"
grep -q 'queued=200' "$TRY/run2.log" || fail "restart: the 200 queued messages were not loaded"
"$TRY/bin/duplex-bench" -url ws://127.0.0.1:8080/mqtt -protocol mqtt -qos 1 -scenario drain -msgs 200 \
	-user admin -password "$PASSWORD" -client-id try-image || fail "drain after the restart"
stop $pid run2
exit $STATUS
EOF

echo "== 3. runs"
STATUS=0
unshare --net -- sh "$TRY/checks.sh" || STATUS=$?
echo "== done: exit status $STATUS; logs in $TRY"
exit "$STATUS"
