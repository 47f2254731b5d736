//! Every replaced, removed and moved value is dropped exactly once. The values hold a
//! `loom::sync::Arc`, so loom fails an execution that leaks one ("Arc leaked"), and a double
//! drop or a read after drop trips the value's poison assertion. Bounded search.
#![cfg(loom)]

use lockfree_map_loom_tests::{map, model, KeyIsHash, Tracked};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

#[test]
fn replaced_removed_and_moved_values_drop_exactly_once() {
    model(|| {
        let live = Arc::new(AtomicUsize::new(0));
        let m = Arc::new(map::<Tracked>());
        {
            let p = m.pin();
            for k in 0..4 {
                p.insert(k, Tracked::new(k, &live));
            }
        }
        let (m2, live2) = (m.clone(), live.clone());
        let t = thread::spawn(move || {
            let p = m2.pin();
            // Starts a migration (fifth key) and replaces a key that must be moved.
            p.insert(4, Tracked::new(4, &live2));
            p.insert(0, Tracked::new(10, &live2)).map(Tracked::get)
        });
        let removed = m.pin().remove(&1).map(Tracked::get);
        let replaced = t.join().unwrap();
        assert_eq!(removed, Some(1));
        assert_eq!(replaced, Some(0));
        let p = m.pin();
        assert_eq!(p.get(&0).map(Tracked::get), Some(10));
        drop(p);
        drop(m);
        // What is left to free sits in the epoch's bags; loom's leak check at the end of the
        // execution covers it. What is live now can only be what was retired.
        assert!(live.load(Ordering::SeqCst) <= 2);
    });
}

/// Keys are dropped exactly once as well: an update's new entry gets a clone of the stored key,
/// and the entry it replaces is retired with the old one. Racing a second update and a remove, a double drop
/// trips the key's poison check, a leak loom's Arc check, and no reader sees a dropped key.
#[test]
fn keys_of_updated_entries_drop_exactly_once() {
    model(|| {
        let keys = Arc::new(AtomicUsize::new(0));
        let m: Arc<lockfree_map::HashMap<Tracked, u64, KeyIsHash>> =
            Arc::new(lockfree_map::HashMap::with_hasher(KeyIsHash));
        m.pin().insert(Tracked::new(1, &keys), 0);
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            let updated = p.update(&1, |v| v + 1).copied();
            // The key read through whatever entry is current now is alive.
            let key = p.get_key_value(&1).map(|(k, _)| k.get());
            (updated, key)
        });
        let p = m.pin();
        let mine = p.update(&1, |v| v + 10).copied();
        let removed = p.remove(&1).copied();
        drop(p);
        let (theirs, key) = t.join().unwrap();
        // Their update lands before ours, between our update and our remove, or after the
        // remove (and then finds nothing); the remove returns what the updates before it made.
        match (mine, theirs, removed) {
            (Some(11), Some(1), Some(11)) | (Some(10), Some(11), Some(11)) => {
                assert!(matches!(key, None | Some(1)));
            }
            (Some(10), None, Some(10)) => assert_eq!(key, None),
            other => panic!("impossible outcome {other:?}"),
        }
        assert!(m.is_empty());
        drop(m);
        // What is left can only be retired keys (the first key and the updates' clones of it),
        // waiting in the epoch's bags; loom's leak check at the end of the execution covers them.
        assert!(keys.load(Ordering::SeqCst) <= 3);
    });
}

/// Keys that `update` hands on to the new entry by a bitwise copy instead of a clone (`String`,
/// `Vec<u8>`, `Arc<str>`, `Arc<[u8]>`: `key_hands_on` in `src/raw/mod.rs`) are dropped exactly
/// once as well: one entry owns the key at any time, the loser of a race forgets its copy, and
/// a replaced entry is retired without the key. The key is a `std::sync::Arc<str>`, so its
/// strong count says how many owners dropped it; the map has a private collector, so dropping
/// the map (with every guard gone) runs every deferred drop and the count must be back to the
/// test's own handle. A reader racing the updates reads the key's bytes through whichever entry
/// it finds. (A version that drops the loser's copy instead of forgetting it fails this model:
/// the process aborts on the double free.)
#[test]
fn keys_handed_on_by_updates_drop_exactly_once() {
    use lockfree_map::{Collector, HashMap};
    model(|| {
        let probe: std::sync::Arc<str> = std::sync::Arc::from("k");
        let m: Arc<HashMap<std::sync::Arc<str>, u64, KeyIsHash>> =
            Arc::new(HashMap::with_collector(0, KeyIsHash, Collector::new()));
        m.pin().insert(probe.clone(), 0);
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            let updated = p.update("k", |v| v + 1).copied();
            let key = p.get_key_value("k").map(|(k, _)| String::from(&**k));
            (updated, key)
        });
        let p = m.pin();
        let mine = p.update("k", |v| v + 10).copied();
        let removed = p.remove("k").copied();
        drop(p);
        let (theirs, key) = t.join().unwrap();
        match (mine, theirs, removed) {
            (Some(11), Some(1), Some(11)) | (Some(10), Some(11), Some(11)) => {
                assert!(matches!(key.as_deref(), None | Some("k")));
            }
            (Some(10), None, Some(10)) => assert_eq!(key, None),
            other => panic!("impossible outcome {other:?}"),
        }
        assert!(m.is_empty());
        drop(m);
        assert_eq!(std::sync::Arc::strong_count(&probe), 1);
    });
}

/// An insert over a present key of those types keeps the stored key (the new entry takes its
/// bytes) and drops its own at once: racing two inserts of fresh, equal `Arc<str>` keys and a
/// remove, every `Arc` ends with the test's handle alone, the entry a remove takes has the
/// first key unless the other thread's insert came after the remove, and a loser of a CAS gives
/// back its own key, not the copy (dropping the copy would free the stored key twice).
#[test]
fn keys_kept_by_inserts_drop_exactly_once() {
    use lockfree_map::{Collector, HashMap};
    use std::sync::Arc as StdArc;
    model(|| {
        let first: StdArc<str> = StdArc::from("k");
        let mine: StdArc<str> = StdArc::from("k");
        let theirs: StdArc<str> = StdArc::from("k");
        let m: Arc<HashMap<StdArc<str>, u64, KeyIsHash>> =
            Arc::new(HashMap::with_collector(0, KeyIsHash, Collector::new()));
        m.pin().insert(first.clone(), 0);
        let (m2, key) = (m.clone(), theirs.clone());
        let t = thread::spawn(move || m2.pin().insert(key, 1).copied());
        let p = m.pin();
        let replaced = p.insert(mine.clone(), 10).copied();
        let removed = p
            .remove_entry("k")
            .map(|(k, v)| (StdArc::ptr_eq(k, &first), *v));
        drop(p);
        let other = t.join().unwrap();
        match (replaced, other, removed) {
            // Theirs first, or between ours and the remove: the first key stayed.
            (Some(1), Some(0), Some((true, 10))) | (Some(0), Some(10), Some((true, 1))) => {
                assert!(m.is_empty());
            }
            // Theirs after the remove: a new entry, with their key.
            (Some(0), None, Some((true, 10))) => {
                let p = m.pin();
                let (k, v) = p.get_key_value("k").unwrap();
                assert!(StdArc::ptr_eq(k, &theirs));
                assert_eq!(*v, 1);
            }
            other => panic!("impossible outcome {other:?}"),
        }
        drop(m);
        for key in [&first, &mine, &theirs] {
            assert_eq!(StdArc::strong_count(key), 1);
        }
    });
}

/// `len` after concurrent inserts and removes equals what iteration finds.
#[test]
fn len_after_concurrent_inserts_and_removes() {
    model(|| {
        let m = Arc::new(map::<u64>());
        m.pin().insert(0, 0);
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            p.insert(1, 1);
            p.insert(2, 2);
        });
        m.pin().remove(&0);
        t.join().unwrap();
        let p = m.pin();
        assert_eq!(m.len(), 2);
        assert_eq!(p.iter().count(), 2);
    });
}
