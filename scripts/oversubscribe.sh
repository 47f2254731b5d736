#!/usr/bin/env bash
# Runs the concurrent integration tests over and over with the CPUs oversubscribed: busy loops
# beside them take the cores away at random points, so helpers stall inside a migration for whole
# scheduler slices, which the plain suite on an idle machine rarely makes happen.
#
# This is how the "no room left in a migration target" panic was found on 2026-12-01 (a stale
# helper meeting a successor that had since been filled; ARCHITECTURE.md, "What the stress runs
# found", item 3): the debug `concurrent` binary, filtered to the churn test, failed 5-7 times in
# 50 runs with three busy loops on a 2-core machine before the fix, and 0 in 80 after.
#
# Usage: bash scripts/oversubscribe.sh [RUNS [FILTER]]
#   RUNS: how many runs (default 50); FILTER: a test-name filter for tests/concurrent.rs
#   (default `churn_during`; pass "" for every test in the file).
#   BUSY: busy loops to start (default: twice the cores, at least 3).
# Exits non-zero if any run failed; the failing runs' logs are kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-50}"
filter="${2-churn_during}"
cores=$(nproc 2>/dev/null || echo 2)
busy="${BUSY:-$((cores * 2 > 3 ? cores * 2 : 3))}"

echo "== building the debug concurrent test binary"
bin=$(cargo test --all-features --test concurrent --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | grep -o '/[^"]*concurrent-[^"]*' | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "oversubscribe: FAILED: could not find the concurrent test binary" >&2
    exit 1
fi

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
echo "== $runs runs of '$bin ${filter:-(all tests)}' beside $busy busy loops on $cores cores"
failed=0
start=$(date +%s)
for i in $(seq 1 "$runs"); do
    if ! "$bin" ${filter:+"$filter"} -q >"$logs/run-$i.log" 2>&1; then
        failed=$((failed + 1))
        echo "run $i FAILED: $logs/run-$i.log"
        grep -m 3 -E "panicked|assert" "$logs/run-$i.log" || true
    else
        rm -f "$logs/run-$i.log"
    fi
done
echo "== $failed of $runs runs failed, $(($(date +%s) - start)) s"
[ "$failed" -eq 0 ]
