#!/usr/bin/env bash
# Differential fuzzing of the map against std's HashMap (fuzz/fuzz_targets/differential.rs).
#
# Default: a smoke run on stable without a sanitizer (`-s none`), FUZZ_SECONDS long (60); about
# 13,000 inputs a second on one core in the shipping geometry, 8,000 in the stress one. The time is split between two builds of the map: the
# shipping geometry (7-slot groups) and the stress geometry (`LOCKFREE_MAP_STRESS_GEOMETRY`:
# 2-slot groups, one-group chunks, successors prepared from 16 groups), in which a byte's 256 keys
# reach the migration paths a large map takes; FUZZ_GEOMETRY=shipping or =stress runs one. FUZZ_SANITIZER=address runs on nightly with AddressSanitizer
# (slower, for long campaigns). The corpus lives in fuzz/corpus/ (ignored by git); a crash leaves
# its input in fuzz/artifacts/ and is replayed with `cargo fuzz run differential <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
geometry="${FUZZ_GEOMETRY:-both}"
case "$geometry" in
    both) geometries="shipping stress"; each=$(( (seconds + 1) / 2 )) ;;
    shipping | stress) geometries="$geometry"; each=$seconds ;;
    *) echo "fuzz: FAILED: FUZZ_GEOMETRY must be both, shipping or stress, not '$geometry'" >&2; exit 1 ;;
esac
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz: FAILED: could not install cargo-fuzz" >&2
        exit 1
    fi
fi
toolchain=+stable
if [ "$sanitizer" != none ]; then
    # Asked for by name, so a sanitizer that cannot run fails the run even outside CI.
    # shellcheck source=scripts/nightly.sh
    source scripts/nightly.sh
    if ! ensure_nightly fuzz; then
        echo "fuzz: FAILED: FUZZ_SANITIZER=$sanitizer needs a nightly toolchain" >&2
        exit 1
    fi
    toolchain=+nightly
fi

start=$(date +%s)
for g in $geometries; do
    # The geometry is read at compile time (`option_env!`), so each one is its own build.
    if [ "$g" = stress ]; then
        export LOCKFREE_MAP_STRESS_GEOMETRY=1
    else
        unset LOCKFREE_MAP_STRESS_GEOMETRY
    fi
    echo "== cargo fuzz run differential ($each s, $g geometry, sanitizer $sanitizer, debug assertions on)"
    # -a: debug assertions inside the map's protocol run too. The rss limit catches garbage growth.
    cargo "$toolchain" fuzz run differential -s "$sanitizer" -a -- \
        -max_total_time="$each" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1
done
echo "== fuzz: passed in $(( $(date +%s) - start )) s"
