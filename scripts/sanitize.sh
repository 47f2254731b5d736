#!/usr/bin/env bash
# Runs the multithreaded tests under ThreadSanitizer and AddressSanitizer (with LeakSanitizer),
# on nightly with `-Zbuild-std` so that std itself is instrumented (without it TSan reports false
# races inside std's synchronisation).
#
# Each sanitizer runs twice: with the shipping geometry and with the stress geometry
# (`LOCKFREE_MAP_STRESS_GEOMETRY=1` at build time: two-slot groups, one-group migration chunks),
# where almost every few inserts start a resize and helpers race on the same slots.
#
# crossbeam-epoch >= 0.9.21 sees the sanitizer (its build script reads CARGO_CFG_SANITIZE) and
# replaces the fences TSan cannot model with acquire loads; older versions give false positives
# in deferred frees (../shared/research/reliability.md, section 3).
#
# Usage: bash scripts/sanitize.sh [SANITIZER[:GEOMETRY]]...
#   SANITIZER: thread or address; GEOMETRY: shipping or stress (default: both).
#   With no arguments: thread and address, each with both geometries (about 7 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# -Zsanitizer and -Zbuild-std need nightly, and -Zbuild-std needs rust-src.
# shellcheck source=scripts/nightly.sh
source scripts/nightly.sh
ensure_nightly sanitize rust-src || exit 0

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
# The tests with threads in them, plus the unit tests (the parked-helper lock-freedom test), and
# rayon's (its workers write to the map, and take it apart in `into_par_iter`).
tests=(--lib --test concurrent --test linearizability --test drops --test panics --test memory
    --test collector --test adversarial --test set --features rayon --test rayon)
# ThreadSanitizer skips the set's differential proptests against std: each one's map operations
# run on one thread, where there is no race to find (their retirements may be freed on another
# test's thread, through the global collector, which the threaded tests cover). Under TSan
# their own times came to 28 s, beside the file's other tests; the file took 63 s, and 10 s
# without them and with fewer rounds of its concurrent set test (stop 57). AddressSanitizer
# runs them (a use after free needs no second thread).
thread_skips=(--skip matches_std --skip set_operations_match_std)

# No backtrace for a Rust panic unless SANITIZE_RUST_BACKTRACE asks for one: the panic tests
# panic on purpose, and with RUST_BACKTRACE=1 (this VM's environment sets it) each panic
# symbolizes a backtrace through the instrumented std, up to seconds each. The test
# binaries of the stress-geometry TSan run took 62 s with it and 43.5 s without, alone (stop 57;
# `raw::pool::tests::a_panicking_drop_still_returns_the_block`, one panic, 3.7 s and 0.0 s).
# A failing test still prints its message, and a sanitizer's report its own stacks.
export RUST_BACKTRACE="${SANITIZE_RUST_BACKTRACE:-0}"

# TSan: stop at the first report; a report is a failure.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# ASan: detect_odr_violation trips on std's duplicated statics under -Zbuild-std (papaya and
# flurry turn it off too); LeakSanitizer stays on: the global collector's leftovers are reachable
# from a static, so only real leaks are reported.
export ASAN_OPTIONS="detect_odr_violation=0 detect_stack_use_after_return=1 detect_leaks=1"

start=$(date +%s)
runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
    runs=(thread address)
fi
for run in "${runs[@]}"; do
    sanitizer=${run%%:*}
    geometries="shipping stress"
    if [ "$run" != "$sanitizer" ]; then
        geometries=${run#*:}
    fi
    case "$sanitizer" in thread | address) ;; *)
        echo "sanitize: unknown sanitizer '$sanitizer' (thread or address)" >&2
        exit 2
        ;;
    esac
    for geometry in $geometries; do
        stress=()
        if [ "$geometry" = stress ]; then
            stress=(LOCKFREE_MAP_STRESS_GEOMETRY=1)
        fi
        skips=()
        if [ "$sanitizer" = thread ]; then
            skips=("${thread_skips[@]}")
        fi
        echo "== sanitizer=$sanitizer, $geometry geometry"
        t0=$(date +%s)
        # One target directory per sanitizer: the geometry changes this crate alone. Each
        # test's time is printed (libtest's --report-time, nightly's harness), so the log shows
        # where CI's budget went.
        env "${stress[@]}" RUSTFLAGS="-Zsanitizer=$sanitizer" \
            CARGO_TARGET_DIR="target/sanitize-$sanitizer" \
            cargo +nightly test -Zbuild-std --target "$host" --profile sanitize "${tests[@]}" \
            -- -Zunstable-options --report-time "${skips[@]}"
        echo "== sanitizer=$sanitizer, $geometry geometry: passed in $(( $(date +%s) - t0 )) s"
    done
done
echo "== sanitize: passed in $(( $(date +%s) - start )) s"
