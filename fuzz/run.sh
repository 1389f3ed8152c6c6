#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each, starting from the
# committed seeds (fuzz/seeds/TARGET), and fails on the first crash, panic, leak, timeout
# or out-of-memory. Prints per target:
#   fuzz: TARGET: N executions in S s, C crashes
# and a total line. `.ci/run` calls it with a short budget; a longer run is e.g.
#   fuzz/run.sh 3600 patch          # an hour on one target
#   FUZZ_JOBS=2 fuzz/run.sh 600     # two workers per target (the machine has 2 cores)
# A failing input is kept in fuzz/artifacts/TARGET/; reproduce with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# FUZZ_SANITIZER (address | none; default address) picks the sanitizer; FUZZ_PROFILE=dev builds
# without optimizations (a much cheaper build, slower runs: what .ci/run uses, see fuzz/README.md).
# FUZZ_CLIPPY=1 first lints the harnesses (`cargo +nightly clippy --all-targets -- -D warnings`):
# a check build of every dependency of its own, so .ci/run leaves it out (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
all=(request policy jwt decode patch)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
san=${FUZZ_SANITIZER:-address}
jobs=${FUZZ_JOBS:-1}
build=(--sanitizer "$san")
[ "${FUZZ_PROFILE:-release}" = dev ] && build+=(--dev)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (cargo fuzz needs one): rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install --locked --quiet cargo-fuzz --version 0.13.2
fi

if [ "${FUZZ_CLIPPY:-0}" = 1 ]; then
  t0=$(date +%s)
  cargo +nightly clippy --locked --all-targets -- -D warnings
  echo "fuzz: clippy clean in $(( $(date +%s) - t0 )) s"
fi

t0=$(date +%s)
if [ ${#targets[@]} -eq ${#all[@]} ]; then
  cargo +nightly fuzz build "${build[@]}"
else
  for t in "${targets[@]}"; do cargo +nightly fuzz build "${build[@]}" "$t"; done
fi
echo "fuzz: build took $(( $(date +%s) - t0 )) s (${build[*]})"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "artifacts/$t"
  log="$work/$t.log"
  t1=$(date +%s)
  # new inputs go to the scratch corpus (first directory); the seeds stay as committed
  rc=0
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  cargo +nightly fuzz run "${build[@]}" "$t" "$work/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    "${parallel[@]}" >"$log" 2>&1 || rc=$?
  # with -jobs, each worker logs to fuzz-N.log in the current directory
  if [ "$jobs" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null || true; rm -f fuzz-*.log; fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  total=$((total + execs))
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t: FAILED after $execs executions in $(( $(date +%s) - t1 )) s, 1 crashes" >&2
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|Base64' "$log" | head -20 >&2 || tail -40 "$log" >&2
    exit 1
  fi
  echo "fuzz: $t: $execs executions in $(( $(date +%s) - t1 )) s, 0 crashes ($(ls "$work/$t" | wc -l) new corpus inputs)"
done
echo "fuzz: total $total executions over ${#targets[@]} targets, 0 crashes"
