//! Differential fuzzing: replays an arbitrary sequence of operations on a `lockfree_map::HashMap`
//! and on `std::collections::HashMap` (and on a `lockfree_map::HashSet` beside it and `std`'s),
//! and asserts that every result, what each closure is shown, and the final contents agree.
//! `scripts/fuzz.sh` runs it in the shipping geometry and in the stress one (2-slot groups:
//! a byte's keys then reach prepared successors and chunked moves).
//!
//! Keys come from a small space (a byte) so that probe chains, tombstones, growth, shrinking and
//! rebuilds all happen within short inputs. The first byte picks the hasher, degenerate ones
//! included: a constant hash (one probe chain for everything), a few distinct hashes, a hash with
//! only low bits, and a seeded one (the seed from the input, so that a run replays); its top bit
//! picks the key type: `u8`, whose removals leave their slot vacated for the key to take back,
//! or a newtype the crate does not copy into key lines, whose removals leave tombstones (until
//! stop 50 only `u8`: no input made a tombstone). Each operation pins a guard of its own, and
//! every fourth flushes, so that retired entries are freed and their blocks reused while the
//! input runs: an entry retired while the table still holds it shows as a wrong answer. Fuzzing is single-threaded: it hunts the sequential
//! logic (probing, tags, tombstones, migration, the closure-taking operations); concurrency is
//! left to loom, the linearizability checker and the sanitizers.
#![no_main]

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap as StdMap;
use std::collections::HashSet as StdSet;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash, Hasher};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockfree_map::{Compute, HashMap, HashSet, Operation};

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u8, u16),
    TryInsert(u8, u16),
    Get(u8),
    Remove(u8),
    RemoveIf(u8, u16),
    Update(u8, u16),
    GetOrInsert(u8, u16),
    /// `compute`: 0 inserts or replaces, 1 removes, 2 aborts.
    Compute(u8, u8, u16),
    /// Keeps the entries whose value is not divisible by this.
    Retain(u8),
    Clear,
    Reserve(u8),
    ShrinkToFit,
    /// Compares iteration, `len` and a clone with the model.
    Check,
    /// `update_or_insert(_with)`: adds the first value to a present one, or inserts the second.
    UpdateOrInsert(u8, u16, u16),
    /// `replace_if`: stores the second value over a present one below the first.
    ReplaceIf(u8, u16, u16),
    /// `drain`, taking this many entries before dropping the iterator.
    Drain(u8),
    /// `get_mut`, adding to a present value.
    GetMut(u8, u16),
    /// `iter_mut`, adding each key to its value, for this many entries (the rest unchanged).
    IterMut(u8),
    /// `remove_entry_owned`.
    RemoveOwned(u8),
    /// `get_key_value`.
    GetKeyValue(u8),
    /// The lazy inserts: the mode (mod 4) picks `get_or_try_insert_with` (0, 1: `make` fails)
    /// or `get_or_insert_with_ref` (2) and `get_or_try_insert_with_ref` (3: `make` fails when
    /// the value is odd).
    GetOrMake(u8, u16, u8),
    /// An owning walk of a clone (mod 3: `into_iter`, `into_keys`, `into_values`), taking this
    /// many before dropping it; 255 takes the map itself apart and builds it again with `Extend`.
    IntoIter(u8, u8),
    /// `extend`, through `&HashMap` (mode 0), `HashMap` (1) or borrowed pairs (2).
    Extend(Vec<(u8, u16)>, u8),
    /// The set: inserted into, removed from, and checked against its own model.
    Set(SetOp),
    /// `update` (mode 0), `compute` (1), `remove_if` (2) or `replace_if` (3) on the first key
    /// with the value given, whose closure first inserts the pairs listed (their keys other than
    /// the first), which grow the map under the operation when they pass its capacity (not
    /// asserted: an input's pairs may all fit): the closure runs once, and the result is the
    /// operation's after those inserts.
    Reenter(u8, u16, u8, Vec<(u8, u16)>),
}

#[derive(Arbitrary, Debug)]
enum SetOp {
    Insert(u8),
    Remove(u8),
    Take(u8),
    /// `get_or_insert` (mode 0), `get_or_insert_with` (1) or `get_or_try_insert_with` failing (2).
    GetOrInsert(u8, u8),
    Contains(u8),
    /// Keeps the values not divisible by this.
    Retain(u8),
    Clear,
    /// Compares iteration, `len` and the set operations against the map's keys with the models.
    Check,
    /// `drain` (0), `into_iter` of a clone (1), `take_owned` of this value (2).
    Owned(u8, u8),
}

/// The hashers; `Pick(0, seed)` is SipHash seeded from the input.
#[derive(Clone)]
struct Pick(u8, u64);

struct PickHasher(u8, u64, DefaultHasher);

impl BuildHasher for Pick {
    type Hasher = PickHasher;
    fn build_hasher(&self) -> PickHasher {
        let mut sip = DefaultHasher::new();
        sip.write_u64(self.1);
        PickHasher(self.0, 0, sip)
    }
}

/// The key types an input runs on.
trait Key: Copy + Hash + Eq + Ord + Debug + Send + Sync + 'static {
    fn of(b: u8) -> Self;
    fn byte(self) -> u8;
}

impl Key for u8 {
    fn of(b: u8) -> Self {
        b
    }
    fn byte(self) -> u8 {
        self
    }
}

/// A key the crate compares through its entries: removals leave tombstones.
#[derive(Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Id(u8);

impl Key for Id {
    fn of(b: u8) -> Self {
        Id(b)
    }
    fn byte(self) -> u8 {
        self.0
    }
}

impl Hasher for PickHasher {
    fn finish(&self) -> u64 {
        match self.0 % 4 {
            0 => self.2.finish(),
            1 => 0x5555_5555_5555_5555, // constant
            2 => (self.1 % 3).wrapping_mul(0x9E37_79B9_7F4A_7C15), // three hashes
            _ => self.1 & 0xFF,         // low bits only
        }
    }
    fn write(&mut self, bytes: &[u8]) {
        self.2.write(bytes);
        for &b in bytes {
            self.1 = self.1.wrapping_mul(31).wrapping_add(b as u64);
        }
    }
}

/// One input: the hasher, the initial capacity, then the operations. A crash report prints it.
#[derive(Arbitrary, Debug)]
struct Input {
    hasher: u8,
    capacity: u8,
    ops: Vec<Op>,
}

fn run(input: Input) {
    if input.hasher & 0x80 == 0 {
        run_on::<u8>(input);
    } else {
        run_on::<Id>(input);
    }
}

fn run_on<K: Key>(input: Input) {
    let Input {
        hasher,
        capacity,
        ops,
    } = input;
    let hasher = Pick(hasher, u64::from(hasher) << 8 | u64::from(capacity));
    let capacity = usize::from(capacity % 65);

    let mut map: HashMap<K, u16, Pick> =
        HashMap::with_capacity_and_hasher(capacity, hasher.clone());
    let mut model: StdMap<K, u16> = StdMap::new();
    let mut set: HashSet<K, Pick> = HashSet::with_capacity_and_hasher(capacity, hasher);
    let mut set_model: StdSet<K> = StdSet::new();
    for (i, op) in ops.into_iter().enumerate() {
        let guard = map.guard();
        match op {
            Op::Insert(k, v) => {
                let k = K::of(k);
                assert_eq!(map.insert(k, v, &guard).copied(), model.insert(k, v));
            }
            Op::TryInsert(k, v) => {
                let k = K::of(k);
                let ours = map.try_insert(k, v, &guard).copied().map_err(|e| {
                    assert_eq!(e.not_inserted, v, "try_insert handed back another value");
                    *e.current
                });
                let theirs = match model.get(&k) {
                    Some(&cur) => Err(cur),
                    None => {
                        model.insert(k, v);
                        Ok(v)
                    }
                };
                assert_eq!(ours, theirs);
            }
            Op::Get(k) => {
                let k = K::of(k);
                assert_eq!(map.get(&k, &guard), model.get(&k));
                assert_eq!(map.contains_key(&k, &guard), model.contains_key(&k));
            }
            Op::Remove(k) => {
                let k = K::of(k);
                assert_eq!(map.remove(&k, &guard).copied(), model.remove(&k));
            }
            Op::RemoveIf(k, below) => {
                let k = K::of(k);
                let ours = map
                    .remove_if(
                        &k,
                        |seen, v| {
                            assert_eq!(*seen, k, "remove_if showed another key");
                            *v < below
                        },
                        &guard,
                    )
                    .map(|(k, v)| (*k, *v));
                let theirs = match model.get(&k) {
                    Some(&v) if v < below => model.remove_entry(&k),
                    _ => None,
                };
                assert_eq!(ours, theirs);
            }
            Op::Update(k, add) => {
                let k = K::of(k);
                let ours = map.update(&k, |v| v.wrapping_add(add), &guard).copied();
                let theirs = model.get_mut(&k).map(|v| {
                    *v = v.wrapping_add(add);
                    *v
                });
                assert_eq!(ours, theirs);
            }
            Op::GetOrInsert(k, v) => {
                let k = K::of(k);
                let ours = *map.get_or_insert_with(k, || v, &guard);
                assert_eq!(ours, *model.entry(k).or_insert(v));
            }
            Op::Compute(k, action, v) => {
                let k = K::of(k);
                let current = model.get(&k).copied();
                let ours = map.compute(
                    k,
                    |cur| {
                        let shown = cur.map(|(ck, cv)| (*ck, *cv));
                        assert_eq!(
                            shown,
                            current.map(|c| (k, c)),
                            "compute showed another entry"
                        );
                        match action % 3 {
                            0 => Operation::Insert(cur.map_or(v, |(_, c)| c ^ v)),
                            1 => Operation::Remove,
                            _ => Operation::Abort(action),
                        }
                    },
                    &guard,
                );
                match (ours, action % 3, current) {
                    (Compute::Inserted(&ik, &iv), 0, None) => {
                        assert_eq!((ik, iv), (k, v));
                        model.insert(k, v);
                    }
                    (Compute::Updated { old, new }, 0, Some(c)) => {
                        assert_eq!((*old.0, *old.1), (k, c));
                        assert_eq!((*new.0, *new.1), (k, c ^ v));
                        model.insert(k, c ^ v);
                    }
                    (Compute::Removed(&rk, &rv), 1, Some(c)) => {
                        assert_eq!((rk, rv), (k, c));
                        model.remove(&k);
                    }
                    (Compute::Absent, 1, None) => {}
                    (Compute::Aborted(a), 2, _) => assert_eq!(a, action),
                    (ours, action, current) => {
                        panic!("compute returned {ours:?} for action {action} on {current:?}")
                    }
                }
            }
            Op::Retain(m) => {
                // Checked first, here and before `Clear` and `Drain`: what they take away would
                // hide a difference made before them.
                check(&map, &model);
                let m = u16::from(m.max(1));
                map.retain(|_, v| v % m != 0, &guard);
                model.retain(|_, v| *v % m != 0);
            }
            Op::Clear => {
                check(&map, &model);
                map.clear(&guard);
                model.clear();
            }
            Op::Reserve(n) => {
                map.reserve(usize::from(n), &guard);
                assert!(map.capacity() >= map.len() + usize::from(n));
            }
            Op::ShrinkToFit => map.shrink_to_fit(&guard),
            Op::Check => check(&map, &model),
            Op::UpdateOrInsert(k, add, v) => {
                let k = K::of(k);
                let ours = if add % 2 == 0 {
                    *map.update_or_insert(k, |c| c.wrapping_add(add), v, &guard)
                } else {
                    *map.update_or_insert_with(k, |c| c.wrapping_add(add), || v, &guard)
                };
                let theirs = *model
                    .entry(k)
                    .and_modify(|c| *c = c.wrapping_add(add))
                    .or_insert(v);
                assert_eq!(ours, theirs);
            }
            Op::Drain(take) => {
                drop(guard);
                check(&map, &model);
                let mut it = map.drain();
                let n = it.len();
                assert_eq!(n, model.len());
                for (k, v) in it.by_ref().take(usize::from(take)) {
                    assert_eq!(model.remove(&k), Some(v), "drained a pair the model lacks");
                }
                if usize::from(take) >= n {
                    assert!(model.is_empty(), "the drain left out {:?}", model);
                }
                drop(it);
                model.clear();
                assert!(map.is_empty());
            }
            Op::GetMut(k, add) => {
                let k = K::of(k);
                let ours = map.get_mut(&k).map(|c| {
                    *c = c.wrapping_add(add);
                    *c
                });
                let theirs = model.get_mut(&k).map(|c| {
                    *c = c.wrapping_add(add);
                    *c
                });
                assert_eq!(ours, theirs);
            }
            Op::RemoveOwned(k) => {
                let k = K::of(k);
                let ours = map.remove_entry_owned(&k);
                assert_eq!(ours, model.remove_entry(&k));
            }
            Op::IterMut(take) => {
                let mut it = map.iter_mut();
                assert_eq!(it.len(), model.len());
                for (k, v) in it.by_ref().take(usize::from(take)) {
                    *v = v.wrapping_add(u16::from(k.byte()));
                    let c = model
                        .get_mut(k)
                        .expect("iter_mut lent a key the model lacks");
                    *c = c.wrapping_add(u16::from(k.byte()));
                }
                assert_eq!(it.len(), model.len().saturating_sub(usize::from(take)));
            }
            Op::ReplaceIf(k, below, v) => {
                let k = K::of(k);
                let ours = map
                    .replace_if(
                        &k,
                        |seen, c| {
                            assert_eq!(*seen, k, "replace_if showed another key");
                            *c < below
                        },
                        v,
                        &guard,
                    )
                    .copied();
                let theirs = match model.get_mut(&k) {
                    Some(c) if *c < below => Ok(std::mem::replace(c, v)),
                    _ => Err(v),
                };
                assert_eq!(ours, theirs);
            }
            Op::Reenter(k, v, mode, pairs) => {
                let k = K::of(k);
                let pairs: Vec<(K, u16)> = pairs
                    .into_iter()
                    .map(|(pk, pv)| (K::of(pk), pv))
                    .filter(|&(pk, _)| pk != k)
                    .collect();
                // The model takes the closure's inserts first: they land before the operation.
                for &(pk, pv) in &pairs {
                    model.insert(pk, pv);
                }
                let current = model.get(&k).copied();
                let runs = Cell::new(0u32);
                let write = || {
                    if runs.replace(runs.get() + 1) == 0 {
                        for &(pk, pv) in &pairs {
                            map.insert(pk, pv, &guard);
                        }
                    }
                };
                // What each returns (the new value; `compute`'s removal, `remove_if` and
                // `replace_if`: the value taken out or replaced), and the key's value after.
                let (ours, returned, after) = match mode % 4 {
                    0 => {
                        let add = |c: &u16| {
                            write();
                            c.wrapping_add(v)
                        };
                        let new = current.map(|c| c.wrapping_add(v));
                        (map.update(&k, add, &guard).copied(), new, new)
                    }
                    1 => {
                        let decide = |cur: Option<(&K, &u16)>| {
                            let shown = cur.map(|(ck, cv)| (*ck, *cv));
                            assert_eq!(
                                shown,
                                current.map(|c| (k, c)),
                                "compute showed another entry"
                            );
                            write();
                            match cur {
                                Some((_, &c)) if c % 2 == 1 => Operation::Remove,
                                Some((_, &c)) => Operation::Insert(c ^ v),
                                None => Operation::<u16, ()>::Insert(v),
                            }
                        };
                        let ours = map.compute(k, decide, &guard);
                        // Each outcome only where the model has it, with the entries it names.
                        let ours = match (ours, current) {
                            (Compute::Inserted(&ik, &n), None) => {
                                assert_eq!(ik, k);
                                n
                            }
                            (Compute::Updated { old, new }, Some(c)) if c % 2 == 0 => {
                                assert_eq!((*old.0, *old.1, *new.0), (k, c, k));
                                *new.1
                            }
                            (Compute::Removed(&rk, &c), Some(_)) => {
                                assert_eq!(rk, k);
                                c
                            }
                            (other, current) => {
                                panic!("compute gave {other:?} over {current:?}")
                            }
                        };
                        match current {
                            Some(c) if c % 2 == 1 => (Some(ours), Some(c), None),
                            Some(c) => (Some(ours), Some(c ^ v), Some(c ^ v)),
                            None => (Some(ours), Some(v), Some(v)),
                        }
                    }
                    2 => {
                        let below = |_: &K, c: &u16| {
                            write();
                            *c < v
                        };
                        let ours = map.remove_if(&k, below, &guard).map(|(_, &c)| c);
                        match current {
                            Some(c) if c < v => (ours, Some(c), None),
                            _ => (ours, None, current),
                        }
                    }
                    _ => {
                        let below = |_: &K, c: &u16| {
                            write();
                            *c < v
                        };
                        let ours = map.replace_if(&k, below, v, &guard).ok().copied();
                        match current {
                            Some(c) if c < v => (ours, Some(c), Some(v)),
                            _ => (ours, None, current),
                        }
                    }
                };
                assert_eq!(ours, returned, "mode {} on {k:?}", mode % 4);
                match after {
                    Some(a) => model.insert(k, a),
                    None => model.remove(&k),
                };
                // The closure ran once if it was asked at all (the key present, or `compute`);
                // if it was not, its inserts are made now, as the model made them.
                let asked = current.is_some() || mode % 4 == 1;
                assert_eq!(runs.get(), u32::from(asked), "the closure ran again");
                if !asked {
                    write();
                }
                assert_eq!(map.get(&k, &guard), model.get(&k));
            }
            Op::GetKeyValue(k) => {
                let k = K::of(k);
                let ours = map.get_key_value(&k, &guard).map(|(k, v)| (*k, *v));
                assert_eq!(ours, model.get_key_value(&k).map(|(k, v)| (*k, *v)));
            }
            Op::GetOrMake(k, v, mode) => {
                let k = K::of(k);
                let mut made = 0;
                let fails = mode % 4 == 1 || (mode % 4 == 3 && v % 2 == 1);
                let mut make = || {
                    made += 1;
                    if fails {
                        Err(v)
                    } else {
                        Ok(v)
                    }
                };
                let ours = match mode % 4 {
                    0 | 1 => map.get_or_try_insert_with(k, make, &guard).copied(),
                    2 => Ok(*map.get_or_insert_with_ref(&k, |k| *k, || make().unwrap(), &guard)),
                    _ => map
                        .get_or_try_insert_with_ref(&k, |k| *k, make, &guard)
                        .copied(),
                };
                let present = model.get(&k).copied();
                assert_eq!(
                    made,
                    usize::from(present.is_none()),
                    "make ran {made} times"
                );
                let theirs = match present {
                    Some(c) => Ok(c),
                    None if fails => Err(v),
                    None => {
                        model.insert(k, v);
                        Ok(v)
                    }
                };
                assert_eq!(ours, theirs);
            }
            Op::IntoIter(which, take) if take == u8::MAX => {
                drop(guard);
                let hasher = map.hasher().clone();
                let taken = std::mem::replace(&mut map, HashMap::with_hasher(hasher));
                let it = taken.into_iter();
                assert_eq!(it.len(), model.len());
                let mut pairs: Vec<(K, u16)> = it.collect();
                pairs.sort_unstable();
                let mut expected: Vec<(K, u16)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                expected.sort_unstable();
                assert_eq!(pairs, expected, "into_iter differs from the model");
                // Built again by the owned pairs or by borrowed ones.
                if which % 2 == 0 {
                    map.extend(pairs);
                } else {
                    map.extend(pairs.iter().map(|(k, v)| (k, v)));
                }
            }
            Op::IntoIter(which, take) => {
                let copy = map.clone();
                let take = usize::from(take);
                let mut left = model.clone();
                match which % 3 {
                    0 => {
                        let mut it = copy.into_iter();
                        for (k, v) in it.by_ref().take(take) {
                            assert_eq!(left.remove(&k), Some(v), "into_iter: {k:?}");
                        }
                        assert_eq!(it.len(), left.len());
                    }
                    1 => {
                        let mut it = copy.into_keys();
                        for k in it.by_ref().take(take) {
                            assert!(left.remove(&k).is_some(), "into_keys: {k:?}");
                        }
                        assert_eq!(it.len(), left.len());
                    }
                    _ => {
                        let mut it = copy.into_values();
                        let mut values: Vec<u16> = it.by_ref().take(take).collect();
                        assert_eq!(it.len(), model.len() - values.len());
                        // The rest of the walk, to compare the values as a multiset.
                        values.extend(it);
                        values.sort_unstable();
                        let mut expected: Vec<u16> = model.values().copied().collect();
                        expected.sort_unstable();
                        assert_eq!(values, expected, "into_values differs from the model");
                    }
                }
            }
            Op::Extend(pairs, mode) => {
                let pairs: Vec<(K, u16)> = pairs.into_iter().map(|(k, v)| (K::of(k), v)).collect();
                drop(guard);
                match mode % 3 {
                    0 => (&map).extend(pairs.iter().copied()),
                    1 => map.extend(pairs.iter().copied()),
                    _ => map.extend(pairs.iter().map(|(k, v)| (k, v))),
                }
                model.extend(pairs);
            }
            Op::Set(op) => set_op(op, &mut set, &mut set_model, &map),
        }
        assert_eq!(map.len(), model.len());
        if i % 4 == 3 {
            // Hands this thread's retirements on, so that the next pins free them.
            map.guard().flush();
        }
    }
    check(&map, &model);
    check_set(&set, &set_model, &map);
    // Push this input's garbage to the collector so memory stays flat across runs.
    map.guard().flush();
}

fn check<K: Key>(map: &HashMap<K, u16, Pick>, model: &StdMap<K, u16>) {
    let guard = map.guard();
    let mut seen: Vec<(K, u16)> = map.iter(&guard).map(|(k, v)| (*k, *v)).collect();
    seen.sort_unstable();
    let mut expected: Vec<(K, u16)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    expected.sort_unstable();
    assert_eq!(seen, expected, "iteration differs from the model");
    // Every key of the space looked up, absent ones included: a removed key still found, or an
    // entry where its lookups do not look, shows here.
    for b in 0..=u8::MAX {
        let k = K::of(b);
        assert_eq!(map.get(&k, &guard), model.get(&k), "{k:?}");
    }
    assert_eq!(map.len(), model.len());
    assert!(map.capacity() >= map.len());
    let copy = map.clone();
    assert!(copy == *map, "a clone is not equal to its source");
}

fn set_op<K: Key>(op: SetOp, set: &mut HashSet<K, Pick>, model: &mut StdSet<K>, map: &Map<K>) {
    let guard = set.guard();
    match op {
        SetOp::Insert(v) => assert_eq!(set.insert(K::of(v), &guard), model.insert(K::of(v))),
        SetOp::Remove(v) => assert_eq!(set.remove(&K::of(v), &guard), model.remove(&K::of(v))),
        SetOp::Take(v) => {
            let v = K::of(v);
            assert_eq!(set.take(&v, &guard).copied(), model.take(&v));
        }
        SetOp::GetOrInsert(v, mode) => {
            let v = K::of(v);
            let mut made = 0;
            let ours = match mode % 3 {
                0 => Ok(*set.get_or_insert(v, &guard)),
                1 => Ok(*set.get_or_insert_with(
                    &v,
                    |v| {
                        made += 1;
                        *v
                    },
                    &guard,
                )),
                _ => set
                    .get_or_try_insert_with(
                        &v,
                        |v| {
                            made += 1;
                            Err(*v)
                        },
                        &guard,
                    )
                    .copied(),
            };
            let present = model.contains(&v);
            if mode % 3 != 0 {
                assert_eq!(made, usize::from(!present), "make ran {made} times");
            }
            if present || mode % 3 != 2 {
                model.insert(v);
                assert_eq!(ours, Ok(v));
            } else {
                assert_eq!(ours, Err(v));
            }
        }
        SetOp::Contains(v) => {
            let v = K::of(v);
            assert_eq!(set.contains(&v, &guard), model.contains(&v));
            assert_eq!(set.get(&v, &guard).copied(), model.get(&v).copied());
        }
        SetOp::Retain(m) => {
            check_set(set, model, map);
            let m = m.max(1);
            let mut asked = 0;
            set.retain(
                |v| {
                    asked += 1;
                    v.byte() % m != 0
                },
                &guard,
            );
            assert_eq!(asked, model.len(), "retain asked {asked} times");
            model.retain(|v| v.byte() % m != 0);
        }
        SetOp::Clear => {
            check_set(set, model, map);
            set.clear(&guard);
            model.clear();
        }
        SetOp::Check => check_set(set, model, map),
        SetOp::Owned(how, v) => {
            drop(guard);
            check_set(set, model, map);
            match how % 3 {
                0 => {
                    let drained: StdSet<K> = set.drain().collect();
                    assert_eq!(&drained, model, "the set's drain differs from its model");
                    model.clear();
                }
                1 => {
                    let owned: StdSet<K> = set.clone().into_iter().collect();
                    assert_eq!(&owned, model, "the set's into_iter differs from its model");
                }
                _ => {
                    let v = K::of(v);
                    assert_eq!(set.take_owned(&v), model.take(&v));
                }
            }
        }
    }
    assert_eq!(set.len(), model.len());
}

/// The set against its model, and its operations with a second set (the map's keys) against
/// std's.
fn check_set<K: Key>(set: &HashSet<K, Pick>, model: &StdSet<K>, map: &Map<K>) {
    let guard = set.guard();
    let sorted = |it: &mut dyn Iterator<Item = K>| {
        let mut v: Vec<K> = it.collect();
        v.sort_unstable();
        v
    };
    let everything = |it: &mut dyn Iterator<Item = &K>| sorted(&mut it.copied());
    assert_eq!(
        everything(&mut set.iter(&guard)),
        everything(&mut model.iter()),
        "the set's iteration differs from its model"
    );
    for b in 0..=u8::MAX {
        let v = K::of(b);
        assert_eq!(set.contains(&v, &guard), model.contains(&v), "{v:?}");
    }
    assert_eq!(set.len(), model.len());
    let other: HashSet<K, Pick> = HashSet::with_hasher(set.hasher().clone());
    let other_model: StdSet<K> = {
        let g = map.guard();
        map.iter(&g).map(|(k, _)| *k).collect()
    };
    (&other).extend(other_model.iter().copied());
    let g = other.guard();
    assert_eq!(
        everything(&mut set.difference(&other, &guard)),
        everything(&mut model.difference(&other_model)),
        "difference"
    );
    assert_eq!(
        everything(&mut set.symmetric_difference(&other, &guard)),
        everything(&mut model.symmetric_difference(&other_model)),
        "symmetric_difference"
    );
    assert_eq!(
        everything(&mut set.intersection(&other, &guard)),
        everything(&mut model.intersection(&other_model)),
        "intersection"
    );
    assert_eq!(
        everything(&mut set.union(&other, &g)),
        everything(&mut model.union(&other_model)),
        "union"
    );
    assert_eq!(set.is_subset(&other), model.is_subset(&other_model));
    assert_eq!(set.is_superset(&other), model.is_superset(&other_model));
    assert_eq!(set.is_disjoint(&other), model.is_disjoint(&other_model));
    assert!(set.clone() == *set, "a clone of the set is not equal to it");
}

type Map<K> = HashMap<K, u16, Pick>;

fuzz_target!(|input: Input| run(input));
