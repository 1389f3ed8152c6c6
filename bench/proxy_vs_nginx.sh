#!/usr/bin/env bash
# End-to-end proxy benchmark: one TLS backend (nginx returning a small APIResourceList-ish
# JSON body), loaded with wrk directly, through frontdoor (release build, full handler chain,
# aggregation to the backend with the proxy client cert), through pingora itself as a bare TLS
# proxy with no chain (bench/bare_pingora.rs, built from the same crates; with and without the
# per-peer proxy client cert), through nginx and through HAProxy (when installed) configured
# as plain TLS reverse proxies with upstream keepalive and the client cert. Same machine, same
# wrk settings; ROUNDS interleaved rounds (noise from other load hits every target alike),
# medians and ratios printed.
#
#   bench/proxy_vs_nginx.sh [duration=10s] [connections=32] [wrk-threads=2] [proxy-workers=2]
#
# ROUNDS=n (default 3). BARE=0 leaves out bare pingora (HAProxy stays). FRONTDOOR_BIN=path /
# BARE_BIN=path skip the release builds; FRONTDOOR_BASE_BIN=path adds another frontdoor build as
# target frontdoor-base (A/B in the same rounds), BARE_BASE_BIN=path another bare pingora build
# (with the client cert) as bare-base; bench/pgo.sh builds profile-guided ones of both. Requests
# carry "Authorization: Bearer $BENCH_TOKEN" (wrk cannot present client certs); the default
# token is a static token of a system:masters user, so the cached token path and authorization
# run as for an ordinary client.
#
# Measured 2026-12-05 (1 worker, wrk -t1 -c32 -d6s, medians of 3 interleaved rounds, 2-core shared
# machine), the release profile with codegen-units = 1 against the default 16 (same commit):
# frontdoor 23.4-23.6k -> 26.4-27.8k req/s (1.13-1.18x), 41-42 -> 36-38 us CPU per request;
# frontdoor / bare pingora with the client cert (built alike) 0.82-0.86, / nginx 0.66-0.70,
# / HAProxy 0.69-0.77.
# Measured 2026-12-05 evening, same settings, after the secure port's own socket and the proxied
# path's fewer copies and allocations (HEAD 32fcafc) against the build before them (e6b50b4):
# frontdoor 28.1k vs 26.9k req/s (1.04x), 35.6 vs 36.9 us CPU per request; / bare pingora with the
# client cert 0.83, without 0.76; / nginx 0.51 and / HAProxy 0.49 (nginx 55k and HAProxy 57k req/s
# that run, where bare pingora itself was 34k: 0.61 of nginx).
# Measured 2026-12-06, same settings, two runs, HEAD 13abf0f (the context boxed in pingora's request,
# borrowed authorization attributes, per-thread request-metric handles, Fx-hashed routing maps)
# against c6fdfef: frontdoor 27.8k / 26.2k vs 26.5k / 25.2k req/s (1.05x, 1.04x), 36.0 / 38.9 vs
# 37.3 / 39.8 us CPU per request; / bare pingora with the client cert 0.77 and 0.83, / nginx 0.50,
# / HAProxy 0.47-0.49.
# Measured 2026-12-06 later, same settings, HEAD 37423f3 against 0216c8b (1.5% fewer instructions
# per request): two runs, one on a busy machine (frontdoor 22.7k vs 22.3k req/s; / bare pingora
# with the client cert 0.90, / nginx 0.54, / HAProxy 0.57), one quiet (31.5k vs 31.8k, 31.9 vs
# 31.6 us CPU per request; / bare pingora 0.82, / nginx 0.50, / HAProxy 0.51): no change in
# throughput beyond noise. bench/proxy_syscalls.sh BARE=1: the same 5.2 syscalls per request as
# bare pingora; the gap is user time (22.3 vs 17.7 us per request), at 1.04x its instructions.
# Measured 2026-12-06 (eleventh session), same settings, quiet machine: bare pingora now uses
# frontdoor's allocator (mimalloc): 21.3 vs 23.1 us CPU per request with glibc's in one busy run,
# so the ratios above were against a lower ceiling (like for like, frontdoor / bare pingora with
# the client cert is 0.76 below, where they read 0.82-0.90). Profile-guided builds (bench/pgo.sh)
# of both against plain ones of HEAD 3a7cf43 in the same rounds: frontdoor 39.8k vs 31.7k req/s (1.25x), 24.4 vs 31.2 us CPU
# per request; bare pingora with the cert 50.3k vs 41.6k (1.21x); frontdoor / bare pingora 0.79
# (profile-guided both) and 0.76 (plain both); profile-guided frontdoor / nginx 0.64, / HAProxy
# 0.61 (nginx 62.6k, HAProxy 65.1k). BOLT (llvm-bolt, instrumented) on top of the profile-guided
# builds: +5% for each (not in pgo.sh).
# Measured 2026-12-06 (fourteenth session), same settings, 3 interleaved rounds, HEAD e8c3181 against
# a332503 (frontdoor-base): frontdoor 31.5k vs 31.8k req/s (0.99, noise); CPU per request, user space
# + kernel: frontdoor 20.5 + 11.2 us, bare pingora with the client cert 13.3 + 10.0, without it
# 11.2 + 9.2, nginx 6.3 + 8.2, HAProxy 6.7 + 7.9. frontdoor / bare pingora 0.74, / nginx 0.50, /
# HAProxy 0.48; bare pingora itself / nginx 0.68, / HAProxy 0.66: the engine's user space alone is
# 2.1x nginx's, so no chain on pingora 0.9 reaches nginx's throughput here.
set -euo pipefail
DUR=${1:-10s}
CONNS=${2:-32}
THREADS=${3:-2}
WORKERS=${4:-2}
ROUNDS=${ROUNDS:-3}
BARE=${BARE:-1}
HAPROXY=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"

# name port pid (pid empty: no CPU figure)
TARGETS=("direct $BE -" "frontdoor $FP $FD_PID")
[ "$BARE" = 1 ] && TARGETS+=("bare-cert $BCP $BC_PID" "bare-nocert $BNP $BN_PID")
TARGETS+=("nginx $NP $NG_PID")
HP_PID=${HP_PID:-}
[ -n "$HP_PID" ] && TARGETS+=("haproxy $HP $HP_PID")
[ -n "$FB_PID" ] && TARGETS+=("frontdoor-base $FBP $FB_PID")
[ -n "$BB_PID" ] && TARGETS+=("bare-base $BBP $BB_PID")
for t in "${TARGETS[@]}"; do
  read -r _ p _ <<<"$t"
  wait_ok "https://127.0.0.1:$p$PATH_"
done

# CPU ticks used by a process and its children processes (nginx workers): "user system"
ticks() {
  local user=0 sys=0 p u s
  for p in "$1" $(pgrep -P "$1" || true); do
    read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo 0 0)
    user=$((user + u)); sys=$((sys + s))
  done
  echo "$user $sys"
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

RESULTS=$TMP/results   # lines: name round rps p50 p99 non2xx cpu_us_per_req user_us sys_us
: > "$RESULTS"
PERF_JOB=""
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    read -r name p pid <<<"$t"
    [ "$pid" != - ] && read -r u0 s0 < <(ticks "$pid")
    if [ "$name" = frontdoor ] && [ -n "${PERF_OUT:-}" ] && [ "$r" = 1 ]; then
      # PERF_OUT=file: profile frontdoor during its first run (perf report --stdio into the file)
      (sleep 3; perf record -F 499 -g -p "$FD_PID" -o "$TMP/perf.data" -- sleep 5 >/dev/null 2>&1;
       cp "$TMP/perf.data" "$PERF_OUT.data"; perf report -i "$TMP/perf.data" --stdio --no-children -g none --sort dso,symbol --percent-limit 0.3 2>/dev/null > "$PERF_OUT") &
      PERF_JOB=$!
    fi
    read -r rps p50 p99 bad < <(run "https://127.0.0.1:$p$PATH_")
    cpu="0 0 0"
    if [ "$pid" != - ]; then
      read -r u1 s1 < <(ticks "$pid")
      # microseconds per request: all, user space, kernel (wrk's warm-up counted in both)
      cpu=$(awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v h="$HZ" -v r="$rps" -v d="${DUR%s}" \
        'BEGIN { n = r * (d + 2); if (n > 0) printf "%.1f %.1f %.1f", (u + s) / h * 1e6 / n, u / h * 1e6 / n, s / h * 1e6 / n; else print "0 0 0" }')
    fi
    echo "$name $r $rps $p50 $p99 $bad $cpu" >> "$RESULTS"
  done
done
[ -n "$PERF_JOB" ] && wait "$PERF_JOB"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$RESULTS" | median; }

echo "wrk -t$THREADS -c$CONNS -d$DUR, proxies with $WORKERS workers, $(nproc) cores, medians of $ROUNDS interleaved rounds"
printf '%-12s %10s %9s %9s %7s %11s %8s %8s %s\n' target req/s p50_ms p99_ms non2xx cpu_us/req user_us sys_us "req/s per round"
for t in "${TARGETS[@]}"; do
  read -r name _ _ <<<"$t"
  printf '%-12s %10.0f %9.3f %9.3f %7d %11s %8s %8s %s\n' "$name" "$(col "$name" 3)" "$(col "$name" 4)" "$(col "$name" 5)" \
    "$(col "$name" 6)" "$(col "$name" 7)" "$(col "$name" 8)" "$(col "$name" 9)" "$(awk -v n="$name" '$1 == n { printf "%.0f ", $3 }' "$RESULTS")"
done
F=$(col frontdoor 3)
ratio() { awk -v f="$F" -v o="$(col "$1" 3)" -v n="$1" 'BEGIN { if (o > 0) printf "frontdoor/%s %.2f  ", n, f / o }'; }
{ ratio direct; ratio bare-cert; ratio bare-nocert; ratio nginx; [ -n "$HP_PID" ] && ratio haproxy; [ -n "$FB_PID" ] && ratio frontdoor-base; [ -n "$BB_PID" ] && ratio bare-base; echo; }
awk -v c="$(col bare-cert 3)" -v n="$(col bare-nocert 3)" 'BEGIN { if (n > 0) printf "bare pingora: the per-peer client cert costs %.0f%% of throughput\n", (1 - c / n) * 100 }'
# the engine's own ceiling: what no handler chain on pingora can pass
awk -v c="$(col bare-cert 3)" -v n="$(col nginx 3)" -v h="$( [ -n "$HP_PID" ] && col haproxy 3 || echo 0)" \
  'BEGIN { if (c > 0 && n > 0) { printf "bare pingora with the client cert / nginx %.2f", c / n; if (h > 0) printf ", / HAProxy %.2f", c / h; print "" } }'
