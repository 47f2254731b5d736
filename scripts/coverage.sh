#!/usr/bin/env bash
# Line coverage of src/ by the tests, to find code no test runs (a manual run, about 10 minutes
# on the 2-core VM; not part of CI). Three runs, merged: a line counts as covered if any of them
# ran it.
#
# 1. the lib and integration tests with every feature, in the default geometry (debug);
# 2. the same with the stress geometry (`LOCKFREE_MAP_STRESS_GEOMETRY=1`: two-slot groups, a
#    resize every few inserts), which reaches the migration's races far more often;
# 3. the loom models (loom-tests/, every model at `LOOM_MAX_PREEMPTIONS`, 2 unless set), which
#    reach interleavings no timing-based test does.
#
# Doctests are not counted (their coverage needs nightly), so public functions tested only by
# their doc examples show as uncovered here. Writes `target/coverage/{default,stress,loom}.lcov`
# and `target/coverage/uncovered.txt` (each uncovered line of src/ with its text), and prints a
# line a file. ARCHITECTURE.md, "Test coverage", says which lines stay uncovered and why.
#
# Needs the `llvm-tools-preview` component and cargo-llvm-cov, both installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
    echo "== installing rustup component llvm-tools-preview"
    rustup component add llvm-tools-preview
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
    echo "== installing cargo-llvm-cov"
    cargo install cargo-llvm-cov --locked --version 0.9.1
fi

out=target/coverage
mkdir -p "$out"
start=$(date +%s)

echo "== coverage: tests, default geometry"
CARGO_LLVM_COV_TARGET_DIR="$PWD/target/llvm-cov/default" \
    cargo llvm-cov --all-features --lib --tests --lcov --output-path "$out/default.lcov"

echo "== coverage: tests, stress geometry"
CARGO_LLVM_COV_TARGET_DIR="$PWD/target/llvm-cov/stress" LOCKFREE_MAP_STRESS_GEOMETRY=1 \
    cargo llvm-cov --all-features --lib --tests --lcov --output-path "$out/stress.lcov"

echo "== coverage: loom models, LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}"
(
    cd loom-tests
    # As scripts/loom.sh: both cfgs, or crossbeam-epoch's atomics are not modelled.
    export CARGO_LLVM_COV_TARGET_DIR="$PWD/../target/llvm-cov/loom"
    export RUSTFLAGS="--cfg loom --cfg crossbeam_loom"
    export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
    # lockfree-map is a dependency here, which cargo-llvm-cov instruments only when named
    # (`--dep-coverage`, and not with `--no-report`); but its report then leaves out the files
    # of a path dependency (empty, cargo-llvm-cov 0.9.1). So that report is thrown away, and a
    # second one, without the option, keeps them.
    cargo llvm-cov --release --tests --dep-coverage lockfree-map --lcov --output-path /dev/null
    cargo llvm-cov report --release --lcov --output-path "../$out/loom.lcov"
)

# Merges the three: per (file, line), covered if any run's count is above zero. Only src/.
awk -v root="$PWD/" -v uncovered="$out/uncovered.txt" '
    /^SF:/ { file = substr($0, 4); sub(root, "", file); next }
    /^DA:/ {
        if (file !~ /^src\//) next
        split(substr($0, 4), f, ",")
        key = file SUBSEP f[1]
        if (!(key in seen)) { seen[key] = 1; total[file]++ }
        if (f[2] > 0 && !(key in hit)) { hit[key] = 1; covered[file]++ }
    }
    END {
        printf "" > uncovered
        for (key in seen) if (!(key in hit)) {
            split(key, k, SUBSEP)
            miss[k[1]] = miss[k[1]] " " k[2]
        }
        n = 0
        for (file in total) names[++n] = file
        # Sorted by name (insertion sort: a few dozen files).
        for (i = 2; i <= n; i++) {
            v = names[i]
            for (j = i - 1; j >= 1 && names[j] > v; j--) names[j + 1] = names[j]
            names[j + 1] = v
        }
        for (i = 1; i <= n; i++) {
            file = names[i]
            all += total[file]; ran += covered[file]
            printf "%-28s %5d / %5d lines  %5.1f %%\n", file, covered[file], total[file],
                100 * covered[file] / total[file]
            if (file in miss) {
                m = split(miss[file], lines, " ")
                # Sorted by number.
                for (a = 2; a <= m; a++) {
                    v = lines[a] + 0
                    for (b = a - 1; b >= 1 && lines[b] + 0 > v; b--) lines[b + 1] = lines[b]
                    lines[b + 1] = v
                }
                print "== " file > uncovered
                line = 0
                while ((getline text < file) > 0) {
                    line++
                    for (a = 1; a <= m; a++) if (lines[a] + 0 == line) printf "%6d: %s\n", line, text > uncovered
                }
                close(file)
            }
        }
        printf "%-28s %5d / %5d lines  %5.1f %%\n", "total", ran, all, 100 * ran / all
    }
' "$out/default.lcov" "$out/stress.lcov" "$out/loom.lcov"

echo "== coverage: done in $(( $(date +%s) - start )) s; uncovered lines in $out/uncovered.txt"
