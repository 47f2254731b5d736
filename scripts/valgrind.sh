#!/usr/bin/env bash
# valgrind's memcheck over the multithreaded tests: invalid reads and writes anywhere, and leaks.
#
# - tests/collector.rs (private collectors): a map's garbage dies with its collector, so what
#   is left at exit is std's own (a few hundred bytes of thread bookkeeping); definitely and
#   indirectly lost bytes are errors, and the leak summary is printed.
# - tests/concurrent.rs (global collector): garbage still queued in the global collector is
#   reachable from a static, so only "definitely lost" counts there.
#
# RUST_BACKTRACE=0: the panics the tests provoke on purpose would otherwise make std symbolize
# a backtrace and keep its parsed debug info (tens of MB, "still reachable") until exit.
#
# Runs on stable; needs valgrind (on every machine kind here; installed from Debian if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
    echo "== installing valgrind"
    if ! (apt-get install -y valgrind >/dev/null 2>&1 || sudo apt-get install -y valgrind >/dev/null 2>&1); then
        echo "valgrind: FAILED: valgrind is not installed and could not be installed" >&2
        exit 1
    fi
fi

export RUST_BACKTRACE=0
start=$(date +%s)
# Release, at a bearable speed under valgrind, with debug info for readable reports; for this
# crate alone: a profile override for one package leaves the dependencies' builds as they are,
# so the release build the test command made (and the benchmarks use) serves here too. Debug
# info for the whole profile, in a target directory of its own, rebuilt every dependency: about
# 220 of this script's 240 s in CI (2026-12-02).
debug_here=(--config 'profile.release.package.lockfree-map.debug=true')
binary() {
    cargo test --release "${debug_here[@]}" --no-run --message-format=json --test "$1" 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}
collector=$(binary collector)
concurrent=$(binary concurrent)

memcheck() {
    valgrind --quiet --error-exitcode=1 --leak-check=full --track-origins=yes \
        --fair-sched=yes "$@"
}

echo "== valgrind: private collectors ($collector)"
memcheck --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    "$collector" --test-threads=1
valgrind --leak-check=summary "$collector" --test-threads=1 2>&1 | sed -n '/LEAK SUMMARY/,/suppressed/p'
echo "== valgrind: stress tests on the global collector ($concurrent)"
memcheck --show-leak-kinds=definite --errors-for-leak-kinds=definite "$concurrent" --test-threads=1
echo "== valgrind: passed in $(( $(date +%s) - start )) s"
