#!/usr/bin/env bash
# A profile-guided release build of frontdoor, and of bench/bare_pingora.rs beside it so that the
# engine's ceiling is built alike: both built instrumented (-Cprofile-generate), a training load
# run through them (the proxy benches' set-up: proxied GETs over HTTP/1.1 and HTTP/2; frontdoor's
# own store: GET, LIST, create, watch; discovery), the profiles merged with the llvm-profdata of
# rustc's own LLVM version, and both built again with -Cprofile-use. The code a request runs is
# laid out together and its branches arranged for the common case, where a plain build guesses.
#
#   bench/pgo.sh [out-dir=target/pgo]     prints the two binaries' paths at the end
#
# Needs nginx, wrk, curl and llvm-profdata-<rustc's LLVM major> (Debian: `apt-get install
# llvm-22` for rustc 1.95); two full release builds (~10 min each on 2 cores).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/target/pgo}" && cd "${1:-$ROOT/target/pgo}" && pwd)
HOST=$(rustc -vV | awk '/^host:/ { print $2 }')
LLVM=$(rustc -vV | awk '/^LLVM version:/ { split($3, v, "."); print v[1] }')
PROFDATA=$(command -v "llvm-profdata-$LLVM" || true)
if [ -z "$PROFDATA" ]; then
  echo "pgo.sh: llvm-profdata-$LLVM not found (rustc uses LLVM $LLVM; Debian: apt-get install llvm-$LLVM)" >&2
  exit 1
fi

# PROFILE_FLAGS TARGET_DIR: a release build of both binaries; --target keeps the flags off build
# scripts and proc macros
build() {
  (cd "$ROOT" && RUSTFLAGS="$1" CARGO_TARGET_DIR="$2" \
    cargo build --release -q --target "$HOST" --bin frontdoor --example bare_pingora >&2)
}

rm -rf "$OUT/profiles" && mkdir -p "$OUT/profiles"
echo "pgo.sh: instrumented build" >&2
build "-Cprofile-generate=$OUT/profiles" "$OUT/gen"
GEN=$OUT/gen/$HOST/release

echo "pgo.sh: training" >&2
(
  FRONTDOOR_BIN=$GEN/frontdoor BARE_BIN=$GEN/examples/bare_pingora BARE=1 WORKERS=1
  # shellcheck source=bench/proxies.sh
  . "$ROOT/bench/proxies.sh"
  FD=https://127.0.0.1:$FP
  for p in "$FP" "$BCP" "$BNP"; do wait_ok "https://127.0.0.1:$p$PATH_"; done
  # the proxied path, as the benches load it (most of the weight)
  wrk -t1 -c32 -d8s "${HDR[@]}" "$FD$PATH_" >/dev/null
  wrk -t1 -c32 -d8s "${HDR[@]}" "https://127.0.0.1:$BCP$PATH_" >/dev/null
  wrk -t1 -c32 -d3s "${HDR[@]}" "https://127.0.0.1:$BNP$PATH_" >/dev/null
  urls "$FD$PATH_" 500 > "$TMP/h2.cfg"
  curl --http2 -sk "${HDR[@]}" -K "$TMP/h2.cfg"
  # frontdoor's own store and discovery
  CM=$FD/api/v1/namespaces/default/configmaps
  for i in $(seq 1 100); do
    curl -skf "${HDR[@]}" -H 'Content-Type: application/json' -o /dev/null -X POST "$CM" \
      -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-$i\"},\"data\":{\"k\":\"v$i\"}}"
  done
  curl -sk "${HDR[@]}" -o /dev/null --max-time 3 "$CM?watch=true&resourceVersion=0" &
  WATCH=$!
  wrk -t1 -c16 -d4s "${HDR[@]}" "$CM/cm-1" >/dev/null
  wrk -t1 -c8 -d4s "${HDR[@]}" "$CM" >/dev/null
  wrk -t1 -c8 -d2s "${HDR[@]}" "$FD/apis" >/dev/null
  wait "$WATCH" || true
  cleanup   # SIGTERM: the binaries exit and write their profiles
  trap - EXIT
)
ls "$OUT"/profiles/*.profraw >/dev/null
"$PROFDATA" merge -o "$OUT/merged.profdata" "$OUT"/profiles/*.profraw

echo "pgo.sh: optimized build" >&2
build "-Cprofile-use=$OUT/merged.profdata" "$OUT/use"
USE=$OUT/use/$HOST/release
echo "$USE/frontdoor"
echo "$USE/examples/bare_pingora"
