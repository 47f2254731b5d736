//! Read-modify-write operations racing each other and removes. Bounded search.
#![cfg(loom)]

use lockfree_map::Operation;
use lockfree_map_loom_tests::{map, model};
use loom::sync::Arc;
use loom::thread;

/// Two increments through `update` never lose one.
#[test]
fn concurrent_updates_lose_nothing() {
    model(|| {
        let m = Arc::new(map::<u64>());
        m.pin().insert(1, 0);
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().update(&1, |v| v + 1).copied());
        let mine = m.pin().update(&1, |v| v + 1).copied();
        let theirs = t.join().unwrap();
        let mut seen = [mine.unwrap(), theirs.unwrap()];
        seen.sort_unstable();
        assert_eq!(seen, [1, 2]);
        assert_eq!(m.pin().get(&1), Some(&2));
    });
}

/// An update never brings back a removed key, and a remove returns what the update stored if it
/// came second.
#[test]
fn update_vs_remove() {
    model(|| {
        let m = Arc::new(map::<u64>());
        m.pin().insert(1, 0);
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().remove(&1).copied());
        let updated = m.pin().update(&1, |v| v + 1).copied();
        let removed = t.join().unwrap();
        match (updated, removed) {
            (Some(1), Some(1)) | (None, Some(0)) => {}
            other => panic!("impossible outcome {other:?}"),
        }
        assert_eq!(m.pin().get(&1), None);
        assert_eq!(m.len(), 0);
    });
}

/// `compute` (insert 1 if absent, else add 10) against a plain insert of 5.
#[test]
fn compute_vs_insert() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().insert(1, 5).copied());
        m.pin().compute(1, |cur| match cur {
            None => Operation::<u64, ()>::Insert(1),
            Some((_, v)) => Operation::Insert(v + 10),
        });
        let replaced = t.join().unwrap();
        let last = *m.pin().get(&1).unwrap();
        match replaced {
            // The insert came first; compute added to it.
            None => assert_eq!(last, 15),
            // compute came first and inserted 1; the insert replaced it.
            Some(1) => assert_eq!(last, 5),
            Some(other) => panic!("replaced a value never stored: {other}"),
        }
    });
}

/// `update_or_insert_with` (add 1, or make 100) against an insert of 5 and then its removal, so
/// that the call can find the key absent, then present, then absent again between attempts:
/// `make` runs at most once, and the value stored follows one order of the three operations.
#[test]
fn update_or_insert_vs_insert_then_remove() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let m2 = m2.pin();
            let inserted = m2.insert(1, 5).copied();
            (inserted, m2.remove(&1).copied())
        });
        let makes = std::cell::Cell::new(0);
        let stored = *m.pin().update_or_insert_with(
            1,
            |v| v + 1,
            || {
                makes.set(makes.get() + 1);
                100
            },
        );
        let (inserted, removed) = t.join().unwrap();
        let last = m.pin().get(&1).copied();
        assert!(makes.get() <= 1, "`make` ran {} times", makes.get());
        match (stored, inserted, removed, last) {
            // First: made 100, which the insert replaced.
            (100, Some(100), Some(5), None)
            // Between the insert and the remove: updated 5 to 6, which the remove took.
            | (6, None, Some(6), None)
            // Last: made 100 into the emptied map.
            | (100, None, Some(5), Some(100)) => {}
            other => panic!("impossible outcome {other:?}"),
        }
    });
}
