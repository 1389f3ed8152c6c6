#!/usr/bin/env bash
# A noisy user floods LISTs of many configmaps from many connections while a quiet user sends
# GETs of one configmap over one connection; the quiet user's latency (p50/p99) and refusals
# are printed unloaded, under the flood with API Priority and Fairness (the default), and
# under the same flood with plain max-in-flight (--enable-priority-and-fairness=false), in the
# same run, against the release binary on loopback. Both users are in kube's global-default
# level, as distinct flows (ByUser): APF queues the flood and gives the quiet flow its fair
# turn; max-in-flight refuses whoever finds the seats taken.
#   bench/apf_flood.sh [seconds per phase=8] [flood connections=48] [configmaps=300]
# Bounded: two servers one after the other, three phases each, wrk with -d.
#
# Measured (release, loopback, 2 cores shared with other work; quiet GET p50 / p99; two runs
# each, the second after metric series were cached per flow schema):
#   48 flood connections:  unloaded 89us / 4.0ms, 93us / 0.9ms;
#                          flooded, APF 21.7ms / 164ms, 21.6ms / 103ms;
#                          flooded, max-in-flight 105ms / 357ms, 100ms / 689ms
#   96 flood connections:  unloaded 79us / 3.6ms, 81us / 2.3ms;
#                          flooded, APF 25.9ms / 199ms, 29.3ms / 269ms;
#                          flooded, max-in-flight 442ms / 601ms, 169ms / 542ms
# Nothing was refused in either mode: on two cores the lists are CPU-bound, so fewer than 20
# reach the seats at once; APF's gain is the queue: at most ~3 lists (6 seats each) run at a
# time in global-default's borrowed seats and the quiet flow's GET takes the next free seat.
set -euo pipefail
SECS=${1:-8}
CONNS=${2:-48}
OBJECTS=${3:-300}
# small server limits so the flood saturates them on a small machine: 30 seats in all
LIMITS=(--max-requests-inflight 20 --max-mutating-requests-inflight 10)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/frontdoor

(cd "$ROOT" && cargo build --release --quiet)
command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

printf 'noisy-token,noisy,1001\nquiet-token,quiet,1002\n' >"$WORK/tokens.csv"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME PORT [flags...]
start() {
  local name=$1 port=$2; shift 2
  "$BIN" serve --bind-address 127.0.0.1 --secure-port "$port" --cert-dir "$WORK/certs" --data-dir "$WORK/data-$name" \
    --policy-dir "$WORK/none" --token-auth-file "$WORK/tokens.csv" --authorization-mode AlwaysAllow \
    "${LIMITS[@]}" "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -sk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "frontdoor ($name) did not start" >&2; cat "$WORK/$name.out" >&2; exit 1
}

# populate PORT: a namespace of $OBJECTS configmaps of 1 KiB each
populate() {
  local url="https://127.0.0.1:$1" data
  data=$(head -c 768 /dev/zero | tr '\0' x)
  curl -sk -o /dev/null -H 'Authorization: Bearer noisy-token' -H 'Content-Type: application/json' \
    -X POST "$url/api/v1/namespaces" -d '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}'
  seq "$OBJECTS" | xargs -P 4 -I{} curl -sk -o /dev/null -H 'Authorization: Bearer noisy-token' \
    -H 'Content-Type: application/json' -X POST "$url/api/v1/namespaces/bench/configmaps" \
    -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-{}\"},\"data\":{\"v\":\"$data\"}}"
}

# quiet PORT SECONDS: "p50 p99 requests non-2xx" of the quiet user's GETs on one connection
quiet() {
  wrk -t1 -c1 -d"$2"s --latency -H 'Authorization: Bearer quiet-token' \
    "https://127.0.0.1:$1/api/v1/namespaces/bench/configmaps/cm-1" | awk '
      /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /requests in/ {n=$1} /Non-2xx/ {bad=$NF}
      END {printf "%s %s %s %s\n", p50, p99, n, bad+0}'
}

# flood PORT SECONDS: the noisy user's LISTs from $CONNS connections; prints "requests non-2xx"
flood() {
  wrk -t2 -c"$CONNS" -d"$2"s -H 'Authorization: Bearer noisy-token' \
    "https://127.0.0.1:$1/api/v1/namespaces/bench/configmaps" | awk '
      /requests in/ {n=$1} /Non-2xx/ {bad=$NF} END {printf "%s %s\n", n, bad+0}'
}

# run NAME PORT: unloaded, then under the flood
run() {
  local name=$1 port=$2 q f
  populate "$port"
  quiet "$port" 2 >/dev/null
  read -r p50 p99 n bad < <(quiet "$port" "$SECS")
  printf '%-26s quiet GET p50 %8s  p99 %8s  (%s requests, %s refused)\n' "$name, unloaded:" "$p50" "$p99" "$n" "$bad"
  flood "$port" $((SECS + 3)) >"$WORK/flood-$name" &
  local fpid=$!
  sleep 2
  read -r p50 p99 n bad < <(quiet "$port" "$SECS")
  wait "$fpid"
  read -r fn fbad <"$WORK/flood-$name"
  printf '%-26s quiet GET p50 %8s  p99 %8s  (%s requests, %s refused); flood %s LISTs, %s refused\n' \
    "$name, flooded:" "$p50" "$p99" "$n" "$bad" "$fn" "$fbad"
}

echo "limits: ${LIMITS[*]}; flood: $CONNS connections listing $OBJECTS configmaps; ${SECS}s per phase"
APF_PORT=$(free_port)
start apf "$APF_PORT"
run "APF" "$APF_PORT"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
MIF_PORT=$(free_port)
start mif "$MIF_PORT" --enable-priority-and-fairness=false
run "max-in-flight" "$MIF_PORT"
