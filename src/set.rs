//! [`HashSet`]: a concurrent set, lock-free in every operation, and its pinned handle
//! [`SetRef`].
//!
//! A set is a [`HashMap`] whose values are `()`: every operation is the map's, with its
//! guarantees (linearizable single-value operations, iteration that never blocks writers, every
//! value dropped exactly once), and none of its code paths is the set's own. What the set adds is
//! the vocabulary of `std`'s `HashSet`, and answers that hand back the *stored* value (`get`,
//! `get_or_insert`, `get_or_insert_with`): what a concurrent interner needs, so that every thread
//! that interns an equal value gets a reference to the one copy in the set.
//!
//! An entry is a value and its hash (16 bytes for a `u64`, in the same 32-byte allocator block a
//! map's `u64 → u64` entry takes), so a set costs about as much memory as a map of the same keys.
//!
//! The set is `Send` when its values and hasher are, and `Sync` when its values are `Send` and
//! `Sync` and its hasher `Sync` (a removed value may be dropped on another thread), as the map;
//! a pinned [`SetRef`] stays on its thread, as a guard does:
//!
//! ```compile_fail,E0277
//! fn assert_sync<T: Sync>() {}
//! assert_sync::<lockfree_map::HashSet<std::cell::Cell<u8>>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<lockfree_map::SetRef<'static, u8, std::collections::hash_map::RandomState>>();
//! ```
//!
//! ## Set operations
//!
//! [`difference`](HashSet::difference), [`intersection`](HashSet::intersection),
//! [`symmetric_difference`](HashSet::symmetric_difference) and [`union`](HashSet::union) are lazy,
//! as `std`'s are: each walks one set's iterator and looks every value it meets up in the other
//! set at that moment. They take one guard, which must serve both sets (any two sets on the global
//! collector, the default, share their guards). What they promise while the sets change is what
//! that walk gives:
//! - `difference` and `intersection` never yield a value twice. A value that stays in the walked
//!   set and stays out of (for `intersection`: in) the other from start to end is yielded; one that
//!   is inserted or removed meanwhile may or may not be.
//! - `union` and `symmetric_difference` are two such walks in a row (the larger set, then what
//!   the smaller has that the larger lacks; `self` minus `other`, then `other` minus `self`),
//!   both recorded when the iterator is made. A value that stays where it is in both sets from
//!   start to end is yielded once if it belongs to the answer and not at all otherwise; a value
//!   whose membership in either set changes meanwhile may be yielded twice, or missed, even one
//!   that belongs to the answer throughout (in both sets, removed from the larger after its walk
//!   yielded it: the second walk yields it again).
//!
//! The operators `&a | &b`, `&a & &b`, `&a - &b` and `&a ^ &b` build a new set of cloned values
//! from the same walks, reading each set under a guard of its own, so they work for sets on
//! different collectors too.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::FusedIterator;
use std::ops;

use crate::equivalent::Equivalent;
use crate::iter::Keys;
use crate::map::{Compute, HashMap, Operation, BULK_REPIN};
use crate::reclaim::{Collector, Guard};

#[cfg(feature = "rayon")]
pub use crate::par::SetIntoParIter as IntoParIter;
#[cfg(feature = "rayon")]
pub use crate::par::SetParIter as ParIter;

/// A concurrent hash set, lock-free in every operation, including resizing.
///
/// It is a [`HashMap<T, ()>`](HashMap) and behaves as one: see the [crate documentation](crate)
/// for guards, what returned references are tied to, and the consistency of `len` and of
/// iteration. Methods take an explicit `&Guard` (from [`guard`](Self::guard)); [`pin`](Self::pin)
/// returns a [`SetRef`] that holds one guard for many calls.
///
/// [`insert`](Self::insert) keeps the value already stored when an equal one is present, as
/// `std`'s `HashSet` does, and drops the one passed in; [`get`](Self::get) and
/// [`get_or_insert`](Self::get_or_insert) return the stored value, so a set of `Arc<str>` or
/// `String` serves as an interner shared by many threads.
///
/// ```
/// use lockfree_map::HashSet;
///
/// let words = HashSet::new();
/// std::thread::scope(|s| {
///     for text in ["a b c", "b c d", "c d e"] {
///         let words = &words;
///         s.spawn(move || {
///             let w = words.pin();
///             for word in text.split(' ') {
///                 w.insert(word.to_string());
///             }
///         });
///     }
/// });
/// assert_eq!(words.len(), 5);
/// assert!(words.pin().contains("e"));
/// ```
pub struct HashSet<T, S = RandomState> {
    map: HashMap<T, (), S>,
}

impl<T> HashSet<T, RandomState> {
    /// An empty set with a randomly seeded hasher.
    ///
    /// ```
    /// let set: lockfree_map::HashSet<u64> = lockfree_map::HashSet::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity_and_hasher(0, RandomState::new())
    }

    /// An empty set that can hold at least `capacity` values before it grows, and that does not
    /// shrink by itself below that (see [`HashMap::with_capacity`]).
    ///
    /// ```
    /// let set: lockfree_map::HashSet<u64> = lockfree_map::HashSet::with_capacity(64);
    /// assert!(set.capacity() >= 64);
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` values would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, RandomState::new())
    }
}

impl<T, S: Default> Default for HashSet<T, S> {
    fn default() -> Self {
        Self::with_capacity_and_hasher(0, S::default())
    }
}

impl<T, S> HashSet<T, S> {
    /// An empty set using `hasher`.
    ///
    /// ```
    /// use lockfree_map::HashSet;
    /// use std::collections::hash_map::DefaultHasher;
    /// use std::hash::BuildHasherDefault;
    ///
    /// let set = HashSet::with_hasher(BuildHasherDefault::<DefaultHasher>::default());
    /// set.pin().insert("a");
    /// assert!(set.pin().contains("a"));
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty set using `hasher` that can hold at least `capacity` values before it grows, and
    /// that does not shrink by itself below that.
    ///
    /// ```
    /// use lockfree_map::HashSet;
    /// use std::collections::hash_map::RandomState;
    ///
    /// let set: HashSet<u64> = HashSet::with_capacity_and_hasher(100, RandomState::new());
    /// assert!(set.capacity() >= 100);
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` values would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        HashSet {
            map: HashMap::with_capacity_and_hasher(capacity, hasher),
        }
    }

    /// An empty set that retires removed values to `collector`; see
    /// [`HashMap::with_collector`].
    ///
    /// ```
    /// use lockfree_map::{Collector, HashSet};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let set = HashSet::with_collector(16, RandomState::new(), Collector::new());
    /// let guard = set.guard();
    /// set.insert("value", &guard);
    /// assert!(set.contains("value", &guard));
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` values would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_collector(capacity: usize, hasher: S, collector: Collector) -> Self {
        HashSet {
            map: HashMap::with_collector(capacity, hasher, collector),
        }
    }

    /// A set with room for `capacity` values and no floor beyond a new set's: for the crate's own
    /// builders, as [`HashMap::presized`].
    pub(crate) fn presized(capacity: usize, hasher: S) -> Self {
        HashSet {
            map: HashMap::presized(capacity, 0, hasher, Collector::global()),
        }
    }

    /// The collector this set retires to.
    ///
    /// ```
    /// use lockfree_map::{Collector, HashMap, HashSet};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let set: HashSet<u8> = HashSet::with_collector(0, RandomState::new(), Collector::new());
    /// let map: HashMap<u8, u8> =
    ///     HashMap::with_collector(0, RandomState::new(), set.collector().clone());
    /// let guard = set.guard(); // one guard serves both
    /// set.insert(1, &guard);
    /// map.insert(1, 10, &guard);
    /// ```
    pub fn collector(&self) -> &Collector {
        self.map.collector()
    }

    /// The set's hasher.
    ///
    /// ```
    /// use lockfree_map::HashSet;
    /// use std::collections::hash_map::RandomState;
    /// use std::hash::BuildHasher;
    ///
    /// let state = RandomState::new();
    /// let set: HashSet<u64> = HashSet::with_hasher(state.clone());
    /// assert_eq!(set.hasher().hash_one(7u64), state.hash_one(7u64));
    /// ```
    pub fn hasher(&self) -> &S {
        self.map.hasher()
    }

    /// Pins the current thread: the returned guard keeps everything read through it alive. See
    /// [`HashMap::guard`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert("one".to_string(), &guard);
    /// let one = set.get("one", &guard).unwrap();
    /// set.remove("one", &guard);
    /// assert_eq!(one, "one"); // removed, but still readable while `guard` lives
    /// ```
    pub fn guard(&self) -> Guard {
        self.map.guard()
    }

    /// Number of values, with [`HashMap::len`]'s consistency: exact when no write runs
    /// concurrently.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert("a", &guard);
    /// set.insert("a", &guard); // already present: the length stays 1
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set has no values (with the same consistency as [`len`](Self::len)).
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// assert!(set.is_empty());
    /// set.insert(1, &set.guard());
    /// assert!(!set.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many values the set holds without growing; see [`HashMap::capacity`].
    ///
    /// ```
    /// let set: lockfree_map::HashSet<u64> = lockfree_map::HashSet::with_capacity(100);
    /// assert!(set.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }
}

impl<T, S> HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    /// A handle that holds one guard for many operations, with guard-free methods.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// assert!(s.insert(1));
    /// assert!(s.contains(&1));
    /// ```
    pub fn pin(&self) -> SetRef<'_, T, S> {
        SetRef {
            set: self,
            guard: self.guard(),
        }
    }

    /// Whether `value` is in the set.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert(String::from("apple"), &guard);
    /// assert!(set.contains("apple", &guard)); // a `String` value, looked up by `&str`
    /// assert!(!set.contains("pear", &guard));
    /// ```
    #[inline]
    pub fn contains<Q>(&self, value: &Q, guard: &Guard) -> bool
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.map.contains_key(value, guard)
    }

    /// The stored value equal to `value`, readable while `guard` lives.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert(String::from("apple"), &guard);
    /// let stored: &String = set.get("apple", &guard).unwrap();
    /// assert_eq!(stored, "apple");
    /// assert_eq!(set.get("pear", &guard), None);
    /// ```
    #[inline]
    pub fn get<'g, Q>(&'g self, value: &Q, guard: &'g Guard) -> Option<&'g T>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.map.get_key_value(value, guard).map(|(k, _)| k)
    }

    /// Adds `value`; returns whether it was absent.
    ///
    /// If an equal value is present, the set keeps the stored one and drops `value`, as `std`'s
    /// `HashSet` does.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// assert!(set.insert(7, &guard));
    /// assert!(!set.insert(7, &guard)); // present: nothing changed
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn insert(&self, value: T, guard: &Guard) -> bool {
        // `try_insert` boxes the value only once it has found it absent: a value already
        // present (a set that deduplicates, say) costs a lookup, not an allocation and a free.
        self.map.try_insert(value, (), guard).is_ok()
    }

    /// The stored value equal to `value`, inserting `value` first if none is present: an
    /// interner's primitive. Every thread that calls it with equal values gets a reference to
    /// the same stored value; the values that lost are dropped.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let names: lockfree_map::HashSet<Arc<str>> = lockfree_map::HashSet::new();
    /// let guard = names.guard();
    /// let first = names.get_or_insert(Arc::from("alice"), &guard).clone();
    /// let second = names.get_or_insert(Arc::from("alice"), &guard).clone();
    /// assert!(Arc::ptr_eq(&first, &second)); // one copy, shared
    /// ```
    pub fn get_or_insert<'g>(&'g self, value: T, guard: &'g Guard) -> &'g T {
        let outcome = self.map.compute(
            value,
            |current| match current {
                Some((stored, _)) => Operation::Abort(stored),
                None => Operation::Insert(()),
            },
            guard,
        );
        match outcome {
            Compute::Inserted(stored, _) | Compute::Aborted(stored) => stored,
            // The closure never asks to remove, nor to replace a present value.
            Compute::Updated { .. } | Compute::Removed(..) | Compute::Absent => {
                unreachable!("get_or_insert only inserts into an absent slot or aborts")
            }
        }
    }

    /// The stored value equal to `value`, looked up by reference, inserting `make(value)` first
    /// if none is present: [`get_or_insert`](Self::get_or_insert) for values that cost something
    /// to make, such as a `String` interned from a `&str`, whose hits then allocate nothing.
    ///
    /// `make` runs at most once per call, and only if the value looked absent; if another
    /// thread inserts an equal value first, the one made here is dropped and theirs is returned.
    /// `make(value)` must return a value equal to `value` (and so, by the contract of
    /// [`Equivalent`], with the same hash); one that differs is inserted as itself, and the call
    /// returns it (no undefined behaviour, no leak).
    ///
    /// ```
    /// let interned: lockfree_map::HashSet<String> = lockfree_map::HashSet::new();
    /// let guard = interned.guard();
    /// let mut allocations = 0;
    /// for word in ["apple", "pear", "apple"] {
    ///     let make = |w: &str| {
    ///         allocations += 1;
    ///         w.to_owned()
    ///     };
    ///     let stored = interned.get_or_insert_with(word, make, &guard);
    ///     assert_eq!(stored, word);
    /// }
    /// assert_eq!(allocations, 2); // the second "apple" was a hit: no `String` made
    /// ```
    pub fn get_or_insert_with<'g, Q, F>(&'g self, value: &Q, make: F, guard: &'g Guard) -> &'g T
    where
        Q: Hash + Equivalent<T> + ?Sized,
        F: FnOnce(&Q) -> T,
    {
        match self.get_or_try_insert_with(value, |v| Ok::<T, Infallible>(make(v)), guard) {
            Ok(stored) => stored,
            Err(never) => match never {},
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a `make` that can fail, as
    /// [`HashMap::get_or_try_insert_with`]: a failure inserts nothing and returns its error.
    ///
    /// `make` runs at most once per call, and only if the value looked absent.
    ///
    /// ```
    /// let names: lockfree_map::HashSet<String> = lockfree_map::HashSet::new();
    /// let guard = names.guard();
    /// let valid = |w: &str| -> Result<String, String> {
    ///     if w.is_ascii() { Ok(w.to_owned()) } else { Err(format!("not ASCII: {w}")) }
    /// };
    /// assert_eq!(names.get_or_try_insert_with("pear", valid, &guard).map(String::as_str), Ok("pear"));
    /// assert!(names.get_or_try_insert_with("pêche", valid, &guard).is_err());
    /// assert_eq!(names.len(), 1); // the failure inserted nothing
    /// ```
    pub fn get_or_try_insert_with<'g, Q, E, F>(
        &'g self,
        value: &Q,
        make: F,
        guard: &'g Guard,
    ) -> Result<&'g T, E>
    where
        Q: Hash + Equivalent<T> + ?Sized,
        F: FnOnce(&Q) -> Result<T, E>,
    {
        // A hit answers with one lookup and makes nothing. A miss makes the owned value and
        // inserts it unless an equal one got in meanwhile: each step is linearizable, and a
        // value inserted between the two is found by the second.
        if let Some(stored) = self.get(value, guard) {
            return Ok(stored);
        }
        Ok(self.get_or_insert(make(value)?, guard))
    }

    /// Removes `value`; returns whether it was present.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert(1, &guard);
    /// assert!(set.remove(&1, &guard));
    /// assert!(!set.remove(&1, &guard)); // already gone
    /// ```
    pub fn remove<Q>(&self, value: &Q, guard: &Guard) -> bool
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.map.remove_entry(value, guard).is_some()
    }

    /// Removes `value`; returns the stored value that was removed, readable while `guard` lives
    /// (`std`'s `HashSet::take` returns it by value; here other threads may still be reading it,
    /// so it is dropped once they are done).
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert(String::from("apple"), &guard);
    /// let removed: &String = set.take("apple", &guard).unwrap();
    /// assert_eq!(removed, "apple");
    /// assert!(set.is_empty());
    /// ```
    pub fn take<'g, Q>(&'g self, value: &Q, guard: &'g Guard) -> Option<&'g T>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.map.remove_entry(value, guard).map(|(k, _)| k)
    }

    /// Removes `value` and returns the stored value, owned, as `std`'s `HashSet::take` does;
    /// see [`HashMap::remove_entry_owned`]. Through `&mut self` no other thread can be reading
    /// it, so nothing is left to reclaim.
    ///
    /// ```
    /// let mut set = lockfree_map::HashSet::new();
    /// set.pin().insert(String::from("apple"));
    /// let owned: String = set.take_owned("apple").unwrap();
    /// assert_eq!(owned, "apple");
    /// assert_eq!(set.take_owned("apple"), None);
    /// ```
    pub fn take_owned<Q>(&mut self, value: &Q) -> Option<T>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.map.remove_entry_owned(value).map(|(k, ())| k)
    }

    /// Keeps only the values for which `keep` returns `true`; see [`HashMap::retain`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// for i in 0..10u32 {
    ///     set.insert(i, &guard);
    /// }
    /// set.retain(|v| v % 2 == 0, &guard);
    /// assert_eq!(set.len(), 5);
    /// assert!(set.contains(&4, &guard) && !set.contains(&5, &guard));
    /// ```
    pub fn retain<F>(&self, mut keep: F, guard: &Guard)
    where
        F: FnMut(&T) -> bool,
    {
        self.map.retain(|k, _| keep(k), guard);
    }

    /// Removes every value, then shrinks the table back to the room the set keeps whatever is
    /// removed (made with or reserved); see [`HashMap::clear`]. Not atomic: values inserted while it runs may survive it.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// for i in 0..100 {
    ///     set.insert(i, &guard);
    /// }
    /// set.clear(&guard);
    /// assert!(set.is_empty());
    /// ```
    pub fn clear(&self, guard: &Guard) {
        self.map.clear(guard);
    }

    /// Makes room for at least `additional` more values without further growth.
    ///
    /// The room is kept as a floor, as with the capacity the map was made with: removals do not
    /// shrink the table below it (nor does [`clear`](Self::clear)) until
    /// [`shrink_to_fit`](Self::shrink_to_fit) gives it back. If another thread resizes the
    /// table meanwhile, the call still returns with the room asked for.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert(1, &guard);
    /// set.reserve(1000, &guard);
    /// assert!(set.capacity() >= 1001);
    /// ```
    ///
    /// # Panics
    /// If the table would not fit in the address space (`lockfree-map: capacity overflow`); the
    /// set is left as it was. If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn reserve(&self, additional: usize, guard: &Guard) {
        self.map.reserve(additional, guard);
    }

    /// Shrinks the table to the smallest one that holds the current values.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::with_capacity(1000);
    /// let guard = set.guard();
    /// set.insert(1, &guard);
    /// set.shrink_to_fit(&guard);
    /// assert!(set.capacity() < 1000);
    /// assert!(set.contains(&1, &guard));
    /// ```
    pub fn shrink_to_fit(&self, guard: &Guard) {
        self.map.shrink_to_fit(guard);
    }

    /// An iterator over the values, with [`HashMap::iter`]'s guarantee under concurrent writes:
    /// a value present for the whole iteration is yielded exactly once, and none twice.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let guard = set.guard();
    /// set.insert("a", &guard);
    /// set.insert("b", &guard);
    /// let mut all: Vec<_> = set.iter(&guard).copied().collect();
    /// all.sort();
    /// assert_eq!(all, ["a", "b"]);
    /// ```
    pub fn iter<'g>(&'g self, guard: &'g Guard) -> Iter<'g, T> {
        Iter {
            keys: self.map.keys(guard),
        }
    }

    /// Whether every value of `self` is in `other`. Under concurrent writes the answer reflects
    /// no single moment.
    ///
    /// ```
    /// let small: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let large: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// assert!(small.is_subset(&large));
    /// assert!(!large.is_subset(&small));
    /// ```
    pub fn is_subset<S2: BuildHasher>(&self, other: &HashSet<T, S2>) -> bool {
        // One guard per set: the two may use different collectors.
        let (ours, theirs) = (self.guard(), other.guard());
        self.iter(&ours).all(|v| other.contains(v, &theirs))
    }

    /// Whether every value of `other` is in `self`. Under concurrent writes the answer reflects
    /// no single moment.
    ///
    /// ```
    /// let small: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let large: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// assert!(large.is_superset(&small));
    /// assert!(!small.is_superset(&large));
    /// ```
    pub fn is_superset<S2: BuildHasher>(&self, other: &HashSet<T, S2>) -> bool {
        other.is_subset(self)
    }

    /// Whether `self` and `other` have no value in common. Under concurrent writes the answer
    /// reflects no single moment.
    ///
    /// ```
    /// let odd: lockfree_map::HashSet<u32> = [1, 3].into_iter().collect();
    /// let even: lockfree_map::HashSet<u32> = [2, 4].into_iter().collect();
    /// assert!(odd.is_disjoint(&even));
    /// even.insert(3, &even.guard());
    /// assert!(!odd.is_disjoint(&even));
    /// ```
    pub fn is_disjoint<S2: BuildHasher>(&self, other: &HashSet<T, S2>) -> bool {
        let (ours, theirs) = (self.guard(), other.guard());
        self.iter(&ours).all(|v| !other.contains(v, &theirs))
    }

    /// The values of `self` that are not in `other`, as `std`'s `HashSet::difference`. Lazy:
    /// each value of `self` is looked up in `other` when the iterator reaches it, so the two sets
    /// may change meanwhile (see [the module docs](self) for what the four set operations
    /// promise then). The references point into `self`.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3, 4].into_iter().collect();
    /// let guard = a.guard(); // both sets use the global collector, so it serves both
    /// let mut only_a: Vec<u32> = a.difference(&b, &guard).copied().collect();
    /// only_a.sort();
    /// assert_eq!(only_a, [1]);
    /// ```
    ///
    /// # Panics
    /// If `guard` does not belong to both sets' collector. Sets made with different
    /// [`Collector`]s have no guard in common: use the operators (`&a - &b`), which pin each set
    /// on its own.
    pub fn difference<'g>(
        &'g self,
        other: &'g HashSet<T, S>,
        guard: &'g Guard,
    ) -> Difference<'g, T, S> {
        self.check_both(other, guard);
        Difference {
            walk: Walk {
                iter: self.iter(guard),
                other,
                guard,
                keep_present: false,
            },
        }
    }

    /// The values in `self` or in `other` but not in both, as `std`'s
    /// `HashSet::symmetric_difference`: `self`'s values that `other` lacks, then `other`'s that
    /// `self` lacks, each looked up when the iterator reaches it.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3, 4].into_iter().collect();
    /// let guard = a.guard();
    /// let mut either: Vec<u32> = a.symmetric_difference(&b, &guard).copied().collect();
    /// either.sort();
    /// assert_eq!(either, [1, 4]);
    /// ```
    ///
    /// # Panics
    /// As [`difference`](Self::difference).
    pub fn symmetric_difference<'g>(
        &'g self,
        other: &'g HashSet<T, S>,
        guard: &'g Guard,
    ) -> SymmetricDifference<'g, T, S> {
        SymmetricDifference {
            walk: self
                .difference(other, guard)
                .chain(other.difference(self, guard)),
        }
    }

    /// The values in both sets, as `std`'s `HashSet::intersection`. The smaller set (by
    /// [`len`](Self::len) when the iterator is made) is iterated and each of its values looked
    /// up in the other when reached, so a reference may point into either set.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3, 4].into_iter().collect();
    /// let guard = a.guard();
    /// let mut both: Vec<u32> = a.intersection(&b, &guard).copied().collect();
    /// both.sort();
    /// assert_eq!(both, [2, 3]);
    /// ```
    ///
    /// # Panics
    /// As [`difference`](Self::difference).
    pub fn intersection<'g>(
        &'g self,
        other: &'g HashSet<T, S>,
        guard: &'g Guard,
    ) -> Intersection<'g, T, S> {
        self.check_both(other, guard);
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        Intersection {
            walk: Walk {
                iter: small.iter(guard),
                other: large,
                guard,
                keep_present: true,
            },
        }
    }

    /// The values in either set, as `std`'s `HashSet::union`: all of the larger set's (by
    /// [`len`](Self::len) when the iterator is made), then those of the smaller that the larger
    /// lacks, each looked up when reached. A reference may point into either set.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3, 4].into_iter().collect();
    /// let guard = a.guard();
    /// let mut all: Vec<u32> = a.union(&b, &guard).copied().collect();
    /// all.sort();
    /// assert_eq!(all, [1, 2, 3, 4]);
    /// ```
    ///
    /// # Panics
    /// As [`difference`](Self::difference).
    pub fn union<'g>(&'g self, other: &'g HashSet<T, S>, guard: &'g Guard) -> Union<'g, T, S> {
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        Union {
            walk: large.iter(guard).chain(small.difference(large, guard)),
        }
    }

    /// Panics unless `guard` serves both sets, before an iterator is made that would fail
    /// only once it reached the second set.
    fn check_both(&self, other: &HashSet<T, S>, guard: &Guard) {
        self.collector().check(guard);
        other.collector().check(guard);
    }
}

#[cfg(feature = "rayon")]
impl<T, S> HashSet<T, S> {
    pub(crate) fn map(&self) -> &HashMap<T, (), S> {
        &self.map
    }

    #[cfg(feature = "rayon")]
    pub(crate) fn into_map(self) -> HashMap<T, (), S> {
        self.map
    }
}

impl<T, S> fmt::Debug for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static + fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guard = self.guard();
        f.debug_set().entries(self.iter(&guard)).finish()
    }
}

impl<T, S> Clone for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static + Clone,
    S: BuildHasher + Clone,
{
    /// A copy with the same hasher and collector, holding clones of the values present while it
    /// is made.
    ///
    /// ```
    /// let set: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let copy = set.clone();
    /// set.insert(4, &set.guard());
    /// assert_eq!(copy.len(), 3);
    /// ```
    fn clone(&self) -> Self {
        HashSet {
            map: self.map.clone(),
        }
    }
}

impl<T, S> PartialEq for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    /// Equal if both hold the same values. Under concurrent writes the answer reflects no single
    /// moment.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 1].into_iter().collect();
    /// assert_eq!(a, b);
    /// ```
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<T, S> Eq for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
}

impl<T, S> FromIterator<T> for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher + Default,
{
    /// Builds a set; of equal values, the first is kept.
    ///
    /// ```
    /// let set: lockfree_map::HashSet<char> = "hello".chars().collect();
    /// assert_eq!(set.len(), 4);
    /// ```
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut set = HashSet::presized(iter.size_hint().0, S::default());
        set.extend(iter);
        set
    }
}

/// Builds a set from an array, as `std`'s `HashSet` does.
///
/// ```
/// let set = lockfree_map::HashSet::from([1, 2, 2, 3]);
/// assert_eq!(set.len(), 3);
/// ```
impl<T, const N: usize> From<[T; N]> for HashSet<T, RandomState>
where
    T: Hash + Eq + Send + 'static,
{
    fn from(values: [T; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T, S> Extend<T> for &HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    /// Inserts every value, concurrently with any other writer; of equal values, the stored one
    /// is kept.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let mut shared = &set;
    /// shared.extend([1, 2, 3]);
    /// assert_eq!(set.len(), 3);
    /// ```
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        // Pinned anew every `BULK_REPIN` values, as the map's `extend`: one pin for the whole
        // input held back the freeing of whatever this set's growths, and every other map of its
        // collector, retired meanwhile (found by a review at stop 49).
        let mut guard = self.guard();
        for (i, value) in iter.into_iter().enumerate() {
            if i % BULK_REPIN == BULK_REPIN - 1 {
                guard.repin();
            }
            self.insert(value, &guard);
        }
    }
}

impl<T, S> Extend<T> for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

impl<'a, T, S> Extend<&'a T> for HashSet<T, S>
where
    T: Hash + Eq + Send + Copy + 'static,
    S: BuildHasher,
{
    /// Copies every value in, as `std`'s `HashSet` does for `Copy` values.
    ///
    /// ```
    /// let mut set: lockfree_map::HashSet<i32> = lockfree_map::HashSet::new();
    /// set.extend(&[1, 2, 3]);
    /// assert_eq!(set.len(), 3);
    /// ```
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        (&*self).extend(iter.into_iter().copied());
    }
}

impl<T, S> HashSet<T, S> {
    /// Takes every value out of the set, leaving it empty with the room it keeps whatever is
    /// removed (made with or reserved); see [`HashMap::drain`].
    ///
    /// ```
    /// let mut set: lockfree_map::HashSet<u32> = (0..3).collect();
    /// let mut taken: Vec<u32> = set.drain().collect();
    /// taken.sort();
    /// assert_eq!(taken, [0, 1, 2]);
    /// assert!(set.is_empty());
    /// ```
    pub fn drain(&mut self) -> IntoIter<T> {
        IntoIter {
            inner: crate::IntoKeys::new(self.map.drain()),
        }
    }
}

impl<T, S> IntoIterator for HashSet<T, S> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    /// Takes the values out of the set one at a time, in no particular order; see
    /// [`IntoIter`].
    ///
    /// ```
    /// let set: lockfree_map::HashSet<String> = ["a", "b"].map(String::from).into_iter().collect();
    /// let mut owned: Vec<String> = set.into_iter().collect();
    /// owned.sort();
    /// assert_eq!(owned, ["a", "b"]);
    /// ```
    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            inner: self.map.into_keys(),
        }
    }
}

/// A set borrowed together with a pinned guard. Made by [`HashSet::pin`].
///
/// References it returns live as long as the handle. Holding one for a long time delays the
/// freeing of removed values: drop it, or call [`repin`](Self::repin), between batches.
pub struct SetRef<'s, T, S> {
    set: &'s HashSet<T, S>,
    guard: Guard,
}

impl<'s, T, S> SetRef<'s, T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    /// The set this handle borrows.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(1);
    /// assert!(std::ptr::eq(s.set(), &set));
    /// ```
    pub fn set(&self) -> &'s HashSet<T, S> {
        self.set
    }

    /// The guard this handle holds.
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// set.insert(1, s.guard()); // the explicit-guard API, with the handle's guard
    /// assert!(s.contains(&1));
    /// ```
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Lets reclamation advance past this handle; see [`MapRef::repin`](crate::MapRef::repin).
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let mut s = set.pin();
    /// for batch in 0..4 {
    ///     for i in 0..100 {
    ///         s.insert(batch * 100 + i);
    ///     }
    ///     s.repin(); // between batches: let removed values be freed
    /// }
    /// assert_eq!(s.len(), 400);
    /// ```
    pub fn repin(&mut self) {
        self.guard.repin();
    }

    /// See [`HashSet::len`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert("a");
    /// assert_eq!(s.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// See [`HashSet::is_empty`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::<u8>::new();
    /// let s = set.pin();
    /// assert!(s.is_empty());
    /// s.insert(1);
    /// assert!(!s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// See [`HashSet::capacity`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::<u8>::with_capacity(50);
    /// assert!(set.pin().capacity() >= 50);
    /// ```
    pub fn capacity(&self) -> usize {
        self.set.capacity()
    }

    /// See [`HashSet::contains`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(String::from("apple"));
    /// assert!(s.contains("apple"));
    /// ```
    #[inline]
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.set.contains(value, &self.guard)
    }

    /// See [`HashSet::get`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(String::from("apple"));
    /// assert_eq!(s.get("apple").map(String::as_str), Some("apple"));
    /// ```
    #[inline]
    pub fn get<Q>(&self, value: &Q) -> Option<&T>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.set.get(value, &self.guard)
    }

    /// See [`HashSet::insert`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// assert!(s.insert(1));
    /// assert!(!s.insert(1));
    /// ```
    pub fn insert(&self, value: T) -> bool {
        self.set.insert(value, &self.guard)
    }

    /// See [`HashSet::get_or_insert`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// let a: *const String = s.get_or_insert(String::from("a"));
    /// let b: *const String = s.get_or_insert(String::from("a"));
    /// assert_eq!(a, b); // the same stored value
    /// ```
    pub fn get_or_insert(&self, value: T) -> &T {
        self.set.get_or_insert(value, &self.guard)
    }

    /// See [`HashSet::get_or_insert_with`].
    ///
    /// ```
    /// let set: lockfree_map::HashSet<String> = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// assert_eq!(s.get_or_insert_with("pear", str::to_owned), "pear");
    /// assert!(s.contains("pear"));
    /// ```
    pub fn get_or_insert_with<Q, F>(&self, value: &Q, make: F) -> &T
    where
        Q: Hash + Equivalent<T> + ?Sized,
        F: FnOnce(&Q) -> T,
    {
        self.set.get_or_insert_with(value, make, &self.guard)
    }

    /// See [`HashSet::get_or_try_insert_with`].
    ///
    /// ```
    /// let set: lockfree_map::HashSet<String> = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// let short = |t: &str| if t.len() <= 4 { Ok(t.to_owned()) } else { Err(t.len()) };
    /// assert_eq!(s.get_or_try_insert_with("pear", short).map(String::as_str), Ok("pear"));
    /// assert_eq!(s.get_or_try_insert_with("banana", short), Err(6));
    /// assert_eq!(s.len(), 1);
    /// ```
    pub fn get_or_try_insert_with<Q, E, F>(&self, value: &Q, make: F) -> Result<&T, E>
    where
        Q: Hash + Equivalent<T> + ?Sized,
        F: FnOnce(&Q) -> Result<T, E>,
    {
        self.set.get_or_try_insert_with(value, make, &self.guard)
    }

    /// See [`HashSet::remove`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(1);
    /// assert!(s.remove(&1));
    /// assert!(!s.remove(&1));
    /// ```
    pub fn remove<Q>(&self, value: &Q) -> bool
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.set.remove(value, &self.guard)
    }

    /// See [`HashSet::take`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(String::from("apple"));
    /// assert_eq!(s.take("apple").map(String::as_str), Some("apple"));
    /// assert!(s.is_empty());
    /// ```
    pub fn take<Q>(&self, value: &Q) -> Option<&T>
    where
        Q: Hash + Equivalent<T> + ?Sized,
    {
        self.set.take(value, &self.guard)
    }

    /// See [`HashSet::retain`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// for i in 0..10 {
    ///     s.insert(i);
    /// }
    /// s.retain(|v| *v < 3);
    /// assert_eq!(s.len(), 3);
    /// ```
    pub fn retain<F: FnMut(&T) -> bool>(&self, keep: F) {
        self.set.retain(keep, &self.guard);
    }

    /// See [`HashSet::clear`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(1);
    /// s.clear();
    /// assert!(s.is_empty());
    /// ```
    pub fn clear(&self) {
        self.set.clear(&self.guard);
    }

    /// See [`HashSet::reserve`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::<u32>::new();
    /// let s = set.pin();
    /// s.reserve(500);
    /// assert!(s.capacity() >= 500);
    /// ```
    ///
    /// # Panics
    /// As [`HashSet::reserve`]: if the table would not fit in the address space
    /// (`lockfree-map: capacity overflow`), with the set left as it was.
    pub fn reserve(&self, additional: usize) {
        self.set.reserve(additional, &self.guard);
    }

    /// See [`HashSet::shrink_to_fit`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(1);
    /// s.reserve(500);
    /// s.shrink_to_fit(); // the room `reserve` kept is given back
    /// assert!(s.capacity() < 500);
    /// assert!(s.contains(&1));
    /// ```
    pub fn shrink_to_fit(&self) {
        self.set.shrink_to_fit(&self.guard);
    }

    /// See [`HashSet::iter`].
    ///
    /// ```
    /// let set = lockfree_map::HashSet::new();
    /// let s = set.pin();
    /// s.insert(1);
    /// s.insert(2);
    /// assert_eq!(s.iter().sum::<i32>(), 3);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        self.set.iter(&self.guard)
    }

    /// [`HashSet::difference`] under this handle's guard.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2, 3].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(a.pin().difference(&b).collect::<Vec<_>>(), [&1]);
    /// ```
    ///
    /// # Panics
    /// If `other` uses another collector than this handle's set.
    pub fn difference<'a>(&'a self, other: &'a HashSet<T, S>) -> Difference<'a, T, S> {
        self.set.difference(other, &self.guard)
    }

    /// [`HashSet::symmetric_difference`] under this handle's guard.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// let mut v: Vec<u32> = a.pin().symmetric_difference(&b).copied().collect();
    /// v.sort();
    /// assert_eq!(v, [1, 3]);
    /// ```
    ///
    /// # Panics
    /// If `other` uses another collector than this handle's set.
    pub fn symmetric_difference<'a>(
        &'a self,
        other: &'a HashSet<T, S>,
    ) -> SymmetricDifference<'a, T, S> {
        self.set.symmetric_difference(other, &self.guard)
    }

    /// [`HashSet::intersection`] under this handle's guard.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(a.pin().intersection(&b).collect::<Vec<_>>(), [&2]);
    /// ```
    ///
    /// # Panics
    /// If `other` uses another collector than this handle's set.
    pub fn intersection<'a>(&'a self, other: &'a HashSet<T, S>) -> Intersection<'a, T, S> {
        self.set.intersection(other, &self.guard)
    }

    /// [`HashSet::union`] under this handle's guard.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// let mut v: Vec<u32> = a.pin().union(&b).copied().collect();
    /// v.sort();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    ///
    /// # Panics
    /// If `other` uses another collector than this handle's set.
    pub fn union<'a>(&'a self, other: &'a HashSet<T, S>) -> Union<'a, T, S> {
        self.set.union(other, &self.guard)
    }
}

impl<'a, T, S> IntoIterator for &'a SetRef<'_, T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T, S> fmt::Debug for SetRef<'_, T, S>
where
    T: Hash + Eq + Send + 'static + fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// An iterator over a set's values. Made by [`HashSet::iter`]; it has [`crate::Iter`]'s
/// guarantee under concurrent writes.
pub struct Iter<'g, T> {
    keys: Keys<'g, T, ()>,
}

impl<'g, T> Iterator for Iter<'g, T> {
    type Item = &'g T;

    #[inline]
    fn next(&mut self) -> Option<&'g T> {
        self.keys.next()
    }

    // Forwarded, so that `for_each`, `count` and the like keep the map's loop over whole groups.
    #[inline]
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, f: F) -> B {
        self.keys.fold(init, f)
    }
}

/// An owning iterator over a set's values, in no particular order. Made by the set's
/// [`IntoIterator`] implementation; the values not yet taken are dropped with it (see
/// [`crate::IntoIter`]).
///
/// ```
/// let set: lockfree_map::HashSet<u32> = (0..10).collect();
/// let mut it = set.into_iter();
/// assert_eq!(it.len(), 10);
/// it.next();
/// assert_eq!(it.len(), 9);
/// ```
pub struct IntoIter<T> {
    inner: crate::IntoKeys<T, ()>,
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.inner.len())
            .finish_non_exhaustive()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        self.inner.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> FusedIterator for IntoIter<T> {}

/// One set's values, each kept if its presence in `other` (looked up when the walk reaches it)
/// is `keep_present`: the walk behind [`Difference`] and [`Intersection`].
struct Walk<'g, T, S> {
    iter: Iter<'g, T>,
    other: &'g HashSet<T, S>,
    guard: &'g Guard,
    keep_present: bool,
}

impl<'g, T, S> Iterator for Walk<'g, T, S>
where
    T: Hash + Eq + Send + 'static,
    S: BuildHasher,
{
    type Item = &'g T;

    #[inline]
    fn next(&mut self) -> Option<&'g T> {
        let (other, guard, keep) = (self.other, self.guard, self.keep_present);
        self.iter.find(|v| other.contains(*v, guard) == keep)
    }

    // Forwarded, so that `for_each`, `count` and the like keep the map's loop over whole groups.
    #[inline]
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        let (other, guard, keep) = (self.other, self.guard, self.keep_present);
        self.iter.fold(init, |acc, v| {
            if other.contains(v, guard) == keep {
                f(acc, v)
            } else {
                acc
            }
        })
    }
}

/// The values of one set that another lacks. Made by [`HashSet::difference`].
pub struct Difference<'g, T, S> {
    walk: Walk<'g, T, S>,
}

/// The values in both of two sets. Made by [`HashSet::intersection`].
pub struct Intersection<'g, T, S> {
    walk: Walk<'g, T, S>,
}

/// The values in one of two sets but not in both. Made by [`HashSet::symmetric_difference`].
pub struct SymmetricDifference<'g, T, S> {
    walk: std::iter::Chain<Difference<'g, T, S>, Difference<'g, T, S>>,
}

/// The values in either of two sets. Made by [`HashSet::union`].
pub struct Union<'g, T, S> {
    walk: std::iter::Chain<Iter<'g, T>, Difference<'g, T, S>>,
}

/// The four set operations are their walks: `Iterator` forwarded (with `fold`) and an opaque
/// `Debug`, as the set's [`Iter`] has.
macro_rules! set_operation {
    ($($name:ident),*) => {$(
        impl<'g, T, S> Iterator for $name<'g, T, S>
        where
            T: Hash + Eq + Send + 'static,
            S: BuildHasher,
        {
            type Item = &'g T;

            #[inline]
            fn next(&mut self) -> Option<&'g T> {
                self.walk.next()
            }

            #[inline]
            fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, f: F) -> B {
                self.walk.fold(init, f)
            }
        }

        impl<T, S> fmt::Debug for $name<'_, T, S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}

set_operation!(Difference, Intersection, SymmetricDifference, Union);

/// Clones the values of `a` that `keep` accepts into `out`, each set read under its own guard.
fn clone_into<T, S, S2>(out: &HashSet<T, S2>, a: &HashSet<T, S>, mut keep: impl FnMut(&T) -> bool)
where
    T: Hash + Eq + Send + Clone + 'static,
    S: BuildHasher,
    S2: BuildHasher,
{
    let (ga, gout) = (a.guard(), out.guard());
    for v in a.iter(&ga) {
        if keep(v) {
            out.insert(v.clone(), &gout);
        }
    }
}

impl<T, S> ops::BitOr<&HashSet<T, S>> for &HashSet<T, S>
where
    T: Hash + Eq + Send + Clone + 'static,
    S: BuildHasher + Default,
{
    type Output = HashSet<T, S>;

    /// A new set of the values in either set, cloned. Each set is read under its own guard, so
    /// this works across collectors; under concurrent writes the result reflects no single
    /// moment.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(&a | &b, [1, 2, 3].into_iter().collect());
    /// ```
    fn bitor(self, rhs: &HashSet<T, S>) -> HashSet<T, S> {
        let out = HashSet::presized(self.len().max(rhs.len()), S::default());
        clone_into(&out, self, |_| true);
        clone_into(&out, rhs, |_| true);
        out
    }
}

impl<T, S> ops::BitAnd<&HashSet<T, S>> for &HashSet<T, S>
where
    T: Hash + Eq + Send + Clone + 'static,
    S: BuildHasher + Default,
{
    type Output = HashSet<T, S>;

    /// A new set of the values in both sets, cloned from the smaller. Each set is read under its
    /// own guard; under concurrent writes the result reflects no single moment.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(&a & &b, [2].into_iter().collect());
    /// ```
    fn bitand(self, rhs: &HashSet<T, S>) -> HashSet<T, S> {
        let (small, large) = if self.len() <= rhs.len() {
            (self, rhs)
        } else {
            (rhs, self)
        };
        let out = HashSet::presized(small.len(), S::default());
        let g = large.guard();
        clone_into(&out, small, |v| large.contains(v, &g));
        out
    }
}

impl<T, S> ops::Sub<&HashSet<T, S>> for &HashSet<T, S>
where
    T: Hash + Eq + Send + Clone + 'static,
    S: BuildHasher + Default,
{
    type Output = HashSet<T, S>;

    /// A new set of the values of `self` that `rhs` lacks, cloned. Each set is read under its own
    /// guard; under concurrent writes the result reflects no single moment.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(&a - &b, [1].into_iter().collect());
    /// ```
    fn sub(self, rhs: &HashSet<T, S>) -> HashSet<T, S> {
        let out = HashSet::presized(self.len(), S::default());
        let g = rhs.guard();
        clone_into(&out, self, |v| !rhs.contains(v, &g));
        out
    }
}

impl<T, S> ops::BitXor<&HashSet<T, S>> for &HashSet<T, S>
where
    T: Hash + Eq + Send + Clone + 'static,
    S: BuildHasher + Default,
{
    type Output = HashSet<T, S>;

    /// A new set of the values in one set but not both, cloned. Each set is read under its own
    /// guard; under concurrent writes the result reflects no single moment.
    ///
    /// ```
    /// let a: lockfree_map::HashSet<u32> = [1, 2].into_iter().collect();
    /// let b: lockfree_map::HashSet<u32> = [2, 3].into_iter().collect();
    /// assert_eq!(&a ^ &b, [1, 3].into_iter().collect());
    /// ```
    fn bitxor(self, rhs: &HashSet<T, S>) -> HashSet<T, S> {
        let out = HashSet::presized(self.len().max(rhs.len()), S::default());
        let (gs, gr) = (self.guard(), rhs.guard());
        clone_into(&out, self, |v| !rhs.contains(v, &gr));
        clone_into(&out, rhs, |v| !self.contains(v, &gs));
        out
    }
}

// Fused as the map's walks they are built on (a `Chain` of fused iterators is fused too).
impl<T> FusedIterator for Iter<'_, T> {}
impl<T: Hash + Eq + Send + 'static, S: BuildHasher> FusedIterator for Difference<'_, T, S> {}
impl<T: Hash + Eq + Send + 'static, S: BuildHasher> FusedIterator for Intersection<'_, T, S> {}
impl<T: Hash + Eq + Send + 'static, S: BuildHasher> FusedIterator
    for SymmetricDifference<'_, T, S>
{
}
impl<T: Hash + Eq + Send + 'static, S: BuildHasher> FusedIterator for Union<'_, T, S> {}
