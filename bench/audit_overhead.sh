#!/usr/bin/env bash
# Throughput with audit at Metadata to a file (blocking mode, kube's default) vs audit off,
# in the same run, against the release binary: anonymous GET /version over TLS with wrk.
# Prints requests/s of each and the ratio (target >= 0.9).
#   bench/audit_overhead.sh [duration=10s] [connections=32] [wrk threads=2]
set -euo pipefail
DURATION=${1:-10s}
CONNS=${2:-32}
THREADS=${3:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/frontdoor

(cd "$ROOT" && cargo build --release --quiet)
command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cat >"$WORK/audit-policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
YAML

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME [extra flags...]: starts frontdoor, waits for it, runs wrk, prints requests/s
run() {
  local name=$1; shift
  local port; port=$(free_port)
  "$BIN" serve --secure-port "$port" --cert-dir "$WORK/certs" --data-dir "$WORK/data-$name" \
    --policy-dir "$WORK/none" "$@" >"$WORK/$name.out" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    curl -sk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # warm up, then measure
  wrk -t"$THREADS" -c"$CONNS" -d2s "https://127.0.0.1:$port/version" >/dev/null
  local rps
  rps=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "https://127.0.0.1:$port/version" | awk '/^Requests\/sec/ {print $2}')
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  echo "$rps"
}

OFF=$(run off)
ON=$(run metadata --audit-policy-file "$WORK/audit-policy.yaml" --audit-log-path "$WORK/audit.log")
LINES=$(wc -l <"$WORK/audit.log")
echo "audit off:              $OFF req/s"
echo "audit Metadata to file: $ON req/s ($LINES events written)"
awk -v on="$ON" -v off="$OFF" 'BEGIN { r = on / off; printf "ratio: %.3f (target >= 0.9)\n", r }'
