//! Inserts racing inserts, removes and reads. Bounded search: `LOOM_MAX_PREEMPTIONS` (2 by
//! default in `scripts/loom.sh`).
#![cfg(loom)]

use lockfree_map_loom_tests::{map, model, Map};
use loom::sync::Arc;
use loom::thread;

/// Two inserts of one key: exactly one finds it absent, the other replaces that value.
#[test]
fn insert_vs_insert_same_key() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().insert(1, 20).copied());
        let mine = m.pin().insert(1, 10).copied();
        let theirs = t.join().unwrap();
        let last = *m.pin().get(&1).unwrap();
        match (mine, theirs) {
            (None, Some(10)) => assert_eq!(last, 20),
            (Some(20), None) => assert_eq!(last, 10),
            other => panic!("impossible outcome {other:?}"),
        }
        assert_eq!(m.len(), 1);
    });
}

/// `try_insert(1, value)` as plain values: `Ok(stored)`, or `Err((current, given back))`.
fn try_put(m: &Map<u64>, value: u64) -> Result<u64, (u64, u64)> {
    let m = m.pin();
    let outcome = m
        .try_insert(1, value)
        .copied()
        .map_err(|e| (*e.current, e.not_inserted));
    outcome
}

/// Two `try_insert`s of one key (a set's `insert`): exactly one stores its value; the other is
/// told the key is present, sees the winner's value and gets its own back. The loser may have
/// boxed its entry already (it lost the CAS) or not (it saw the key first): both paths give the
/// value back.
#[test]
fn try_insert_vs_try_insert_same_key() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || try_put(&m2, 20));
        let mine = try_put(&m, 10);
        let theirs = t.join().unwrap();
        let last = *m.pin().get(&1).unwrap();
        match (mine, theirs) {
            (Ok(10), Err((10, 20))) => assert_eq!(last, 10),
            (Err((20, 10)), Ok(20)) => assert_eq!(last, 20),
            other => panic!("impossible outcome {other:?}"),
        }
        assert_eq!(m.len(), 1);
    });
}

/// An insert and a remove of one key agree on an order.
#[test]
fn insert_vs_remove() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().remove(&1).copied());
        let inserted = m.pin().insert(1, 7).copied();
        let removed = t.join().unwrap();
        assert_eq!(inserted, None);
        let now = m.pin().get(&1).copied();
        match removed {
            None => assert_eq!(now, Some(7)),
            Some(7) => assert_eq!(now, None),
            Some(other) => panic!("removed a value never inserted: {other}"),
        }
        assert_eq!(m.len(), now.iter().count());
    });
}

/// Tag publication: two keys in one group, inserted one after the other; a reader that sees the
/// second must see the first (a slot whose tag is not written yet must not hide a finished insert).
#[test]
fn get_during_insert_sees_every_finished_insert() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        // Keys 0 and 2 share home group 0 and their tag (same top bits).
        let t = thread::spawn(move || {
            let p = m2.pin();
            p.insert(0, 100);
            p.insert(2, 102);
        });
        let (second, first) = {
            let p = m.pin();
            (p.get(&2).copied(), p.get(&0).copied())
        };
        if second.is_some() {
            assert_eq!(first, Some(100), "saw the second insert but not the first");
        }
        t.join().unwrap();
        let p = m.pin();
        assert_eq!((p.get(&0), p.get(&2)), (Some(&100), Some(&102)));
    });
}

/// Two inserters of different keys racing for the same first empty slot both land, once each.
#[test]
fn inserts_racing_for_one_slot_both_land() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().insert(2, 2).copied());
        assert_eq!(m.pin().insert(4, 4).copied(), None);
        assert_eq!(t.join().unwrap(), None);
        let p = m.pin();
        assert_eq!((p.get(&2), p.get(&4)), (Some(&2), Some(&4)));
        assert_eq!(p.iter().count(), 2);
        assert_eq!(m.len(), 2);
    });
}

/// A slot written but not yet tagged (its inserter preempted between the CAS and the tag write)
/// must not make a lookup stop early: a thread that inserted past it must find its own key.
/// Keys 0, 2 and 4 share home group 0 (two slots under loom), so the third lands in group 1.
#[test]
fn lagging_tags_never_hide_finished_inserts() {
    model(|| {
        let m = Arc::new(map::<u64>());
        let m2 = m.clone();
        let t = thread::spawn(move || {
            m2.pin().insert(0, 0);
        });
        {
            let p = m.pin();
            p.insert(2, 2);
            p.insert(4, 4);
            assert_eq!(p.get(&4), Some(&4), "own finished insert not visible");
            assert_eq!(p.get(&2), Some(&2));
        }
        t.join().unwrap();
        let p = m.pin();
        assert_eq!(p.iter().count(), 3);
    });
}
