#!/usr/bin/env bash
# Per-request kernel work of the proxy under load: frontdoor (release) and nginx as a TLS reverse
# proxy, each in front of the same nginx TLS backend, loaded by the same wrk run. perf counts
# syscall tracepoints, context switches and user/system CPU of the proxy process(es) only; every
# number is divided by the requests wrk completed in that window. Counts, unlike req/s, barely
# move with the machine's other load.
#
#   bench/proxy_syscalls.sh [duration=5s] [connections=32] [wrk-threads=2] [proxy-workers=2]
#
# FRONTDOOR_BIN=path skips the release build. BARE=1 also measures pingora as a bare proxy with the
# proxy client cert (bench/bare_pingora.rs; BARE_BIN=path skips its build): the engine's own share.
#
# Measured 2026-12-05 (1 worker, 32 connections): frontdoor 6.93 -> 5.16 syscalls per request
# (nginx 7.00) once upstream connections kept their addresses in their socket digest: the head
# deadline had read them with getsockname and getpeername on every request. The getpeername
# left (1.0 per request) is pingora's check of a pooled connection before it reuses it.
set -euo pipefail
DUR=${1:-5s}
CONNS=${2:-32}
THREADS=${3:-2}
WORKERS=${4:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# probes would show in the counts
CHECK_INTERVAL=1000s
# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"
UP=("$BE" "$NP" "$FP")
[ "${BARE:-0}" = 1 ] && UP+=("$BCP")
for u in "${UP[@]}"; do
  wait_ok "https://127.0.0.1:$u$PATH_"
done

SYSCALLS="read write writev readv recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl futex sched_yield ioctl getsockopt setsockopt accept4 close getpeername getsockname madvise mmap munmap brk mprotect sched_getaffinity clock_nanosleep"
EVENTS="-e raw_syscalls:sys_enter -e context-switches -e page-faults -e task-clock"
for s in $SYSCALLS; do EVENTS="$EVENTS -e syscalls:sys_enter_$s"; done

# measure NAME PIDS URL: per-request counters of PIDS (comma list) during one wrk run on URL;
# perf counts over the run's middle (from 0.5 s, for the duration less 1 s) and the request
# count of that window is wrk's req/s times its length.
measure() {
  local name=$1 pids=$2 url=$3 secs=${DUR%s}
  wrk -t"$THREADS" -c"$CONNS" -d2s "${HDR[@]}" "$url" >/dev/null 2>&1 || true  # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" "${HDR[@]}" "$url" > "$TMP/$name.wrk" &
  local w=$!
  sleep 0.5
  # shellcheck disable=SC2086 # one word per event flag
  perf stat -x, $EVENTS -p "$pids" -o "$TMP/$name.perf" -- sleep $((secs - 1)) 2>/dev/null
  wait $w
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/$name.wrk")
  local n; n=$(awk -v r="$rps" -v s="$secs" 'BEGIN { print r * (s - 1) }')
  echo "$name: $rps req/s"
  awk -F, -v n="$n" '$3 ~ /:|context|task|faults/ && $1 ~ /^[0-9.]+$/ {
      ev=$3; sub(/^syscalls:sys_enter_/, "", ev); v=$1/n
      if (ev == "task-clock") printf "  %-22s %10.1f us/req\n", ev, v*1000
      else if (v >= 0.005) printf "  %-22s %10.2f /req\n", ev, v }' "$TMP/$name.perf"
}
measure frontdoor "$FD_PID" "https://127.0.0.1:$FP$PATH_"
if [ "${BARE:-0}" = 1 ]; then
  measure bare-cert "$BC_PID" "https://127.0.0.1:$BCP$PATH_"
fi
NG_W=$(pgrep -P "$NG_PID" | paste -sd,)
measure nginx "$NG_W" "https://127.0.0.1:$NP$PATH_"
