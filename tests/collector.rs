//! Private collectors: a map built with `Collector::new()` frees every key and value it ever held
//! by the time the map and its guards are gone (no waiting on other threads' epochs), and a guard
//! of one collector is refused by a map of another.
//!
//! `scripts/valgrind.sh` runs this file under valgrind's leak check: with a private collector
//! nothing of the map's may be left behind, not even "still reachable".

mod common;

use std::collections::hash_map::RandomState;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Tracked;
use lockfree_map::{Collector, HashMap};

fn private_map<K, V>() -> HashMap<K, V> {
    HashMap::with_collector(0, RandomState::new(), Collector::new())
}

#[test]
fn dropping_the_map_frees_everything_it_retired() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = private_map();
    let n = common::scaled(20_000) as u64;
    {
        let m = map.pin();
        for i in 0..n {
            m.insert(i % 100, Tracked::new(i, &live)); // replaced 199 times in 200
            if i % 7 == 0 {
                m.remove(&(i % 100));
            }
        }
    }
    // Retired values wait for the epoch to advance; some may still be alive here.
    assert!(live.load(Ordering::SeqCst) >= map.len());
    drop(map);
    // No settling: the collector went with the map and ran every deferred drop.
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// `drain` hands the old table to its iterator and gives the map a new one on the same private
/// collector: once the iterator, the map and their guards are gone, everything either held or
/// retired is freed, with no epoch to wait on.
#[test]
fn a_drained_map_and_its_iterator_free_everything_they_held() {
    let live = Arc::new(AtomicUsize::new(0));
    let mut map: HashMap<u64, Tracked> = private_map();
    let n = common::scaled(20_000) as u64;
    for round in 0..3 {
        {
            let m = map.pin();
            for i in 0..n {
                m.insert(i % 1_000, Tracked::new(i, &live));
                if i % 5 == 0 {
                    m.remove(&(i % 1_000));
                }
            }
        }
        let mut drained = map.drain();
        // Take some; the rest go with the iterator.
        let taken: Vec<(u64, Tracked)> = drained.by_ref().take(round * 100).collect();
        drop(drained);
        drop(taken);
        assert!(map.is_empty());
    }
    drop(map);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn threads_churning_on_a_private_collector_leave_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = private_map();
    let per_thread = common::sized(20_000, 100) as u64;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (map, live) = (&map, &live);
            s.spawn(move || {
                let mut m = map.pin();
                for i in 0..per_thread {
                    let key = (i * 4 + t) % 512;
                    m.insert(key, Tracked::new(i, live));
                    if i % 3 == 0 {
                        m.remove(&((key + 1) % 512));
                    }
                    if i % 256 == 0 {
                        m.repin(); // let the epoch move, as a long-running worker would
                    }
                }
            });
        }
    });
    let remaining = map.len();
    assert!(live.load(Ordering::SeqCst) >= remaining);
    drop(map);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn a_guard_of_another_collector_is_refused() {
    let global: HashMap<u64, u64> = HashMap::new();
    let private: HashMap<u64, u64> = private_map();
    let other_private: HashMap<u64, u64> = private_map();
    let global_guard = global.guard();
    let private_guard = private.guard();

    // Each map refuses every foreign guard, for reads, writes and iteration alike.
    for (map, guard) in [
        (&global, &private_guard),
        (&private, &global_guard),
        (&other_private, &private_guard),
    ] {
        let refused = |f: &dyn Fn()| catch_unwind(AssertUnwindSafe(f)).is_err();
        assert!(refused(&|| {
            map.get(&1, guard);
        }));
        assert!(refused(&|| {
            map.insert(1, 1, guard);
        }));
        assert!(refused(&|| {
            map.iter(guard).count();
        }));
        assert!(refused(&|| map.reserve(100, guard)));
    }
    // ...and nothing was stored by the refused calls.
    for map in [&global, &private, &other_private] {
        assert!(map.is_empty());
        assert_eq!(map.pin().get(&1), None);
    }
}

#[test]
fn maps_sharing_a_collector_share_guards() {
    let collector = Collector::new();
    let a: HashMap<u64, u64> = HashMap::with_collector(0, RandomState::new(), collector.clone());
    let b: HashMap<u64, u64> = HashMap::with_collector(0, RandomState::new(), collector);
    let guard = a.guard();
    a.insert(1, 10, &guard);
    b.insert(1, 20, &guard);
    assert_eq!(a.get(&1, &guard), Some(&10));
    assert_eq!(b.get(&1, &guard), Some(&20));
    // A clone shares its source's collector.
    let c = a.clone();
    assert_eq!(c.get(&1, &guard), Some(&10));
    assert!(a == c);
    // Global maps share the global collector.
    let (x, y): (HashMap<u8, u8>, HashMap<u8, u8>) = (HashMap::new(), HashMap::new());
    let g = x.guard();
    x.insert(1, 1, &g);
    y.insert(2, 2, &g);
    assert!(x != y);
}

/// A collector prints which kind it is, and a guard only its type.
#[test]
fn collectors_and_guards_print_their_kind() {
    assert_eq!(format!("{:?}", Collector::global()), "Collector::global()");
    assert_eq!(format!("{:?}", Collector::new()), "Collector::new()");
    let map: HashMap<u8, u8> = private_map();
    assert_eq!(format!("{:?}", map.guard()), "Guard { .. }");
}

/// `Guard::repin` moves a guard to the current epoch, so what was retired before can be freed
/// while the guard lives on: a long-running worker that repins between batches does not hold
/// back reclamation for good. (With `repin` doing nothing, every other test passed: the
/// mutation run of stop 45.)
#[test]
fn a_repinned_guard_lets_earlier_garbage_go() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = private_map();
    let mut guard = map.guard();
    map.insert(1, Tracked::new(1, &live), &guard);
    assert!(map.remove(&1, &guard).is_some());
    common::repin_until_freed(&live, || {
        guard.repin();
        guard.flush();
    });
    // The guard still serves.
    map.insert(2, Tracked::new(2, &live), &guard);
    assert_eq!(map.get(&2, &guard).map(Tracked::get), Some(2));
}

/// `MapRef::repin` repins the guard the `MapRef` holds, as `Guard::repin` does: what was removed
/// before can be freed while the `MapRef` lives on. (With it doing nothing, every other test
/// passed, its doc test included: the mutation run of stop 46.)
#[test]
fn a_repinned_map_ref_lets_earlier_garbage_go() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = private_map();
    let mut m = map.pin();
    m.insert(1, Tracked::new(1, &live));
    assert!(m.remove(&1).is_some());
    common::repin_until_freed(&live, || {
        m.repin();
        m.guard().flush();
    });
    m.insert(2, Tracked::new(2, &live));
    assert_eq!(m.get(&2).map(Tracked::get), Some(2));
}

/// Two maps on two private collectors, updated in turn by one thread under guards it keeps (and
/// repins between batches): each collector's garbage is collected as it goes. Until stop 50
/// the retirements were counted per thread for the flush that collects them, every 64th, and
/// with two maps in turn every 64th was the same map's: the other's replaced values were never
/// freed while its guard lived (all of them alive at the end; a review of resource bounds
/// found it).
#[test]
fn two_private_collectors_updated_in_turn_each_collect_as_they_go() {
    let (live_a, live_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a: HashMap<u64, Tracked> = private_map();
    let b: HashMap<u64, Tracked> = private_map();
    let (mut ma, mut mb) = (a.pin(), b.pin());
    let rounds = common::scaled(100_000) as u64;
    let (mut most_a, mut most_b) = (0, 0);
    for i in 0..rounds {
        ma.insert(i % 16, Tracked::new(i, &live_a));
        mb.insert(i % 16, Tracked::new(i, &live_b));
        if i % 64 == 63 {
            ma.repin();
            mb.repin();
            most_a = most_a.max(live_a.load(Ordering::SeqCst));
            most_b = most_b.max(live_b.load(Ordering::SeqCst));
        }
    }
    // A guard's flush comes every 64 of its retirements, and each collects up to eight of
    // crossbeam's bags of 64; what waits for the epoch is a few bags (128 at most for either
    // map natively; under Miri, 1,000 updates each, 576).
    let bound = if cfg!(miri) { 750 } else { 2_000 };
    assert!(
        most_a < bound && most_b < bound,
        "values alive at once: {most_a} of the first map's, {most_b} of the second's \
         (bound {bound}, {rounds} updates each)"
    );
}

/// Flushing a private collector's guard hands on that collector's garbage only. The thread's
/// batch of retirements from maps on the global collector stays the global collector's, whose
/// guards may still read them: handed to the private collector, they would be freed as soon as
/// its own epoch moved, under a global guard that still reads one. (That was a mutant no test
/// saw: the mutation run of stop 45.)
#[test]
fn flushing_a_private_guard_leaves_the_global_garbage_alone() {
    let live = Arc::new(AtomicUsize::new(0));
    let global: HashMap<u64, Tracked> = HashMap::new();
    let private: HashMap<u64, u64> = private_map();
    let g = global.guard();
    global.insert(1, Tracked::new(1, &live), &g);
    let removed = global.remove(&1, &g).expect("the key was inserted");
    let mut p = private.guard();
    for i in 0..100 {
        private.insert(i, i, &p);
        p.flush();
        p.repin();
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "a value removed under a live global guard was freed"
    );
    assert_eq!(removed.get(), 1);
}
