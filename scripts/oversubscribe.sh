#!/usr/bin/env bash
# Runs threaded integration tests over and over with the CPUs oversubscribed: busy loops beside
# them take the cores away at random points, so helpers stall inside a migration for whole
# scheduler slices, which the plain suite on an idle machine rarely makes happen.
#
# This is how the "no room left in a migration target" panic was found on 2026-12-01 (a stale
# helper meeting a successor that had since been filled; ARCHITECTURE.md, "What the stress runs
# found", item 3): the debug `concurrent` binary, filtered to the churn test, failed 5-7 times in
# 50 runs with three busy loops on a 2-core machine before the fix, and 0 in 80 after.
#
# Usage: bash scripts/oversubscribe.sh [RUNS [FILTER]]
#   RUNS: how many runs (default 50); a run is one pass of every test binary in TESTS.
#   FILTER: a test-name filter passed to each binary (default `churn_during`; pass "" for every
#   test).
# Environment:
#   TESTS: the test targets to run (default `concurrent`), e.g. "concurrent linearizability".
#   GEOMETRY: `default` (a debug build, the default) or `stress`: the release build with the
#     stress geometry and this crate's overflow checks and debug assertions that
#     `scripts/test.sh` makes (same flags, so after it nothing is rebuilt), where every few
#     inserts start a resize.
#   MAX_SECONDS: start no run after this many seconds (a time budget for CI; default none).
#   BUSY: busy loops to start (default: twice the cores, at least 3).
# Exits non-zero if any run failed; the failing runs' logs are kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-50}"
filter="${2-churn_during}"
tests="${TESTS:-concurrent}"
geometry="${GEOMETRY:-default}"
max_seconds="${MAX_SECONDS:-}"
cores=$(nproc 2>/dev/null || echo 2)
busy="${BUSY:-$((cores * 2 > 3 ? cores * 2 : 3))}"

build=(cargo test --all-features --no-run --message-format=json)
for t in $tests; do build+=(--test "$t"); done
case "$geometry" in
default) ;;
stress)
    export LOCKFREE_MAP_STRESS_GEOMETRY=1
    build+=(--release
        --config 'profile.release.package.lockfree-map.overflow-checks=true'
        --config 'profile.release.package.lockfree-map.debug-assertions=true')
    ;;
*)
    echo "oversubscribe: GEOMETRY must be 'default' or 'stress', not '$geometry'" >&2
    exit 2
    ;;
esac

echo "== building the test binaries ($geometry geometry): $tests"
json=$("${build[@]}")
bins=()
for t in $tests; do
    bin=$(grep -o '"executable":"[^"]*"' <<<"$json" | grep -o "/[^\"]*/$t-[^\"]*" | tail -1 || true)
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        echo "oversubscribe: FAILED: could not find the test binary of $t" >&2
        exit 1
    fi
    bins+=("$bin")
done

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for _ in $(seq 1 "$busy"); do
    (while :; do :; done) &
    pids+=($!)
done

logs=$(mktemp -d)
echo "== up to $runs runs${max_seconds:+ (or $max_seconds s)} of $tests, filter" \
    "'${filter:-(all tests)}', beside $busy busy loops on $cores cores"
failed=0
done_runs=0
start=$(date +%s)
for i in $(seq 1 "$runs"); do
    if [ -n "$max_seconds" ] && [ $(($(date +%s) - start)) -ge "$max_seconds" ]; then
        break
    fi
    for bin in "${bins[@]}"; do
        name=$(basename "$bin")
        log="$logs/run-$i-${name%-*}.log"
        if ! "$bin" ${filter:+"$filter"} -q >"$log" 2>&1; then
            failed=$((failed + 1))
            echo "run $i of ${name%-*} FAILED: $log"
            grep -m 3 -E "panicked|assert" "$log" || true
        else
            rm -f "$log"
        fi
    done
    done_runs=$i
done
echo "== $failed failures in $done_runs runs, $(($(date +%s) - start)) s"
[ "$done_runs" -gt 0 ] && [ "$failed" -eq 0 ]
