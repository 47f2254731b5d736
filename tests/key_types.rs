//! Integer keys are compared through a copy beside the group (`raw/keys.rs`): every integer
//! width and sign, against `std`'s map, through growth, removal, reinsertion and shrinking; and
//! small keys that are not integers, which get the key lines' array but compare through their
//! entries; removed integer keys taking their slots back (`VACATED`, `raw/slot.rs`); and lookups
//! by an [`Equivalent`] type that is no `Borrow` of the key, composite or integer.
//! Multi-threaded use of the same paths is in `concurrent.rs` and the loom models.

mod common;

use common::{sized, FewBitsState};
use lockfree_map::{Equivalent, HashMap, HashSet};
use std::collections::HashMap as StdMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};

/// Inserts, replaces, removes and reinserts `keys` (distinct) in rounds, and checks every key,
/// present or not, against `std` after each round.
fn against_std<K, S>(map: HashMap<K, u64, S>, keys: &[K])
where
    K: Hash + Eq + Copy + Debug + Send + Sync + 'static,
    S: BuildHasher,
{
    let mut model = StdMap::new();
    let m = map.pin();
    for round in 0..4u64 {
        for (i, &k) in keys.iter().enumerate() {
            let i = i as u64;
            match (i + round) % 5 {
                0 | 1 => assert_eq!(m.insert(k, i + round).copied(), model.insert(k, i + round)),
                2 => assert_eq!(m.remove(&k).copied(), model.remove(&k)),
                3 => assert_eq!(m.update(&k, |v| v + 1).copied(), {
                    model.get_mut(&k).map(|v| {
                        *v += 1;
                        *v
                    })
                }),
                _ => assert_eq!(m.get(&k), model.get(&k)),
            }
        }
        assert_eq!(m.len(), model.len());
        for k in keys {
            assert_eq!(m.get(k), model.get(k), "key {k:?} after round {round}");
            assert_eq!(m.contains_key(k), model.contains_key(k));
        }
    }
    // Empty the map and shrink it, then fill it again: the keys land in new slots. (The
    // removals start a shrink only on a sample of groups, by the random hashes: for the 8-bit
    // keys none did in about two runs in five, so the shrink is asked for; found by a review at
    // stop 49.)
    let full = m.capacity();
    for k in keys {
        assert_eq!(m.remove(k).copied(), model.remove(k));
    }
    assert!(m.is_empty());
    map.shrink_to_fit(&map.guard());
    assert!(m.capacity() < full, "{} of {full}", m.capacity());
    for (i, &k) in keys.iter().enumerate() {
        assert_eq!(m.insert(k, i as u64), None);
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(m.get(k), Some(&(i as u64)));
    }
}

#[test]
fn every_integer_width_and_sign() {
    let n = sized(5_000, 300);
    against_std(HashMap::new(), &(0..=255u8).collect::<Vec<_>>());
    against_std(HashMap::new(), &(-128..=127i8).collect::<Vec<_>>());
    against_std(HashMap::new(), &(-(n as i16)..n as i16).collect::<Vec<_>>());
    against_std(
        HashMap::new(),
        &(0..n as u16).map(|k| k * 13).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n as u32).map(|k| k.rotate_left(29)).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n as i32).map(|k| -k * 7919).collect::<Vec<_>>(),
    );
    let wide: Vec<u64> = (0..n as u64)
        .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    against_std(HashMap::new(), &wide);
    against_std(
        HashMap::new(),
        &wide.iter().map(|&k| k as i64).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &wide.iter().map(|&k| k as usize).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &wide.iter().map(|&k| k as isize).collect::<Vec<_>>(),
    );
}

/// Keys that share their tags and home groups: many tag matches a group, so lookups go past
/// cells that hold other keys, and to the full probe on a second match.
#[test]
fn integer_keys_with_colliding_hashes() {
    let keys: Vec<u64> = (0..sized(2_000, 200) as u64).collect();
    against_std(HashMap::with_hasher(FewBitsState), &keys);
}

/// Pairs of 4-byte integers compare through key lines too (`raw/keys.rs`, `cached`): a grid's
/// coordinates, negative ones included, alone and with colliding hashes, so lookups go past
/// cells that hold other keys.
#[test]
fn pairs_of_four_byte_integers() {
    let side = (sized(3_000, 200) as f64).sqrt() as i32 + 1;
    let grid: Vec<(i32, i32)> = (-side..side)
        .flat_map(|x| (-side..side).map(move |y| (x, y)))
        .collect();
    against_std(HashMap::new(), &grid);
    against_std(
        HashMap::with_hasher(FewBitsState),
        &grid[..grid.len().min(2_000)],
    );
    let pairs: Vec<(u32, u32)> = grid
        .iter()
        .map(|&(x, y)| (x as u32, (y as u32).rotate_left(16)))
        .collect();
    against_std(HashMap::new(), &pairs);
}

/// Small keys that are not integers or their pairs: the table has key lines for them (their
/// type is known to fit one where the table is built), but they compare through their entries.
#[test]
fn small_keys_that_are_not_integers() {
    use std::num::NonZeroU64;
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    struct Id(u32, u16);
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    struct Wrapped(u64);
    let n = sized(3_000, 200) as u32;
    against_std(
        HashMap::new(),
        &(0..n).map(|k| Id(k, (k % 7) as u16)).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n as u64).map(Wrapped).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n).filter_map(char::from_u32).collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(1..=n as u64)
            .filter_map(NonZeroU64::new)
            .collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n)
            .map(|k| (k as u16, (k >> 3) as u16))
            .collect::<Vec<_>>(),
    );
    against_std(
        HashMap::new(),
        &(0..n).map(|k| (k as u8, k as u16)).collect::<Vec<_>>(),
    );
}

/// A removed integer key keeps its slot, and an insert of it takes the slot back: a few keys
/// removed and inserted again and again in a big table never fill it with dead slots, and keep
/// their values. That the table is never rebuilt this test cannot see (the map's floor makes a
/// rebuild keep the capacity): `raw::tests::removed_integer_keys_take_their_slots_back_and_the_root_stays`
/// checks the root's identity.
///
/// The table holds enough other entries that it is never sparse: a removal that finds the table
/// at most an eighth full may shrink it (sampled by the group it removed from, so whether one of
/// the churning keys samples depends on the hasher's seed; CI caught this test shrinking an
/// all-but-empty table).
#[test]
fn removed_integer_keys_take_their_slots_back() {
    let map: HashMap<u64, u64> = HashMap::with_capacity(1_000);
    let m = map.pin();
    let capacity = m.capacity();
    let resident = 1_000..1_000 + capacity as u64 / 4;
    for k in resident.clone() {
        m.insert(k, k);
    }
    assert_eq!(m.capacity(), capacity);
    let keys = 0..8u64;
    for round in 0..sized(20_000, 300) as u64 {
        for k in keys.clone() {
            assert_eq!(m.insert(k, round), None, "key {k} round {round}");
        }
        for k in keys.clone() {
            assert_eq!(m.get(&k), Some(&round));
            assert_eq!(m.remove(&k), Some(&round));
            assert_eq!(m.get(&k), None);
        }
    }
    assert_eq!(m.len(), resident.clone().count());
    assert!(resident.into_iter().all(|k| m.get(&k) == Some(&k)));
    assert_eq!(m.capacity(), capacity, "the table was resized");
}

/// Ever-new integer keys, each removed right after its insert, with five hashes among them:
/// the vacated slots fill the table and every probe, and only a rebuild clears them (the spill
/// check counts them from their words, since they keep their tags). Nothing is lost on the way,
/// and the table does not grow for them.
#[test]
fn vacated_slots_of_new_keys_are_cleared_by_rebuilds() {
    let map: HashMap<u64, u64, _> = HashMap::with_hasher(FewBitsState);
    let m = map.pin();
    for k in 0..16 {
        m.insert(k, k);
    }
    let before = m.capacity();
    for k in 1_000..sized(50_000, 1_500) as u64 {
        assert_eq!(m.insert(k, k), None);
        assert_eq!(m.get(&k), Some(&k));
        assert_eq!(m.remove(&k), Some(&k));
    }
    assert_eq!(m.len(), 16);
    assert!(
        m.capacity() <= before * 2,
        "grew from {before} to {}",
        m.capacity()
    );
    for k in 0..16 {
        assert_eq!(m.get(&k), Some(&k));
    }
}

/// An insert over a present key keeps the stored key for the key types whose bytes the map
/// hands on (`String`, `Vec<u8>`, `Arc<str>`, `Arc<[u8]>`), as `std`'s maps do, and drops the
/// caller's key at once; any other key type keeps the caller's key (keeping the stored one
/// would take a clone). Either way the value is replaced and the old one returned.
#[test]
fn an_insert_over_a_present_key_keeps_the_documented_key() {
    use std::sync::Arc;

    let map: HashMap<Arc<str>, u32> = HashMap::new();
    let m = map.pin();
    let stored: Arc<str> = Arc::from("k");
    let caller: Arc<str> = Arc::from("k");
    assert_eq!(m.insert(stored.clone(), 1), None);
    assert_eq!(m.insert(caller.clone(), 2), Some(&1));
    assert_eq!(
        Arc::strong_count(&caller),
        1,
        "the caller's key is dropped at once"
    );
    let (key, value) = m.get_key_value("k").unwrap();
    assert!(Arc::ptr_eq(key, &stored), "the stored key is kept");
    assert_eq!(*value, 2);
    // Through a growth as well (several natively): the key moves with its entry.
    let capacity = m.capacity();
    for i in 0..sized(1_000, 64) as u32 {
        m.insert(Arc::from(format!("other-{i}")), i);
    }
    assert!(
        common::grew(capacity, m.len(), m.capacity()),
        "the table did not grow: {} entries, capacity before {capacity}",
        m.len()
    );
    assert_eq!(m.insert(caller.clone(), 3), Some(&2));
    assert!(Arc::ptr_eq(m.get_key_value("k").unwrap().0, &stored));
    assert_eq!(Arc::strong_count(&caller), 1);
    // `compute`'s insert over a present key keeps the same key.
    let outcome: lockfree_map::Compute<'_, _, _, ()> =
        m.compute(caller.clone(), |_| lockfree_map::Operation::Insert(4));
    match outcome {
        lockfree_map::Compute::Updated { old, new } => {
            assert_eq!((*old.1, *new.1), (3, 4));
            assert!(Arc::ptr_eq(new.0, &stored));
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(Arc::strong_count(&caller), 1);
    drop(m);
    drop(map);

    let map: HashMap<String, u32> = HashMap::new();
    let m = map.pin();
    let first = String::from("k");
    let bytes = first.as_ptr();
    m.insert(first, 1);
    assert_eq!(m.insert(String::from("k"), 2), Some(&1));
    assert_eq!(m.get_key_value("k").unwrap().0.as_ptr(), bytes);

    let map: HashMap<Vec<u8>, u32> = HashMap::new();
    let m = map.pin();
    let first = b"k".to_vec();
    let bytes = first.as_ptr();
    m.insert(first, 1);
    assert_eq!(m.insert(b"k".to_vec(), 2), Some(&1));
    assert_eq!(m.get_key_value(&b"k"[..]).unwrap().0.as_ptr(), bytes);

    /// Equal when their first fields are: the second tells two equal keys apart.
    #[derive(Debug)]
    struct Tagged(u32, &'static str);
    impl PartialEq for Tagged {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Tagged {}
    impl Hash for Tagged {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    let map: HashMap<Tagged, u32> = HashMap::new();
    let m = map.pin();
    m.insert(Tagged(7, "first"), 1);
    assert_eq!(m.insert(Tagged(7, "second"), 2), Some(&1));
    assert_eq!(m.get_key_value(&Tagged(7, "")).unwrap().0 .1, "second");
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Route {
    host: String,
    port: u16,
}

/// A `Route` without its `String`: hashes as `Route`'s derived `Hash` (the fields in order).
#[derive(Hash)]
struct RouteRef<'a> {
    host: &'a str,
    port: u16,
}

impl Equivalent<Route> for RouteRef<'_> {
    fn equivalent(&self, key: &Route) -> bool {
        self.host == key.host && self.port == key.port
    }
}

fn route(host: &str, port: u16) -> Route {
    Route {
        host: host.into(),
        port,
    }
}

/// Every method that takes a borrowed key, on the map and on the set, given a borrowed composite
/// key (`RouteRef`), through growth (and most often a shrink: the removals start one only on a
/// sample of groups, by the random hashes), against `std`'s map looked up by owned keys.
#[test]
fn composite_keys_are_looked_up_by_a_borrowed_form() {
    let n = sized(3_000, 200) as u16;
    let hosts: Vec<String> = (0..n).map(|i| format!("host-{}", i % 97)).collect();
    let map: HashMap<Route, u64> = HashMap::new();
    let m = map.pin();
    let mut model = StdMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let port = i as u16;
        m.insert(route(host, port), i as u64);
        model.insert(route(host, port), i as u64);
    }
    for (i, host) in hosts.iter().enumerate() {
        let port = i as u16;
        let by_ref = RouteRef { host, port };
        let owned = route(host, port);
        assert_eq!(m.get(&by_ref), model.get(&owned));
        assert_eq!(m.get_key_value(&by_ref).map(|(k, _)| k), Some(&owned));
        assert!(m.contains_key(&by_ref));
        assert!(!m.contains_key(&RouteRef {
            host,
            port: port.wrapping_add(n)
        }));
        match i % 4 {
            0 => assert_eq!(m.update(&by_ref, |v| v + 1).copied(), Some(i as u64 + 1)),
            1 => assert_eq!(m.remove(&by_ref), Some(&(i as u64))),
            2 => assert_eq!(m.remove_entry(&by_ref), Some((&owned, &(i as u64)))),
            _ => {
                assert_eq!(m.remove_if(&by_ref, |_, v| *v == u64::MAX), None);
                assert_eq!(
                    m.remove_if(&by_ref, |_, v| *v == i as u64),
                    Some((&owned, &(i as u64)))
                );
            }
        }
        match i % 4 {
            0 => *model.get_mut(&owned).unwrap() += 1,
            _ => drop(model.remove(&owned)),
        }
    }
    assert_eq!(m.len(), model.len());
    for (k, v) in &model {
        let by_ref = RouteRef {
            host: &k.host,
            port: k.port,
        };
        assert_eq!(map.get_cloned(&by_ref), Some(*v));
    }
    // `get_or_insert_with_ref` makes the owned key from the borrowed one only on a miss.
    let mut made = 0;
    let by_ref = RouteRef {
        host: "new",
        port: 1,
    };
    for _ in 0..3 {
        let v = m.get_or_insert_with_ref(
            &by_ref,
            |r| {
                made += 1;
                route(r.host, r.port)
            },
            || 7,
        );
        assert_eq!(*v, 7);
    }
    assert_eq!(made, 1);
    assert_eq!(m.get(&route("new", 1)), Some(&7));

    let set: HashSet<Route> = HashSet::new();
    let s = set.pin();
    s.insert(route("a", 1));
    let a = RouteRef { host: "a", port: 1 };
    assert!(s.contains(&a));
    assert_eq!(s.get(&a), Some(&route("a", 1)));
    assert_eq!(
        s.get_or_insert_with(&RouteRef { host: "b", port: 2 }, |r| route(r.host, r.port)),
        &route("b", 2)
    );
    assert_eq!(s.take(&a), Some(&route("a", 1)));
    assert!(!s.remove(&a));
    assert!(s.remove(&RouteRef { host: "b", port: 2 }));
    assert!(s.is_empty());
}

/// An integer key looked up by a type that is not the key: the key lines compare it through a
/// key rebuilt from the cell, so the lookup still goes through `Equivalent`.
#[test]
fn integer_keys_are_looked_up_by_an_equivalent_type() {
    /// The key's value minus a million, hashed as the key is.
    struct Offset(u64);
    impl Hash for Offset {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            (self.0 + 1_000_000).hash(state)
        }
    }
    impl Equivalent<u64> for Offset {
        fn equivalent(&self, key: &u64) -> bool {
            self.0 + 1_000_000 == *key
        }
    }
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    let n = sized(20_000, 500) as u64;
    for i in 0..n {
        m.insert(i + 1_000_000, i);
    }
    for i in 0..n {
        assert_eq!(m.get(&Offset(i)), Some(&i));
    }
    assert_eq!(m.get(&Offset(n)), None);
    for i in (0..n).step_by(2) {
        assert_eq!(m.remove(&Offset(i)), Some(&i));
    }
    for i in 0..n {
        assert_eq!(m.contains_key(&Offset(i)), i % 2 == 1, "key {i}");
    }
}
