//! Operations against a table being frozen and moved, helpers racing on one slot, and the root
//! swap. Under loom the geometry is two slots a group, two groups, one-group chunks, so four keys
//! fill the first table and the fifth starts a migration. Bounded search.
#![cfg(loom)]

use lockfree_map_loom_tests::{map, model, model_bounded, KeyIsHash, Map};
use loom::sync::Arc;
use loom::thread;

/// Four keys fill the first table; a fifth starts a migration that nobody has helped yet.
fn migrating_map() -> Arc<Map<u64>> {
    let m = Arc::new(map::<u64>());
    {
        let p = m.pin();
        for k in 0..5 {
            p.insert(k, k);
        }
    }
    m
}

/// An update and a remove of old keys, each helping move chunks (and racing to move each other's
/// slots), end with exactly the expected contents.
#[test]
fn writes_against_a_migrating_table() {
    model(|| {
        let m = migrating_map();
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().remove(&1).copied());
        assert_eq!(m.pin().update(&0, |v| v + 10).copied(), Some(10));
        assert_eq!(t.join().unwrap(), Some(1));
        let p = m.pin();
        let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, vec![(0, 10), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(m.len(), 4);
    });
}

/// An update whose entry the other thread's help freezes and moves between the update's read
/// and its CAS keeps the value it made: nothing else wrote the key, so its closure runs once
/// (since stop 52; before, the failed CAS on the moved slot ran it again on the same entry, and
/// this model failed at two preemptions).
#[test]
fn an_update_whose_entry_moves_runs_its_closure_once() {
    model(|| {
        let m = migrating_map();
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().remove(&1).copied());
        let runs = std::cell::Cell::new(0);
        let stored = m
            .pin()
            .update(&0, |v| {
                runs.set(runs.get() + 1);
                v + 10
            })
            .copied();
        assert_eq!((stored, runs.get()), (Some(10), 1));
        assert_eq!(t.join().unwrap(), Some(1));
        let p = m.pin();
        let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, vec![(0, 10), (2, 2), (3, 3), (4, 4)]);
    });
}

/// A `compute` that decided to insert an absent key, and whose insert's CAS the other thread's
/// help makes fail (the table under it moving on), keeps its decision: the key is still absent,
/// so `decide` runs once, and the key lands once. With `decide` run again on every failed CAS
/// (the rule before stop 52) this fails at two preemptions: the path is reached.
#[test]
fn a_compute_on_an_absent_key_in_a_moving_table_decides_once() {
    model(|| {
        let m = migrating_map();
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().remove(&1).copied());
        let runs = std::cell::Cell::new(0);
        let inserted = matches!(
            m.pin().compute(6, |current| {
                runs.set(runs.get() + 1);
                assert!(current.is_none());
                lockfree_map::Operation::<u64, ()>::Insert(60)
            }),
            lockfree_map::Compute::Inserted(&6, &60)
        );
        assert!(inserted);
        assert_eq!(runs.get(), 1);
        assert_eq!(t.join().unwrap(), Some(1));
        let p = m.pin();
        let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, vec![(0, 0), (2, 2), (3, 3), (4, 4), (6, 60)]);
    });
}

/// Resurrection: a remover and an inserter of the same key both help move its frozen slot (the
/// copy can be attempted twice, and the remove can land in the new table between the attempts).
/// Whatever the order, the old value must never come back.
#[test]
fn helpers_racing_on_one_slot_never_resurrect_a_removed_key() {
    model(|| {
        let m = migrating_map();
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().insert(0, 99).copied());
        let removed = m.pin().remove(&0).copied();
        let replaced = t.join().unwrap();
        let now = m.pin().get(&0).copied();
        match (removed, replaced) {
            // remove first: the insert found the key absent and stays.
            (Some(0), None) => assert_eq!(now, Some(99)),
            // insert first: the remove took the new value.
            (Some(99), Some(0)) => assert_eq!(now, None),
            other => panic!("impossible outcome {other:?}"),
        }
        assert_ne!(now, Some(0), "a removed value came back");
        assert_eq!(m.len(), 4 + now.iter().count());
        // A copy placed twice would not change `len` (moves do not count), but shows here
        // (a review at stop 48 found only `get` and `len` checked).
        let p = m.pin();
        let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        let mut expected: Vec<(u64, u64)> = (1..5).map(|k| (k, k)).collect();
        expected.extend(now.map(|v| (0, v)));
        expected.sort_unstable();
        assert_eq!(all, expected);
    });
}

/// An iterator walks the old table while a writer starts a migration and moves its slots: the
/// slots it meets moved are followed to their copies in `next` (`COPIED(i)`, the index in the
/// moved slot's word), so every key present throughout is seen once, with its value.
///
/// At two preemptions whatever `LOOM_MAX_PREEMPTIONS` says: 13 s on the 2-core machine, and at
/// three not finished in 10 minutes (stop 33, 2026-12-05). It fails with the index pointing at a
/// neighbouring slot (the assertion) and with a Relaxed store of the final word (the iterator
/// reads a copy that is not there yet).
#[test]
fn an_iterator_follows_moved_slots_to_their_copies() {
    model_bounded(2, 1_000, || {
        let m = Arc::new(map::<u64>());
        {
            let p = m.pin();
            for k in 0..4 {
                p.insert(k, k);
            }
        }
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            // The fifth key starts a migration; the next write moves chunks of it.
            p.insert(4, 4);
            p.insert(5, 5);
        });
        let mut seen: Vec<u64> = m
            .pin()
            .iter()
            .map(|(k, v)| {
                assert_eq!(k, v);
                *k
            })
            .collect();
        t.join().unwrap();
        seen.sort_unstable();
        seen.retain(|&k| k < 4);
        assert_eq!(seen, vec![0, 1, 2, 3], "every key present throughout, once");
    });
}

/// A reader inside the old table while a writer finishes the migration, swings the root and
/// retires the old table: it must still read every key. Lookups help a migration while a chunk
/// is unclaimed, so the reader and the writer also race to move the last chunk, and either may
/// promote.
///
/// One chunk is left for them: a lookup before they start moves the first (one-group) chunk.
/// With both chunks open to both threads the search did not finish (26 minutes at two
/// preemptions, 9 at one, with 20,000 branches allowed).
fn reader_during_promotion() {
    let m = migrating_map();
    assert_eq!(m.pin().get(&1), Some(&1));
    let m2 = m.clone();
    let t = thread::spawn(move || {
        let p = m2.pin();
        // Moves the last chunk, or finds it claimed by the reader and goes on.
        p.insert(5, 5);
        p.insert(6, 6);
    });
    {
        let p = m.pin();
        for k in [3, 0] {
            assert_eq!(p.get(&k), Some(&k), "key {k} invisible during migration");
        }
    }
    t.join().unwrap();
    let p = m.pin();
    for k in 0..7 {
        assert_eq!(p.get(&k), Some(&k));
    }
    assert_eq!(m.len(), 7);
    // Each key once: a copy placed twice changes neither `get` nor `len`.
    let mut keys: Vec<u64> = p.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..7).collect::<Vec<_>>());
}

/// [`reader_during_promotion`] at one preemption, whatever `LOOM_MAX_PREEMPTIONS` says (10 s on
/// the 2-core machine; at two preemptions it is a manual long run, the next model).
#[test]
fn reader_in_the_old_table_during_promotion() {
    model_bounded(1, 10_000, reader_during_promotion);
}

/// [`reader_during_promotion`] at two preemptions: 1241 s on the 2-core machine (2026-12-01),
/// 1,659 s in a slower hour of it (2026-12-03, passing on the vacated-slot code), so a manual
/// long run: `bash scripts/loom.sh --test migrate -- --ignored`. Passed again at stop 27
/// (2026-12-03, after the shrink model below, one at a time with `--test-threads=1`: about 15
/// minutes), and at stop 28 (2026-12-04, on `a5b7b00`, after the rebuild threshold fell to an
/// eighth dead: both models side by side, 2,322 s). At stop 32 (2026-12-04, a loom model running
/// on the other core): 612.7 s on stop 31's code (`7b552bf`), 196.2 s on stop 32's, whose moves
/// place a copy with one CAS instead of a reservation and a publication. Passed again at stop 53
/// (2026-12-07, on `3b97b13`, nothing else running): 116.9 s.
#[test]
#[ignore = "2-28 minutes by code and host (117 s at stop 53, 196 s at stop 32, 1,659 s on 2026-12-03): a manual long run, bash scripts/loom.sh --test migrate -- --ignored"]
fn reader_in_the_old_table_during_promotion_two_preemptions() {
    model_bounded(2, 10_000, reader_during_promotion);
}

/// A shrink's successor is sized lazily, from a count of the source's entries, while another
/// thread inserts a new key (which needs the successor, so it helps count) and reads an old one
/// (which, since stop 29, may help count too: lookups help a successor still to be sized).
/// Nothing is lost, nothing appears twice, and the successor holds both keys.
///
/// Bounded at one preemption whatever `LOOM_MAX_PREEMPTIONS` says: a shrink counts and moves
/// every slot of a four-group source and promotes. That search takes 9.5 minutes on the 2-core
/// machine (two preemptions: over 10 minutes, not finished), so it is a manual long run:
/// `bash scripts/loom.sh --test migrate -- --ignored`. It found a missing tag write (see
/// ARCHITECTURE.md, "The models bite"). It passes on the vacated-slot code (4,686 s on
/// 2026-12-03, with a CI run on the same two cores for about 40 minutes of it), and passed again
/// at stop 27 (about 38 minutes on one core, niced, beside other work; both models 2,984 s) and
/// at stop 28 (both models side by side, 2,322 s). At stop 29, with lookups helping the count,
/// alone on one core, niced, beside other work: 1,737.5 s (commit `b75ea7a`). At stop 30 the
/// insert no longer needs the successor (it goes into the counted source, registering with the
/// count), and the search grew: on `9e0d6d7`, niced on one core (beside a CI run for 30 of its
/// minutes), it ran 103 minutes (95 of CPU) without failing and without finishing; stopped there
/// for the session's end. Run again at stop 31 on the same code, niced on one core (stopped for
/// about 30 minutes of benchmarks, beside CI runs for about 50): 2 h 41 min, 2 h 9 min of CPU,
/// no failure, not finished. At stop 32, on its code (moves place a copy with one CAS): 33 min of
/// CPU, no failure, not finished; and a variant without the other thread's lookup of the old
/// key, tried as a smaller search, ran 81 min of CPU without finishing either (not kept). A run
/// to completion needs a longer stretch of free core than a session has. The new CI model `an_insert_into_a_counted_slot_races_the_sizer`
/// covers the insert-versus-sizer race at three preemptions.
#[test]
#[ignore = "over 2 hours since stop 30 (not finished in 129 min of CPU at stop 31, nor in 33 at stop 32; 29-78 min before): a manual long run, bash scripts/loom.sh --test migrate -- --ignored"]
fn a_lazily_sized_shrink_races_with_an_insert() {
    model_bounded(1, 1_000, || {
        // Room for five keys: four groups from the start, holding one key.
        let m = Arc::new(lockfree_map::HashMap::with_capacity_and_hasher(
            5, KeyIsHash,
        ));
        m.pin().insert(4u64, 4u64);
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            let old = p.insert(7, 7).copied();
            (old, p.get(&4).copied())
        });
        // Two groups suffice for one key: a migration to half the size, sized lazily.
        m.shrink_to_fit(&m.guard());
        assert_eq!(t.join().unwrap(), (None, Some(4)));
        let p = m.pin();
        let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        assert_eq!(all, vec![(4, 4), (7, 7)]);
        assert_eq!(m.len(), 2);
    });
}

/// A map of four groups (room for six keys; keys 0, 4, 8 and 12 share home group 0, and their
/// tag: the top bits are zero) left holding key 1 only, with a shrink to two groups started and
/// `chunks` of its four one-group chunks counted.
///
/// Collected, not made `with_capacity`: since stop 40 a capacity asked for is also a floor the
/// map never shrinks below by itself, and the counted-slot model, made with one, checked a table
/// that never shrank until a review found it at stop 48 (the models check the shrink's capacity
/// at the end now).
fn shrink_counted(chunks: usize) -> Arc<lockfree_map::HashMap<u64, u64, KeyIsHash>> {
    let m: Arc<lockfree_map::HashMap<u64, u64, KeyIsHash>> = Arc::new(
        [(1, 1), (0, 0), (5, 5), (6, 6), (7, 7)]
            .into_iter()
            .collect(),
    );
    assert_eq!(m.capacity(), 6);
    {
        let p = m.pin();
        // Removals outside group 0 check nothing (one group in 64 samples the length).
        for k in [5, 6, 7] {
            assert_eq!(p.remove(&k), Some(&k));
        }
        // A removal in group 0 finds the table 1/8 full and starts a shrink to two groups,
        // sized lazily. Each lookup after it counts one (one-group) chunk.
        assert_eq!(p.remove(&0), Some(&0));
        for _ in 0..chunks {
            assert_eq!(p.get(&1), Some(&1));
        }
    }
    m
}

/// A shrink whose count is one chunk from its end: an insert that counts that chunk and then
/// takes a slot the count passed (registering with the count) races a lookup that finds every
/// chunk claimed and sizes the successor (closing registration, and counting the last chunk
/// again if its counter has not recorded it yet). Both keys are found once each afterwards, and
/// the removed key stays removed (stop 30: until then the first insert to meet a counted slot
/// needed the successor and counted every chunk left itself). The second thread is a lookup (lookups help a pending count under loom), so the model stays
/// small: at two preemptions it reaches the insert's registration both before the close and
/// after it (checked by making each branch panic), in 0.3 s; at three 1.5 s (what CI runs),
/// at four 8.0 s (by hand, 2026-12-04). With a second insert in place of the lookup it ran
/// over 9 minutes at one preemption. Whether the successor is large enough
/// cannot show in loom's two-slot groups; `raw::tests::inserts_while_a_shrink_is_counted_go_into_the_source_a_chunk_each`
/// checks that.
fn insert_into_a_counted_slot_races_the_sizer() {
    // Three of the four chunks counted.
    let m = shrink_counted(3);
    let m2 = m.clone();
    let t = thread::spawn(move || m2.pin().insert(4, 4).copied());
    // A lookup finds every chunk claimed and sizes the successor.
    assert_eq!(m.pin().get(&1), Some(&1));
    assert_eq!(t.join().unwrap(), None);
    let p = m.pin();
    let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
    all.sort_unstable();
    assert_eq!(all, vec![(1, 1), (4, 4)]);
    assert_eq!(m.len(), 2);
    assert_eq!(p.get(&0), None);
    // The shrink to two groups happened (`iter` finished it).
    assert_eq!(m.capacity(), 3);
}

#[test]
fn an_insert_into_a_counted_slot_races_the_sizer() {
    model_bounded(3, 10_000, insert_into_a_counted_slot_races_the_sizer);
}

/// Keys 0 and 2 fill home group 0, key 1 takes the first slot of group 1: the table is 3/4 full
/// and slot 1 of group 1 is EMPTY, so the next insert that spills starts a growth.
fn three_quarters_full() -> Arc<Map<u64>> {
    let m = Arc::new(map::<u64>());
    {
        let p = m.pin();
        for k in [0, 2, 1] {
            p.insert(k, k);
        }
    }
    m
}

/// An insert of a new key that found an EMPTY slot in the root before a growth started there
/// races an insert of the same key made after: the mover turns the EMPTY slot into REDIRECT
/// (frozen and moved in one step: `help_move_at`), and so does a writer that meets it first
/// (`locate_probe`'s redirect of its first empty slot), so the stale insert's CAS fails and the
/// key is stored once, in the successor. Until stop 48 no model had an EMPTY source slot while
/// a migration ran, and neither redirect was checked (found by a review). Skipping either
/// redirect (`Ok(())` in place of `try_redirect`) fails this model or the next at two
/// preemptions, which they keep whatever `LOOM_MAX_PREEMPTIONS` says: at three the two models
/// and the count model below took 339 s together (2026-12-06), too much for CI's budget.
#[test]
fn a_stale_insert_into_an_empty_slot_races_a_growth() {
    model_bounded(2, 10_000, || {
        let m = three_quarters_full();
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let p = m2.pin();
            // Home group 0 is full and the table 3/4 full: this insert starts a growth.
            assert_eq!(p.insert(4, 4), None);
            p.insert(3, 30).copied()
        });
        let mine = m.pin().insert(3, 33).copied();
        let theirs = t.join().unwrap();
        let now = m.pin().get(&3).copied();
        match (theirs, mine) {
            (None, Some(30)) => assert_eq!(now, Some(33)),
            (Some(33), None) => assert_eq!(now, Some(30)),
            other => panic!("impossible outcome {other:?}"),
        }
        let p = m.pin();
        let mut keys: Vec<u64> = p.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec![0, 1, 2, 3, 4]);
        assert_eq!(m.len(), 5);
    });
}

/// The same stale insert against `reserve`, which moves every slot itself (`resize_now`, the
/// mover's redirect of the EMPTY slot included) and promotes the successor: the key is stored
/// once, and the room asked for is there.
#[test]
fn a_stale_insert_into_an_empty_slot_races_a_reserve() {
    model_bounded(2, 10_000, || {
        let m = three_quarters_full();
        let m2 = m.clone();
        let t = thread::spawn(move || m2.pin().reserve(8));
        assert_eq!(m.pin().insert(3, 3), None);
        t.join().unwrap();
        assert_eq!(m.pin().get(&3), Some(&3));
        let p = m.pin();
        let mut keys: Vec<u64> = p.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec![0, 1, 2, 3]);
        assert_eq!(m.len(), 4);
        assert!(m.capacity() >= 3 + 8, "capacity {}", m.capacity());
    });
}

/// A shrink whose count has two chunks left: an insert of a new key into the last chunk's group
/// races the count of that chunk (by a lookup, or by the insert itself, which counts a chunk
/// first). The count marks each free slot with a CAS from the word it read, so a slot the insert
/// took meanwhile is counted as live, never marked over (which would lose the key). Added at
/// stop 48, when a review found no check that would fail with the count's CAS expecting a fresh
/// load of the slot instead of the word it had examined; this model fails with it at two
/// preemptions (1.8 s), the bound it keeps (see the stale-insert models above).
fn insert_races_the_count_of_its_chunk() {
    // Chunks 0 and 1 counted.
    let m = shrink_counted(2);
    let m2 = m.clone();
    // Key 3's home is group 3, the last chunk.
    let t = thread::spawn(move || m2.pin().insert(3, 3).copied());
    for _ in 0..2 {
        assert_eq!(m.pin().get(&1), Some(&1));
    }
    assert_eq!(t.join().unwrap(), None);
    let p = m.pin();
    let mut all: Vec<(u64, u64)> = p.iter().map(|(k, v)| (*k, *v)).collect();
    all.sort_unstable();
    assert_eq!(all, vec![(1, 1), (3, 3)]);
    assert_eq!(m.len(), 2);
    assert_eq!(m.capacity(), 3);
}

#[test]
fn an_insert_races_the_count_of_its_chunk() {
    model_bounded(2, 10_000, insert_races_the_count_of_its_chunk);
}
