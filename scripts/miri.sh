#!/usr/bin/env bash
# Runs the unsafe core under Miri: the unit tests of the encodings and a curated part of the
# integration suite (sizes shrink under cfg(miri) via tests/common::scaled), including the
# multithreaded tests, under Miri's weak-memory emulation.
#
# Flags: crossbeam-epoch fails Stacked Borrows (crossbeam-rs/crossbeam#545) and casts integers to
# pointers, so: tree borrows and permissive provenance. Leaks are ignored only because the global
# epoch collector's thread-locals and still-deferred garbage look like leaks to Miri; the
# drop-counting tests catch real ones. The unit tests that never pin (the encodings, the entry
# cache, and the tests of tables, preps and migration records built by hand) run with the
# leak check on: a leaked prep or a lost installation's record is no entry, and no native test
# counts it (the mutation run of stop 45). MIRI_SEEDS="1 2 3" runs each seed (default: 1).
# MIRI_INSTALL_ONLY=1 installs the components and stops (`.ci/run` does so before it runs this
# script in the background, so no other script's `rustup` races with it).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/nightly.sh
source scripts/nightly.sh
ensure_nightly miri miri rust-src || exit 0

if [ "${MIRI_INSTALL_ONLY:-0}" = 1 ]; then
    exit 0
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"
start=$(date +%s)
# Each test's time is printed (libtest's --report-time), so the log shows where CI's budget went.
# Its output is also kept in `$out` to check the filters, removed however the script ends.
out=""
trap 'rm -f "$out"' EXIT
miri_test() {
    local t0
    t0=$(date +%s)
    local args=() rest=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    rest=("$@")
    out=$(mktemp)
    cargo +nightly miri test "${args[@]}" -- -Zunstable-options --report-time "${rest[@]}" \
        2>&1 | tee "$out"
    # Each name filter must have run a test: libtest passes a filter that matches nothing as
    # "0 passed", so a renamed test would drop out of this run silently.
    local i filter
    for ((i = 0; i < ${#rest[@]}; i++)); do
        filter=${rest[i]}
        if [ "$filter" = --skip ]; then
            i=$((i + 1))
            continue
        fi
        case $filter in -*) continue ;; esac
        if ! grep -q "^test [^ ]*$filter[^ ]* \.\.\. ok" "$out"; then
            echo "miri: FAILED: the filter '$filter' (${args[*]}) ran no test" >&2
            rm -f "$out"
            exit 1
        fi
    done
    rm -f "$out"
    echo "== miri: ${args[*]}${LOCKFREE_MAP_STRESS_GEOMETRY:+ (stress geometry)}: $(( $(date +%s) - t0 )) s"
}
for seed in ${MIRI_SEEDS:-1}; do
    export MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks -Zmiri-seed=$seed"
    echo "== miri, seed $seed"
    # Never pinned: with the leak check.
    MIRIFLAGS="${MIRIFLAGS/ -Zmiri-ignore-leaks/}" miri_test --lib -- \
        raw::tag raw::slot raw::pool raw::keys raw::counter sync:: \
        raw::tests::a_prepared_successor raw::tests::a_shared_successor \
        raw::tests::a_growths_successor raw::tests::a_sizer_closes
    miri_test --lib -- reclaim raw::tests::a_lying_remove \
        raw::tests::mutable_access raw::tests::draining raw::tests::a_key_keeping \
        raw::tests::a_write_finds raw::tests::a_stalled_last_mover raw::tests::a_lazily_sized \
        raw::tests::a_moved_vacated raw::tests::integer_keys_keep raw::tests::copies_past \
        raw::tests::a_write_stalled raw::tests::a_write_of_a_wide raw::tests::an_insert_ \
        raw::tests::a_mover_that_meets raw::tests::a_walk_a_consumer raw::tests::a_take_back_along \
        raw::tests::a_reserve_that raw::tests::a_shrink_decided raw::tests::a_move_left_mid_slot \
        raw::tests::into_iter_takes
    miri_test --test basic -- update_keeps \
        insert_get_remove string_keys zero_sized try_insert update_changes get_or_insert_with \
        compute_inserts remove_if grows_through removing_everything tombstone_churn \
        a_constant_hasher iteration_never fold_after_next owned_iteration references_stay clone_eq
    # Four threads racing through growths of the shipping geometry: `churn_during`,
    # `update_or_insert_counts` and `mutable_access`. `disjoint_inserters` runs in the stress
    # geometry below, where its growths are prepared page by page; until stop 57 it ran in both
    # (23 s of Miri's clock each, about a minute of wall time in CI).
    miri_test --test concurrent -- \
        churn_during hot_key_increments concurrent_removes get_or_insert_with \
        update_or_insert_counts mutable_access
    miri_test --test panics -- panicking_closures panicking_clone dropping_a_map a_key_whose \
        update_or_insert_with_leaks a_drop_that a_hasher a_panicking_loop
    miri_test --test drops -- replaced_and_removed update_compute_and_replace_if updated_keys a_key_emptied keys_handed_on keys_made maps_held \
        update_or_insert_with_makes \
        into_iter_hands drain_hands values_assigned values_replaced writes_from \
        update_or_insert_with_whose
    miri_test --test key_types -- an_insert_over
    miri_test --test linearizability
    miri_test --test collector
    # Miri cannot spawn the child process of the thread-exit test (the two-bombs test runs in
    # Miri's own process instead). One thread at a time: two of these tests retire to the global
    # collector, and must not collect each other's panicking values.
    miri_test --test panicking_drop -- --skip a_panicking_drop_met_by_an_exiting_thread \
        --test-threads=1
    miri_test --test adversarial
    # User code calling back into the map: a value's `Drop` writing to its own map from inside a
    # collection (the entry cache and the batch mid-update), keys whose `Eq` grows the map
    # between a probe and its CAS. About 60 s of wall time for the whole file (stop 53; libtest's
    # own "finished in" reads Miri's virtual clock, not the wall's).
    miri_test --test reentrancy
    # The set adds no unsafe code; these check its drop counts through the map's paths, and its
    # set operations while two threads write to both sets.
    miri_test --test set -- insert_keeps every_value borrowed_lookups set_operations_under
    # A growth prepared page by page (`PREPARE_MIN_GROUPS`: successors of 2,048 groups, which no
    # Miri-sized test reaches in the shipping geometry; 16 in the stress geometry), with
    # `String` keys (no key lines), and `u64` keys (key lines zeroed with the groups) inserted
    # by four threads. The raw unit tests above build prepared successors by hand; these take
    # the map through whole prepared growths. (`grows_through_many_resizes` ran here too until
    # stop 57: `u64` keys through prepared growths, on one thread, which `disjoint_inserters`
    # does with four.) The geometry is read at build time (`option_env!`), and cargo rebuilds
    # this crate alone when it changes, not the dependencies, so the same target directory
    # serves both.
    LOCKFREE_MAP_STRESS_GEOMETRY=1 miri_test --test basic -- string_keys_survive_prepared_growths
    LOCKFREE_MAP_STRESS_GEOMETRY=1 miri_test --test concurrent -- disjoint_inserters
    # Other targets, interpreted (Miri needs only their standard library's source, which it
    # builds itself, about 13 s each): s390x, 64-bit and big-endian, and i686, 32-bit. The
    # encodings of slot words, tag words, key cells and entry blocks, with the leak check, and
    # on the big-endian target a map's whole life with integer keys (key lines) and `String`
    # keys through growths and tombstones. The whole suite runs natively on i686 in
    # scripts/cross.sh. The first runs (stop 54) found two unit tests that assumed x86-64
    # layouts, and nothing in the library.
    for target in s390x-unknown-linux-gnu i686-unknown-linux-gnu; do
        MIRIFLAGS="${MIRIFLAGS/ -Zmiri-ignore-leaks/}" miri_test --target "$target" --lib -- \
            raw::tag raw::slot raw::pool raw::keys raw::counter sync::
    done
    miri_test --target s390x-unknown-linux-gnu --test basic -- \
        insert_get_remove string_keys grows_through tombstone_churn
done
echo "== miri: passed in $(( $(date +%s) - start )) s"
