#!/usr/bin/env bash
# The project's test command (README: "Run the tests").
#
# 1. formatting, lints (warnings are errors, with and without the optional features; the loom
#    models and the fuzz targets too), the build with no default features, and the docs
#    (`cargo doc` with warnings as errors);
# 2. the whole suite with every feature (rayon, serde) in a debug build, so debug assertions
#    inside the protocol run too: unit tests (including the parked-helper lock-freedom test),
#    integration tests (the linearizability checker among them), doctests;
# 3. the concurrent suites again with the stress geometry (`LOCKFREE_MAP_STRESS_GEOMETRY=1` at
#    build time: two-slot groups and one-group migration chunks), which makes every few inserts a
#    resize and races helpers on the same slots; in release, with this crate's overflow checks and
#    debug assertions on (a package override given on the command line). The variable and the
#    override change this crate alone, so the release build of the dependencies is shared with
#    the benchmarks and examples. Without the override an overflow in a race of a migration's
#    helpers (`migrate::claimed_pages`) passed this run from stop 34 on and surfaced in a debug
#    build of the same tests (stop 43); with it the run takes 5.5 s instead of 5.0 once built.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it started, so a CI log shows where the stage's time went.
step() { echo "== $1 (at ${SECONDS} s)"; }

for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        step "installing rustup component $component"
        rustup component add "$component"
    fi
done

step "cargo fmt --check (the crate, then the loom models and the fuzz targets: separate workspaces)"
cargo fmt --all -- --check
cargo fmt --manifest-path loom-tests/Cargo.toml -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
step "cargo clippy --all-targets -D warnings (default features, then all)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --all-features -- -D warnings
# The loom models and the fuzz targets are workspaces of their own (the models build only with
# `--cfg loom`), so the lints above do not reach them (until stop 49 nothing did; clippy found
# one lint in the fuzz target). Their own target folders: the flags differ.
step "cargo clippy of the loom models (--cfg loom) and the fuzz targets"
(cd loom-tests && RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=../target/loom-clippy \
    cargo clippy --all-targets -- -D warnings)
CARGO_TARGET_DIR=target/fuzz-clippy cargo clippy --manifest-path fuzz/Cargo.toml --all-targets \
    -- -D warnings
step "cargo check --no-default-features"
cargo check --lib --no-default-features
step "cargo doc, warnings as errors"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
step "cargo test --all-features (debug)"
cargo test --all-features
step "cargo test, stress geometry (release, with overflow checks and debug assertions)"
LOCKFREE_MAP_STRESS_GEOMETRY=1 cargo test --release --all-features --lib --tests \
    --config 'profile.release.package.lockfree-map.overflow-checks=true' \
    --config 'profile.release.package.lockfree-map.debug-assertions=true'
# Where std keeps thread-locals in OS keys (Android, OpenBSD, ...), the retirement batch and the
# entry cache keep destructors of their own instead of an owner thread-local (`build.rs`); built
# here on purpose, the tests of the thread-exit paths run on that variant too. Debug, in the
# main target folder: only this crate is rebuilt.
step "cargo test, OS-key thread-local variant (LOCKFREE_MAP_OS_TLS): thread-exit paths"
LOCKFREE_MAP_OS_TLS=1 cargo test --all-features --lib --test memory --test drops \
    --test panicking_drop --test collector
echo "== test.sh: passed in ${SECONDS} s"
