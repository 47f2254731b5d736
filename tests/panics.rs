//! A `Hash`, `Eq` or closure that panics leaves the map consistent, usable and leak-free.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use common::{settle_reclamation, ConstantState, DropBomb, TouchyKey, Tracked, PANIC};
use lockfree_map::{HashMap, Operation};

fn key(id: u64) -> TouchyKey {
    TouchyKey {
        id,
        poisoned: false,
    }
}

/// The tests that flip the global `PANIC` switch run one at a time: libtest runs tests in
/// parallel, and one test's poisoned keys must not panic inside another's setup.
fn panic_switch() -> MutexGuard<'static, ()> {
    static SWITCH: Mutex<()> = Mutex::new(());
    SWITCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn panicking_hash_and_eq_leave_the_map_usable() {
    common::no_panic_backtraces_under_miri();
    let _switch = panic_switch();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<TouchyKey, Tracked> = HashMap::new();
    let m = map.pin();
    for i in 0..2_000 {
        m.insert(key(i), Tracked::new(i, &live));
    }
    PANIC.store(true, Ordering::SeqCst);
    // A poisoned key panics in Hash before anything happens...
    let poisoned = TouchyKey {
        id: 5,
        poisoned: true,
    };
    for _ in 0..50 {
        let v = Tracked::new(999, &live);
        assert!(catch_unwind(AssertUnwindSafe(|| m.insert(poisoned.clone(), v))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| m.get(&poisoned))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| m.remove(&poisoned))).is_err());
    }
    PANIC.store(false, Ordering::SeqCst);
    assert_eq!(m.len(), 2_000);
    for i in 0..2_000 {
        assert_eq!(m.get(&key(i)).map(Tracked::get), Some(i));
    }
    drop(m);
    drop(map);
    assert_eq!(
        settle_reclamation(&live, 0),
        0,
        "a panic leaked or double-dropped a value"
    );
}

/// With a constant hasher every probe compares keys in sequence, so a poisoned key stored in the
/// middle makes `Eq` panic part-way through the probes of every later key.
#[test]
fn panicking_eq_mid_probe_leaves_the_map_usable() {
    common::no_panic_backtraces_under_miri();
    let _switch = panic_switch();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<TouchyKey, Tracked, ConstantState> = HashMap::with_hasher(ConstantState);
    let m = map.pin();
    for i in 0..300 {
        m.insert(key(i), Tracked::new(i, &live));
    }
    m.insert(
        TouchyKey {
            id: 1_000_000,
            poisoned: true,
        },
        Tracked::new(1_000_000, &live),
    );
    PANIC.store(true, Ordering::SeqCst);
    // Resizes reorder the single probe chain, so which operations reach the poisoned key varies;
    // each one must either take full effect or none.
    let mut replaced = vec![false; 300];
    let mut added = vec![false; 300];
    for i in 0..300 {
        let v = Tracked::new(i as u64 + 10_000, &live);
        if let Ok(old) = catch_unwind(AssertUnwindSafe(|| {
            m.insert(key(i as u64), v).map(Tracked::get)
        })) {
            assert_eq!(old, Some(i as u64));
            replaced[i] = true;
        }
        let v = Tracked::new(i as u64, &live);
        if let Ok(old) = catch_unwind(AssertUnwindSafe(|| {
            m.insert(key(300 + i as u64), v).is_some()
        })) {
            assert!(!old);
            added[i] = true;
        }
    }
    PANIC.store(false, Ordering::SeqCst);
    let panics = replaced.iter().chain(&added).filter(|ok| !**ok).count();
    assert!(panics > 0, "no operation reached the poisoned key");
    assert_eq!(m.len(), 301 + added.iter().filter(|a| **a).count());
    for i in 0..300 {
        let expected = if replaced[i] {
            i as u64 + 10_000
        } else {
            i as u64
        };
        assert_eq!(m.get(&key(i as u64)).map(Tracked::get), Some(expected));
        assert_eq!(m.get(&key(300 + i as u64)).is_some(), added[i]);
    }
    // Usable again once Eq behaves.
    m.insert(key(5_000), Tracked::new(5_000, &live));
    assert_eq!(m.iter().count(), m.len());
    drop(m);
    // `get_mut` probes the same chain: a lookup that reaches the poisoned key panics, having
    // changed nothing, and the map stays usable through `&mut` and through guards.
    let mut map = map;
    PANIC.store(true, Ordering::SeqCst);
    let mut reached = 0;
    for i in 0..600 {
        match catch_unwind(AssertUnwindSafe(|| map.get_mut(&key(i)).map(|v| v.get()))) {
            Ok(found) => assert_eq!(found.is_some(), i < 300 || added[i as usize - 300]),
            Err(_) => reached += 1,
        }
    }
    // An owned removal probes the same way (the keys added after the poisoned one, and the
    // absent ones, pass it): one that panics has removed nothing.
    let mut settled = 0;
    for i in 0..600 {
        if let Ok(v) = catch_unwind(AssertUnwindSafe(|| map.remove_owned(&key(i)))) {
            let present = i < 300 || added[i as usize - 300];
            let id = v.map(|v| v.get() % 10_000);
            assert_eq!(id, present.then_some(i % 300), "key {i}");
            settled += 1;
        }
    }
    PANIC.store(false, Ordering::SeqCst);
    assert!(reached > 0, "no get_mut reached the poisoned key");
    assert!(settled < 600, "no remove_owned reached the poisoned key");
    for i in 0..600 {
        // Each key went with a call that returned, or is still there.
        if let Some(v) = map.remove_owned(&key(i)) {
            assert_eq!(v.get() % 10_000, i % 300, "key {i}");
        }
    }
    assert_eq!(map.len(), 2, "left: the poisoned key and key 5,000");
    let len = map.len();
    assert_eq!(map.iter_mut().count(), len);
    *map.get_mut(&key(5_000)).unwrap() = Tracked::new(5_001, &live);
    assert_eq!(map.pin().get(&key(5_000)).map(Tracked::get), Some(5_001));
    drop(map);
    assert_eq!(
        settle_reclamation(&live, 0),
        0,
        "a panic leaked or double-dropped a value"
    );
}

#[test]
fn panicking_closures_change_nothing() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = HashMap::new();
    let m = map.pin();
    m.insert(1, Tracked::new(1, &live));
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update(&1, |_| panic!("update closure"))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.compute(1, |_| -> Operation<Tracked, ()> {
            panic!("compute closure")
        })
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.get_or_insert_with(2, || panic!("make"))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.get_or_insert_with_ref(&3, |_| panic!("to_owned"), || Tracked::new(3, &live))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.get_or_insert_with_ref(&4, |&k| k, || panic!("make"))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update_or_insert_with(1, |_| panic!("update"), || Tracked::new(10, &live))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.update_or_insert_with(5, |v| Tracked::new(v.get() + 1, &live), || panic!("make"))
    }));
    assert!(r.is_err());
    let r = catch_unwind(AssertUnwindSafe(|| m.retain(|_, _| panic!("retain"))));
    assert!(r.is_err());
    // The value offered is dropped as the panic unwinds.
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.replace_if(&1, |_, _| panic!("replace_if"), Tracked::new(11, &live))
    }));
    assert!(r.is_err());
    assert_eq!(m.get(&1).map(Tracked::get), Some(1));
    assert_eq!(m.get(&5).map(Tracked::get), None);
    assert_eq!(m.get(&2).map(Tracked::get), None);
    assert_eq!(m.get(&3).map(Tracked::get), None);
    assert_eq!(m.get(&4).map(Tracked::get), None);
    assert_eq!(m.len(), 1);
    drop(m);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// `get_or_insert_with_ref` makes the key before the value: if `make` panics (or, in the
/// fallible form, fails), the key it made is dropped, and nothing is inserted.
#[test]
fn a_panicking_make_drops_the_key_made_for_it() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<Tracked, u64> = HashMap::new();
    let m = map.pin();
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.get_or_insert_with_ref(&7, |&k| Tracked::new(k, &live), || panic!("make"))
    }));
    assert!(r.is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0, "the made key was dropped");
    assert_eq!(m.len(), 0);
    // A `make` that fails drops the key made for it too.
    let failed = m.get_or_try_insert_with_ref(&7, |&k| Tracked::new(k, &live), || Err(()));
    assert_eq!(failed, Err(()));
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the key made for a failure was dropped"
    );
    assert_eq!(m.len(), 0);
    assert_eq!(
        m.get_or_insert_with_ref(&7, |&k| Tracked::new(k, &live), || 70),
        &70
    );
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(m);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

#[test]
fn a_panic_in_one_thread_does_not_disturb_others() {
    common::no_panic_backtraces_under_miri();
    let map: HashMap<u64, u64> = HashMap::new();
    std::thread::scope(|s| {
        let panicker = s.spawn(|| {
            let m = map.pin();
            for i in 0..10_000u64 {
                m.insert(i, i);
                if i == 5_000 {
                    m.update(&i, |_| panic!("user code panics mid-stream"));
                }
            }
        });
        let worker = s.spawn(|| {
            let m = map.pin();
            for i in 100_000..120_000u64 {
                m.insert(i, i);
            }
            for i in 100_000..120_000u64 {
                assert_eq!(m.get(&i), Some(&i));
            }
        });
        assert!(panicker.join().is_err());
        worker.join().unwrap();
    });
    let m = map.pin();
    assert_eq!(m.len(), 5_001 + 20_000);
    assert_eq!(m.get(&5_000), Some(&5_000));
}

/// A value whose `Clone` panics on one particular instance.
struct CloneBomb(Tracked);

impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        if self.0.get() == 13 {
            panic!("Clone panicked on purpose");
        }
        CloneBomb(self.0.clone())
    }
}

#[test]
fn panicking_clone_leaves_the_original_intact_and_leaks_nothing() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, CloneBomb> = HashMap::new();
    for i in 0..100 {
        map.pin().insert(i, CloneBomb(Tracked::new(i, &live)));
    }
    assert!(catch_unwind(AssertUnwindSafe(|| map.clone())).is_err());
    // The half-built copy was dropped during unwinding; the original is untouched.
    assert_eq!(map.len(), 100);
    assert!((0..100).all(|i| map.pin().get(&i).map(|v| v.0.get()) == Some(i)));
    assert_eq!(settle_reclamation(&live, 100), 100);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// A map whose drop meets a value whose `Drop` panics still drops every other key and value and
/// frees its tables, then passes the panic on, as `Vec` does. A small map (each entry through the
/// thread's entry cache), a large one (past the first 128 entries, straight to the allocator) and
/// a larger one (past 65,536 more, gathered and freed in address order; under Miri and the stress
/// geometry every map past the first 128 is).
#[test]
fn dropping_a_map_with_a_panicking_value_drops_the_rest() {
    common::no_panic_backtraces_under_miri();
    for n in [
        10,
        common::sized(1_000, 200) as u64,
        common::sized(70_000, 300) as u64,
    ] {
        let live = Arc::new(AtomicUsize::new(0));
        let map = HashMap::new();
        {
            let m = map.pin();
            for k in 0..n {
                m.insert(Tracked::new(k, &live), DropBomb::new(k, &live, k == n / 2));
            }
        }
        // Each entry counts twice: its key and its value.
        assert_eq!(live.load(Ordering::SeqCst), 2 * n as usize);
        let outcome = catch_unwind(AssertUnwindSafe(|| drop(map)));
        assert!(outcome.is_err(), "the value's panic is passed on");
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "every key and value dropped"
        );
    }
}

/// A call that hands a value back, or builds a result, and drops the caller's key must drop the
/// key first: a local whose `Drop` panics after the result is built leaks the result
/// (rust-lang/rust#47949). A review of stop 47 found `try_insert` (its `not_inserted`),
/// `compute` (an abort's value) and `get_or_try_insert_with(_ref)` (`make`'s error) leaking so.
#[test]
fn a_key_whose_drop_panics_leaks_nothing_the_call_hands_back() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<DropBomb, DropBomb> = HashMap::new();
    let guard = map.guard();
    map.insert(
        DropBomb::new(1, &live, false),
        DropBomb::new(10, &live, false),
        &guard,
    );
    type Call<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let calls: [Call; 4] = [
        (
            "try_insert over a present key",
            Box::new(|| {
                let key = DropBomb::new(1, &live, true);
                let _ = map.try_insert(key, DropBomb::new(11, &live, false), &guard);
            }),
        ),
        (
            "compute's abort",
            Box::new(|| {
                let key = DropBomb::new(2, &live, true);
                let abort = |_| Operation::<DropBomb, _>::Abort(DropBomb::new(12, &live, false));
                map.compute(key, abort, &guard);
            }),
        ),
        (
            "get_or_try_insert_with's error",
            Box::new(|| {
                let key = DropBomb::new(3, &live, true);
                let error = DropBomb::new(13, &live, false);
                let _ = map.get_or_try_insert_with(key, || Err::<DropBomb, _>(error), &guard);
            }),
        ),
        (
            "get_or_try_insert_with_ref's error",
            Box::new(|| {
                let error = DropBomb::new(14, &live, false);
                let _ = map.get_or_try_insert_with_ref(
                    &DropBomb::new(4, &live, false),
                    |k| DropBomb::new(k.id, &live, true),
                    || Err::<DropBomb, _>(error),
                    &guard,
                );
            }),
        ),
    ];
    for (name, call) in &calls {
        assert!(
            catch_unwind(AssertUnwindSafe(call)).is_err(),
            "{name}: the key's panic is passed on"
        );
        assert_eq!(live.load(Ordering::SeqCst), 2, "{name}: leaked");
    }
    drop(calls);
    assert_eq!(map.len(), 1, "nothing was inserted");
    drop(guard);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// `update_or_insert_with` whose first attempt loses its CAS (here, to an insert its own `update`
/// makes) drops that attempt's updated value on the next attempt. That value's `Drop` panicking
/// must not leak the entry the next attempt carries (the key and the new value): the value was
/// dropped after the entry was taken as the block's result (rust-lang/rust#47949).
#[test]
fn update_or_insert_with_leaks_nothing_when_a_stale_update_panics_on_drop() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<DropBomb, DropBomb> = HashMap::new();
    let guard = map.guard();
    map.insert(
        DropBomb::new(1, &live, false),
        DropBomb::new(10, &live, false),
        &guard,
    );
    let updates = AtomicUsize::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        map.update_or_insert_with(
            DropBomb::new(1, &live, false),
            |_| {
                if updates.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The key's slot changes under this attempt: its CAS fails.
                    map.insert(
                        DropBomb::new(1, &live, false),
                        DropBomb::new(20, &live, false),
                        &guard,
                    );
                    DropBomb::new(30, &live, true)
                } else {
                    DropBomb::new(31, &live, false)
                }
            },
            || unreachable!("the key is present"),
            &guard,
        );
    }));
    assert!(outcome.is_err(), "the stale value's panic is passed on");
    assert_eq!(updates.load(Ordering::SeqCst), 2);
    drop(guard);
    // Left: the map's key and value, and the replaced entry's key and value until reclaimed.
    assert_eq!(map.len(), 1);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0, "leaked");
}

/// Where a result is built and then something owned is dropped, a `Drop` that panics must not
/// leak the result (rust-lang/rust#47949): the owning iterators' halves (`into_keys` drops the
/// value, `into_values` the key), `remove_owned`'s key, and the closures of `compute` (on
/// abort) and `replace_if` (on refusal), whose captures drop as the call returns. Found by a
/// review at stop 48; each call here leaked one value before.
#[test]
fn a_drop_that_panics_after_the_result_is_built_leaks_nothing() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let filled = |bomb_key: bool| {
        let map: HashMap<DropBomb, DropBomb> = HashMap::new();
        let m = map.pin();
        for i in 0..4 {
            let key = DropBomb::new(i, &live, bomb_key && i == 2);
            m.insert(key, DropBomb::new(10 + i, &live, !bomb_key && i == 2));
        }
        drop(m);
        map
    };
    let map = filled(false);
    let keys = catch_unwind(AssertUnwindSafe(|| map.into_keys().collect::<Vec<_>>()));
    assert!(keys.is_err(), "the value's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "into_keys leaked");

    let map = filled(true);
    let values = catch_unwind(AssertUnwindSafe(|| map.into_values().collect::<Vec<_>>()));
    assert!(values.is_err(), "the key's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "into_values leaked");

    let mut map = filled(true);
    let probe = DropBomb::new(2, &live, false);
    let removed = catch_unwind(AssertUnwindSafe(|| map.remove_owned(&probe)));
    assert!(removed.is_err(), "the key's panic is passed on");
    drop(probe);
    drop(map);
    assert_eq!(live.load(Ordering::SeqCst), 0, "remove_owned leaked");

    let map: HashMap<u64, DropBomb> = HashMap::new();
    let guard = map.guard();
    map.insert(1, DropBomb::new(1, &live, false), &guard);
    let bomb = DropBomb::new(0, &live, true);
    let aborted = catch_unwind(AssertUnwindSafe(|| {
        let made = DropBomb::new(12, &live, false);
        let mut made = Some(made);
        let abort = move |_: Option<(&u64, &DropBomb)>| {
            let _captured = &bomb;
            Operation::<DropBomb, _>::Abort(made.take().expect("decided once"))
        };
        map.compute(2, abort, &guard);
    }));
    assert!(aborted.is_err(), "the capture's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 1, "compute's abort leaked");
    let bomb = DropBomb::new(0, &live, true);
    let refused = catch_unwind(AssertUnwindSafe(|| {
        let refuse = move |_: &u64, _: &DropBomb| {
            let _captured = &bomb;
            false
        };
        let _ = map.replace_if(&1, refuse, DropBomb::new(13, &live, false), &guard);
    }));
    assert!(refused.is_err(), "the capture's panic is passed on");
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "replace_if's refusal leaked"
    );
    drop(guard);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// A hasher whose `Drop` panics, for the calls that take a map apart: the map's own drop drops
/// the table before the hasher, but `into_iter` (and `into_keys`, `into_values`, a set's
/// `into_iter`, `into_par_iter`) dropped the hasher after building the iterator, and its panic
/// leaked the iterator with every entry (rust-lang/rust#47949). Found at stop 49, from a note of
/// stop 48's.
struct HasherBomb(std::collections::hash_map::RandomState);

impl std::hash::BuildHasher for HasherBomb {
    type Hasher = std::collections::hash_map::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

impl Drop for HasherBomb {
    fn drop(&mut self) {
        panic!("a hasher's Drop panicked on purpose");
    }
}

fn bombed_map(live: &Arc<AtomicUsize>) -> HashMap<u64, DropBomb, HasherBomb> {
    // A private collector, so that nothing waits in the global one after the map is gone.
    let map = HashMap::with_collector(
        0,
        HasherBomb(Default::default()),
        lockfree_map::Collector::new(),
    );
    let m = map.pin();
    for i in 0..8 {
        m.insert(i, DropBomb::new(i, live, false));
    }
    drop(m);
    map
}

#[test]
fn a_hasher_whose_drop_panics_leaks_no_entry_when_the_map_is_taken_apart() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map = bombed_map(&live);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(map))).is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0, "drop leaked");

    let map = bombed_map(&live);
    let taken = catch_unwind(AssertUnwindSafe(|| map.into_iter().count()));
    assert!(taken.is_err(), "the hasher's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "into_iter leaked");

    let map = bombed_map(&live);
    assert!(catch_unwind(AssertUnwindSafe(|| map.into_values().count())).is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0, "into_values leaked");

    let set: lockfree_map::HashSet<DropBomb, HasherBomb> = lockfree_map::HashSet::with_collector(
        0,
        HasherBomb(Default::default()),
        lockfree_map::Collector::new(),
    );
    for i in 0..8 {
        set.pin().insert(DropBomb::new(i, &live, false));
    }
    assert!(catch_unwind(AssertUnwindSafe(|| set.into_iter().count())).is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0, "the set's into_iter leaked");

    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        let map = bombed_map(&live);
        assert!(catch_unwind(AssertUnwindSafe(|| map.into_par_iter().count())).is_err());
        assert_eq!(live.load(Ordering::SeqCst), 0, "into_par_iter leaked");
    }
}

/// A map of 16 values counted by `live`, whose value on the entry a walk reaches last (the
/// table's order, as `iter`'s; constant hashing makes it the same every time) panics when
/// dropped, so that it is among the entries a consumer leaves. A private collector, so that the
/// value it replaced is freed when the map drops.
fn bomb_last(live: &Arc<AtomicUsize>) -> HashMap<u64, DropBomb, ConstantState> {
    let map: HashMap<u64, DropBomb, ConstantState> =
        HashMap::with_collector(0, ConstantState, lockfree_map::Collector::new());
    let m = map.pin();
    for i in 0..16 {
        m.insert(i, DropBomb::new(i, live, false));
    }
    let last = *m.iter().last().expect("16 entries").0;
    m.insert(last, DropBomb::new(last, live, true));
    drop(m);
    map
}

/// `into_par_iter`: a value's `Drop` that panics as the entries a consumer did not take are
/// dropped must not leak the consumer's result (rust-lang/rust#47949), nor, when the consumer
/// itself panicked, abort the process (the map's drop resumed its caught panic while another
/// unwound). One worker, so that the entries come in the table's order and the bomb, on the last
/// of them, is among those left. Found by a review at stop 48.
#[cfg(feature = "rayon")]
#[test]
fn into_par_iter_leaks_nothing_and_aborts_nothing_when_a_left_entry_panics_on_drop() {
    common::no_panic_backtraces_under_miri();
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let filled = || bomb_last(&live);
    let map = filled();
    let found = catch_unwind(AssertUnwindSafe(|| {
        pool.install(|| map.into_par_iter().find_any(|_| true))
    }));
    assert!(found.is_err(), "the left value's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "the result leaked");

    let map = filled();
    let consumed = catch_unwind(AssertUnwindSafe(|| {
        pool.install(|| {
            map.into_par_iter()
                .for_each(|_| panic!("the consumer panics"))
        })
    }));
    assert!(consumed.is_err(), "the consumer's panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "entries leaked");
}

/// The sequential walks of the same: a `for` loop over `into_iter` (and `into_keys`,
/// `into_values`, a set's `into_iter`) whose body panics drops the iterator, and with it the
/// entries not yet taken, while the body's panic unwinds. A left key or value whose `Drop`
/// panics then must not abort the process (the map's drop drops the panic it caught instead of
/// resuming it), every other entry is dropped, and the body's panic is the one passed on.
/// Stop 49's review of reclamation found no test of it.
#[test]
// The loops are the point: a `for` loop's iterator is dropped as the body's panic unwinds.
#[allow(clippy::never_loop)]
fn a_panicking_loop_over_into_iter_aborts_nothing_when_a_left_entry_panics_on_drop() {
    common::no_panic_backtraces_under_miri();
    const BODY: &str = "the loop's body panics";
    let live = Arc::new(AtomicUsize::new(0));
    let filled = || bomb_last(&live);
    let body_panicked = |outcome: std::thread::Result<()>, walk: &str| {
        let payload = outcome.expect_err("the body's panic is passed on");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&BODY),
            "{walk}: the body's panic, not the left value's, comes out"
        );
        assert_eq!(live.load(Ordering::SeqCst), 0, "{walk}: entries leaked");
    };

    let map = filled();
    body_panicked(
        catch_unwind(AssertUnwindSafe(|| {
            for (_key, _value) in map {
                std::panic::panic_any(BODY);
            }
        })),
        "into_iter",
    );
    if cfg!(miri) {
        // The others run the same drop; under Miri each nested panic's backtrace, which std
        // prints in full, takes about 6 s.
        return;
    }
    let map = filled();
    body_panicked(
        catch_unwind(AssertUnwindSafe(|| {
            for _key in map.into_keys() {
                std::panic::panic_any(BODY);
            }
        })),
        "into_keys",
    );
    let map = filled();
    body_panicked(
        catch_unwind(AssertUnwindSafe(|| {
            for _value in map.into_values() {
                std::panic::panic_any(BODY);
            }
        })),
        "into_values",
    );

    // The set keeps the value it has, so the bomb goes in with the first insert of its value: a
    // first set, built the same way, says which value the walk reaches last.
    let set_with = |bomb: Option<u64>| {
        let set: lockfree_map::HashSet<DropBomb, ConstantState> =
            lockfree_map::HashSet::with_collector(0, ConstantState, lockfree_map::Collector::new());
        for i in 0..16 {
            set.pin().insert(DropBomb::new(i, &live, bomb == Some(i)));
        }
        set
    };
    let last = set_with(None).pin().iter().last().expect("16 values").id;
    let set = set_with(Some(last));
    assert_eq!(set.pin().iter().last().map(|v| v.id), Some(last));
    body_panicked(
        catch_unwind(AssertUnwindSafe(|| {
            for _value in set {
                std::panic::panic_any(BODY);
            }
        })),
        "the set's into_iter",
    );
}
