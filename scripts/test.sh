#!/usr/bin/env bash
# The project's test command (README: "Run the tests").
#
# 1. formatting, lints (warnings are errors, with and without the optional features), the build
#    with no default features, and the docs (`cargo doc` with warnings as errors);
# 2. the whole suite with every feature (rayon, serde) in a debug build, so debug assertions
#    inside the protocol run too: unit tests (including the parked-helper lock-freedom test),
#    integration tests (the linearizability checker among them), doctests;
# 3. the concurrent suites again with the stress geometry (`LOCKFREE_MAP_STRESS_GEOMETRY=1` at
#    build time: two-slot groups and one-group migration chunks), which makes every few inserts a
#    resize and races helpers on the same slots; in release. The variable changes this crate alone,
#    so the release build of the dependencies is shared with the benchmarks and examples.
set -euo pipefail
cd "$(dirname "$0")/.."

for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        echo "== installing rustup component $component"
        rustup component add "$component"
    fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings (default features, then all)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --all-features -- -D warnings
echo "== cargo check --no-default-features"
cargo check --lib --no-default-features
echo "== cargo doc, warnings as errors"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
echo "== cargo test --all-features (debug)"
cargo test --all-features
echo "== cargo test, stress geometry (release)"
LOCKFREE_MAP_STRESS_GEOMETRY=1 cargo test --release --all-features --lib --tests
