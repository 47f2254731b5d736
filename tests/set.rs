//! `HashSet`: `std`'s set semantics (the stored value is kept), the interner's answers (the
//! stored value, one per class of equal values, across threads), drop counts, panicking `Hash`
//! and `Eq`, and a differential run against `std::collections::HashSet`.

mod common;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{scaled, settle_reclamation, ConstantState, FewBitsState, TouchyKey, Tracked, PANIC};
use lockfree_map::HashSet;
use proptest::prelude::*;

/// Equal (and hashed) by `key` alone, so two equal values can be told apart by `copy`.
#[derive(Debug, Clone)]
struct Labelled {
    key: u32,
    copy: u32,
}

impl PartialEq for Labelled {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Labelled {}
impl Hash for Labelled {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

#[test]
fn insert_keeps_the_stored_value_and_get_returns_it() {
    let set = HashSet::new();
    let s = set.pin();
    assert!(s.insert(Labelled { key: 1, copy: 0 }));
    assert!(
        !s.insert(Labelled { key: 1, copy: 1 }),
        "an equal value is present"
    );
    assert_eq!(s.len(), 1);
    let probe = Labelled { key: 1, copy: 9 };
    assert_eq!(
        s.get(&probe).map(|v| v.copy),
        Some(0),
        "the first value stays"
    );
    assert_eq!(s.get_or_insert(Labelled { key: 1, copy: 2 }).copy, 0);
    assert_eq!(s.get_or_insert(Labelled { key: 2, copy: 3 }).copy, 3);
    assert_eq!(s.take(&probe).map(|v| v.copy), Some(0));
    assert!(!s.contains(&probe));
    assert!(!s.remove(&probe));
    assert!(s.remove(&Labelled { key: 2, copy: 0 }));
    assert!(s.is_empty());
}

#[test]
fn borrowed_lookups_and_the_std_traits() {
    let set: HashSet<String> = ["apple", "pear", "fig"].map(String::from).into();
    let guard = set.guard();
    assert!(set.contains("pear", &guard));
    assert_eq!(set.get("fig", &guard).map(String::as_str), Some("fig"));
    assert!(!set.contains("plum", &guard));

    let copy = set.clone();
    assert_eq!(copy, set);
    assert!(copy.is_subset(&set) && set.is_superset(&copy));
    copy.insert("plum".to_string(), &guard);
    assert_ne!(copy, set);
    assert!(set.is_subset(&copy) && !copy.is_subset(&set));
    let other: HashSet<String> = ["kiwi"].map(String::from).into();
    assert!(set.is_disjoint(&other));

    let mut sorted: Vec<&String> = set.iter(&guard).collect();
    sorted.sort();
    assert_eq!(sorted, ["apple", "fig", "pear"]);
    assert_eq!(format!("{:?}", HashSet::from([1])), "{1}");

    let mut grown = HashSet::new();
    grown.extend([1, 2]);
    grown.extend(&[2, 3]);
    let mut shared = &grown;
    shared.extend([4]);
    let mut all: Vec<i32> = grown.into_iter().collect();
    all.sort();
    assert_eq!(all, [1, 2, 3, 4]);
}

#[test]
fn set_operations_through_the_handle() {
    let set = HashSet::with_capacity(10);
    let mut s = set.pin();
    for i in 0..scaled(2_000) as u64 {
        assert!(s.insert(i));
        if i % 256 == 0 {
            s.repin();
        }
    }
    assert_eq!(s.len(), scaled(2_000));
    assert!(s.capacity() >= scaled(2_000));
    s.retain(|v| v % 3 == 0);
    assert_eq!(s.len(), scaled(2_000).div_ceil(3));
    assert_eq!((&s).into_iter().filter(|v| *v % 3 != 0).count(), 0);
    s.reserve(100);
    s.clear();
    assert!(s.is_empty());
    assert_eq!(s.iter().count(), 0);
    assert_eq!(format!("{s:?}"), "{}");
}

/// Sorted, so that an answer compares with `std`'s whatever the order; duplicates are kept, so a
/// value yielded twice shows.
/// The set's `retain` asks `keep` once a value, as the map's (a stateful predicate removes
/// exactly what it rejected).
#[test]
fn retain_asks_once_a_value() {
    let set: HashSet<u32> = (0..1000).collect();
    let mut calls = 0;
    set.pin().retain(|_| {
        calls += 1;
        calls % 2 == 0
    });
    assert_eq!((calls, set.len()), (1000, 500));
}

fn sorted<'a>(values: impl Iterator<Item = &'a u16>) -> Vec<u16> {
    let mut v: Vec<u16> = values.copied().collect();
    v.sort_unstable();
    v
}

/// The lazy set operations and the operators against `std`'s on the same two sets: the same
/// values, each once, whichever set is the larger and whatever the hasher.
fn algebra_matches_std<S: BuildHasher + Default>(a: &[u16], b: &[u16]) {
    let (ours_a, ours_b): (HashSet<u16, S>, HashSet<u16, S>) =
        (a.iter().copied().collect(), b.iter().copied().collect());
    let (std_a, std_b): (
        std::collections::HashSet<u16>,
        std::collections::HashSet<u16>,
    ) = (a.iter().copied().collect(), b.iter().copied().collect());
    let g = ours_a.guard();
    let s = ours_a.pin();
    for (x, y, sx, sy) in [
        (&ours_a, &ours_b, &std_a, &std_b),
        (&ours_b, &ours_a, &std_b, &std_a),
    ] {
        let want = sorted(sx.difference(sy));
        assert_eq!(sorted(x.difference(y, &g)), want);
        assert_eq!(sorted((x - y).iter(&g)), want);
        let want = sorted(sx.intersection(sy));
        assert_eq!(sorted(x.intersection(y, &g)), want);
        assert_eq!(sorted((x & y).iter(&g)), want);
        let want = sorted(sx.union(sy));
        assert_eq!(sorted(x.union(y, &g)), want);
        assert_eq!(sorted((x | y).iter(&g)), want);
        let want = sorted(sx.symmetric_difference(sy));
        assert_eq!(sorted(x.symmetric_difference(y, &g)), want);
        assert_eq!(sorted((x ^ y).iter(&g)), want);
        // `fold` is forwarded to the map's loop over groups: the same answer as `next`.
        assert_eq!(
            x.difference(y, &g).fold(0usize, |n, _| n + 1),
            sx.difference(sy).count()
        );
        assert_eq!(
            x.intersection(y, &g).fold(0usize, |n, _| n + 1),
            sx.intersection(sy).count()
        );
        assert_eq!(x.union(y, &g).count(), sx.union(sy).count());
        assert_eq!(
            x.symmetric_difference(y, &g).count(),
            sx.symmetric_difference(sy).count()
        );
    }
    assert_eq!(
        sorted(s.difference(&ours_b)),
        sorted(std_a.difference(&std_b))
    );
    assert_eq!(
        sorted(s.intersection(&ours_b)),
        sorted(std_a.intersection(&std_b))
    );
    assert_eq!(sorted(s.union(&ours_b)), sorted(std_a.union(&std_b)));
    assert_eq!(
        sorted(s.symmetric_difference(&ours_b)),
        sorted(std_a.symmetric_difference(&std_b))
    );
}

#[test]
fn set_operations_need_a_guard_of_both_sets_and_the_operators_do_not() {
    use lockfree_map::Collector;
    let global: HashSet<u32> = [1, 2, 3].into_iter().collect();
    let private: HashSet<u32> = HashSet::with_collector(0, RandomState::new(), Collector::new());
    (&private).extend([2, 3, 4]);
    // Each set's own guard fails the other set, and it fails when the iterator is made, not
    // later when the walk first reaches the other set.
    for guard in [global.guard(), private.guard()] {
        let made = catch_unwind(AssertUnwindSafe(|| {
            global.difference(&private, &guard);
        }));
        let message = made.unwrap_err();
        let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("another map's collector"), "{message}");
        for result in [
            catch_unwind(AssertUnwindSafe(|| {
                drop(global.intersection(&private, &guard))
            })),
            catch_unwind(AssertUnwindSafe(|| drop(global.union(&private, &guard)))),
            catch_unwind(AssertUnwindSafe(|| {
                drop(global.symmetric_difference(&private, &guard))
            })),
        ] {
            assert!(result.is_err());
        }
    }
    // The operators pin each set on its own.
    let both = &global & &private;
    let g = both.guard();
    assert_eq!(sorted_u32(both.iter(&g)), [2, 3]);
    assert_eq!(sorted_u32((&global | &private).iter(&g)), [1, 2, 3, 4]);
    assert_eq!(sorted_u32((&global - &private).iter(&g)), [1]);
    assert_eq!(sorted_u32((&private ^ &global).iter(&g)), [1, 4]);
}

/// `with_capacity` is a floor the set does not shrink below by itself (`clear` goes back to it,
/// a clone keeps it), while the sets the crate builds (`collect`, the operators) are sized for
/// their input without making it a floor: cleared, they are a new set's size.
#[test]
fn only_with_capacity_sets_a_floor() {
    let new_size = HashSet::<u32>::new().capacity();
    let floor = HashSet::<u32>::with_capacity(5_000);
    let made = floor.capacity();
    assert!(made > new_size);
    let g = floor.guard();
    (0..5_000).for_each(|v| {
        floor.insert(v, &g);
    });
    let copy = floor.clone();
    floor.clear(&g);
    assert_eq!(floor.capacity(), made);
    copy.clear(&copy.guard());
    assert_eq!(copy.capacity(), made);

    let a: HashSet<u32> = (0..5_000).collect();
    let b: HashSet<u32> = (2_500..7_500).collect();
    for built in [&a | &b, &a & &b, &a - &b, &a ^ &b, a.clone(), b] {
        let g = built.guard();
        assert!(built.len() >= 2_500);
        built.clear(&g);
        assert_eq!(built.capacity(), new_size);
    }
}

fn sorted_u32<'a>(values: impl Iterator<Item = &'a u32>) -> Vec<u32> {
    let mut v: Vec<u32> = values.copied().collect();
    v.sort_unstable();
    v
}

/// While other threads insert and remove values of their own in both sets (and grow and shrink
/// them), the values that stay put are answered as if the sets stood still, and no lazy
/// operation yields a value twice where the module docs promise it does not.
#[test]
fn set_operations_under_concurrent_writes() {
    let stable = scaled(4_000) as u64;
    let churn = scaled(20_000) as u64;
    // Stable values: 0..stable/2 in `a` only, stable/2..stable in both, stable..3*stable/2 in
    // `b` only. Churned values are from 1_000_000 on and come and go in both sets.
    let (a, b): (HashSet<u64>, HashSet<u64>) = (HashSet::new(), HashSet::new());
    (&a).extend(0..stable);
    (&b).extend(stable / 2..stable * 3 / 2);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (t, set) in [&a, &b].into_iter().enumerate() {
            let done = &done;
            scope.spawn(move || {
                let mut s = set.pin();
                let base = 1_000_000 + t as u64 * 1_000_000;
                let mut round = 0;
                while !done.load(Ordering::Relaxed) || round == 0 {
                    for i in 0..churn {
                        s.insert(base + i);
                    }
                    for i in 0..churn {
                        s.remove(&(base + i));
                    }
                    s.repin();
                    round += 1;
                }
            });
        }
        // Whether a resize of either set finished during the check's walks (each walk finishes a
        // pending one when it is made: one that finished during the others ran under them).
        let check = || {
            let g = a.guard();
            let sizes = (a.capacity(), b.capacity());
            let kept = |v: &&u64| **v < 1_000_000;
            let diff: Vec<u64> = a.difference(&b, &g).filter(kept).copied().collect();
            let mut all_diff: Vec<u64> = a.difference(&b, &g).copied().collect();
            let inter: Vec<u64> = a.intersection(&b, &g).filter(kept).copied().collect();
            let mut all_inter: Vec<u64> = a.intersection(&b, &g).copied().collect();
            let union: Vec<u64> = a.union(&b, &g).filter(kept).copied().collect();
            let sym: Vec<u64> = a
                .symmetric_difference(&b, &g)
                .filter(kept)
                .copied()
                .collect();
            for (mut got, want) in [
                (diff, (0..stable / 2).collect::<Vec<_>>()),
                (inter, (stable / 2..stable).collect()),
                (union, (0..stable * 3 / 2).collect()),
                (sym, (0..stable / 2).chain(stable..stable * 3 / 2).collect()),
            ] {
                got.sort_unstable();
                assert_eq!(got, want);
            }
            // Churned values too are never yielded twice by the two single walks.
            for all in [&mut all_diff, &mut all_inter] {
                let n = all.len();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), n);
            }
            sizes != (a.capacity(), b.capacity())
        };
        // Stops the writers however the checks end, so that a failed check fails the test
        // instead of leaving the scope waiting on them.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&done);
        // Natively the checks go on (up to a hundred times as many) until a resize ran under
        // one, so that a run checks what its name says (found missing by a review at stop 49).
        // Four rounds, not the twenty before stop 57: a resize ran under 16 of 20 in a
        // ThreadSanitizer run, where the test took 54 s (2.7 s a round) beside the file's others.
        let (rounds, mut round, mut resized) = (if cfg!(miri) { 1 } else { 4 }, 0, 0);
        while round < rounds || (resized == 0 && !cfg!(miri) && round < 100 * rounds) {
            round += 1;
            resized += usize::from(check());
        }
        assert!(
            cfg!(miri) || resized > 0,
            "no resize ran under the checks in {round} rounds"
        );
    });
}

/// Every value is added by several threads at once: exactly one `insert` of each reports it new.
#[test]
fn each_value_is_new_to_exactly_one_concurrent_insert() {
    const THREADS: usize = 4;
    let n = scaled(20_000) as u64;
    let set: HashSet<u64> = HashSet::new();
    let newly = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS as u64 {
            let (set, newly) = (&set, &newly);
            scope.spawn(move || {
                let s = set.pin();
                // Different orders, so that the threads meet on values and on growths.
                for i in 0..n {
                    let v = if t % 2 == 0 { i } else { n - 1 - i };
                    if s.insert(v) {
                        newly.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(newly.load(Ordering::Relaxed), n as usize);
    assert_eq!(set.len(), n as usize);
    let guard = set.guard();
    assert!((0..n).all(|v| set.contains(&v, &guard)));
}

/// Threads interning the same words all get the one stored copy of each.
#[test]
fn concurrent_interning_hands_out_one_copy_per_value() {
    const THREADS: usize = 4;
    let words: Vec<String> = (0..scaled(3_000)).map(|i| format!("word-{i}")).collect();
    let set: HashSet<Arc<str>> = HashSet::new();
    let made = AtomicUsize::new(0);
    let seen: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (set, words, made) = (&set, &words, &made);
                scope.spawn(move || {
                    let s = set.pin();
                    let mut addresses = vec![0; words.len()];
                    for step in 0..words.len() {
                        // Each thread starts elsewhere, half of them going backwards.
                        let at = (step + t * words.len() / THREADS) % words.len();
                        let i = if t % 2 == 0 { at } else { words.len() - 1 - at };
                        let stored = s.get_or_insert_with(words[i].as_str(), |w| {
                            made.fetch_add(1, Ordering::Relaxed);
                            Arc::from(w)
                        });
                        assert_eq!(&**stored, words[i]);
                        addresses[i] = stored.as_ptr() as usize;
                    }
                    addresses
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(set.len(), words.len());
    let guard = set.guard();
    for (i, word) in words.iter().enumerate() {
        let stored = set.get(word.as_str(), &guard).unwrap().as_ptr() as usize;
        for addresses in &seen {
            assert_eq!(addresses[i], stored, "{word} was interned twice");
        }
    }
    // Each word was made once, plus once for every race lost between a miss and the insert.
    let made = made.load(Ordering::Relaxed);
    assert!(made >= words.len() && made <= THREADS * words.len());
}

#[test]
fn every_value_is_dropped_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let n = scaled(5_000) as u64;
    {
        let set: HashSet<Tracked> = HashSet::new();
        let s = set.pin();
        for i in 0..n {
            assert!(s.insert(Tracked::new(i, &live)));
            // A duplicate is dropped at once: the stored value stays.
            assert!(!s.insert(Tracked::new(i, &live)));
            assert_eq!(s.get_or_insert(Tracked::new(i, &live)).get(), i);
        }
        assert_eq!(live.load(Ordering::SeqCst), n as usize);
        // A fallible `make` runs only on a miss; a failure inserts nothing (`n` is even: five
        // of the ten new values are made, five refused).
        let mut made = 0;
        for i in 0..n + 10 {
            let got = s.get_or_try_insert_with(&i, |&k| {
                made += 1;
                if k % 2 == 0 {
                    Ok(Tracked::new(k, &live))
                } else {
                    Err(k)
                }
            });
            match got {
                Ok(v) => assert_eq!(v.get(), i),
                Err(k) => assert!(k == i && i >= n && i % 2 == 1, "{i} refused"),
            }
        }
        assert_eq!(made, 10, "make ran on a hit");
        assert_eq!(live.load(Ordering::SeqCst), n as usize + 5);
        assert_eq!(s.len(), n as usize + 5);
        for i in 0..n / 4 {
            assert!(s.remove(&i));
        }
        for i in n / 4..n / 2 {
            assert_eq!(s.take(&i).map(Tracked::get), Some(i));
        }
        s.retain(|v| v.get() % 2 == 0);
        drop(s);
        let left = set.len();
        assert_eq!(
            settle_reclamation(&live, left),
            left,
            "removed values freed"
        );

        // `into_iter` hands some out and drops the rest with the iterator.
        let mut it = set.into_iter();
        let taken: Vec<Tracked> = it.by_ref().take(left / 2).collect();
        drop(it);
        assert_eq!(live.load(Ordering::SeqCst), taken.len());
    }
    assert_eq!(settle_reclamation(&live, 0), 0);

    let set: HashSet<Tracked> = (0..n).map(|i| Tracked::new(i, &live)).collect();
    set.clear(&set.guard());
    assert_eq!(settle_reclamation(&live, 0), 0, "cleared values freed");
    drop(set);

    // `take_owned` hands the stored value over: it drops with the caller, at once.
    let mut set: HashSet<Tracked> = (0..n).map(|i| Tracked::new(i, &live)).collect();
    for i in 0..n / 2 {
        let owned = set.take_owned(&i).expect("present");
        assert_eq!(owned.get(), i);
        assert_eq!(set.take_owned(&i).map(|v| v.get()), None);
        drop(owned);
        assert_eq!(live.load(Ordering::SeqCst), (n - i - 1) as usize);
    }
    drop(set);
    assert_eq!(live.load(Ordering::SeqCst), 0);

    let set: HashSet<Tracked> = (0..n).map(|i| Tracked::new(i, &live)).collect();
    drop(set);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "a dropped set drops its values"
    );
}

#[test]
fn panicking_hash_and_eq_leave_the_set_usable() {
    let key = |id| TouchyKey {
        id,
        poisoned: false,
    };
    let n = scaled(200) as u64;
    let poisoned = TouchyKey {
        id: n,
        poisoned: true,
    };
    // With a constant hasher every value shares one probe sequence, in about the order of
    // insertion: lookups of the values inserted after the poisoned one compare with it.
    let set: HashSet<TouchyKey, ConstantState> = HashSet::default();
    let s = set.pin();
    for i in 0..n / 2 {
        s.insert(key(i));
    }
    s.insert(poisoned.clone());
    for i in n / 2..n {
        s.insert(key(i));
    }
    PANIC.store(true, Ordering::SeqCst);
    // `Hash` panics on the poisoned value itself...
    assert!(catch_unwind(AssertUnwindSafe(|| s.insert(poisoned.clone()))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.get_or_insert(poisoned.clone()))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.contains(&poisoned))).is_err());
    // ...and `Eq` part-way through the probes of values stored after it, or absent.
    assert!(catch_unwind(AssertUnwindSafe(|| s.contains(&key(n - 1)))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.insert(key(n + 1)))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.get_or_insert(key(n + 2)))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.remove(&key(n - 1)))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| s.retain(|_| panic!("keep panicked")))).is_err());
    PANIC.store(false, Ordering::SeqCst);
    assert_eq!(s.len(), n as usize + 1);
    assert!((0..=n).all(|i| s.contains(&key(i))));
    assert!(!s.contains(&key(n + 1)) && !s.contains(&key(n + 2)));
    assert!(!s.insert(poisoned));
}

#[test]
fn degenerate_hashers_keep_the_set_correct() {
    // Any hasher, even a constant one, keeps the set correct.
    let set: HashSet<u32, FewBitsState> = (0..500).collect();
    let guard = set.guard();
    assert!((0..500).all(|v| set.contains(&v, &guard)));
    assert!(!set.contains(&500, &guard));
    let set: HashSet<u32, ConstantState> = (0..100).chain(0..100).collect();
    assert_eq!(set.len(), 100);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16),
    GetOrInsert(u16),
    Remove(u16),
    Take(u16),
    Contains(u16),
    RetainEven,
    Len,
}

fn op(values: u16) -> impl Strategy<Value = Op> {
    let v = 0..values;
    prop_oneof![
        8 => v.clone().prop_map(Op::Insert),
        2 => v.clone().prop_map(Op::GetOrInsert),
        5 => v.clone().prop_map(Op::Remove),
        2 => v.clone().prop_map(Op::Take),
        6 => v.prop_map(Op::Contains),
        1 => Just(Op::RetainEven),
        1 => Just(Op::Len),
    ]
}

fn run<S: BuildHasher + Default>(ops: &[Op]) {
    let ours: HashSet<u16, S> = HashSet::default();
    let mut model = std::collections::HashSet::new();
    let s = ours.pin();
    for op in ops {
        match *op {
            Op::Insert(v) => assert_eq!(s.insert(v), model.insert(v)),
            Op::GetOrInsert(v) => {
                assert_eq!(*s.get_or_insert(v), v);
                model.insert(v);
            }
            Op::Remove(v) => assert_eq!(s.remove(&v), model.remove(&v)),
            Op::Take(v) => assert_eq!(s.take(&v).copied(), model.take(&v)),
            Op::Contains(v) => assert_eq!(s.contains(&v), model.contains(&v)),
            Op::RetainEven => {
                s.retain(|v| v % 2 == 0);
                model.retain(|v| v % 2 == 0);
            }
            Op::Len => assert_eq!(s.len(), model.len()),
        }
    }
    let mut ours_sorted: Vec<u16> = s.iter().copied().collect();
    ours_sorted.sort_unstable();
    let mut model_sorted: Vec<u16> = model.into_iter().collect();
    model_sorted.sort_unstable();
    assert_eq!(ours_sorted, model_sorted);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 128 }, ..ProptestConfig::default() })]

    #[test]
    fn matches_std_across_resizes(ops in prop::collection::vec(op(2048), 1..2000)) {
        run::<RandomState>(&ops);
    }

    #[test]
    fn matches_std_with_a_constant_hasher(ops in prop::collection::vec(op(48), 1..300)) {
        run::<ConstantState>(&ops);
    }

    #[test]
    fn set_operations_match_std(
        a in prop::collection::vec(0..512u16, 0..400),
        b in prop::collection::vec(0..512u16, 0..400),
    ) {
        algebra_matches_std::<RandomState>(&a, &b);
    }

    #[test]
    fn set_operations_match_std_with_a_constant_hasher(
        a in prop::collection::vec(0..64u16, 0..40),
        b in prop::collection::vec(0..64u16, 0..40),
    ) {
        algebra_matches_std::<ConstantState>(&a, &b);
    }
}

/// The set's iterators print their type (and the owned one the count left), not their values,
/// whose type need not be `Debug`.
#[test]
fn set_iterators_print_their_type() {
    #[derive(PartialEq, Eq, Hash)]
    struct Opaque(u8);
    let a: lockfree_map::HashSet<Opaque> = (0..3).map(Opaque).collect();
    let b: lockfree_map::HashSet<Opaque> = (2..4).map(Opaque).collect();
    let (ra, rb) = (a.pin(), b.pin());
    assert_eq!(format!("{:?}", ra.iter()), "Iter { .. }");
    assert_eq!(format!("{:?}", ra.difference(&b)), "Difference { .. }");
    assert_eq!(format!("{:?}", ra.intersection(&b)), "Intersection { .. }");
    assert_eq!(
        format!("{:?}", ra.symmetric_difference(&b)),
        "SymmetricDifference { .. }"
    );
    assert_eq!(format!("{:?}", ra.union(&b)), "Union { .. }");
    drop((ra, rb));
    let mut owned = a.into_iter();
    owned.next();
    assert_eq!(format!("{owned:?}"), "IntoIter { remaining: 2, .. }");
}

/// The owning iterator says its count exactly and counts down to `(0, Some(0))`. (No test read
/// it: the mutation run of stop 46.)
#[test]
fn the_owning_iterator_counts_down_to_zero() {
    const N: usize = 50;
    let set: HashSet<u32> = (0..N as u32).collect();
    common::counts_down(set.into_iter(), N);
}

/// `SetRef::repin` repins the guard the `SetRef` holds: what was removed before can be freed
/// while the `SetRef` lives on. (With it doing nothing, every other test passed, its doc test
/// included: the mutation run of stop 46.)
#[test]
fn a_repinned_set_ref_lets_earlier_garbage_go() {
    let live = Arc::new(AtomicUsize::new(0));
    let set: HashSet<Tracked> =
        HashSet::with_collector(0, RandomState::new(), lockfree_map::Collector::new());
    let mut s = set.pin();
    assert!(s.insert(Tracked::new(1, &live)));
    assert!(s.remove(&1));
    common::repin_until_freed(&live, || {
        s.repin();
        s.guard().flush();
    });
    assert!(s.insert(Tracked::new(2, &live)));
    assert!(s.contains(&2));
}

/// A set's bulk inserts (`extend`, and with it `collect`; deserialising; `par_extend`) pin anew
/// as they go, as the map's do: pinned once for the whole input, they held back the freeing of
/// whatever any map of their collector retired meanwhile. Here a map on the set's collector
/// replaces a value for every value the set takes in; with one pin all 20,000 replaced values
/// lived until the `extend` returned (found by a review at stop 49).
#[test]
fn a_bulk_insert_into_a_set_lets_its_collector_free_as_it_goes() {
    use lockfree_map::{Collector, HashMap};
    let collector = Collector::new();
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> =
        HashMap::with_collector(0, RandomState::new(), collector.clone());
    let set: HashSet<u64> = HashSet::with_collector(0, RandomState::new(), collector);
    let n = scaled(20_000) as u64;
    let mut most = 0;
    let mut into = &set;
    into.extend((0..n).map(|i| {
        // The map's own guard, dropped at once: only the set's pin can hold its garbage.
        map.insert(0, Tracked::new(i, &live), &map.guard());
        most = most.max(live.load(Ordering::SeqCst));
        i % 10
    }));
    assert_eq!(set.len(), 10);
    assert!(
        most < (n as usize / 4).max(1_000),
        "{most} replaced values alive at once"
    );
    drop(map);
    drop(set);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// `par_extend` pins anew as it goes too (each rayon worker's pin, every `BULK_REPIN` values).
/// One worker: with two, one preempted while pinned held the private collector's epoch for its
/// time slice whatever the other's pins did (6,198 values alive at once in a CI run beside
/// Miri). Up to five tries all the same: one must stay under the bound.
#[cfg(feature = "rayon")]
#[test]
fn a_parallel_bulk_insert_into_a_set_lets_its_collector_free_as_it_goes() {
    use lockfree_map::{Collector, HashMap};
    use rayon::prelude::*;
    let n = scaled(20_000) as u64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let try_once = || {
        let collector = Collector::new();
        let live = Arc::new(AtomicUsize::new(0));
        let map: HashMap<u64, Tracked> =
            HashMap::with_collector(0, RandomState::new(), collector.clone());
        let set: HashSet<u64> = HashSet::with_collector(0, RandomState::new(), collector);
        let most = AtomicUsize::new(0);
        pool.install(|| {
            let mut into = &set;
            into.par_extend((0..n).into_par_iter().map(|i| {
                map.insert(i % 2, Tracked::new(i, &live), &map.guard());
                most.fetch_max(live.load(Ordering::SeqCst), Ordering::SeqCst);
                i % 10
            }));
        });
        assert_eq!(set.len(), 10);
        drop(map);
        drop(set);
        assert_eq!(live.load(Ordering::SeqCst), 0);
        most.into_inner()
    };
    let tries: Vec<usize> = (0..5)
        .map(|_| try_once())
        .scan(false, |done, most| {
            let first = !*done;
            *done |= most < (n as usize / 4).max(1_000);
            first.then_some(most)
        })
        .collect();
    assert!(
        tries.iter().any(|&most| most < (n as usize / 4).max(1_000)),
        "replaced values alive at once, by try: {tries:?}"
    );
}
