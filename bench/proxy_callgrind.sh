#!/usr/bin/env bash
# Instruction counts of frontdoor's proxied path: frontdoor (release) under callgrind in front of
# an nginx TLS backend; N HTTP/1.1 requests on one keep-alive connection (curl), counters zeroed after a
# warm-up. Prints instructions per request and writes the callgrind file for callgrind_annotate.
#   bench/proxy_callgrind.sh [requests=2000] [out=callgrind.out]
set -euo pipefail
N=${1:-2000}
OUT=${2:-callgrind.out}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FRONTDOOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/frontdoor}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BE=$(port); FP=$(port)
# shellcheck source=bench/backend.sh
. "$ROOT/bench/backend.sh"
nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" & PIDS+=($!)
FRONTDOOR_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" --dump-instr=no \
  "$BIN" serve --secure-port "$FP" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
  --policy-dir "$TMP/policies" --apiservices-file "$TMP/apiservices.yaml" \
  --service-endpoint "bench/api:443=127.0.0.1:$BE" --worker-threads 1 \
  --apiservice-check-interval 1000s >"$TMP/frontdoor.log" 2>&1 & PIDS+=($!)
URL="https://127.0.0.1:$FP$PATH_"
for _ in $(seq 1 600); do
  if curl -skf "${HDR[@]}" -o /dev/null "$URL"; then break; fi
  sleep 0.2
done
curl -skf "${HDR[@]}" -o /dev/null "$URL" || { cat "$TMP/frontdoor.log" >&2; exit 1; }
urls() { for _ in $(seq 1 "$1"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done; }
urls 200 > "$TMP/warm.cfg"; urls "$N" > "$TMP/run.cfg"
curl --http1.1 -sk "${HDR[@]}" -K "$TMP/warm.cfg"
callgrind_control -z >/dev/null
curl --http1.1 -sk "${HDR[@]}" -K "$TMP/run.cfg" -w '%{http_code}\n' | sort | uniq -c >&2
callgrind_control -d >/dev/null
sleep 1
F=$(ls -t "$TMP"/cg.out.* | head -1)
cp "$F" "$OUT"
IR=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "requests $N  instructions $IR  per request $((IR / N))"
