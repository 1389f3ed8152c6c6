#!/usr/bin/env bash
# Instruction counts of frontdoor's proxied path: frontdoor (release) under callgrind in front of
# an nginx TLS backend; N HTTP/1.1 requests on one keep-alive connection (curl), counters zeroed after a
# warm-up. Prints instructions per request, where frontdoor's go (bench/callgrind_parts.py: its hooks and
# TLS stream, inclusive), and writes the callgrind file for callgrind_annotate.
# With BARE=1, pingora as a bare TLS proxy (bench/bare_pingora.rs, with the proxy client cert)
# is measured the same way, and the ratio printed: what the handler chain costs, in
# instructions, on a machine too busy for a throughput ratio.
#   bench/proxy_callgrind.sh [requests=2000] [out=callgrind.out]     (BARE_BIN=path skips its build)
# CALLGRIND_OPTS adds valgrind options, e.g. "--cache-sim=yes --branch-sim=yes" (misses by function).
# Measured 2026-12-05, 2000 requests: HEAD 32fcafc 146,750 instructions per request, the build
# before its socket and proxied-path changes (e6b50b4) 151,127; bare pingora with the client cert
# 135,231 (frontdoor 1.09x its instructions, at 0.83x its throughput: the rest of the gap is not
# instructions; an earlier cache simulation found 1.41x its I-cache and 1.82x its D-read misses).
# Measured 2026-12-06: HEAD 13abf0f 141,835 per request, c6fdfef 146,772; bare pingora 134,653
# (frontdoor 1.05x its instructions).
# Measured 2026-12-06 later, two interleaved runs: 139,674 / 139,668 per request against 0216c8b's
# 141,918 / 141,694 (RequestInfo one allocation, the user shared, discovery's one-key index,
# fewer hop-by-hop lookups). Of every count, ~13.4k is one 13,400-byte memcpy of pingora's
# request future (async_trait boxes it), which callgrind counts per byte (`rep movsb`): bare
# pingora has it too, and its real cost is far less.
# Measured 2026-12-06 (eleventh session), CALLGRIND_OPTS="--cache-sim=yes --branch-sim=yes", 1000
# requests: frontdoor 142.2k, bare pingora 135.5k per request, but the allocator is 10.7k of
# frontdoor's (mimalloc) and 21.9k of bare pingora's (glibc's then; it now uses mimalloc too): the
# chain is ~18k more outside it (1.16x). Simulated per request: I1 misses 6.2k vs 4.0k, D1 read
# misses 1.8k vs 0.95k, mispredicted branches 2.6k vs 1.7k. The four response headers frontdoor
# adds (Audit-Id, Cache-Control, the two PF uids) are ~5.9k of it: pingora parses each name again
# and grows both of the response's header maps (its case map is private, so no room can be made).
# Measured 2026-12-06 (twelfth session), same options, 1000 requests, d446aef: frontdoor 140.5k,
# bare pingora (now on mimalloc) 122.7k per request, of which ~15k is pingora formatting the client
# cert's serial for its per-peer pool key (x509_parser's format_serial, fmt), which frontdoor does
# not pay: outside it the engine's share is alike, and frontdoor's hooks (inclusive) are the rest:
# request_filter (the chain) 12.9k, response_filter 6.4k (the four headers 6.2k: 1.5k a header),
# upstream_request_filter 5.2k (the user's headers 2.4k), logging 3.4k (APF's seat release 1.2k,
# metrics 0.6k), upstream_peer and upstream_response_filter 1.0k each; the TLS server stream ~2k
# more than pingora's, pingora's read/idle timeouts 2.2k. bench/proxy_syscalls.sh: 5.15 syscalls
# per request for both, so the CPU gap is all user space.
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
BE=$(port); FP=$(port); BP=$(port)
# shellcheck source=bench/backend.sh
. "$ROOT/bench/backend.sh"
nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" & PIDS+=($!)

# NAME PORT LOG: N requests to the proxy on PORT (already under callgrind, writing
# $TMP/NAME.out.*); copies its file to $TMP/NAME.cg and prints its instructions per request
measure() {
  local name=$1 url="https://127.0.0.1:$2$PATH_" log=$3
  for _ in $(seq 1 600); do
    if curl -skf "${HDR[@]}" -o /dev/null "$url"; then break; fi
    sleep 0.2
  done
  curl -skf "${HDR[@]}" -o /dev/null "$url" || { cat "$log" >&2; exit 1; }
  urls "$url" 200 > "$TMP/warm.cfg"; urls "$url" "$N" > "$TMP/run.cfg"
  curl --http1.1 -sk "${HDR[@]}" -K "$TMP/warm.cfg"
  callgrind_control -z "$4" >/dev/null
  curl --http1.1 -sk "${HDR[@]}" -K "$TMP/run.cfg" -w '%{http_code}\n' | sort | uniq -c >&2
  callgrind_control -d "$4" >/dev/null
  sleep 1
  cp "$(ls -t "$TMP/$name".out.* | head -1)" "$TMP/$name.cg"
  callgrind_annotate "$TMP/$name.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
}

FRONTDOOR_LOG=warn valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$TMP/frontdoor.out" --dump-instr=no \
  "$BIN" serve --secure-port "$FP" --cert-dir "$TMP/certs" --data-dir "$TMP/data" \
  --policy-dir "$TMP/policies" --apiservices-file "$TMP/apiservices.yaml" \
  --service-endpoint "bench/api:443=127.0.0.1:$BE" --worker-threads 1 \
  --apiservice-check-interval 1000s >"$TMP/frontdoor.log" 2>&1 & PIDS+=($!)
FD=$!
IR=$(measure frontdoor "$FP" "$TMP/frontdoor.log" "$FD")
cp "$TMP/frontdoor.cg" "$OUT"
kill "$FD" 2>/dev/null || true
echo "frontdoor: requests $N  instructions $IR  per request $((IR / N))"
python3 "$ROOT/bench/callgrind_parts.py" "$OUT" "$N"

if [ "${BARE:-0}" = 1 ]; then
  bare_bin
  C=$TMP/certs
  WORKERS=1 valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --callgrind-out-file="$TMP/bare.out" --dump-instr=no \
    "$BARE_BIN" "127.0.0.1:$BP" "$C/apiserver.crt" "$C/apiserver.key" "127.0.0.1:$BE" api.bench.svc \
    "$TMP/be-ca.crt" "$C/front-proxy-client.crt" "$C/front-proxy-client.key" >"$TMP/bare.log" 2>&1 & PIDS+=($!)
  BARE_IR=$(measure bare "$BP" "$TMP/bare.log" "$!")
  cp "$TMP/bare.cg" "$OUT.bare"
  echo "bare pingora: requests $N  instructions $BARE_IR  per request $((BARE_IR / N))"
  echo "frontdoor / bare pingora: $(python3 -c "print(f'{$IR / $BARE_IR:.2f}')")x the instructions (callgrind files: $OUT, $OUT.bare)"
fi
