//! The single-threaded contract of every public operation.

mod common;

use common::{ConstantState, FewBitsState};
use lockfree_map::{Compute, HashMap, Operation};
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};

#[test]
fn insert_get_remove_roundtrip() {
    let map = HashMap::new();
    let g = map.guard();
    assert_eq!(map.insert(1, "a", &g), None);
    assert_eq!(map.insert(2, "b", &g), None);
    assert_eq!(map.insert(1, "c", &g), Some(&"a"));
    assert_eq!(map.get(&1, &g), Some(&"c"));
    assert_eq!(map.get_key_value(&2, &g), Some((&2, &"b")));
    assert!(map.contains_key(&2, &g));
    assert!(!map.contains_key(&3, &g));
    assert_eq!(map.len(), 2);
    assert_eq!(map.remove(&1, &g), Some(&"c"));
    assert_eq!(map.remove(&1, &g), None);
    assert_eq!(map.remove_entry(&2, &g), Some((&2, &"b")));
    assert!(map.is_empty());
}

#[test]
fn string_keys_are_looked_up_by_str() {
    let map: HashMap<String, usize> = HashMap::new();
    let m = map.pin();
    m.insert("alpha".to_string(), 1);
    m.insert(String::from("beta"), 2);
    assert_eq!(m.get("alpha"), Some(&1));
    assert_eq!(m.remove("beta"), Some(&2));
    assert_eq!(m.get("beta"), None);
    assert!(m.contains_key("alpha"));
}

#[test]
fn zero_sized_values_and_keys_work() {
    let map: HashMap<u32, ()> = HashMap::new();
    let m = map.pin();
    let n = common::sized(1_000, 200) as u32;
    for i in 0..n {
        assert_eq!(m.insert(i, ()), None);
    }
    assert_eq!(m.insert(7, ()), Some(&()));
    assert_eq!(m.len() as u32, n);
    let unit: HashMap<(), ()> = HashMap::new();
    let u = unit.pin();
    assert_eq!(u.insert((), ()), None);
    assert_eq!(u.insert((), ()), Some(&()));
    assert_eq!(u.len(), 1);
}

#[test]
fn try_insert_keeps_the_current_value() {
    let map = HashMap::new();
    let m = map.pin();
    assert_eq!(m.try_insert(1, 10), Ok(&10));
    let err = m.try_insert(1, 20).unwrap_err();
    assert_eq!(err.current, &10);
    assert_eq!(err.not_inserted, 20);
    assert_eq!(err.to_string(), "key already present with value 10");
    assert_eq!(m.get(&1), Some(&10));
}

#[test]
fn update_changes_only_present_keys() {
    let map = HashMap::new();
    let m = map.pin();
    assert_eq!(m.update(&1, |v| v + 1), None);
    assert!(m.is_empty());
    m.insert(1, 41);
    assert_eq!(m.update(&1, |v| v + 1), Some(&42));
    assert_eq!(m.get(&1), Some(&42));
}

/// An update keeps the stored key, as `std`'s maps do: the key it is given only finds the
/// entry. Keys cloned (`Labelled`) and keys handed on without a clone (`String`) alike.
#[test]
fn update_keeps_the_stored_key() {
    #[derive(Clone, Debug)]
    struct Labelled(u64, &'static str);
    impl PartialEq for Labelled {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Labelled {}
    impl std::hash::Hash for Labelled {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state)
        }
    }
    let map = HashMap::new();
    let m = map.pin();
    m.insert(Labelled(1, "stored"), 1);
    assert_eq!(m.update(&Labelled(1, "probe"), |v| v + 1), Some(&2));
    let (key, value) = m.get_key_value(&Labelled(1, "again")).unwrap();
    assert_eq!((key.1, *value), ("stored", 2));
    // `replace_if` keeps it too, and its predicate sees the stored key.
    let replaced = m.replace_if(&Labelled(1, "probe"), |k, _| k.1 == "stored", 7);
    assert_eq!(replaced, Ok(&2));
    let (key, value) = m.get_key_value(&Labelled(1, "again")).unwrap();
    assert_eq!((key.1, *value), ("stored", 7));

    let map: HashMap<String, u64> = HashMap::new();
    let m = map.pin();
    m.insert("key".to_string(), 1);
    let (before, _) = m.get_key_value("key").unwrap();
    for _ in 0..100 {
        m.update("key", |v| v + 1);
    }
    let (after, value) = m.get_key_value("key").unwrap();
    // The old entry's key is still readable while pinned, and the new entry holds the same key.
    assert_eq!(
        (before.as_str(), after.as_str(), *value),
        ("key", "key", 101)
    );
    assert_eq!(m.update("absent", |v| v + 1), None);
}

/// The fallible forms: a failure inserts nothing and returns its error, a later call tries
/// again, and a present key answers without running `make` (or `to_owned`).
#[test]
fn get_or_try_insert_with_inserts_only_what_was_made() {
    let map: HashMap<String, u32> = HashMap::new();
    let m = map.pin();
    let mut calls = 0;
    let mut parse = |s: &str| {
        calls += 1;
        s.parse::<u32>()
    };
    assert!(m.get_or_try_insert_with("x".into(), || parse("x")).is_err());
    assert!(m.is_empty());
    assert!(m
        .get_or_try_insert_with_ref("x", str::to_owned, || parse("x"))
        .is_err());
    assert!(m.is_empty());
    assert_eq!(m.get_or_try_insert_with("x".into(), || parse("7")), Ok(&7));
    assert_eq!(
        m.get_or_try_insert_with_ref("y", str::to_owned, || parse("8")),
        Ok(&8)
    );
    assert_eq!(calls, 4);
    assert_eq!(
        m.get_or_try_insert_with("x".into(), || -> Result<u32, ()> { unreachable!() }),
        Ok(&7)
    );
    assert_eq!(
        m.get_or_try_insert_with_ref(
            "y",
            |_| -> String { unreachable!() },
            || -> Result<u32, ()> { unreachable!() }
        ),
        Ok(&8)
    );
    assert_eq!(m.len(), 2);
}

#[test]
fn get_or_insert_with_runs_the_closure_only_when_absent() {
    let map = HashMap::new();
    let m = map.pin();
    let mut calls = 0;
    assert_eq!(
        *m.get_or_insert_with(5, || {
            calls += 1;
            50
        }),
        50
    );
    assert_eq!(
        *m.get_or_insert_with(5, || {
            calls += 1;
            99
        }),
        50
    );
    assert_eq!(calls, 1);
    assert_eq!(*m.get_or_insert(6, 60), 60);
    assert_eq!(*m.get_or_insert(6, 61), 60);
}

#[test]
fn compute_inserts_updates_removes_and_aborts() {
    let map = HashMap::new();
    let m = map.pin();
    let r: Compute<'_, _, _, ()> = m.compute(1, |cur| match cur {
        None => Operation::Insert(1),
        Some((_, v)) => Operation::Insert(v + 1),
    });
    assert_eq!(r, Compute::Inserted(&1, &1));
    let r: Compute<'_, _, _, ()> = m.compute(1, |cur| Operation::Insert(cur.unwrap().1 + 1));
    assert_eq!(
        r,
        Compute::Updated {
            old: (&1, &1),
            new: (&1, &2)
        }
    );
    assert_eq!(
        m.compute(1, |_| Operation::<u32, &str>::Abort("no")),
        Compute::Aborted("no")
    );
    assert_eq!(m.get(&1), Some(&2));
    let r: Compute<'_, _, _, ()> = m.compute(1, |_| Operation::Remove);
    assert_eq!(r, Compute::Removed(&1, &2));
    let r: Compute<'_, _, _, ()> = m.compute(1, |_| Operation::Remove);
    assert_eq!(r, Compute::Absent);
    assert!(m.is_empty());
}

#[test]
fn remove_if_checks_the_current_value() {
    let map = HashMap::new();
    let m = map.pin();
    m.insert("k", 3);
    assert_eq!(m.remove_if("k", |_, v| *v == 4), None);
    assert_eq!(m.remove_if("k", |_, v| *v == 3), Some((&"k", &3)));
    assert_eq!(m.len(), 0);
}

#[test]
fn replace_if_checks_the_current_value() {
    let map = HashMap::new();
    let m = map.pin();
    assert_eq!(
        m.replace_if("k", |_, _| true, 1),
        Err(1),
        "absent: nothing inserted"
    );
    assert!(m.is_empty());
    m.insert("k", 3);
    let mut seen = Vec::new();
    assert_eq!(
        m.replace_if(
            "k",
            |k, v| {
                seen.push((*k, *v));
                *v == 4
            },
            5
        ),
        Err(5)
    );
    assert_eq!(seen, [("k", 3)]);
    assert_eq!(m.get("k"), Some(&3));
    assert_eq!(m.replace_if("k", |_, v| *v == 3, 5), Ok(&3));
    assert_eq!(m.get("k"), Some(&5));
    assert_eq!(m.len(), 1);
}

#[test]
fn get_or_insert_with_ref_makes_a_key_only_on_a_miss() {
    let map: HashMap<String, usize> = HashMap::new();
    let m = map.pin();
    let (mut keys_made, mut values_made) = (0, 0);
    for word in ["apple", "pear", "apple", "fig", "pear", "apple"] {
        let v = m.get_or_insert_with_ref(
            word,
            |w: &str| {
                keys_made += 1;
                w.to_owned()
            },
            || {
                values_made += 1;
                word.len() * 10
            },
        );
        assert_eq!(*v, word.len() * 10);
    }
    assert_eq!(
        (keys_made, values_made),
        (3, 3),
        "only the three misses made anything"
    );
    assert_eq!(m.len(), 3);
    assert_eq!(m.get_key_value("pear"), Some((&"pear".to_string(), &40)));
    // A present key keeps its value.
    m.insert("kiwi".to_string(), 1);
    assert_eq!(
        m.get_or_insert_with_ref("kiwi", |_| unreachable!(), || 2),
        &1
    );
    // Through a growth: the made keys land where lookups by `&str` find them.
    for i in 0..common::sized(2_000, 100) {
        let k = format!("k{i}");
        assert_eq!(
            m.get_or_insert_with_ref(k.as_str(), str::to_owned, || i),
            &i
        );
    }
    for i in 0..common::sized(2_000, 100) {
        assert_eq!(m.get(format!("k{i}").as_str()), Some(&i));
    }
}

/// `String` keys use no key lines, so a growth prepared page by page (successors of 2,048 groups
/// and more; 16 under the stress geometry) zeroes only its groups: 20,000 keys take the map
/// through two such growths. Miri's 300 reach none in the shipping geometry, so
/// `scripts/miri.sh` runs this test in the stress geometry too (five prepared growths there in
/// a Miri run of it checked at stop 53; the count varies with the hasher's seed).
#[test]
fn string_keys_survive_prepared_growths() {
    let map: HashMap<String, usize> = HashMap::new();
    let m = map.pin();
    let n = common::sized(20_000, 300);
    for i in 0..n {
        assert_eq!(m.insert(format!("key-{i}"), i), None);
    }
    assert_eq!(m.len(), n);
    for i in 0..n {
        assert_eq!(m.get(format!("key-{i}").as_str()), Some(&i), "key {i}");
    }
    assert_eq!(m.get("key-absent"), None);
}

#[test]
fn grows_through_many_resizes_and_keeps_everything() {
    let map = HashMap::new();
    let m = map.pin();
    // 400 keys under Miri: still four growths from the first table (at 21, 84, 168 and 336
    // live).
    let n = common::sized(200_000, 400) as u64;
    for i in 0..n {
        assert_eq!(m.insert(i, i.wrapping_mul(7)), None);
    }
    assert_eq!(m.len() as u64, n);
    assert!(m.capacity() as u64 >= n);
    for i in 0..n {
        assert_eq!(m.get(&i), Some(&i.wrapping_mul(7)));
    }
    assert_eq!(m.get(&n), None);
}

#[test]
fn removing_everything_shrinks_the_table() {
    // Natively at both sizes, so the Miri size is checked too (the outcome is fixed, below).
    if !cfg!(miri) {
        empty_and_shrink(100_000, false);
    }
    empty_and_shrink(400, false);
}

/// `reserve(0)` asks for no room (`std`'s does nothing), so it leaves no floor: a map emptied
/// after it shrinks as one without. Until stop 48 it kept room for the entries it found, which
/// no removal could then shrink below (a review found it); no test checked it until stop 56's
/// mutation run (`additional > 0` as `>= 0` in `RawMap::reserve` lived).
#[test]
fn a_reserve_of_nothing_keeps_no_room() {
    empty_and_shrink(common::sized(100_000, 400) as u64, true);
}

fn empty_and_shrink(n: u64, reserve_nothing: bool) {
    // A fixed hasher: shrinking is checked on a sample of removals chosen by the group they
    // remove from (so by hash), and with a random seed the last quarter of the removals held no
    // sampled one in about 3 % of runs (Miri, 1,000 keys, failed once on 2026-12-01). With fixed
    // hashes the outcome is fixed.
    let map: HashMap<u64, u64, BuildHasherDefault<DefaultHasher>> =
        HashMap::with_hasher(BuildHasherDefault::default());
    let m = map.pin();
    for i in 0..n {
        m.insert(i, i);
    }
    if reserve_nothing {
        m.reserve(0);
    }
    let grown = m.capacity();
    for i in 0..n {
        assert_eq!(m.remove(&i), Some(&i));
    }
    assert!(m.is_empty());
    // A removal that finds the table sparse only starts the shrink; the operations after it
    // count and move the table a chunk each. Lookups alone finish it once no writer is left, so a
    // map emptied and then only read gives its memory back too. Shrinking is checked on a sample
    // of removals (1 in 64 groups), so how far it gets depends on the last sampled removal; at
    // least a factor of 4 at any size this test runs at. The removals that follow the start
    // finish it in the default geometry, but not under the stress geometry (groups of 2 slots,
    // chunks of 1 group: a chunk to count and one to move for every 2 slots), so the lookups
    // go on until the shrink is done, up to a bound no finished shrink needs.
    let mut lookups = 0;
    while m.capacity() > grown / 4 && lookups < 4 * grown {
        assert_eq!(m.get(&(lookups as u64 % n)), None);
        lookups += 1;
    }
    assert!(
        m.capacity() <= grown / 4,
        "{n} keys: capacity {} after emptying and {lookups} lookups, was {grown}",
        m.capacity()
    );
    // And it still works.
    m.insert(1, 1);
    assert_eq!(m.get(&1), Some(&1));
}

#[test]
fn clear_removes_everything_and_gives_memory_back() {
    let map = HashMap::new();
    let m = map.pin();
    for i in 0..10_000u64 {
        m.insert(i, i);
    }
    let grown = m.capacity();
    m.clear();
    assert!(m.is_empty());
    assert_eq!(m.iter().count(), 0);
    assert!(m.capacity() < grown);
    m.insert(3, 3);
    assert_eq!(m.get(&3), Some(&3));
}

#[test]
fn retain_keeps_matching_entries() {
    let map: HashMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    let m = map.pin();
    m.retain(|k, _| k % 3 == 0);
    assert_eq!(m.len(), 334);
    assert!(m.iter().all(|(k, v)| k % 3 == 0 && k == v));
}

/// `retain` asks `keep` once an entry, as `std`'s does: a stateful predicate (every other entry)
/// removes exactly the entries it rejected. Until stop 47 a rejected entry was judged again by the
/// removal, so this predicate flipped back and kept it (found by a review).
#[test]
fn retain_asks_once_an_entry() {
    let map: HashMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    let m = map.pin();
    let mut calls = 0;
    let mut rejected = Vec::new();
    m.retain(|&k, _| {
        calls += 1;
        let keep = calls % 2 == 0;
        if !keep {
            rejected.push(k);
        }
        keep
    });
    assert_eq!(calls, 1000, "one call an entry");
    assert_eq!(m.len(), 500);
    assert!(
        rejected.iter().all(|k| !m.contains_key(k)),
        "each rejected entry went"
    );
}

/// A capacity whose table would not fit in the address space panics with a clear message, before
/// anything changes: a map that was asked to reserve it keeps every entry and takes writes, as
/// does a set. (A table that fits the address space but not the allocator aborts the process, as
/// `std`'s collections do; not tested here.)
#[test]
fn capacities_past_the_address_space_panic_and_lose_nothing() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    fn message(outcome: Box<dyn std::any::Any + Send>) -> String {
        outcome
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| outcome.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    }
    let overflow = "lockfree-map: capacity overflow";
    let made = catch_unwind(|| HashMap::<u64, u64>::with_capacity(usize::MAX));
    assert_eq!(message(made.expect_err("a panic")), overflow);
    let made = catch_unwind(|| lockfree_map::HashSet::<u64>::with_capacity(usize::MAX / 2));
    assert_eq!(message(made.expect_err("a panic")), overflow);

    let map: HashMap<u64, u64> = (0..1_000).map(|k| (k, k)).collect();
    let set: lockfree_map::HashSet<u64> = (0..1_000).collect();
    // The last passes the multiplication and fails the size check of the table in bytes.
    for additional in [usize::MAX, usize::MAX / 2, usize::MAX / 4, usize::MAX / 16] {
        let reserved = catch_unwind(AssertUnwindSafe(|| map.pin().reserve(additional)));
        assert_eq!(message(reserved.expect_err("a panic")), overflow);
        let reserved = catch_unwind(AssertUnwindSafe(|| set.pin().reserve(additional)));
        assert_eq!(message(reserved.expect_err("a panic")), overflow);
        let (m, s) = (map.pin(), set.pin());
        assert!((0..1_000).all(|k| m.get(&k) == Some(&k) && s.contains(&k)));
        assert_eq!(m.insert(5_000, 5), None);
        assert_eq!(m.remove(&5_000), Some(&5));
        assert!(s.insert(5_000));
        assert!(s.remove(&5_000));
        assert_eq!((m.len(), s.len()), (1_000, 1_000));
    }
}

#[test]
fn reserve_and_shrink_to_fit_change_capacity() {
    let map: HashMap<u64, u64> = HashMap::new();
    let g = map.guard();
    map.reserve(10_000, &g);
    assert!(map.capacity() >= 10_000);
    let reserved = map.capacity();
    for i in 0..10_000 {
        map.insert(i, i, &g);
    }
    assert_eq!(
        map.capacity(),
        reserved,
        "no growth within the reserved capacity"
    );
    for i in 0..9_990 {
        map.remove(&i, &g);
    }
    map.shrink_to_fit(&g);
    assert!(map.capacity() < reserved);
    assert_eq!(map.len(), 10);
    let with = HashMap::<u8, u8>::with_capacity(500);
    assert!(with.capacity() >= 500);
}

/// A map starts with room for 21 entries, and neither its own shrinking nor `clear` takes it
/// below that (a small map would only grow back); `shrink_to_fit` may. Under the stress geometry
/// (`LOCKFREE_MAP_STRESS_GEOMETRY`, tiny groups) the first table is the smallest, and only the
/// relations that hold there are checked.
#[test]
fn a_new_map_takes_21_keys_and_shrinks_no_further_by_itself() {
    let stress = option_env!("LOCKFREE_MAP_STRESS_GEOMETRY").is_some();
    // A fixed hasher: shrinking is checked on a sample of removals chosen by group (so by hash).
    let map: HashMap<u64, u64, BuildHasherDefault<DefaultHasher>> =
        HashMap::with_hasher(BuildHasherDefault::default());
    let g = map.guard();
    let first = map.capacity();
    assert_eq!(HashMap::<u64, u64>::with_capacity(1).capacity(), first);
    if !stress {
        assert_eq!(first, 21);
        for i in 0..21 {
            map.insert(i, i, &g);
        }
        assert_eq!(map.capacity(), first, "21 keys made the first table grow");
        // A table of up to 8 groups grows fourfold: 4 groups (21 entries) -> 16 (84).
        for i in 21..30 {
            map.insert(i, i, &g);
        }
        assert_eq!(map.capacity(), 84, "the first growth is fourfold");
    }
    for i in 0..common::scaled(5_000) as u64 {
        map.insert(i, i, &g);
    }
    assert!(map.capacity() > first);
    for i in 0..common::scaled(5_000) as u64 {
        assert_eq!(map.remove(&i, &g), Some(&i));
    }
    assert!(map.capacity() >= first, "shrank below a new map's table");
    churn_stays_at_least(&map, first, "a new map's table");
    map.insert(1, 1, &g);
    map.clear(&g);
    assert_eq!(map.capacity(), first, "clear leaves a new map's table");
    map.insert(7, 7, &g);
    map.shrink_to_fit(&g);
    assert!(map.capacity() >= 1);
    if !stress {
        assert!(
            map.capacity() < first,
            "shrink_to_fit keeps the first table"
        );
    }
    assert_eq!(map.get(&7, &g), Some(&7));
}

/// Rounds of 40 fresh keys in and out of `map`: the sampled removals that find the table sparse
/// come when only a handful of keys are left, where shrinking to fit would go below `least`.
fn churn_stays_at_least<S: std::hash::BuildHasher>(
    map: &HashMap<u64, u64, S>,
    least: usize,
    what: &str,
) {
    let g = map.guard();
    for round in 0..20u64 {
        let keys = 1_000_000 * (round + 1)..1_000_000 * (round + 1) + 40;
        for i in keys.clone() {
            map.insert(i, i, &g);
        }
        for i in keys {
            assert_eq!(map.remove(&i, &g), Some(&i));
        }
        assert!(
            map.capacity() >= least,
            "round {round}: shrank below {what}"
        );
    }
}

/// `with_capacity` is a floor for the resizes a map makes on its own, as papaya's initial capacity
/// and scc's minimum capacity are: emptying the map, churning keys through it (integer keys, and
/// `String` keys whose removals leave tombstones for rebuilds to clear) and `clear` leave it at
/// least that large. `shrink_to_fit` goes below, and the next growth goes back to the floor. A
/// clone keeps the floor; a collected map has none beyond a new map's.
#[test]
fn with_capacity_is_a_floor_for_the_maps_own_resizes() {
    type Fixed = BuildHasherDefault<DefaultHasher>;
    let floor = common::sized(10_000, 500);
    let map: HashMap<u64, u64, Fixed> = HashMap::with_capacity_and_hasher(floor, Fixed::default());
    let g = map.guard();
    let made = map.capacity();
    assert!(made >= floor);
    let n = 8 * floor as u64;
    for i in 0..n {
        map.insert(i, i, &g);
    }
    let grown = map.capacity();
    assert!(grown > made);
    for i in 0..n {
        assert_eq!(map.remove(&i, &g), Some(&i));
    }
    // The shrink the removals start is finished by the operations after them (lookups too):
    // `removing_everything_shrinks_the_table`. It stops at the floor.
    let mut lookups = 0;
    while map.capacity() > made && lookups < 4 * grown {
        assert_eq!(map.get(&(lookups as u64), &g), None);
        lookups += 1;
    }
    assert!(
        map.capacity() >= made,
        "an emptied map shrank below its floor"
    );
    shrink_on_to(&map, made, n);
    assert_eq!(map.capacity(), made, "an emptied map shrinks to its floor");
    churn_stays_at_least(&map, made, "the floor");

    // A clone starts at the floor and keeps it.
    map.insert(1, 1, &g);
    let copy = map.clone();
    assert_eq!(copy.capacity(), made);
    copy.clear(&copy.guard());
    assert_eq!(copy.capacity(), made, "clear takes a clone below its floor");

    // `shrink_to_fit` goes below the floor; the next growth goes back to it, and the map's own
    // shrinks stop there again.
    map.shrink_to_fit(&g);
    assert!(map.capacity() < made);
    assert_eq!(map.get(&1, &g), Some(&1));
    for i in 0..100 {
        map.insert(i, i, &g);
    }
    assert!(
        map.capacity() >= made,
        "a growth after shrink_to_fit stayed below the floor"
    );
    map.clear(&g);
    assert_eq!(map.capacity(), made, "clear goes back to the floor");

    // Ever-new `String` keys, at most 8 live: their removals leave tombstones, and the inserts
    // that probe too far through them rebuild the table, for the live keys but not below the
    // floor.
    let strings: HashMap<String, u64> = HashMap::with_capacity(floor);
    let s = strings.pin();
    let string_floor = s.capacity();
    for i in 0..(8 * floor) as u64 {
        s.insert(format!("key-{i}"), i);
        if i >= 8 {
            assert_eq!(s.remove(format!("key-{}", i - 8).as_str()), Some(&(i - 8)));
        }
        assert!(
            s.capacity() >= string_floor,
            "key {i}: rebuilt below the floor"
        );
    }
    assert_eq!(s.len(), 8);

    // Collected (or deserialized), the size of the input is no floor: emptied, the map shrinks
    // as far as a new map grown by the same inserts and emptied the same way. (Until stop 48 the
    // new map was given the room by `reserve`, which set no floor; since, the room a `reserve`
    // makes is kept until `shrink_to_fit`.)
    let empty = |map: &HashMap<u64, u64, Fixed>| {
        let m = map.pin();
        for i in 0..n {
            m.remove(&i);
        }
        for i in 0..4 * grown as u64 {
            assert_eq!(m.get(&i), None);
        }
        drop(m);
        shrink_on_to(map, HashMap::<u64, u64, Fixed>::default().capacity(), n);
        map.capacity()
    };
    let collected: HashMap<u64, u64, Fixed> = (0..n).map(|i| (i, i)).collect();
    let new: HashMap<u64, u64, Fixed> = HashMap::default();
    for i in 0..n {
        new.pin().insert(i, i);
    }
    let (collected, new) = (empty(&collected), empty(&new));
    assert_eq!(
        collected, new,
        "a collected map kept its input's size as a floor"
    );
    assert!(
        collected < made,
        "the comparison is vacuous: {collected} >= {made}"
    );
}

/// Removals check for a shrink only on a sample of groups, and a shrink sizes the table for
/// the entries live when it started: in the stress geometry (two-slot groups, so many more
/// groups) the last sampled removal of an emptying map often comes while many entries are
/// still live, and the map stays above where it would shrink to. Fresh keys inserted and
/// removed, with lookups to finish each shrink, take it the rest of the way (at once outside
/// the stress geometry, whose test assertions did not hold there until stop 49: a review found
/// the floor and the collected-map checks skipped in that build).
fn shrink_on_to<S: BuildHasher>(map: &HashMap<u64, u64, S>, target: usize, first_key: u64) {
    let m = map.pin();
    let mut key = first_key;
    while m.capacity() > target && key < first_key + 1_000_000 {
        m.insert(key, key);
        assert_eq!(m.remove(&key), Some(&key));
        for _ in 0..16 {
            assert_eq!(m.get(&key), None);
        }
        key += 1;
    }
}

#[test]
fn a_constant_hasher_still_gives_correct_results() {
    let map: HashMap<u64, u64, ConstantState> = HashMap::with_hasher(ConstantState);
    let m = map.pin();
    let n = common::scaled(2_000) as u64;
    for i in 0..n {
        assert_eq!(m.insert(i, i + 1), None);
    }
    for i in 0..n {
        assert_eq!(m.get(&i), Some(&(i + 1)));
    }
    for i in (0..n).step_by(2) {
        assert_eq!(m.remove(&i), Some(&(i + 1)));
    }
    for i in 0..n {
        assert_eq!(m.get(&i).is_some(), i % 2 == 1);
    }
    assert_eq!(m.len() as u64, n / 2);
    assert_eq!(m.iter().count() as u64, n / 2);
}

#[test]
fn a_few_bits_hasher_still_gives_correct_results() {
    let map: HashMap<String, usize, FewBitsState> = HashMap::default();
    let m = map.pin();
    for i in 0..3_000 {
        m.insert(format!("key{i}"), i);
    }
    for i in 0..3_000 {
        assert_eq!(m.get(format!("key{i}").as_str()), Some(&i));
    }
}

/// A hasher as wide as a `usize` (FxHasher's kind: on a 32-bit target the upper half of its
/// hashes is zero) still gets tags that filter: a lookup of an absent key compares almost no
/// stored key. Until stop 54 a tag was bits 57 to 63 of the hash on every target, so on i686
/// every tag of such a hasher was `0x80` and a lookup compared every key of its home group
/// (8.3 a lookup here). `scripts/cross.sh` runs this test on i686.
#[test]
fn a_hasher_as_wide_as_a_usize_gets_tags_that_filter() {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COMPARES: AtomicUsize = AtomicUsize::new(0);
    /// Compared through its entry (no key line: not an integer), counting each compare.
    struct Counted(u64);
    impl Hash for Counted {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            COMPARES.fetch_add(1, Ordering::Relaxed);
            self.0 == other.0
        }
    }
    impl Eq for Counted {}
    /// SipHash with fixed keys, cut to a `usize`.
    #[derive(Default)]
    struct UsizeWide(DefaultHasher);
    impl Hasher for UsizeWide {
        fn write(&mut self, bytes: &[u8]) {
            self.0.write(bytes);
        }
        fn finish(&self) -> u64 {
            self.0.finish() as usize as u64
        }
    }

    let map: HashMap<Counted, u64, BuildHasherDefault<UsizeWide>> = HashMap::default();
    let m = map.pin();
    let n = common::sized(10_000, 300) as u64;
    for i in 0..n {
        assert_eq!(m.insert(Counted(i), i), None);
    }
    COMPARES.store(0, Ordering::Relaxed);
    for i in n..2 * n {
        assert_eq!(m.get(&Counted(i)), None);
    }
    let per_lookup = COMPARES.load(Ordering::Relaxed) as f64 / n as f64;
    // 0.10 with tags that filter (a match by chance is 1 in 127 a stored key), 8.3 on i686
    // with the tags of bits 57 to 63.
    assert!(
        per_lookup < 0.5,
        "{per_lookup:.2} compares a lookup of an absent key: the tags do not filter"
    );
}

#[test]
fn iteration_yields_each_entry_once() {
    let map: HashMap<u64, u64> = (0..5_000).map(|i| (i, i * 2)).collect();
    let g = map.guard();
    let mut keys: Vec<u64> = map.keys(&g).copied().collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..5_000).collect::<Vec<_>>());
    let sum: u64 = map.values(&g).sum();
    assert_eq!(sum, (0..5_000).map(|i| i * 2).sum());
    let pinned = map.pin();
    assert_eq!((&pinned).into_iter().count(), 5_000);
}

#[test]
fn owned_iteration_moves_everything_out() {
    let map: HashMap<String, Vec<u8>> = (0..100)
        .map(|i| (i.to_string(), vec![i as u8; 3]))
        .collect();
    let mut items: Vec<(String, Vec<u8>)> = map.into_iter().collect();
    items.sort();
    assert_eq!(items.len(), 100);
    assert!(items
        .iter()
        .all(|(k, v)| v == &vec![k.parse::<u8>().unwrap(); 3]));
}

#[test]
fn clone_eq_debug_extend_and_defaults() {
    let mut a: HashMap<u8, u8> = HashMap::default();
    a.extend([(1, 1), (2, 2)]);
    let b = a.clone();
    assert_eq!(a, b);
    b.pin().insert(3, 3);
    assert_ne!(a, b);
    let one: HashMap<u8, u8> = [(1, 9)].into_iter().collect();
    assert_eq!(format!("{one:?}"), "{1: 9}");
    assert_eq!(format!("{:?}", one.pin()), "{1: 9}");
    assert_eq!(one.get_cloned(&1), Some(9));
    assert_eq!(one.get_cloned(&2), None);
}

/// The iterators print their type, and the owned ones the count left; no entry (their types
/// need not be `Debug`, and a borrowed walk's count is not known).
#[test]
fn iterators_print_their_type_and_what_is_left() {
    struct Opaque;
    let fresh = || -> HashMap<u8, Opaque> { (0..3).map(|k| (k, Opaque)).collect() };
    let mut map = fresh();
    assert!(format!("{:?}", map.pin().iter()).starts_with("Iter"));
    assert_eq!(map.pin().values().by_ref().take(5).count(), 3);
    assert_eq!(map.values_mut().size_hint(), (3, Some(3)));
    assert_eq!(
        format!("{:?}", map.iter_mut()),
        "IterMut { remaining: 3, .. }"
    );
    let mut owned = fresh().into_iter();
    owned.next();
    assert_eq!(format!("{owned:?}"), "IntoIter { remaining: 2, .. }");
    let keys = fresh().into_keys();
    assert_eq!(format!("{keys:?}"), "IntoKeys { remaining: 3, .. }");
    let values = map.into_values();
    assert_eq!(format!("{values:?}"), "IntoValues { remaining: 3, .. }");
}

/// The iterators that know their count (the owning ones and those through `&mut`) say it
/// exactly, and count down as they go, to `(0, Some(0))` at the end. (`into_values`' count was
/// never checked: the mutation run of stop 46.)
#[test]
fn exact_size_iterators_count_down_to_zero() {
    const N: usize = 50;
    let fresh = || -> HashMap<u32, String> { (0..N as u32).map(|k| (k, k.to_string())).collect() };
    let mut map = fresh();
    common::counts_down(map.iter_mut(), N);
    common::counts_down(map.values_mut(), N);
    common::counts_down(map.into_iter(), N);
    common::counts_down(fresh().into_keys(), N);
    common::counts_down(fresh().into_values(), N);
}

#[test]
fn references_stay_valid_while_the_guard_lives() {
    let map = HashMap::new();
    let g = map.guard();
    map.insert(1, String::from("first"), &g);
    let first = map.get(&1, &g).unwrap();
    let replaced = map.insert(1, String::from("second"), &g).unwrap();
    let removed = map.remove(&1, &g).unwrap();
    // The replaced and removed values are retired, not freed, while `g` lives.
    assert_eq!(first, "first");
    assert_eq!(replaced, "first");
    assert_eq!(removed, "second");
}

#[test]
fn tombstone_churn_is_cleaned_without_growing() {
    // Ever-new keys, each removed right after insertion: every slot ends up a tombstone, and
    // tombstones are never reused, so only same-size cleanup migrations keep this bounded.
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    for k in 0..64 {
        m.insert(k, k);
    }
    let before = m.capacity();
    // Under Miri, 500 rounds: still several cleanups of a table sized for 64 keys.
    for k in 1_000..common::sized(300_000, 1_500) as u64 {
        m.insert(k, k);
        assert_eq!(m.remove(&k), Some(&k));
    }
    assert_eq!(m.len(), 64);
    assert!(
        m.capacity() <= before * 2,
        "capacity grew from {before} to {}",
        m.capacity()
    );
    for k in 0..64 {
        assert_eq!(m.get(&k), Some(&k));
    }
}

#[test]
fn fold_after_next_yields_the_rest_exactly_once() {
    // `fold` (behind `for_each`, `count`, `sum`) walks the groups in a loop of its own; started
    // after some `next` calls it must take up where they stopped, mid-group or not.
    let n = common::sized(1_000, 100) as u64;
    let map: HashMap<u64, u64> = (0..n).map(|k| (k, k * 3)).collect();
    let m = map.pin();
    for first in [0, 1, 2, 3, 7, 13, n / 2, n - 1, n] {
        let first = first as usize;
        let mut iter = m.iter();
        let mut seen = std::collections::HashSet::new();
        for (k, _) in iter.by_ref().take(first) {
            assert!(seen.insert(*k));
        }
        iter.for_each(|(k, v)| {
            assert_eq!(*v, k * 3);
            assert!(
                seen.insert(*k),
                "key {k} yielded twice after {first} by next"
            );
        });
        assert_eq!(seen.len() as u64, n, "keys missed after {first} by next");
    }
    assert_eq!(m.keys().fold(0, |max, k| max.max(*k)), n - 1);
    assert_eq!(
        m.values().copied().sum::<u64>(),
        (0..n).map(|k| k * 3).sum::<u64>()
    );
}

#[test]
fn iteration_never_yields_a_reinserted_key_twice_nor_keys_inserted_meanwhile() {
    let n = common::sized(1_000, 100) as u64;
    let map: HashMap<u64, u64> = (0..n).map(|k| (k, k)).collect();
    let m = map.pin();
    let mut iter = m.iter();
    let mut seen = std::collections::HashSet::new();
    for (k, _) in iter.by_ref().take(n as usize / 2) {
        assert!(seen.insert(*k));
    }
    // Remove and re-insert every key seen so far (each takes its own vacated slot back: `u64`
    // keys keep their slots), and add new keys.
    for &k in &seen.clone() {
        m.remove(&k);
        m.insert(k, k + 1);
    }
    // Twice as many new keys as there were: the table grows while the iteration is halfway.
    for k in 10_000..10_000 + 2 * n {
        m.insert(k, k);
    }
    for (k, _) in iter {
        assert!(seen.insert(*k), "key {k} yielded twice");
        assert!(*k < n, "key {k} inserted during the iteration was yielded");
    }
    assert_eq!(seen.len() as u64, n);
}

/// A removed integer key keeps its slot (vacated, tag and key cell in place) for the key to take
/// back; an iteration started after the removal must not record that slot, or the key inserted
/// again during the iteration is yielded (a review at stop 48 found it was). `String` keys, which
/// leave tombstones, are checked alike.
#[test]
fn iteration_never_yields_a_key_removed_before_it_and_inserted_again_during_it() {
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    m.insert(7, 1);
    m.remove(&7);
    let iter = m.iter();
    m.insert(7, 2);
    assert_eq!(iter.map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), []);

    // Many keys, half of them removed before the iteration starts and inserted again during it.
    let n = common::sized(1_000, 100) as u64;
    let map: HashMap<u64, u64> = (0..n).map(|k| (k, k)).collect();
    let m = map.pin();
    for k in (0..n).step_by(2) {
        m.remove(&k);
    }
    let mut iter = m.iter();
    let first = iter.next().map(|(k, _)| *k);
    for k in (0..n).step_by(2) {
        m.insert(k, k + 1);
    }
    let yielded: Vec<u64> = first.into_iter().chain(iter.map(|(k, _)| *k)).collect();
    assert_eq!(yielded.len() as u64, n / 2);
    assert!(yielded.iter().all(|k| k % 2 == 1), "{yielded:?}");

    let set: lockfree_map::HashSet<String> = lockfree_map::HashSet::new();
    let s = set.pin();
    s.insert("a".to_string());
    s.remove("a");
    let iter = s.iter();
    s.insert("a".to_string());
    assert_eq!(iter.count(), 0);
}

/// The room `reserve` makes stays while entries are removed (a sampled removal that found the
/// table 1/8 full used to shrink it back: found by a review at stop 48), and `shrink_to_fit`
/// gives it back.
#[test]
fn removals_after_reserve_keep_the_room_reserved() {
    let n = common::sized(10_000, 1_000) as u64;
    let map: HashMap<u64, u64> = (0..n).map(|k| (k, k)).collect();
    let m = map.pin();
    let room = 10 * n as usize;
    m.reserve(room);
    let reserved = m.capacity();
    assert!(reserved >= n as usize + room);
    for k in 0..n - n / 10 {
        m.remove(&k);
    }
    assert_eq!(m.capacity(), reserved);
    m.clear();
    assert_eq!(m.capacity(), reserved, "clear keeps the room reserved too");
    m.map().shrink_to_fit(m.guard());
    assert!(m.capacity() < reserved);
}

/// `drain` leaves the room the map keeps whatever is removed, as `clear` does: the capacity it
/// was made with, or reserved, and later removals keep it too; a map made with neither gets a
/// new map's first table. Until stop 50 it dropped the reserved room (a review of the docs found
/// it).
#[test]
fn drain_keeps_the_room_made_or_reserved() {
    let n = common::sized(10_000, 1_000) as u64;
    let mut map: HashMap<u64, u64> = (0..n).map(|k| (k, k)).collect();
    map.pin().reserve(10 * n as usize);
    let reserved = map.capacity();
    assert_eq!(map.drain().count() as u64, n);
    assert!(map.is_empty());
    assert_eq!(map.capacity(), reserved, "drain keeps the room reserved");
    // The room is still a floor: a removal that samples the length finds the map sparse and
    // would shrink it.
    {
        let m = map.pin();
        for k in 0..n {
            m.insert(k, k);
        }
        for k in 0..n {
            m.remove(&k);
        }
    }
    assert_eq!(map.capacity(), reserved, "removals after the drain keep it");
    map.pin().map().shrink_to_fit(map.pin().guard());
    assert!(map.capacity() < reserved, "shrink_to_fit gives it back");

    let mut made: HashMap<u64, u64> = HashMap::with_capacity(5 * n as usize);
    let capacity = made.capacity();
    made.pin().insert(1, 1);
    assert_eq!(made.drain().count(), 1);
    assert_eq!(
        made.capacity(),
        capacity,
        "drain keeps the capacity made with"
    );

    let mut plain: HashMap<u64, u64> = (0..n).map(|k| (k, k)).collect();
    assert!(plain.capacity() >= n as usize);
    plain.drain();
    assert_eq!(
        plain.capacity(),
        HashMap::<u64, u64>::new().capacity(),
        "a map made with no room drains to a new map's first table"
    );
}

/// Found by the fuzzer: a minimal table (14 slots) reported capacity 9, so `reserve(10)` left
/// `capacity() < 10` (the capacity rounded down twice).
#[test]
fn reserve_always_reaches_the_requested_capacity() {
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    for additional in 0..200 {
        m.map().shrink_to_fit(m.guard());
        m.reserve(additional);
        assert!(
            m.capacity() >= m.len() + additional,
            "reserve({additional})"
        );
        m.insert(additional as u64, 0);
    }
}

/// The shared walks are `FusedIterator`s, as `std`'s are: past the end they stay there.
#[test]
fn shared_iterators_are_fused() {
    use std::iter::FusedIterator;
    fn drained<I: FusedIterator>(mut it: I) {
        for _ in it.by_ref() {}
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    }
    let map: HashMap<u64, u64> = (0..100).map(|k| (k, k)).collect();
    let m = map.pin();
    drained(m.iter());
    drained(m.keys());
    drained(m.values());
    let a: lockfree_map::HashSet<u64> = (0..100).collect();
    let b: lockfree_map::HashSet<u64> = (50..150).collect();
    let g = a.guard();
    drained(a.iter(&g));
    drained(a.difference(&b, &g));
    drained(a.intersection(&b, &g));
    drained(a.symmetric_difference(&b, &g));
    drained(a.union(&b, &g));
}
