#!/usr/bin/env bash
# Throughput with audit at Metadata to a file (blocking mode, kube's default) vs audit off,
# in the same run, against the release binary: anonymous GET /version over TLS with wrk.
# Both servers run side by side; load alternates between them for ROUNDS rounds (so that
# noise from other load on the machine hits both alike) and the medians are compared.
#   bench/audit_overhead.sh [duration per round=5s] [rounds=3] [connections=32] [wrk threads=2]
# Extra audit flags come from AUDIT_FLAGS (e.g. AUDIT_FLAGS="--audit-log-mode batch").
# Besides req/s it reports each server's CPU time per request (user+system of all its threads,
# from /proc): on a shared, noisy machine that is the steadier figure of the audit's cost.
set -euo pipefail
DURATION=${1:-5s}
ROUNDS=${2:-3}
CONNS=${3:-32}
THREADS=${4:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/frontdoor

(cd "$ROOT" && cargo build --release --quiet)
command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }

WORK=$(mktemp -d)
# the audit log lives apart from the policy file: every policy directory is watched for
# reloads, and inotify events for each log write would cost ~15 us per request
LOGDIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK" "$LOGDIR"; }
trap cleanup EXIT

cat >"$WORK/audit-policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
YAML

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME PORT [flags...]
start() {
  local name=$1 port=$2; shift 2
  "$BIN" serve --secure-port "$port" --cert-dir "$WORK/certs" --data-dir "$WORK/data-$name" \
    --policy-dir "$WORK/none" "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -sk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "frontdoor ($name) did not start" >&2; cat "$WORK/$name.out" >&2; exit 1
}

rps() { wrk -t"$THREADS" -c"$CONNS" -d"$1" "https://127.0.0.1:$2/version" | awk '/^Requests\/sec/ {print $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# measure PORT PID: "req/s cpu-us-per-request" for one round
measure() {
  local t0 r t1
  t0=$(ticks "$2")
  r=$(rps "$DURATION" "$1")
  t1=$(ticks "$2")
  awk -v r="$r" -v a="$t0" -v b="$t1" -v hz="$HZ" -v d="${DURATION%s}" 'BEGIN { printf "%s %.1f\n", r, (b - a) / hz * 1e6 / (r * d) }'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

OFF_PORT=$(free_port)
start off "$OFF_PORT"
OFF_PID=${PIDS[-1]}
ON_PORT=$(free_port)
# shellcheck disable=SC2086
start metadata "$ON_PORT" --audit-policy-file "$WORK/audit-policy.yaml" --audit-log-path "$LOGDIR/audit.log" ${AUDIT_FLAGS:-}
ON_PID=${PIDS[-1]}

rps 2s "$OFF_PORT" >/dev/null
rps 2s "$ON_PORT" >/dev/null
OFFS=() ONS=() OFFCPU=() ONCPU=()
for i in $(seq "$ROUNDS"); do
  read -r r c < <(measure "$OFF_PORT" "$OFF_PID"); OFFS+=("$r"); OFFCPU+=("$c")
  read -r r c < <(measure "$ON_PORT" "$ON_PID"); ONS+=("$r"); ONCPU+=("$c")
  echo "round $i: off ${OFFS[-1]} req/s (${OFFCPU[-1]} us CPU/req), audit ${ONS[-1]} req/s (${ONCPU[-1]} us CPU/req)"
done
OFF=$(printf '%s\n' "${OFFS[@]}" | median)
ON=$(printf '%s\n' "${ONS[@]}" | median)
OFFC=$(printf '%s\n' "${OFFCPU[@]}" | median)
ONC=$(printf '%s\n' "${ONCPU[@]}" | median)
LINES=$(wc -l <"$LOGDIR/audit.log")
echo "audit off (median):              $OFF req/s"
echo "audit Metadata to file (median): $ON req/s ($LINES events in the current log file)"
echo "server CPU per request (median): off $OFFC us, audit $ONC us"
awk -v on="$ON" -v off="$OFF" 'BEGIN { printf "ratio: %.3f (target >= 0.9)\n", on / off }'
