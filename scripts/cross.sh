#!/usr/bin/env bash
# The suite on a 32-bit target, natively: `i686-unknown-linux-gnu` (debug, every feature, unit
# and integration tests), run on this x86-64 host.
#
# Why: every other run is on x86-64, where `usize`, pointers and most layouts are 8 bytes. The
# map is written for 32-bit targets too (tables of at most 2^24 groups there, `AtomicU64` tag
# words and key cells, 8-aligned entries whose 3 low address bits hold the slot state, claim
# counts that wrapped after 2^30 before stop 48), and an entry's size and class differ there.
# Until stop 54 nothing ran it: the first run found two unit tests that assumed x86-64 layouts
# (ARCHITECTURE.md, "Other targets"). Debug, so that overflow checks and debug assertions run.
# Big-endian and 32-bit interpretation of the unsafe core are Miri's part (scripts/miri.sh).
#
# It needs the target's standard library (rustup) and a 32-bit C runtime to link against
# (Debian's gcc-multilib): each is installed if missing. When one cannot be, it fails under CI
# (CI=true: a check CI cannot run must not pass as run) and otherwise says plainly that it
# skipped, and why.
set -euo pipefail
cd "$(dirname "$0")/.."

target=i686-unknown-linux-gnu

# The project's rule for a check that cannot run (fail under CI, else say it skipped), shared
# with the scripts that need nightly.
# shellcheck source=scripts/nightly.sh
source scripts/nightly.sh
unavailable() {
    nightly_unavailable cross "$1"
    exit 0
}

installed=$(rustup target list --installed 2>&1) || installed=""
if ! grep -qx "$target" <<<"$installed"; then
    echo "== installing the standard library for $target"
    rustup target add "$target" || unavailable "could not install the $target target"
fi

# A 32-bit C runtime: gcc -m32 links a program only where one is installed.
links32() {
    local dir
    dir=$(mktemp -d)
    printf 'int main(void) { return 0; }\n' >"$dir/t.c"
    local ok=0
    gcc -m32 -o "$dir/t" "$dir/t.c" >/dev/null 2>&1 || ok=1
    rm -rf "$dir"
    return "$ok"
}
if ! links32; then
    echo "== installing gcc-multilib (a 32-bit C runtime to link against)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        # Never a password prompt: where sudo would ask, the install fails and the run skips.
        sudo="sudo -n"
    fi
    if ! { $sudo apt-get install -y -q gcc-multilib >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null 2>&1 &&
            $sudo apt-get install -y -q gcc-multilib >/dev/null 2>&1; }; } || ! links32; then
        unavailable "could not install gcc-multilib"
    fi
fi

echo "== cargo test --all-features --target $target --lib --tests (debug)"
cargo test --all-features --target "$target" --lib --tests
