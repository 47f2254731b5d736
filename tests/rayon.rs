//! The `rayon` feature: parallel iteration keeps the sequential guarantee, and maps fill from
//! rayon jobs. Run with `cargo test --all-features` (or `--features rayon`).
#![cfg(feature = "rayon")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use lockfree_map::HashMap;
use rayon::prelude::*;

#[test]
fn par_iter_yields_each_entry_once() {
    let n = common::scaled(100_000) as u64;
    let map: HashMap<u64, u64> = (0..n).into_par_iter().map(|k| (k, k * 3)).collect();
    assert_eq!(map.len() as u64, n);
    let guard = map.guard();
    let pairs: Vec<(u64, u64)> = map.par_iter(&guard).map(|(k, v)| (*k, *v)).collect();
    assert_eq!(pairs.len() as u64, n);
    let keys: HashSet<u64> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(keys.len() as u64, n, "a key was yielded twice");
    assert!(pairs.iter().all(|&(k, v)| v == k * 3));
    assert_eq!(map.par_keys(&guard).count() as u64, n);
    assert_eq!(
        map.par_values(&guard).copied().sum::<u64>(),
        3 * n * (n - 1) / 2
    );
    let m = map.pin();
    assert_eq!(m.par_iter().count() as u64, n);
    assert_eq!(m.par_keys().max(), Some(&(n - 1)));
}

/// `par_iter_mut` after rounds of rayon writers (which may leave a resize pending): each entry
/// is lent to exactly one worker, once, and the workers' writes are what the map holds after.
#[test]
fn par_iter_mut_lends_each_entry_to_one_worker_once() {
    let n = common::scaled(50_000) as u64;
    let mut map: HashMap<u64, u64> = HashMap::new();
    for round in 0..4u64 {
        let shared = &map;
        (0..n).into_par_iter().for_each_init(
            || shared.pin(),
            |m, k| {
                // Each round adds the next `n` keys and removes the odd ones of the round before.
                m.insert(round * n + k, 0);
                if round > 0 && k % 2 == 1 {
                    m.remove(&((round - 1) * n + k));
                }
            },
        );
        let mut keys: Vec<u64> = map
            .par_iter_mut()
            .map(|(k, v)| {
                *v += k + 1;
                *k
            })
            .collect();
        let live = map.len();
        assert_eq!(keys.len(), live);
        keys.par_sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), live, "a key was lent out twice");
        map.par_values_mut().for_each(|v| *v *= 2);
        let m = map.pin();
        for k in keys {
            assert_eq!(m.get(&k), Some(&(2 * (k + 1))), "key {k}");
        }
        drop(m);
        // Back to zero, for the next round's arithmetic.
        (&mut map).into_par_iter().for_each(|(_, v)| *v = 0);
    }
}

#[test]
fn par_iter_during_resizes_sees_every_stable_key_exactly_once() {
    let stable = common::scaled(20_000) as u64;
    let map: HashMap<u64, u64> = (0..stable).map(|k| (k, k)).collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A writer grows and shrinks the table with other keys while the workers iterate: its
        // inserts and removals alone rebuild it to the same size (at least 20,000 of its 57,344
        // slots stay live), so it also asks for a growth and a shrink outright (found by a
        // review of vacuous tests at stop 49).
        s.spawn(|| {
            let mut m = map.pin();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in 0..5_000 {
                    m.insert(1_000_000 + round * 5_000 + k, 0);
                }
                if round % 2 == 0 {
                    m.reserve(4 * stable as usize);
                }
                for k in 0..5_000 {
                    m.remove(&(1_000_000 + round * 5_000 + k));
                }
                if round % 2 == 1 {
                    drop(m);
                    map.shrink_to_fit(&map.guard());
                    m = map.pin();
                }
                round += 1;
            }
        });
        // Iterations that a resize changing the table's size overlapped; natively the rounds go
        // on (up to twenty times as many) until one did.
        let (rounds, mut round, mut resized) = (if cfg!(miri) { 1 } else { 20 }, 0, 0);
        while round < rounds || (resized == 0 && !cfg!(miri) && round < 20 * rounds) {
            round += 1;
            let guard = map.guard();
            // The capacity once the walk is made (it finishes a pending resize first): a change
            // after it is a resize that overlapped the walk.
            let keys = map.par_keys(&guard);
            let capacity = map.capacity();
            let seen: Vec<u64> = keys.copied().filter(|k| *k < stable).collect();
            if map.capacity() != capacity {
                resized += 1;
            }
            let distinct: HashSet<u64> = seen.iter().copied().collect();
            assert_eq!(distinct.len(), seen.len(), "a key was yielded twice");
            assert_eq!(seen.len() as u64, stable, "a stable key was missed");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            cfg!(miri) || resized > 0,
            "no resize overlapped an iteration in {round} rounds"
        );
    });
}

#[test]
fn par_extend_races_with_other_writers_and_loses_nothing() {
    let n = common::scaled(50_000) as u64;
    let mut map: HashMap<u64, u64> = HashMap::new();
    map.par_extend((0..n).into_par_iter().map(|k| (k, k)));
    let shared = &map;
    rayon::join(
        || {
            let mut target = shared;
            target.par_extend((n..2 * n).into_par_iter().map(|k| (k, k)));
        },
        || {
            let m = shared.pin();
            for k in 0..n {
                m.update(&k, |v| v + 1);
            }
        },
    );
    assert_eq!(map.len() as u64, 2 * n);
    let m = map.pin();
    assert!((0..n).all(|k| m.get(&k) == Some(&(k + 1))));
    assert!((n..2 * n).all(|k| m.get(&k) == Some(&k)));
}

#[test]
fn rayon_jobs_share_a_cache_through_get_or_insert_with() {
    let cache: HashMap<u64, u64> = HashMap::new();
    let calls = std::sync::atomic::AtomicU64::new(0);
    // Each computed value carries a unique token, so a request that saw a value other than the
    // published one would show.
    let seen: Vec<(u64, u64)> = (0..10_000u64)
        .into_par_iter()
        .map_init(
            || cache.pin(),
            |m, i| {
                let key = i % 100;
                let v = *m.get_or_insert_with(key, || {
                    1_000 * calls.fetch_add(1, Ordering::Relaxed) + key
                });
                (key, v)
            },
        )
        .collect();
    let m = cache.pin();
    assert_eq!(m.len(), 100);
    for (key, v) in seen {
        assert_eq!(m.get(&key), Some(&v), "a request saw an unpublished value");
    }
    // At most one call per key runs its closure without losing a race; racers may run theirs.
    assert!(calls.load(Ordering::Relaxed) >= 100);
}

#[test]
fn sets_fill_and_iterate_from_rayon() {
    let n = common::scaled(50_000) as u64;
    // Every value arrives twice, from different jobs: the set keeps one of each.
    let set: lockfree_map::HashSet<u64> = (0..2 * n).into_par_iter().map(|v| v % n).collect();
    assert_eq!(set.len() as u64, n);
    let guard = set.guard();
    let seen: Vec<u64> = set.par_iter(&guard).copied().collect();
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "a value was yielded twice");
    assert_eq!(seen.len() as u64, n);
    assert_eq!(set.pin().par_iter().copied().sum::<u64>(), n * (n - 1) / 2);

    let mut more = set.clone();
    more.par_extend((n..n + 100).into_par_iter());
    let mut shared = &more;
    shared.par_extend((0..n + 200).into_par_iter());
    assert_eq!(more.len() as u64, n + 200);
}

/// Fills a map of `Tracked` values from rayon writers that insert, replace and remove (leaving,
/// as it may, a resize pending), and returns it with the keys it holds.
fn churned_map(
    n: u64,
    live: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> (HashMap<u64, common::Tracked>, Vec<u64>) {
    let map: HashMap<u64, common::Tracked> = HashMap::new();
    (0..n).into_par_iter().for_each_init(
        || map.pin(),
        |m, k| {
            m.insert(k, common::Tracked::new(k, live));
            if k % 3 == 0 {
                m.insert(k, common::Tracked::new(k, live));
            }
            if k % 5 == 0 {
                m.remove(&k);
            }
        },
    );
    // Each worker hands on the retirements still in its batch (up to 127 a thread wait there
    // for its next writes: `ARCHITECTURE.md`, "Known limits"), so that the callers' counts can
    // settle.
    rayon::broadcast(|_| map.guard().flush());
    let keys = (0..n).filter(|k| k % 5 != 0).collect();
    (map, keys)
}

/// Keys the `into_par_iter` tests churn: four in five stay, 80,000, past the size (65,536) from
/// which the emptied blocks are listed and freed in address order at the end, so that this path
/// runs in the default geometry too (the stress geometry lists every map's).
const DRAINED: usize = 100_000;

/// `into_par_iter` moves every entry out exactly once, each key with its own value, and every
/// value the map held is dropped once: those taken by the consumer, and (after the removals'
/// and replacements' retirements are collected) none left behind.
#[test]
fn into_par_iter_takes_each_entry_once() {
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = common::scaled(DRAINED) as u64;
    let (map, keys) = churned_map(n, &live);
    let mut taken: Vec<(u64, u64)> = map.into_par_iter().map(|(k, v)| (k, v.get())).collect();
    assert!(
        taken.iter().all(|&(k, v)| k == v),
        "a key came with another's value"
    );
    taken.par_sort_unstable();
    let taken_keys: Vec<u64> = taken.iter().map(|p| p.0).collect();
    assert_eq!(taken_keys, keys, "an entry was taken twice, or missed");
    assert_eq!(common::settle_reclamation(&live, 0), 0, "a value leaked");

    // An empty map, and one made by `with_capacity`, have nothing to take.
    let empty: HashMap<u64, common::Tracked> = HashMap::with_capacity(10_000);
    assert_eq!(empty.into_par_iter().count(), 0);

    // A set's values, the same way.
    let set: lockfree_map::HashSet<String> = (0..n).map(|k| k.to_string()).collect();
    let mut values: Vec<String> = set.into_par_iter().collect();
    values.par_sort_unstable_by_key(|v| v.parse::<u64>().unwrap());
    assert_eq!(values.len() as u64, n);
    assert!(values.iter().enumerate().all(|(i, v)| *v == i.to_string()));
}

/// A consumer that stops early (`find_any`) or panics leaves the entries it did not take to the
/// map, which drops each of them once; those it took it dropped itself, once.
#[test]
fn into_par_iter_cut_short_drops_the_rest_once() {
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = common::scaled(DRAINED) as u64;

    let (map, keys) = churned_map(n, &live);
    let target = keys[keys.len() / 2];
    let found = map.into_par_iter().find_any(|(k, _)| *k == target);
    let (k, v) = found.expect("the key was in the map");
    assert_eq!((k, v.get()), (target, target));
    drop(v);
    assert_eq!(common::settle_reclamation(&live, 0), 0, "a value leaked");

    let (map, _) = churned_map(n, &live);
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        map.into_par_iter().for_each(|(_, v)| {
            if seen.fetch_add(1, Ordering::Relaxed) == 1_000 {
                panic!("consumer panics");
            }
            drop(v);
        })
    }));
    assert!(outcome.is_err(), "the consumer's panic reaches the caller");
    assert_eq!(common::settle_reclamation(&live, 0), 0, "a value leaked");
}

/// The parallel iterators print their type, not their entries, whose types need not be `Debug`.
#[test]
fn parallel_iterators_print_their_type() {
    struct Opaque;
    let mut map: HashMap<u8, Opaque> = (0..3).map(|k| (k, Opaque)).collect();
    {
        let m = map.pin();
        assert_eq!(format!("{:?}", m.par_iter()), "ParIter { .. }");
        assert_eq!(format!("{:?}", m.par_keys()), "ParKeys { .. }");
        assert_eq!(format!("{:?}", m.par_values()), "ParValues { .. }");
        assert_eq!(m.par_values().count(), 3);
    }
    assert_eq!(format!("{:?}", map.par_iter_mut()), "ParIterMut { .. }");
    assert_eq!(format!("{:?}", map.par_values_mut()), "ParValuesMut { .. }");
    assert_eq!(format!("{:?}", map.into_par_iter()), "IntoParIter { .. }");

    let set: lockfree_map::HashSet<u8> = (0..3).collect();
    assert_eq!(format!("{:?}", set.pin().par_iter()), "ParIter { .. }");
    assert_eq!(
        format!("{:?}", set.into_par_iter()),
        "SetIntoParIter { .. }"
    );
}

/// `par_extend` pins again every `BULK_REPIN` pairs, as the serial `Extend` does
/// (`tests/drops.rs`, `a_bulk_insert_frees_the_values_it_replaces_as_it_goes`), so the values
/// that later pairs with an equal key replace are freed as the input goes on. On one worker
/// rayon leaves the input in one or two pieces, each under one guard unless the insert pins
/// again. (Stop 56's mutation run: a count that never repinned, or repinned only for its first
/// 63 pairs, lived; planted, they held 19,999 and 10,009 values at once here.)
#[test]
fn a_parallel_bulk_insert_frees_the_values_it_replaces_as_it_goes() {
    use common::Tracked;
    use std::collections::hash_map::RandomState;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> =
        HashMap::with_collector(0, RandomState::new(), lockfree_map::Collector::new());
    let n = common::scaled(20_000) as u64;
    let most = AtomicUsize::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let mut into = &map;
        into.par_extend((0..n).into_par_iter().map(|i| {
            most.fetch_max(live.load(Ordering::SeqCst), Ordering::SeqCst);
            (i % 10, Tracked::new(i, &live))
        }));
    });
    assert_eq!(map.len(), 10);
    let most = most.into_inner();
    assert!(
        most < (n as usize / 4).max(1_000),
        "{most} values alive at once for 10 keys"
    );
    drop(map);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}
