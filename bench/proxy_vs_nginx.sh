#!/usr/bin/env bash
# End-to-end proxy benchmark: one TLS backend (nginx returning a small APIResourceList-ish
# JSON body), loaded with wrk directly, through frontdoor (release build, full handler chain,
# aggregation to the backend with the proxy client cert), and through nginx configured as a
# plain TLS reverse proxy with upstream keepalive. Same machine, same run, same wrk settings.
#
#   bench/proxy_vs_nginx.sh [duration=10s] [connections=32] [wrk-threads=2] [proxy-workers=2]
#
# FRONTDOOR_BIN=path skips the release build. Requests carry "Authorization: Bearer $BENCH_TOKEN"
# (wrk cannot present client certs); the default token is a static token of a system:masters
# user, so the cached token path and authorization run as for an ordinary client.
set -euo pipefail
DUR=${1:-10s}
CONNS=${2:-32}
THREADS=${3:-2}
WORKERS=${4:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"

wait_ok() {
  for _ in $(seq 1 100); do
    if curl -skf "${HDR[@]}" -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "not ready: $1" >&2; cat "$TMP"/*.err "$TMP/frontdoor.log" >&2; exit 1
}
wait_ok "https://127.0.0.1:$BE$PATH_"
wait_ok "https://127.0.0.1:$NP$PATH_"
wait_ok "https://127.0.0.1:$FP$PATH_"

# CPU ticks used by a process and its children processes (nginx workers)
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

# runs wrk; prints "req/s p50_ms p99_ms non2xx"
run() {
  wrk -t"$THREADS" -c"$CONNS" -d2s "${HDR[@]}" "$1" >/dev/null 2>&1 || true   # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "${HDR[@]}" "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %.3f %.3f %d\n", rps, p50, p99, bad }'
}
read -r D_RPS D_P50 D_P99 D_BAD < <(run "https://127.0.0.1:$BE$PATH_")
F_T0=$(ticks "$FD_PID")
if [ -n "${PERF_OUT:-}" ]; then
  # PERF_OUT=file: profile frontdoor during its run (perf report --stdio into the file)
  (sleep 3; perf record -F 499 -g -p "$FD_PID" -o "$TMP/perf.data" -- sleep 5 >/dev/null 2>&1;
   cp "$TMP/perf.data" "$PERF_OUT.data"; perf report -i "$TMP/perf.data" --stdio --no-children -g none --sort dso,symbol --percent-limit 0.3 2>/dev/null > "$PERF_OUT") &
  PERF_JOB=$!
fi
read -r F_RPS F_P50 F_P99 F_BAD < <(run "https://127.0.0.1:$FP$PATH_")
F_CPU=$(( $(ticks "$FD_PID") - F_T0 ))
if [ -n "${PERF_OUT:-}" ]; then wait "$PERF_JOB" || true; fi
N_T0=$(ticks "$NG_PID")
read -r N_RPS N_P50 N_P99 N_BAD < <(run "https://127.0.0.1:$NP$PATH_")
N_CPU=$(( $(ticks "$NG_PID") - N_T0 ))

echo "wrk -t$THREADS -c$CONNS -d$DUR, proxies with $WORKERS workers, $(nproc) cores"
printf '%-10s %12s %10s %10s %8s\n' target req/s p50_ms p99_ms non2xx
printf '%-10s %12.0f %10.3f %10.3f %8d\n' direct "$D_RPS" "$D_P50" "$D_P99" "$D_BAD"
printf '%-10s %12.0f %10.3f %10.3f %8d\n' frontdoor "$F_RPS" "$F_P50" "$F_P99" "$F_BAD"
printf '%-10s %12.0f %10.3f %10.3f %8d\n' nginx "$N_RPS" "$N_P50" "$N_P99" "$N_BAD"
awk -v f="$F_RPS" -v d="$D_RPS" -v n="$N_RPS" 'BEGIN { printf "throughput frontdoor/direct %.2f  frontdoor/nginx %.2f\n", f/d, f/n }'
echo "proxy CPU seconds over warm-up + run: frontdoor $(awk -v t="$F_CPU" -v h="$HZ" 'BEGIN{printf "%.1f", t/h}'), nginx $(awk -v t="$N_CPU" -v h="$HZ" 'BEGIN{printf "%.1f", t/h}')"
