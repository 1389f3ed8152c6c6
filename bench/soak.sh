#!/usr/bin/env bash
# Soak: frontdoor under a bounded mixed load (store CRUD and lists, watches, requests proxied to
# an aggregated backend that resets, hangs, sends garbage, drips, answers 5xx, streams 16 MiB
# bodies and drops watches), policy files reloaded every few seconds (every fourth version
# invalid), for DURATION (30m, 600s, 1h; default 30m). Every minute it prints frontdoor's RSS,
# open fds, in-flight and APF seats, request and error counts; at the end first vs last RSS
# and a verdict (exit 1 when memory grew, a seat stayed held or a request failed).
#
#   bench/soak.sh 30m
#   FRONTDOOR_BIN=/path/to/frontdoor SOAK_INTERVAL=10 bench/soak.sh 2m
#
# The binary: FRONTDOOR_BIN, else the release build, else the debug build (of
# $CARGO_TARGET_DIR or target/). The load paces itself (about 100 requests a second) so that a
# shared machine stays usable.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../target}"
if [[ -z "${FRONTDOOR_BIN:-}" ]]; then
  for b in "$target/release/frontdoor" "$target/debug/frontdoor"; do
    if [[ -x "$b" ]]; then FRONTDOOR_BIN="$b"; break; fi
  done
fi
[[ -x "${FRONTDOOR_BIN:-}" ]] || { echo "no frontdoor binary: build one or set FRONTDOOR_BIN" >&2; exit 2; }
export FRONTDOOR_BIN
echo "binary: $FRONTDOOR_BIN"
exec python3 "$here/soak.py" "${1:-30m}"
