#!/usr/bin/env bash
# The many-core comparison (BENCHMARKS.md, next step 4), prepared so that a session lent the
# 16-core device machine spends its 15 minutes of device time measuring, not setting up.
#
# That machine reaches no network (no crates.io) and may have no Rust toolchain, so the runner is
# built here, linked statically, and carried there (2.6 MB):
#
#   bash scripts/device-bench.sh prepare        # here: builds target/device/compare (release)
#   # then the device tool's `run`, with carry ["target/device"] and timeout_s 600:
#   bash scripts/device-bench.sh                # there: writes its log and CSVs under $OUT
#
# On the device it prints the machine (`nproc`, `lscpu`), then runs the full-mode throughput
# workloads on `u64` keys at every thread count the runner picks for the core count (1, 2, 4, 8,
# 16 on 16 cores), then, while time is left, on `String` keys. Each part runs under `timeout`
# within DEVICE_SECONDS (default 540, inside the tool's 600 s a command), so that a slow machine
# still returns what it measured: the runner prints each row as it finishes, and the log is
# written as it goes. Memory and the latency sections do not depend on the core count and are
# left to the 2-core runs. Run anywhere else (no $OUT), it writes to target/device-out: a smoke
# test of the script, e.g. `DEVICE_THREADS=1,2 DEVICE_SECONDS=120 bash scripts/device-bench.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/device/compare

if [ "${1:-}" = prepare ]; then
    # Linked statically (glibc included), so that it runs whatever C library the device's image
    # has. `--target` keeps the flag off the build's proc-macros, which cannot be static.
    target=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/device-build \
        cargo build --release --target "$target" --example compare
    mkdir -p target/device
    cp "target/device-build/$target/release/examples/compare" "$bin"
    echo "device-bench: $bin ready ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches examples || echo ', with uncommitted changes')); carry target/device"
    exit 0
elif [ "$#" -gt 0 ]; then
    echo "usage: bash scripts/device-bench.sh [prepare]" >&2
    exit 2
fi

if [ ! -x "$bin" ]; then
    # On the device ($OUT set) a build would need crates.io, which it cannot reach, and would
    # spend device time: say what is missing and stop.
    if [ -z "${OUT:-}" ] && command -v cargo >/dev/null 2>&1; then
        echo "device-bench: $bin missing; building it here"
        bash scripts/device-bench.sh prepare
    else
        echo "device-bench: $bin missing: run 'bash scripts/device-bench.sh prepare' where cargo and crates.io are, and carry target/device" >&2
        exit 1
    fi
fi

out=${OUT:-target/device-out}
mkdir -p "$out"
log=$out/device-bench.log
budget=${DEVICE_SECONDS:-540}
start=$(date +%s)
threads=()
if [ -n "${DEVICE_THREADS:-}" ]; then threads=(--threads "$DEVICE_THREADS"); fi

{
    echo "== device-bench, $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${budget} s"
    echo "== nproc: $(nproc)"
    lscpu 2>/dev/null | grep -E '^(Model name|Socket|Core|Thread|NUMA node\(s\)|L2|L3)' || true
} | tee "$log"

# One part of the runner, stopped at what is left of the budget (with 10 s kept for the end).
part() {
    local name=$1
    shift
    local left=$((budget - ($(date +%s) - start) - 10))
    if [ "$left" -lt 60 ]; then
        echo "== device-bench: $name skipped: ${left} s of the budget left" | tee -a "$log"
        return 0
    fi
    echo "== device-bench: $name (at $(($(date +%s) - start)) s, up to ${left} s)" | tee -a "$log"
    local status=0
    # `${threads[@]+...}`: an empty array under `set -u` fails on bash before 4.4.
    timeout "$left" "$bin" --full ${threads[@]+"${threads[@]}"} --out "$out/$name" "$@" 2>&1 |
        tee -a "$log" || status=$?
    if [ "$status" -eq 124 ]; then
        echo "== device-bench: $name stopped at the budget: its rows above are complete, its CSV is not written" | tee -a "$log"
    elif [ "$status" -ne 0 ]; then
        echo "== device-bench: $name FAILED (exit status $status)" | tee -a "$log"
        return "$status"
    fi
}

# Key types alone select every throughput workload (iteration runs on `u64` keys only) and no
# other section. A part that fails does not cost the other its turn: the device run is one shot.
failed=0
part u64 --only u64 || failed=1
part string --only String || failed=1
echo "== device-bench: done in $(($(date +%s) - start)) s; log and CSVs under $out" | tee -a "$log"
exit "$failed"
