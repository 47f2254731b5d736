#!/usr/bin/env bash
# Differential fuzzing of the map against std's HashMap (fuzz/fuzz_targets/differential.rs).
#
# Default: a smoke run on stable without a sanitizer (`-s none`), FUZZ_SECONDS long (60); about
# 90,000 inputs a second on one core. FUZZ_SANITIZER=address runs on nightly with AddressSanitizer
# (slower, for long campaigns). The corpus lives in fuzz/corpus/ (ignored by git); a crash leaves
# its input in fuzz/artifacts/ and is replayed with `cargo fuzz run differential <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
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
    # Read whole before it is searched (see scripts/nightly.sh: `rustup ... | grep -q` under
    # pipefail can fail with nightly there).
    toolchains=$(rustup toolchain list 2>&1) || toolchains=""
    if ! grep -q '^nightly' <<<"$toolchains"; then
        echo "fuzz: FAILED: FUZZ_SANITIZER=$sanitizer needs a nightly toolchain" >&2
        exit 1
    fi
    toolchain=+nightly
fi

echo "== cargo fuzz run differential ($seconds s, sanitizer $sanitizer, debug assertions on)"
start=$(date +%s)
# -a: debug assertions inside the map's protocol run too. The rss limit catches garbage growth.
cargo "$toolchain" fuzz run differential -s "$sanitizer" -a -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1
echo "== fuzz: passed in $(( $(date +%s) - start )) s"
