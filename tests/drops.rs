//! Every key and value is dropped exactly once: after removal or replacement (once no guard can
//! see it), on `clear`, and when the map drops. The tracked values poison themselves on drop, so
//! a double drop or a read after free fails an assertion.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{settle_reclamation, Tracked};
use lockfree_map::HashMap;

#[test]
fn dropping_the_map_drops_every_entry_once() {
    let live = Arc::new(AtomicUsize::new(0));
    {
        let map = HashMap::new();
        let m = map.pin();
        for i in 0..10_000 {
            m.insert(Tracked::new(i, &live), Tracked::new(i, &live));
        }
        assert_eq!(live.load(Ordering::SeqCst), 20_000);
    }
    assert_eq!(settle_reclamation(&live, 0), 0);
}

#[test]
fn replaced_and_removed_entries_are_dropped_once_after_the_guard() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    // 200 under Miri: several growths still (1,000 took a twentieth of CI's Miri run).
    let n = common::sized(1_000, 200);
    {
        let g = map.guard();
        for i in 0..n as u64 {
            map.insert(i, Tracked::new(i, &live), &g);
        }
        let old = map.insert(7, Tracked::new(70, &live), &g).unwrap();
        let removed = map.remove(&8, &g).unwrap();
        // Still readable: our guard keeps them alive.
        assert_eq!(old.get(), 7);
        assert_eq!(removed.get(), 8);
        assert_eq!(live.load(Ordering::SeqCst), n + 1);
    }
    // n - 1 in the map (7 replaced, 8 removed): the two retired ones go once the guard is gone.
    assert_eq!(settle_reclamation(&live, n - 1), n - 1);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

#[test]
fn entries_moved_by_resizes_are_dropped_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    let m = map.pin();
    // Grow through many resizes, then shrink back down by removals.
    for i in 0..50_000 {
        m.insert(i, Tracked::new(i, &live));
    }
    for i in 0..49_000 {
        assert_eq!(m.remove(&i).map(Tracked::get), Some(i));
    }
    for i in 49_000..50_000 {
        assert_eq!(m.get(&i).map(Tracked::get), Some(i));
    }
    drop(m);
    assert_eq!(settle_reclamation(&live, 1_000), 1_000);
    map.pin().clear();
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// A removal that finds the table sparse only starts the shrink, so a map emptied by removals is
/// often dropped or drained with the shrink still being counted or moved. Each way, at removal
/// counts around the shrink's start (the states before it, while it is counted, while it is
/// moved and after it), every entry left is handed out or dropped once.
#[test]
fn a_map_left_mid_shrink_drops_or_hands_out_every_entry_once() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::BuildHasherDefault;
    let n = 20_000u64;
    // The capacities the grid's maps had when taken apart: the full table's and, once a shrink
    // was promoted, a smaller one. Both must occur, or the grid missed the states it is for.
    let mut capacities = std::collections::BTreeSet::new();
    // Past an eighth of the table's slots live, a sampled removal starts the shrink; the moves
    // take about a chunk a removal after it. The stress geometry's one-group chunks are counted
    // and moved over many more operations than the grid spans, so there the lookups after the
    // removals (which help a migration once no writer is left to) carry it on.
    let stress = option_env!("LOCKFREE_MAP_STRESS_GEOMETRY").is_some();
    for removed in (15_000..19_000).step_by(250) {
        for drain in [false, true] {
            let live = Arc::new(AtomicUsize::new(0));
            let map: HashMap<u64, Tracked, BuildHasherDefault<DefaultHasher>> =
                HashMap::with_hasher(BuildHasherDefault::default());
            {
                let m = map.pin();
                for i in 0..n {
                    m.insert(i, Tracked::new(i, &live));
                }
                for i in 0..removed {
                    assert_eq!(m.remove(&i).map(Tracked::get), Some(i));
                }
                if stress {
                    for _ in 0..(removed - 15_000) * 16 {
                        assert!(m.get(&(n - 1)).is_some());
                    }
                }
                capacities.insert(m.capacity());
            }
            let kept = (n - removed) as usize;
            assert_eq!(settle_reclamation(&live, kept), kept, "{removed} removed");
            if drain {
                let mut it = map.into_iter();
                assert_eq!(it.len(), kept);
                let taken: Vec<(u64, Tracked)> = it.by_ref().take(kept / 2).collect();
                for (k, v) in &taken {
                    assert!(
                        *k >= removed && v.get() == *k,
                        "{removed} removed: yielded {k}"
                    );
                }
                drop(it);
                assert_eq!(live.load(Ordering::SeqCst), kept / 2, "{removed} removed");
            } else {
                drop(map);
                assert_eq!(live.load(Ordering::SeqCst), 0, "{removed} removed");
            }
        }
    }
    assert!(
        capacities.len() >= 2,
        "no shrink was promoted within the grid: capacities {capacities:?}"
    );
}

#[test]
fn update_compute_and_replace_if_drop_what_they_replace() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    {
        let m = map.pin();
        m.insert(1u64, Tracked::new(0, &live));
        for i in 1..=100 {
            let l = live.clone();
            m.update(&1, move |v| Tracked::new(v.get() + i - i + 1, &l));
        }
        assert_eq!(m.get(&1).map(Tracked::get), Some(100));
        // A try_insert that fails hands the value back; dropping it is ours to do.
        let err = m.try_insert(1, Tracked::new(5, &live)).unwrap_err();
        drop(err.not_inserted);
        // A get_or_insert_with that finds the key never builds a value.
        m.get_or_insert_with(1, || unreachable!());
        // A replace_if that replaces drops the old value; one refused hands the value back.
        let old = m.replace_if(&1, |_, v| v.get() == 100, Tracked::new(200, &live));
        assert_eq!(old.map(Tracked::get), Ok(100));
        let back = m.replace_if(&1, |_, v| v.get() == 100, Tracked::new(300, &live));
        assert_eq!(back.as_ref().map_err(Tracked::get).unwrap_err(), 300);
        drop(back);
        let back = m.replace_if(&2, |_, _| true, Tracked::new(400, &live));
        assert!(back.is_err());
        // A failed make inserts nothing; one that succeeds inserts what it made.
        let failed: Result<_, &str> = m.get_or_try_insert_with(2, || Err("no"));
        assert_eq!(failed.map(Tracked::get), Err("no"));
        let made = m.get_or_try_insert_with(2, || Ok::<_, ()>(Tracked::new(2, &live)));
        assert_eq!(made.map(Tracked::get), Ok(2));
        assert_eq!(m.remove(&2).map(Tracked::get), Some(2));
    }
    assert_eq!(settle_reclamation(&live, 1), 1);
    let owned: Vec<(u64, Tracked)> = map.into_iter().collect();
    assert_eq!(owned.len(), 1);
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(owned);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// The owning iterator takes entries out one at a time: what it yields is the caller's to drop,
/// and what it has not yielded is dropped with it, each exactly once.
#[test]
fn into_iter_hands_out_entries_and_drops_the_rest_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let n = common::scaled(20_000) as u64;
    let taking = n as usize / 4;
    let map = HashMap::new();
    {
        let m = map.pin();
        for i in 0..n {
            m.insert(Tracked::new(i, &live), Tracked::new(i * 3, &live));
        }
        // Replacements and removals leave retired entries and tombstones behind.
        for i in (0..n).step_by(4) {
            m.insert(Tracked::new(i, &live), Tracked::new(i * 3, &live));
        }
        for i in (1..n).step_by(4) {
            m.remove(&Tracked::new(i, &live));
        }
    }
    let kept = n - n / 4;
    assert_eq!(
        settle_reclamation(&live, 2 * kept as usize),
        2 * kept as usize
    );
    let mut it = map.into_iter();
    assert_eq!(it.len(), kept as usize);
    let taken: Vec<(Tracked, Tracked)> = it.by_ref().take(taking).collect();
    assert_eq!(it.len(), kept as usize - taking);
    let mut keys: Vec<u64> = taken.iter().map(|(k, _)| k.get()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), taking, "a key was yielded twice");
    for (k, v) in &taken {
        assert_eq!(v.get(), k.get() * 3);
        assert_ne!(k.get() % 4, 1, "a removed key was yielded");
    }
    drop(it);
    assert_eq!(live.load(Ordering::SeqCst), 2 * taking);
    drop(taken);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// `drain` hands out entries as `into_iter` does, and leaves the map empty, at the size it was
/// made with, and usable; a set's `drain` likewise.
#[test]
fn drain_hands_out_entries_drops_the_rest_once_and_leaves_the_map_usable() {
    let live = Arc::new(AtomicUsize::new(0));
    let n = common::scaled(20_000) as u64;
    let mut map = HashMap::with_capacity(100);
    let made = map.capacity();
    {
        let m = map.pin();
        for i in 0..n {
            m.insert(Tracked::new(i, &live), Tracked::new(i * 3, &live));
        }
        for i in (1..n).step_by(4) {
            m.remove(&Tracked::new(i, &live));
        }
    }
    let kept = (n - n / 4) as usize;
    assert_eq!(settle_reclamation(&live, 2 * kept), 2 * kept);
    let mut it = map.drain();
    let taken: Vec<(Tracked, Tracked)> = it.by_ref().take(kept / 2).collect();
    assert_eq!(it.len(), kept - kept / 2);
    drop(it);
    assert_eq!(live.load(Ordering::SeqCst), 2 * (kept / 2));
    for (k, v) in &taken {
        assert_eq!(v.get(), k.get() * 3);
    }
    drop(taken);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert!(map.is_empty());
    assert_eq!(
        map.capacity(),
        made,
        "drain left another size than the map was made with"
    );
    {
        let m = map.pin();
        m.insert(Tracked::new(1, &live), Tracked::new(2, &live));
        assert_eq!(m.get(&Tracked::new(1, &live)).map(Tracked::get), Some(2));
    }
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);

    let mut set: lockfree_map::HashSet<Tracked> = lockfree_map::HashSet::new();
    for i in 0..100 {
        set.pin().insert(Tracked::new(i, &live));
    }
    let mut values: Vec<u64> = set.drain().map(|v| v.get()).collect();
    values.sort_unstable();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    assert!(set.is_empty());
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A value replaced through `&mut` (`get_mut`, `iter_mut`, `values_mut`) is an assignment: the
/// old value drops there and then, on this thread, with no entry retired; an entry removed
/// through `&mut` (`remove_entry_owned`, `remove_owned`) is the caller's, and drops with it; the
/// map's drop drops the values put in, once.
#[test]
fn values_assigned_through_mut_access_drop_at_once_and_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let n = common::scaled(5_000) as u64;
    let mut map = HashMap::new();
    {
        let m = map.pin();
        for i in 0..n {
            m.insert(Tracked::new(i, &live), Tracked::new(i, &live));
        }
        for i in (0..n).step_by(3) {
            m.remove(&Tracked::new(i, &live));
        }
    }
    let kept = (n - n.div_ceil(3)) as usize;
    assert_eq!(settle_reclamation(&live, 2 * kept), 2 * kept);
    for i in 0..n {
        let probe = Tracked::new(i, &live);
        match map.get_mut(&probe) {
            Some(v) => {
                assert_eq!(v.get(), i);
                *v = Tracked::new(i + n, &live);
            }
            None => assert_eq!(i % 3, 0, "key {i} lost"),
        }
    }
    // The probes and the replaced values are gone already: no guard was involved.
    assert_eq!(live.load(Ordering::SeqCst), 2 * kept);
    for (k, v) in map.iter_mut() {
        assert_eq!(v.get(), k.get() + n);
        *v = Tracked::new(k.get() + 2 * n, &live);
    }
    assert_eq!(live.load(Ordering::SeqCst), 2 * kept);
    for v in map.values_mut() {
        let id = v.get();
        *v = Tracked::new(id + n, &live);
    }
    assert_eq!(live.load(Ordering::SeqCst), 2 * kept);
    for (k, v) in map.pin().iter() {
        assert_eq!(v.get(), k.get() + 3 * n);
    }
    // An owned removal hands the key and value over: nothing is retired, so they drop when the
    // caller drops them, and the count is exact at once.
    let mut taken = 0;
    for i in (1..n).step_by(3) {
        let probe = Tracked::new(i, &live);
        let (k, v) = map.remove_entry_owned(&probe).expect("present");
        assert_eq!((k.get(), v.get()), (i, i + 3 * n));
        assert!(map.remove_owned(&probe).is_none());
        drop(probe);
        taken += 1;
        // The pair lives on in our hands, the probe is gone.
        assert_eq!(live.load(Ordering::SeqCst), 2 * (kept - taken + 1));
        drop((k, v));
        assert_eq!(live.load(Ordering::SeqCst), 2 * (kept - taken));
    }
    assert_eq!(map.len(), kept - taken);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// `into_keys` and `into_values` drop the half of each entry they do not yield as they take it,
/// and the entries not taken with the iterator, each exactly once.
#[test]
fn into_keys_and_into_values_drop_the_other_half_once() {
    let (keys, values) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let n = common::scaled(2_000) as u64;
    let fill = || {
        let map = HashMap::new();
        let m = map.pin();
        for i in 0..n {
            m.insert(Tracked::new(i, &keys), Tracked::new(i * 3, &values));
        }
        drop(m);
        map
    };
    let mut it = fill().into_keys();
    assert_eq!(it.len(), n as usize);
    let taken: Vec<Tracked> = it.by_ref().take(n as usize / 2).collect();
    assert_eq!(it.len(), (n - n / 2) as usize);
    // The values of the taken keys are gone already; the rest go with the iterator.
    assert_eq!(values.load(Ordering::SeqCst), (n - n / 2) as usize);
    drop(it);
    assert_eq!(values.load(Ordering::SeqCst), 0);
    assert_eq!(keys.load(Ordering::SeqCst), taken.len());
    drop(taken);
    assert_eq!(keys.load(Ordering::SeqCst), 0);

    let mut it = fill().into_values();
    let taken: Vec<Tracked> = it.by_ref().take(n as usize / 2).collect();
    for v in &taken {
        assert_eq!(v.get() % 3, 0);
    }
    assert_eq!(keys.load(Ordering::SeqCst), (n - n / 2) as usize);
    drop(it);
    assert_eq!(keys.load(Ordering::SeqCst), 0);
    assert_eq!(values.load(Ordering::SeqCst), taken.len());
    drop(taken);
    assert_eq!(values.load(Ordering::SeqCst), 0);
}

/// Keys are dropped exactly once too: racing updates (each clones the stored key), removes,
/// re-inserts and readers of the keys, no reader meets a dropped key (`Tracked` poisons itself
/// on drop) and every key is dropped once.
#[test]
fn updated_keys_are_dropped_exactly_once() {
    let keys = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let map: HashMap<Tracked, u64> = HashMap::new();
    for k in 0..64 {
        map.pin().insert(Tracked::new(k, &keys), 0);
    }
    let rounds = common::scaled(2_000) as u64;
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (map, keys, probes) = (&map, &keys, &probes);
            s.spawn(move || {
                for i in 0..rounds {
                    let m = map.pin();
                    let k = (i * 7 + t * 13) % 64;
                    let probe = Tracked::new(k, probes);
                    match (i + t) % 8 {
                        0 => {
                            if m.remove(&probe).is_some() {
                                m.insert(Tracked::new(k, keys), 1);
                            }
                        }
                        1 | 2 => {
                            if let Some((key, _)) = m.get_key_value(&probe) {
                                assert_eq!(key.get(), k);
                            }
                        }
                        3 => {
                            // Copies (or clones) the stored key into the new entry, as `update`.
                            let _ = m.replace_if(&probe, |_, v| v % 2 == 0, i);
                        }
                        _ => {
                            m.update(&probe, |v| v + 1);
                        }
                    }
                    for (key, _) in m.iter().take(4) {
                        assert!(key.get() < 64);
                    }
                }
            });
        }
    });
    assert_eq!(map.len(), 64);
    assert_eq!(settle_reclamation(&keys, 64), 64);
    assert_eq!(probes.load(Ordering::SeqCst), 0);
    drop(map);
    assert_eq!(settle_reclamation(&keys, 0), 0);
}

/// A key may own resources behind interior mutability, and a reader may take them out through
/// the `&K` the map handed it while the key's entry is being replaced. So an update copies a
/// stored key's bytes into the new entry only for the key types listed in `update`'s docs,
/// which allow nothing of the sort; any other key is cloned. A copy of this key's bytes (tried
/// for every key type on 2026-12-01 and reverted) would leave the taken payload in the copy
/// too, and drop it twice.
#[test]
fn a_key_emptied_through_a_shared_reference_is_dropped_once() {
    struct CellKey {
        id: u64,
        payload: std::cell::Cell<Option<Tracked>>,
    }
    impl Clone for CellKey {
        fn clone(&self) -> Self {
            let payload = self.payload.take();
            let copy = payload.clone();
            self.payload.set(payload);
            CellKey {
                id: self.id,
                payload: std::cell::Cell::new(copy),
            }
        }
    }
    impl PartialEq for CellKey {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }
    impl Eq for CellKey {}
    impl std::hash::Hash for CellKey {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.id.hash(state)
        }
    }
    let live = Arc::new(AtomicUsize::new(0));
    let key = |live: &Arc<AtomicUsize>| CellKey {
        id: 1,
        payload: std::cell::Cell::new(Some(Tracked::new(1, live))),
    };
    let map: HashMap<CellKey, u64> = HashMap::new();
    {
        let m = map.pin();
        m.insert(key(&live), 0);
        let (old_key, _) = m.get_key_value(&key(&live)).unwrap();
        assert_eq!(m.update(&key(&live), |v| v + 1), Some(&1));
        // The reader empties the key it holds: its payload is dropped here, once.
        drop(old_key.payload.take());
        // The new entry's key is a clone: its payload is its own.
        let (new_key, _) = m.get_key_value(&key(&live)).unwrap();
        assert!(!std::ptr::eq(old_key, new_key));
        assert_eq!(new_key.payload.take().map(|t| t.get()), Some(1));
    }
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// `String`, `Vec<u8>` and `Arc` keys are handed on from entry to entry by `update` without a
/// clone, and an insert over a present key keeps the stored key and drops its own at once (one
/// owner at a time; readers of an old entry's key see the same bytes). Racing updates, inserts
/// of fresh equal keys, removes, re-inserts and readers that keep a key they read across
/// updates: every `Arc<str>` key, the fresh ones included, is dropped exactly once (each map
/// copy holds one strong count; a double drop would free the string under the test's own
/// handle, which Miri and the sanitizers report), and the same churn on `String` keys reads no
/// freed or reused memory.
#[test]
fn keys_handed_on_by_updates_and_inserts_are_dropped_exactly_once() {
    fn churn<K>(keys: &[K], fresh: impl Fn(&str) -> K + Sync)
    where
        K: std::borrow::Borrow<str>
            + Clone
            + std::fmt::Debug
            + std::hash::Hash
            + Eq
            + Send
            + Sync
            + 'static,
    {
        let map: HashMap<K, u64> = HashMap::new();
        for k in keys {
            map.pin().insert(k.clone(), 0);
        }
        let rounds = common::scaled(2_000);
        std::thread::scope(|s| {
            for t in 0..3 {
                let (map, fresh) = (&map, &fresh);
                s.spawn(move || {
                    for i in 0..rounds {
                        let m = map.pin();
                        let k: &str = keys[(i * 7 + t * 13) % keys.len()].borrow();
                        // A key read before the write, and read again after it.
                        let held = m.get_key_value(k).map(|(key, _)| key);
                        match (i + t) % 8 {
                            0 => {
                                if m.remove(k).is_some() {
                                    m.insert(keys[(i * 7 + t * 13) % keys.len()].clone(), 1);
                                }
                            }
                            1 | 2 => {
                                m.insert(fresh(k), 2);
                            }
                            _ => {
                                m.update(k, |v| v + 1);
                            }
                        }
                        if let Some(key) = held {
                            assert_eq!(key.borrow(), k);
                        }
                        for (key, _) in m.iter().take(2) {
                            assert!(key.borrow().starts_with("key-"));
                        }
                    }
                });
            }
        });
        assert_eq!(map.len(), keys.len());
        for k in keys {
            assert_eq!(map.pin().get_key_value(k.borrow()).map(|(k, _)| k), Some(k));
        }
    }
    let strings: Vec<String> = (0..16).map(|k| format!("key-{k}")).collect();
    churn(&strings, str::to_owned);
    let arcs: Vec<Arc<str>> = strings.iter().map(|s| Arc::from(s.as_str())).collect();
    // Every fresh key the inserts make, kept to count its owners at the end.
    let made = std::sync::Mutex::new(Vec::new());
    churn(&arcs, |k| {
        let key: Arc<str> = Arc::from(k);
        made.lock().unwrap().push(key.clone());
        key
    });
    let made = made.into_inner().unwrap();
    assert!(!made.is_empty());
    // Every map copy of a key is dropped once the epoch lets go: only the test's handles remain.
    let copies = || {
        arcs.iter()
            .chain(&made)
            .map(|a| Arc::strong_count(a) - 1)
            .sum::<usize>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while copies() != 0 && std::time::Instant::now() < deadline {
        // As `settle_reclamation` does: pin, flush, let others run.
        let map: HashMap<u8, u8> = HashMap::new();
        map.guard().flush();
        std::thread::yield_now();
    }
    assert_eq!(copies(), 0, "key copies still alive");
}

/// An entry whose key was handed on (a `String` key, by an insert over it or an update) is
/// freed by a path of its own, which drops the old value and not the key. With values that have
/// drop glue, from several threads (so that retirements cross threads and batches): each
/// replaced value is dropped once, each stored key stays readable, and nothing is left after
/// the map's drop. (The `u64` values of the test above have nothing to drop and take the entry
/// cache's bulk path instead.)
#[test]
fn values_replaced_under_handed_on_keys_are_dropped_once() {
    let values = Arc::new(AtomicUsize::new(0));
    let keys: Vec<String> = (0..64).map(|k| format!("key-{k}")).collect();
    let map: HashMap<String, Tracked> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        map.pin().insert(k.clone(), Tracked::new(i as u64, &values));
    }
    let rounds = common::scaled(4_000);
    std::thread::scope(|s| {
        for t in 0..3 {
            let (map, keys, values) = (&map, &keys, &values);
            s.spawn(move || {
                for i in 0..rounds {
                    let m = map.pin();
                    let k = &keys[(i * 7 + t * 13) % keys.len()];
                    if (i + t) % 3 == 0 {
                        m.update(k.as_str(), |v| Tracked::new(v.get() + 1, values));
                    } else {
                        m.insert(k.clone(), Tracked::new(i as u64, values));
                    }
                    let (key, value) = m.get_key_value(k.as_str()).expect("never removed");
                    assert_eq!(key, k);
                    let _ = value.get();
                }
            });
        }
    });
    assert_eq!(map.len(), keys.len());
    for k in &keys {
        assert_eq!(map.pin().get_key_value(k.as_str()).map(|(k, _)| k), Some(k));
    }
    // One value a key is live; every replaced one is dropped once the epoch lets go.
    assert_eq!(settle_reclamation(&values, keys.len()), keys.len());
    drop(map);
    assert_eq!(settle_reclamation(&values, 0), 0);
}

/// Threads race `get_or_insert_with_ref` on the same absent keys: each loser made a key and a
/// value that were never published, and drops them at once; every key ends with one entry.
#[test]
fn keys_made_by_a_lost_race_are_dropped_once() {
    let keys = Arc::new(AtomicUsize::new(0));
    let values = Arc::new(AtomicUsize::new(0));
    let map: HashMap<Tracked, Tracked> = HashMap::new();
    let n = common::scaled(2_000) as u64;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (map, keys, values) = (&map, &keys, &values);
            s.spawn(move || {
                let m = map.pin();
                for k in 0..n {
                    let v = m.get_or_insert_with_ref(
                        &k,
                        |&k| Tracked::new(k, keys),
                        || Tracked::new(t * 1_000_000 + k, values),
                    );
                    assert_eq!(v.get() % 1_000_000, k);
                }
            });
        }
    });
    assert_eq!(map.len() as u64, n);
    // Nothing was replaced or removed: the losers' keys and values went at once, unpublished.
    assert_eq!(keys.load(Ordering::SeqCst) as u64, n);
    assert_eq!(values.load(Ordering::SeqCst) as u64, n);
    drop(map);
    assert_eq!(settle_reclamation(&keys, 0), 0);
    assert_eq!(settle_reclamation(&values, 0), 0);
}

/// Threads count into shared keys with `update_or_insert_with` while another removes them, so
/// that calls find a key present, then absent, then present again between attempts: `make`
/// runs at most once a call, and every value (made, updated, replaced, removed, left at the
/// end) is dropped exactly once.
#[test]
fn update_or_insert_with_makes_at_most_once_and_drops_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = HashMap::new();
    let n = common::scaled(4_000) as u64;
    let (calls, makes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    // Calls that found the key present (the update ran) and then absent (`make` ran): the race
    // the test is for. Printed, not asserted: a run meets it 1-7 times in 12,000 calls on two
    // idle cores, so a loaded host can meet it never; the loom model
    // `update_or_insert_vs_insert_then_remove` (`loom-tests/tests/update.rs`, in CI at three
    // preemptions) explores every order of such a call against an insert and a removal, and
    // `update_or_insert_with_whose_key_goes_under_its_update_makes_once_and_drops_once` meets
    // it on every call, from inside the update closure.
    let raced = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (map, live, calls, makes, raced) = (&map, &live, &calls, &makes, &raced);
            s.spawn(move || {
                let mut m = map.pin();
                for i in 0..n {
                    let k = i % 16;
                    let (mut made_here, mut updated_here) = (0, false);
                    let v = m.update_or_insert_with(
                        k,
                        |v| {
                            updated_here = true;
                            Tracked::new(v.get() + 1, live)
                        },
                        || {
                            made_here += 1;
                            Tracked::new(1_000_000, live)
                        },
                    );
                    assert!(v.get() >= 1_000_000);
                    assert!(made_here <= 1, "`make` ran {made_here} times in one call");
                    calls.fetch_add(1, Ordering::Relaxed);
                    makes.fetch_add(made_here, Ordering::Relaxed);
                    if updated_here && made_here == 1 {
                        raced.fetch_add(1, Ordering::Relaxed);
                    }
                    if i % 64 == 0 {
                        m.repin();
                    }
                }
            });
        }
        let map = &map;
        s.spawn(move || {
            let mut m = map.pin();
            for i in 0..n {
                m.remove(&(i % 16));
                if i % 64 == 0 {
                    m.repin();
                }
            }
        });
    });
    assert_eq!(calls.load(Ordering::Relaxed) as u64, 3 * n);
    // Every key was absent at its first call, so each made at least once.
    assert!(makes.load(Ordering::Relaxed) >= 16);
    println!(
        "{} calls met the key present, then absent",
        raced.load(Ordering::Relaxed)
    );
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// The race of [`update_or_insert_with_makes_at_most_once_and_drops_once`], met on every call:
/// the update closure removes its own key (a closure may call back into the map), so the call's
/// CAS fails and its next attempt finds the key absent and runs `make` once; or it removes the
/// key and inserts it again, so the next attempt updates the new entry. The first attempt's
/// updated value is dropped unpublished, and every value (made, updated, removed, replaced, left
/// at the end) is dropped exactly once.
#[test]
fn update_or_insert_with_whose_key_goes_under_its_update_makes_once_and_drops_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> = HashMap::new();
    let m = map.pin();
    let n = common::scaled(2_000) as u64;
    for k in 0..n {
        m.insert(k % 8, Tracked::new(k, &live));
        let reinsert = k % 2 == 0;
        let (mut updates, mut makes) = (0, 0);
        let v = m.update_or_insert_with(
            k % 8,
            |v| {
                updates += 1;
                if updates == 1 {
                    let other = map.pin();
                    assert!(other.remove(&(k % 8)).is_some());
                    if reinsert {
                        other.insert(k % 8, Tracked::new(2_000_000 + k, &live));
                    }
                }
                Tracked::new(v.get() + 1, &live)
            },
            || {
                makes += 1;
                Tracked::new(1_000_000 + k, &live)
            },
        );
        if reinsert {
            assert_eq!(
                (updates, makes),
                (2, 0),
                "call {k}: updated the reinserted entry"
            );
            assert_eq!(v.get(), 2_000_001 + k);
        } else {
            assert_eq!(
                (updates, makes),
                (1, 1),
                "call {k}: made once after the removal"
            );
            assert_eq!(v.get(), 1_000_000 + k);
        }
    }
    assert_eq!(m.len(), 8);
    drop(m);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

#[test]
fn multithreaded_churn_drops_every_value_exactly_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (map, live) = (&map, &live);
            s.spawn(move || {
                for round in 0..common::scaled(20) as u64 {
                    let m = map.pin();
                    for k in 0..500 {
                        // Shared keys: threads replace and remove each other's values.
                        m.insert(k, Tracked::new(t * 1_000_000 + round * 1_000 + k, live));
                        if k % 3 == 0 {
                            m.remove(&(k / 2));
                        }
                        if let Some(v) = m.get(&(k / 3)) {
                            assert!(v.get() % 1_000 == k / 3);
                        }
                    }
                }
            });
        }
    });
    let remaining = map.len();
    assert_eq!(settle_reclamation(&live, remaining), remaining);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// Building a map from an array with a repeated key keeps the last pair; the value it replaced
/// is dropped once (when reclaimed), the rest when the map drops.
#[test]
fn from_an_array_drops_the_pairs_it_replaces() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::from([
        (1, Tracked::new(10, &live)),
        (2, Tracked::new(20, &live)),
        (1, Tracked::new(11, &live)),
    ]);
    assert_eq!(map.len(), 2);
    assert_eq!(map.pin().get(&1).map(|v| v.get()), Some(11));
    assert_eq!(settle_reclamation(&live, 2), 2);
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// Maps as values: an inner map is dropped while the thread's entry cache is in the middle of
/// freeing the outer entries (a collected batch of removed entries, and the outer map's own
/// drop), and its own entries go through the same cache. Every inner key and value is dropped
/// exactly once.
#[test]
fn maps_held_as_values_are_dropped_with_their_entries_once() {
    let live = Arc::new(AtomicUsize::new(0));
    let outer: HashMap<u64, HashMap<Tracked, Tracked>> = HashMap::new();
    let (maps, per_map) = (common::scaled(200) as u64, 20u64);
    {
        let m = outer.pin();
        for i in 0..maps {
            let inner = HashMap::new();
            {
                let n = inner.pin();
                for k in 0..per_map {
                    n.insert(Tracked::new(k, &live), Tracked::new(i, &live));
                }
            }
            m.insert(i, inner);
        }
        // Half the inner maps leave by removal: retired, collected and dropped in a batch.
        for i in (0..maps).step_by(2) {
            assert!(m.remove(&i).is_some());
        }
    }
    let remaining = (maps / 2) * per_map * 2;
    assert_eq!(
        settle_reclamation(&live, remaining as usize),
        remaining as usize
    );
    // The other half with the outer map: dropped through its drop.
    drop(outer);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A thread-local's destructor that writes to a map, run after the map's own thread-locals on
/// that thread are gone (its retirement batch and entry cache; Rust runs a thread's
/// thread-local destructors in the reverse order of their first use, so this one, used first,
/// runs last): the writes land, and what they replace and remove is dropped once, the same as
/// from a live thread.
#[test]
fn writes_from_a_thread_locals_destructor_drop_what_they_replace_once() {
    struct WritesOnExit {
        map: Arc<HashMap<u64, Tracked>>,
        live: Arc<AtomicUsize>,
        writes: u64,
    }
    impl Drop for WritesOnExit {
        fn drop(&mut self) {
            let m = self.map.pin();
            for k in 0..self.writes {
                if k % 2 == 0 {
                    m.insert(k, Tracked::new(k + 1_000, &self.live));
                } else {
                    m.remove(&k);
                }
            }
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<WritesOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    let writes = common::scaled(1_000) as u64;

    let live = Arc::new(AtomicUsize::new(0));
    let map = Arc::new(HashMap::new());
    {
        let (map, live) = (map.clone(), live.clone());
        std::thread::spawn(move || {
            // First, so that its destructor runs after those of the map's thread-locals, which
            // the writes below bring into use.
            ON_EXIT.with(|on_exit| {
                *on_exit.borrow_mut() = Some(WritesOnExit {
                    map: map.clone(),
                    live: live.clone(),
                    writes,
                });
            });
            let m = map.pin();
            for k in 0..writes {
                m.insert(k, Tracked::new(k, &live));
                // A replacement, so that this thread's batch holds retirements when it exits.
                m.insert(k, Tracked::new(k, &live));
            }
        })
        .join()
        .expect("the writer thread");
    }
    let m = map.pin();
    assert_eq!(m.len() as u64, writes / 2);
    for k in 0..writes {
        let expected = (k % 2 == 0).then_some(k + 1_000);
        assert_eq!(m.get(&k).map(Tracked::get), expected, "key {k}");
    }
    drop(m);
    assert_eq!(settle_reclamation(&live, map.len()), map.len());
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0);
}

/// A bulk insert (`extend`, and so `collect`) pins again as it goes, so that the values a later
/// pair with an equal key replaced are freed during the call, as `std` drops each at once.
/// Pinned once for the whole input, as until stop 48, every replaced value lived until the call
/// returned (found by a review): here all 20,000 of them.
#[test]
fn a_bulk_insert_frees_the_values_it_replaces_as_it_goes() {
    use lockfree_map::Collector;
    use std::collections::hash_map::RandomState;
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Tracked> =
        HashMap::with_collector(0, RandomState::new(), Collector::new());
    let n = common::scaled(20_000) as u64;
    let mut most = 0;
    let mut into = &map;
    into.extend((0..n).map(|i| {
        most = most.max(live.load(Ordering::SeqCst));
        (i % 10, Tracked::new(i, &live))
    }));
    assert_eq!(map.len(), 10);
    assert!(
        most < (n as usize / 4).max(1_000),
        "{most} values alive at once for 10 keys"
    );
    drop(map);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}
