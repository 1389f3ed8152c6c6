#!/usr/bin/env bash
# Memory per idle connection on the secure port, and the TLS handshake timeout closing them.
#
# Starts frontdoor on its embedded defaults (temp dir, loopback), opens N TCP connections that
# never start TLS (MODE=idle, the default) or that finish the TLS handshake and then send
# nothing (MODE=tls), reads frontdoor's VmRSS from /proc before and after, prints KB per
# connection, then waits past --tls-handshake-timeout and counts the connections the server
# closed. Stops by itself (about TIMEOUT + 15 s).
#
#   bench/idle_connections.sh                 # N=5000 idle pre-handshake connections, debug build
#   N=10000 TIMEOUT=10 bench/idle_connections.sh
#   MODE=tls N=2000 bench/idle_connections.sh
#   BIN=target/release/frontdoor bench/idle_connections.sh
#   TIMEOUT=0 BIN=/tmp/frontdoor-before bench/idle_connections.sh   # no flag, no close check (older builds)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-5000}
MODE=${MODE:-idle}
TIMEOUT=${TIMEOUT:-10}
BIN=${BIN:-target/debug/frontdoor}
[ -x "$BIN" ] || cargo build --quiet --bin frontdoor
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((N + 200)) ]; then
  echo "open-file limit $(ulimit -n) is below N=$N; lower N" >&2
  exit 1
fi

TMP=$(mktemp -d)
PORT=$((30000 + RANDOM % 2000))
cleanup() {
  [ -n "${FD_PID:-}" ] && kill "$FD_PID" 2>/dev/null && wait "$FD_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

FLAG=()
[ "$TIMEOUT" != 0 ] && FLAG=(--tls-handshake-timeout "${TIMEOUT}s")
FRONTDOOR_LOG=warn "$BIN" serve --secure-port "$PORT" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
  --policy-dir "$TMP/policies" "${FLAG[@]}" >"$TMP/log" 2>&1 &
FD_PID=$!
for _ in $(seq 200); do
  [ -f "$TMP/certs/admin.kubeconfig" ] && (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

python3 - "$FD_PID" "$PORT" "$N" "$MODE" "$TIMEOUT" "$TMP/certs/ca.crt" <<'PY'
import socket, ssl, sys, time, select

pid, port, n, mode, timeout, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), sys.argv[6]

def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def settle():
    # let the server accept everything and reach a steady state
    time.sleep(1.0)

def warm():
    # one full request first, so one-off allocations (runtime, TLS config, caches) are in the baseline
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
        t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while t.recv(4096):
            pass

warm()
settle()
before = rss_kb()
start = time.monotonic()
socks = []
ctx = ssl.create_default_context(cafile=ca)
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    socks.append(s)
opened = time.monotonic() - start
settle()
after = rss_kb()
per = (after - before) / n
print(f"mode={mode} connections={n} opened_in={opened:.1f}s rss_before={before} KB rss_after={after} KB "
      f"per_connection={per:.2f} KB")

if mode == "idle" and timeout > 0:
    # the server must close every one of them once the handshake timeout has passed
    deadline = start + timeout + 5
    poll = select.poll()
    open_ = {s.fileno(): s for s in socks}
    for fd in open_:
        poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while open_ and time.monotonic() < deadline:
        for fd, _ in poll.poll(500):
            s = open_.pop(fd, None)
            poll.unregister(fd)
            if s is not None:
                try:
                    s.recv(1)
                except OSError:
                    pass
    closed_after = time.monotonic() - start
    print(f"closed_by_server={n - len(open_)}/{n} within {closed_after:.1f}s of the first connect "
          f"(--tls-handshake-timeout {timeout:g}s)")
    time.sleep(1.0)
    print(f"rss_after_close={rss_kb()} KB")
    ok = not open_
else:
    ok = True
for s in socks:
    s.close()
sys.exit(0 if ok else 1)
PY
