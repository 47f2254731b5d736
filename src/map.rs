//! [`HashMap`]: construction and the explicit-guard API.
//!
//! Every method here is a short loop over the raw table's `locate` and a CAS (`try_store` or
//! `try_remove`): locate where the key lives or would live, decide (running the caller's closure,
//! before any CAS, so a panic leaves nothing half done), and commit; if the slot changed in
//! between, locate again. User code (`Hash`, `Eq`, closures) never runs between two steps that
//! must both happen.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::equivalent::Equivalent;
use crate::iter::{IntoIter, IntoKeys, IntoValues, Iter, IterMut, Keys, Values, ValuesMut};
use crate::map_ref::MapRef;
use crate::raw::{Entry, RawIntoIter, RawMap};
use crate::reclaim::{Collector, Guard};

/// A concurrent hash map, lock-free in every operation, including resizing.
///
/// See the [crate documentation](crate) for the model: guards, what returned references are tied
/// to, and the consistency of `len` and of iteration.
///
/// Keys and values must be `Send + 'static` for the map's operations: a removed entry is dropped
/// by whichever thread reclaims it, possibly after the map itself is gone.
///
/// # Panics
///
/// Every method that takes a [`Guard`] panics if the guard was pinned on another collector
/// (crate docs, "Collectors"), and every method that can insert a new key (`insert`,
/// `try_insert`, the `get_or_insert` and `update_or_insert` families, `compute`, `extend`,
/// `collect`, `reserve`) panics if the table would have to grow past the largest one (crate docs,
/// "Capacity"); either way the operation that panics changes nothing (a bulk call keeps what it
/// did before). A panic of a key's `Hash` or `Eq`, or of a closure, passes through the call and
/// leaves the map usable (crate docs, "Closures").
///
/// Dropping the map drops the keys and values it holds on the dropping thread. A map of more than
/// about 65,000 entries first gathers their addresses (a temporary allocation of a word an entry,
/// which it does without if the allocator refuses it) and frees them in address order, so that
/// the allocator's later merging of the freed memory walks it in order rather than at random.
pub struct HashMap<K, V, S = RandomState> {
    raw: RawMap<K, V>,
    hasher: S,
}

// SAFETY: the map owns its keys and values (they move with it, hence `Send`) and hands out shared
// references to them across threads (hence `Sync` for `Sync` maps). Removed entries are dropped on
// arbitrary threads, which `Send` covers.
unsafe impl<K: Send, V: Send, S: Send> Send for HashMap<K, V, S> {}
// SAFETY: shared access lets any thread read `&K`/`&V` (needs `Sync`) and insert or remove
// entries that another thread will drop (needs `Send`); the hasher is used through `&S`.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for HashMap<K, V, S> {}

/// What a [`HashMap::compute`] closure asks the map to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<V, T> {
    /// Store this value (insert it, or replace the current one).
    Insert(V),
    /// Remove the current entry (does nothing if there is none).
    Remove,
    /// Leave the map as it is and return this.
    Abort(T),
}

/// What a [`HashMap::compute`] call did.
#[derive(Debug, PartialEq, Eq)]
pub enum Compute<'g, K, V, T> {
    /// The key was absent; this entry was inserted.
    Inserted(&'g K, &'g V),
    /// The key's entry `old` was replaced by `new`.
    Updated {
        /// The replaced entry.
        old: (&'g K, &'g V),
        /// The stored entry.
        new: (&'g K, &'g V),
    },
    /// This entry was removed.
    Removed(&'g K, &'g V),
    /// The closure returned [`Operation::Abort`]; nothing changed.
    Aborted(T),
    /// The closure asked to remove an entry that is absent; nothing changed.
    Absent,
}

/// The error [`HashMap::try_insert`] returns when the key is present.
#[derive(Debug, PartialEq, Eq)]
pub struct OccupiedError<'g, V> {
    /// The value in the map.
    pub current: &'g V,
    /// The value that was not inserted.
    pub not_inserted: V,
}

impl<V: fmt::Debug> fmt::Display for OccupiedError<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key already present with value {:?}", self.current)
    }
}

impl<V: fmt::Debug> std::error::Error for OccupiedError<'_, V> {}

/// Whether a closure's verdict on the key's entry `then` (`None`: the key was absent) holds for
/// its entry `now`: both absent, or the very same entry. A write that failed because a resize
/// moved the entry (or froze its slot to move it) leaves the entry as it was, and the closure
/// would decide as it did; only another write to the key makes it run again. The same address
/// is the same entry: both were read under one guard, so the first cannot have been freed and
/// its memory reused for the second, and an entry is never changed once published.
#[inline]
fn same_entry<K, V>(then: Option<&Entry<K, V>>, now: Option<&Entry<K, V>>) -> bool {
    match (then, now) {
        (Some(then), Some(now)) => std::ptr::eq(then, now),
        (None, None) => true,
        _ => false,
    }
}

/// A key that is not stored yet: owned, or already boxed in an entry from a failed attempt.
enum Pending<K, V> {
    Key(K),
    Boxed(Box<Entry<K, V>>),
}

impl<K, V> Pending<K, V> {
    fn key(&self) -> &K {
        match self {
            Pending::Key(k) => k,
            Pending::Boxed(b) => &b.key,
        }
    }

    fn into_entry(self, hash: u64, value: V) -> Box<Entry<K, V>> {
        match self {
            Pending::Key(key) => Entry::boxed(hash, key, value),
            Pending::Boxed(mut entry) => {
                entry.value = value;
                entry
            }
        }
    }
}

impl<K, V> HashMap<K, V, RandomState> {
    /// An empty map with a randomly seeded hasher.
    ///
    /// The map allocates its first table at once, with room for 21 entries before it grows
    /// (about 1.2 KiB with the length counter, on a 2-core machine); every constructor given a
    /// smaller capacity starts there too.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity_and_hasher(0, RandomState::new())
    }

    /// An empty map that can hold at least `capacity` entries before it grows.
    ///
    /// The capacity is also a floor: however many entries are removed, the map does not shrink
    /// by itself below a table that holds `capacity` entries (nor does [`clear`](Self::clear)
    /// take it there), so a map sized for its peak does not give the table back in a lull and
    /// grow it again in the next burst. Only [`shrink_to_fit`](Self::shrink_to_fit) goes below.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::with_capacity(64);
    /// assert!(map.is_empty());
    /// assert!(map.capacity() >= 64);
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` entries would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, RandomState::new())
    }
}

impl<K, V, S: Default> Default for HashMap<K, V, S> {
    fn default() -> Self {
        Self::with_capacity_and_hasher(0, S::default())
    }
}

impl<K, V, S> HashMap<K, V, S> {
    /// An empty map using `hasher`.
    ///
    /// ```
    /// use lockfree_map::HashMap;
    /// use std::collections::hash_map::DefaultHasher;
    /// use std::hash::BuildHasherDefault;
    ///
    /// let map = HashMap::with_hasher(BuildHasherDefault::<DefaultHasher>::default());
    /// map.pin().insert("a", 1);
    /// assert_eq!(map.pin().get("a"), Some(&1));
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty map using `hasher` that can hold at least `capacity` entries before it grows, and
    /// does not shrink by itself below that (see [`with_capacity`](HashMap::with_capacity)).
    ///
    /// ```
    /// use lockfree_map::HashMap;
    /// use std::collections::hash_map::RandomState;
    ///
    /// let map: HashMap<u64, u64> = HashMap::with_capacity_and_hasher(100, RandomState::new());
    /// assert!(map.is_empty());
    /// assert!(map.capacity() >= 100);
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` entries would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        Self::with_collector(capacity, hasher, Collector::global())
    }

    /// An empty map that retires removed entries to `collector` (see [`Collector`]: a private
    /// collector frees all of a map's garbage once the map and its guards are gone, at the cost
    /// of a registration per [`guard`](Self::guard)). The other constructors use
    /// [`Collector::global`]. `capacity` is a floor, as for
    /// [`with_capacity`](HashMap::with_capacity).
    ///
    /// ```
    /// use lockfree_map::{Collector, HashMap};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let map = HashMap::with_collector(16, RandomState::new(), Collector::new());
    /// let guard = map.guard();
    /// map.insert("key", 1, &guard);
    /// assert_eq!(map.get("key", &guard), Some(&1));
    /// ```
    ///
    /// # Panics
    /// If the table for `capacity` entries would not fit in the address space (`lockfree-map:
    /// capacity overflow`). If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn with_collector(capacity: usize, hasher: S, collector: Collector) -> Self {
        Self::presized(capacity, capacity, hasher, collector)
    }

    /// A map with room for `capacity` entries that never shrinks by itself below room for
    /// `floor`. The crate's own builders (`collect`, `clone`, deserializing, the set operators)
    /// size a map for what they put in it without making that a floor the user did not ask for.
    pub(crate) fn presized(capacity: usize, floor: usize, hasher: S, collector: Collector) -> Self {
        HashMap {
            raw: RawMap::with_capacity(capacity, floor, collector),
            hasher,
        }
    }

    #[cfg(any(feature = "rayon", test))]
    pub(crate) fn raw(&self) -> &RawMap<K, V> {
        &self.raw
    }

    #[cfg(feature = "rayon")]
    pub(crate) fn raw_mut(&mut self) -> &mut RawMap<K, V> {
        &mut self.raw
    }

    /// The map's table and entries, owned, the hasher dropped.
    #[cfg(feature = "rayon")]
    pub(crate) fn into_raw(self) -> RawMap<K, V> {
        // The hasher is dropped first, while the table is still a local: a hasher whose `Drop`
        // panics then drops the table as it unwinds, where a drop after the return value was
        // built would leak it (rust-lang/rust#47949).
        let HashMap { raw, hasher } = self;
        drop(hasher);
        raw
    }

    /// The collector this map retires to.
    ///
    /// ```
    /// use lockfree_map::{Collector, HashMap};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let a: HashMap<u8, u8> = HashMap::with_collector(0, RandomState::new(), Collector::new());
    /// let same = a.collector().clone();
    /// let b: HashMap<u8, u8> = HashMap::with_collector(0, RandomState::new(), same);
    /// let guard = a.guard();
    /// b.insert(1, 10, &guard); // same collector: `a`'s guard serves `b`
    /// assert_eq!(b.get(&1, &guard), Some(&10));
    /// ```
    pub fn collector(&self) -> &Collector {
        self.raw.collector()
    }

    /// The map's hasher.
    ///
    /// ```
    /// use lockfree_map::HashMap;
    /// use std::collections::hash_map::RandomState;
    /// use std::hash::BuildHasher;
    ///
    /// let state = RandomState::new();
    /// let map: HashMap<u64, u64> = HashMap::with_hasher(state.clone());
    /// assert_eq!(map.hasher().hash_one(7u64), state.hash_one(7u64));
    /// ```
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// Pins the current thread: the returned guard keeps everything read through it alive.
    ///
    /// Pin for an operation or a batch, not for the life of a thread: while a guard lives, no
    /// memory retired in any map of this map's [`Collector`] since it was made can be freed.
    /// The guard serves every map of the same collector; passing it to a map of another collector
    /// panics.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, "one", &guard);
    /// let one = map.get(&1, &guard).unwrap();
    /// map.remove(&1, &guard);
    /// assert_eq!(*one, "one"); // removed, but still readable while `guard` lives
    /// ```
    pub fn guard(&self) -> Guard {
        self.raw.collector().pin()
    }

    /// Number of entries.
    ///
    /// Exact when no write runs concurrently; otherwise off by at most the number of writes that
    /// ran during the call (the count's stripes are read one after another, so an insert and a
    /// remove that both complete during the read can each be counted or not), and never below 0.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("a", 1, &guard);
    /// map.insert("b", 2, &guard);
    /// map.insert("a", 3, &guard); // replaces: the length stays 2
    /// assert_eq!(map.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the map has no entries (with the same consistency as [`len`](Self::len)).
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// assert!(map.is_empty());
    /// map.insert("a", 1, &map.guard());
    /// assert!(!map.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the map holds without growing: the current table's nominal size (3/4 of
    /// its slots), or the number of entries if more are already in it (only an insert that
    /// spills out of its key's home group checks the load, so a table can go a little past its
    /// nominal size).
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::with_capacity(100);
    /// assert!(map.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.raw.capacity(&self.guard())
    }

    /// Takes the keys out of the map, in no particular order, dropping each value as its key is
    /// taken (and the entries not taken with the iterator), as `std`'s `into_keys`.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u32, String> = (0..3).map(|i| (i, i.to_string())).collect();
    /// let mut keys: Vec<u32> = map.into_keys().collect();
    /// keys.sort();
    /// assert_eq!(keys, [0, 1, 2]);
    /// ```
    pub fn into_keys(self) -> IntoKeys<K, V> {
        IntoKeys::new(self.into_iter())
    }

    /// Takes the values out of the map, in no particular order, dropping each key as its value
    /// is taken (and the entries not taken with the iterator), as `std`'s `into_values`.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u32, String> = (0..3).map(|i| (i, i.to_string())).collect();
    /// let mut values: Vec<String> = map.into_values().collect();
    /// values.sort();
    /// assert_eq!(values, ["0", "1", "2"]);
    /// ```
    pub fn into_values(self) -> IntoValues<K, V> {
        IntoValues::new(self.into_iter())
    }

    /// Takes every entry out of the map, as `std`'s `drain`: the entries come out of the returned
    /// iterator in no particular order, and those not taken are dropped with it. The map is left
    /// empty with the room it keeps whatever is removed: the capacity it was made with
    /// ([`with_capacity`](Self::with_capacity)) or reserved ([`reserve`](Self::reserve)), or a
    /// new map's first table if neither (as [`clear`](Self::clear) leaves it).
    ///
    /// `&mut self` rules out readers, so no guard is needed and nothing waits: the map gets a new
    /// table of that size and the iterator owns the old one. (Through `&self`, concurrent writers could
    /// keep adding entries; use [`clear`](Self::clear) or [`retain`](Self::retain) there.)
    ///
    /// ```
    /// let mut map: lockfree_map::HashMap<u32, String> =
    ///     (0..3).map(|i| (i, i.to_string())).collect();
    /// let mut taken: Vec<(u32, String)> = map.drain().collect();
    /// taken.sort();
    /// assert_eq!(taken, [(0, "0".into()), (1, "1".into()), (2, "2".into())]);
    /// assert!(map.is_empty());
    /// map.pin().insert(7, "seven".into()); // still usable
    /// ```
    pub fn drain(&mut self) -> IntoIter<K, V> {
        let empty = self.raw.emptied();
        IntoIter::new(RawIntoIter::new(std::mem::replace(&mut self.raw, empty)))
    }

    /// An iterator over the entries with mutable references to the values, in no particular
    /// order, as `std`'s `iter_mut`.
    ///
    /// `&mut self` rules out every other thread and every reference the map handed out, so the
    /// values can be changed in place, with no guard and no new entry. (Through `&self`, a value
    /// another thread may be reading is replaced instead: [`update`](Self::update),
    /// [`compute`](Self::compute).) A resize still pending is finished first, so that each
    /// entry is visited exactly once.
    ///
    /// ```
    /// let mut map: lockfree_map::HashMap<&str, u32> = [("a", 1), ("b", 2)].into_iter().collect();
    /// for (key, value) in map.iter_mut() {
    ///     if *key == "b" {
    ///         *value += 10;
    ///     }
    /// }
    /// let m = map.pin();
    /// assert_eq!((m.get("a"), m.get("b")), (Some(&1), Some(&12)));
    /// ```
    ///
    /// A reference from the map, and so its guard's borrow of it, must end first:
    ///
    /// ```compile_fail
    /// let mut map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, 1, &guard);
    /// let one = map.get(&1, &guard).unwrap();
    /// map.iter_mut().for_each(|(_, v)| *v += 1); // error: `map` is borrowed by `one`
    /// assert_eq!(*one, 1);
    /// ```
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut::new(self.raw.iter_mut())
    }

    /// An iterator over mutable references to the values, in no particular order, as `std`'s
    /// `values_mut`; see [`iter_mut`](Self::iter_mut).
    ///
    /// ```
    /// let mut map: lockfree_map::HashMap<u32, u32> = (0..3).map(|i| (i, i)).collect();
    /// map.values_mut().for_each(|v| *v *= 2);
    /// let mut values: Vec<u32> = map.pin().values().copied().collect();
    /// values.sort();
    /// assert_eq!(values, [0, 2, 4]);
    /// ```
    pub fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        ValuesMut::new(self.iter_mut())
    }
}

impl<K, V, S> HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    /// A handle that holds one guard for many operations, with guard-free methods.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// assert_eq!(m.get(&1), Some(&"one"));
    /// ```
    pub fn pin(&self) -> MapRef<'_, K, V, S> {
        MapRef::new(self, self.guard())
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The value for `key`.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(String::from("apple"), 3, &guard);
    /// assert_eq!(map.get("apple", &guard), Some(&3)); // a `String` key, looked up by `&str`
    /// assert_eq!(map.get("pear", &guard), None);
    /// ```
    #[inline]
    pub fn get<'g, Q>(&'g self, key: &Q, guard: &'g Guard) -> Option<&'g V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get_key_value(key, guard).map(|(_, v)| v)
    }

    /// The stored key and value for `key`.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(String::from("apple"), 3, &guard);
    /// let (key, value) = map.get_key_value("apple", &guard).unwrap();
    /// assert_eq!((key.as_str(), *value), ("apple", 3)); // the stored `String` key
    /// assert_eq!(map.get_key_value("pear", &guard), None);
    /// ```
    #[inline]
    pub fn get_key_value<'g, Q>(&'g self, key: &Q, guard: &'g Guard) -> Option<(&'g K, &'g V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = self
            .raw
            .find(self.hash(key), |k| key.equivalent(k), guard)?;
        Some((&entry.key, &entry.value))
    }

    /// A mutable reference to the value for `key`, as `std`'s `get_mut`.
    ///
    /// `&mut self` rules out every other thread and every reference the map handed out, so the
    /// value can be changed in place, with no guard and no new entry (see
    /// [`iter_mut`](Self::iter_mut)). A resize still pending is finished first.
    ///
    /// ```
    /// let mut map = lockfree_map::HashMap::new();
    /// map.pin().insert(String::from("apple"), vec![3]);
    /// if let Some(v) = map.get_mut("apple") {
    ///     v.push(4);
    /// }
    /// assert_eq!(map.get_mut("pear"), None);
    /// assert_eq!(map.pin().get("apple"), Some(&vec![3, 4]));
    /// ```
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let entry = self.raw.find_mut(hash, |k| key.equivalent(k))?;
        Some(&mut entry.value)
    }

    /// Removes `key` and returns its value, owned, as `std`'s `remove` does; see
    /// [`remove_entry_owned`](Self::remove_entry_owned).
    ///
    /// ```
    /// type Job = Box<dyn FnOnce() -> u32 + Send>;
    /// let mut jobs: lockfree_map::HashMap<u32, Job> = lockfree_map::HashMap::new();
    /// jobs.pin().insert(7, Box::new(|| 40 + 2));
    /// let job = jobs.remove_owned(&7).expect("present"); // a `FnOnce` runs only once owned
    /// assert_eq!(job(), 42);
    /// assert!(jobs.is_empty());
    /// ```
    pub fn remove_owned<Q>(&mut self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        // The key dropped first, as in `IntoValues::next`.
        self.remove_entry_owned(key).map(|(k, v)| {
            drop(k);
            v
        })
    }

    /// Removes `key` and returns the stored key and its value, owned, as `std`'s `remove_entry`
    /// does.
    ///
    /// Through `&self` a removed entry may still be read by another thread, so
    /// [`remove`](Self::remove) lends it out until the guard drops, and frees it later. `&mut self`
    /// rules out every such reader (see [`iter_mut`](Self::iter_mut)), so the entry leaves the
    /// map at once, with nothing left to reclaim. A resize still pending is finished first.
    ///
    /// ```
    /// let mut map: lockfree_map::HashMap<String, Vec<u8>> = lockfree_map::HashMap::new();
    /// map.pin().insert("a".to_string(), vec![1, 2]);
    /// assert_eq!(map.remove_entry_owned("a"), Some(("a".to_string(), vec![1, 2])));
    /// assert_eq!(map.remove_entry_owned("a"), None);
    /// ```
    pub fn remove_entry_owned<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        let entry = self.raw.take(hash, |k| key.equivalent(k))?;
        Some((entry.key, entry.value))
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, "one", &guard);
    /// assert!(map.contains_key(&1, &guard));
    /// assert!(!map.contains_key(&2, &guard));
    /// ```
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q, guard: &Guard) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get(key, guard).is_some()
    }

    /// A clone of the value for `key`, pinning internally (no guard needed).
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// map.pin().insert("primes", vec![2, 3, 5]);
    /// let owned: Option<Vec<i32>> = map.get_cloned("primes"); // outlives any guard
    /// assert_eq!(owned, Some(vec![2, 3, 5]));
    /// assert_eq!(map.get_cloned("squares"), None);
    /// ```
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        self.get(key, &self.guard()).cloned()
    }

    /// Inserts `key → value`; returns the value it replaced.
    ///
    /// The replaced value stays readable through the returned reference while `guard` lives; it
    /// is dropped afterwards.
    ///
    /// If the key was present, the map keeps one of the two equal keys and drops the other:
    /// for `String`, `Vec<u8>`, `Arc<str>` and `Arc<[u8]>` keys the stored one, as `std`'s maps
    /// do (the caller's key is dropped before `insert` returns), and for any other key type the
    /// caller's, since keeping the stored one would take a clone. This matters only for keys
    /// that can be equal without being identical.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// assert_eq!(map.insert("a", 1, &guard), None);
    /// assert_eq!(map.insert("a", 2, &guard), Some(&1)); // the replaced value
    /// assert_eq!(map.get("a", &guard), Some(&2));
    /// ```
    pub fn insert<'g>(&'g self, key: K, value: V, guard: &'g Guard) -> Option<&'g V> {
        let hash = self.hash(&key);
        let mut entry = Entry::boxed(hash, key, value);
        loop {
            let located = self.raw.locate(hash, |k| *k == entry.key, true, guard);
            match self.raw.try_store_keeping_key(&located, entry, guard) {
                Ok((old, _)) => return old.map(|e| &e.value),
                Err(back) => entry = back,
            }
        }
    }

    /// Inserts `key → value` only if `key` is absent. Otherwise returns the current value and
    /// gives `value` back (and drops `key`); a call that finds the key present allocates nothing.
    ///
    /// ```
    /// use lockfree_map::{HashMap, OccupiedError};
    ///
    /// let map = HashMap::new();
    /// let guard = map.guard();
    /// assert_eq!(map.try_insert("a", 1, &guard), Ok(&1));
    /// let err = map.try_insert("a", 2, &guard).unwrap_err();
    /// assert_eq!(err, OccupiedError { current: &1, not_inserted: 2 });
    /// assert_eq!(map.get("a", &guard), Some(&1)); // unchanged
    /// ```
    pub fn try_insert<'g>(
        &'g self,
        key: K,
        value: V,
        guard: &'g Guard,
    ) -> Result<&'g V, OccupiedError<'g, V>> {
        let hash = self.hash(&key);
        // The entry is boxed only once the key looked absent: a call that finds the key present
        // (the common case of a deduplicating caller) allocates and frees nothing.
        let mut pending = Pending::Key(key);
        let mut loose = Some(value);
        loop {
            let located = self.raw.locate(hash, |k| k == pending.key(), true, guard);
            if let Some(current) = located.entry() {
                // The key is dropped before the error is built: a key whose `Drop` panics after
                // the error is built would leak the value in it (rust-lang/rust#47949).
                let not_inserted = match pending {
                    Pending::Key(key) => {
                        drop(key);
                        loose.take().expect("a value not yet boxed is loose")
                    }
                    Pending::Boxed(entry) => {
                        let Entry { key, value, .. } = *entry;
                        drop(key);
                        value
                    }
                };
                return Err(OccupiedError {
                    current: &current.value,
                    not_inserted,
                });
            }
            let entry = match pending {
                Pending::Key(key) => {
                    Entry::boxed(hash, key, loose.take().expect("boxed once, then kept"))
                }
                Pending::Boxed(entry) => entry,
            };
            match self.raw.try_store(&located, entry, guard) {
                Ok((_, stored)) => return Ok(&stored.value),
                Err(back) => pending = Pending::Boxed(back),
            }
        }
    }

    /// The value for `key`, inserting `make()` first if it is absent: the cache primitive.
    ///
    /// `make` runs at most once per call, and only if the key looked absent; if another thread
    /// inserts the key first, the value made here is dropped and theirs is returned, so each
    /// key's value is published once (two calls racing on an absent key may both run `make`).
    ///
    /// The key is taken by value, and dropped if it is present. Where making an owned key costs
    /// (a `String` built or cloned for the call), [`get_or_insert_with_ref`] looks the key up
    /// by reference and makes the owned key only to insert it.
    ///
    /// [`get_or_insert_with_ref`]: HashMap::get_or_insert_with_ref
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// let mut runs = 0;
    /// assert_eq!(map.get_or_insert_with("a", || { runs += 1; 1 }, &guard), &1);
    /// assert_eq!(map.get_or_insert_with("a", || { runs += 1; 2 }, &guard), &1);
    /// assert_eq!(runs, 1); // present the second time: `make` did not run
    /// ```
    pub fn get_or_insert_with<'g, F>(&'g self, key: K, make: F, guard: &'g Guard) -> &'g V
    where
        F: FnOnce() -> V,
    {
        match self.get_or_try_insert_with(key, || Ok::<V, Infallible>(make()), guard) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a value whose making can fail: a
    /// cache of loads that may fail, as moka's `try_get_with` and dashmap's `or_try_insert_with`.
    ///
    /// `make` runs at most once per call, and only if the key looked absent. If it fails, nothing
    /// is inserted, the key is dropped, and its error is returned; a later call tries again. If
    /// another thread inserts the key first, the value made here is dropped and theirs returned.
    ///
    /// ```
    /// let lengths = lockfree_map::HashMap::new();
    /// let guard = lengths.guard();
    /// let load = |path: &str| -> Result<usize, String> {
    ///     if path.ends_with(".txt") { Ok(path.len()) } else { Err(format!("cannot read {path}")) }
    /// };
    /// assert_eq!(lengths.get_or_try_insert_with("a.txt", || load("a.txt"), &guard), Ok(&5));
    /// assert_eq!(
    ///     lengths.get_or_try_insert_with("b.bin", || load("b.bin"), &guard),
    ///     Err("cannot read b.bin".to_string()),
    /// );
    /// assert!(!lengths.contains_key("b.bin", &guard)); // a failure inserts nothing
    /// // Present: `make` does not run.
    /// let again = lengths.get_or_try_insert_with("a.txt", || Err("not run".to_string()), &guard);
    /// assert_eq!(again, Ok(&5));
    /// ```
    pub fn get_or_try_insert_with<'g, F, E>(
        &'g self,
        key: K,
        make: F,
        guard: &'g Guard,
    ) -> Result<&'g V, E>
    where
        F: FnOnce() -> Result<V, E>,
    {
        let hash = self.hash(&key);
        let mut pending = Pending::Key(key);
        let mut make = Some(make);
        loop {
            let located = self.raw.locate(hash, |k| k == pending.key(), true, guard);
            if let Some(current) = located.entry() {
                return Ok(&current.value);
            }
            let entry = match pending {
                Pending::Key(key) => {
                    let make = make.take().expect("make runs once: a made entry is kept");
                    match make() {
                        Ok(value) => Entry::boxed(hash, key, value),
                        // The key first, as in `try_insert`.
                        Err(error) => {
                            drop(key);
                            return Err(error);
                        }
                    }
                }
                Pending::Boxed(entry) => entry,
            };
            match self.raw.try_store(&located, entry, guard) {
                Ok((_, stored)) => return Ok(&stored.value),
                Err(back) => pending = Pending::Boxed(back),
            }
        }
    }

    /// The value for `key`, looked up by reference, inserting the key `to_owned(key)` with the
    /// value `make()` first if it is absent: [`get_or_insert_with`] for keys that cost something
    /// to make, such as a `String` looked up by `&str` in a cache, whose hits then allocate
    /// nothing (hashbrown's `entry_ref` and `HashSet::get_or_insert_with` have this shape).
    ///
    /// `to_owned` and `make` run at most once per call, and only if the key looked absent; if
    /// another thread inserts the key first, what they made is dropped and that thread's value
    /// is returned. `to_owned(key)` must return a key equal to `key` (and so, by the contract of
    /// [`Equivalent`], with the same hash), since the entry is stored under `key`'s hash.
    ///
    /// # Panics
    ///
    /// If `to_owned(key)` is not equal to `key` (as hashbrown's `HashSet::get_or_insert_with`
    /// does), before `make` runs and before anything is inserted; until stop 50 such a key was
    /// stored where lookups of it do not look. A `Hash` that disagrees with an equal key's (an
    /// `Equivalent` or `Borrow` that breaks its contract) is not caught: the entry is then stored
    /// where lookups of it do not look (no undefined behaviour, no leak).
    ///
    /// [`get_or_insert_with`]: HashMap::get_or_insert_with
    ///
    /// ```
    /// let cache: lockfree_map::HashMap<String, usize> = lockfree_map::HashMap::new();
    /// let guard = cache.guard();
    /// let mut allocations = 0;
    /// for word in ["apple", "pear", "apple"] {
    ///     let len = cache.get_or_insert_with_ref(
    ///         word,
    ///         |w| { allocations += 1; w.to_owned() },
    ///         || word.len(),
    ///         &guard,
    ///     );
    ///     assert_eq!(*len, word.len());
    /// }
    /// assert_eq!(allocations, 2); // the second "apple" was a hit: no `String` made
    /// ```
    pub fn get_or_insert_with_ref<'g, Q, O, F>(
        &'g self,
        key: &Q,
        to_owned: O,
        make: F,
        guard: &'g Guard,
    ) -> &'g V
    where
        Q: Hash + Equivalent<K> + ?Sized,
        O: FnOnce(&Q) -> K,
        F: FnOnce() -> V,
    {
        let make = || Ok::<V, Infallible>(make());
        match self.get_or_try_insert_with_ref(key, to_owned, make, guard) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`get_or_insert_with_ref`](Self::get_or_insert_with_ref) for a value whose making can
    /// fail, as [`get_or_try_insert_with`](Self::get_or_try_insert_with): if `make` fails,
    /// nothing is inserted, the key made for it is dropped, and its error is returned. It panics
    /// where that one does, if `to_owned(key)` is not equal to `key`.
    ///
    /// ```
    /// let cache: lockfree_map::HashMap<String, u32> = lockfree_map::HashMap::new();
    /// let guard = cache.guard();
    /// let parse = |s: &str| {
    ///     cache.get_or_try_insert_with_ref(s, str::to_owned, || s.parse(), &guard).copied()
    /// };
    /// assert_eq!(parse("42"), Ok(42));
    /// assert!(parse("forty-two").is_err());
    /// assert_eq!(cache.len(), 1); // the failure stored nothing
    /// ```
    pub fn get_or_try_insert_with_ref<'g, Q, O, F, E>(
        &'g self,
        key: &Q,
        to_owned: O,
        make: F,
        guard: &'g Guard,
    ) -> Result<&'g V, E>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        O: FnOnce(&Q) -> K,
        F: FnOnce() -> Result<V, E>,
    {
        let hash = self.hash(key);
        let mut made: Option<Box<Entry<K, V>>> = None;
        let mut makers = Some((to_owned, make));
        loop {
            let located = self.raw.locate(hash, |k| key.equivalent(k), true, guard);
            if let Some(current) = located.entry() {
                return Ok(&current.value);
            }
            let entry = match made.take() {
                Some(entry) => entry,
                None => {
                    let (to_owned, make) = makers.take().expect("the entry is made once and kept");
                    made_for_ref(hash, key, to_owned, make)?
                }
            };
            match self.raw.try_store(&located, entry, guard) {
                Ok((_, stored)) => return Ok(&stored.value),
                Err(back) => made = Some(back),
            }
        }
    }

    /// The value for `key`, inserting `value` first if it is absent.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// assert_eq!(map.get_or_insert("a", 1, &guard), &1); // absent: inserted
    /// assert_eq!(map.get_or_insert("a", 2, &guard), &1); // present: kept
    /// ```
    pub fn get_or_insert<'g>(&'g self, key: K, value: V, guard: &'g Guard) -> &'g V {
        self.get_or_insert_with(key, || value, guard)
    }

    /// Replaces the value of `key`, if present, with `update(&current)`; returns the new value.
    ///
    /// Atomic per key: no other write to `key` lands between reading `current` and storing the
    /// result. Under contention `update` may run more than once (each run sees the then current
    /// value); only the last result is stored, the others are dropped. It runs again only when
    /// another write replaced the key's entry first: a resize that moves the entry meanwhile
    /// keeps the value made from it. `update` may itself read and write the map, any key,
    /// this one included (a write to this key makes it run again on what was written).
    ///
    /// The key is borrowed, and the stored key is kept, as in `std`'s maps. The new entry gets
    /// a clone of it (`Copy` keys: a copy), except for `String`, `Vec<u8>`, `Arc<str>` and
    /// `Arc<[u8]>` keys, which it takes over without a clone: an update of such a key allocates
    /// and frees no key (`ARCHITECTURE.md`, "Reclamation"). For a key type that is not `Clone`,
    /// use [`compute`](Self::compute).
    ///
    /// ```
    /// let map: lockfree_map::HashMap<String, u32> = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// assert_eq!(map.update("hits", |n| n + 1, &guard), None); // absent: nothing inserted
    /// assert!(!map.contains_key("hits", &guard));
    /// map.insert("hits".to_string(), 1, &guard);
    /// assert_eq!(map.update("hits", |n| n + 1, &guard), Some(&2));
    /// ```
    pub fn update<'g, Q, F>(&'g self, key: &Q, mut update: F, guard: &'g Guard) -> Option<&'g V>
    where
        K: Clone,
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&V) -> V,
    {
        let hash = self.hash(key);
        let located = self.raw.locate(hash, |k| key.equivalent(k), false, guard);
        let value = update(&located.entry()?.value);
        match self.raw.try_replace_value(&located, value, guard) {
            Ok(stored) => Some(&stored.value),
            Err(made) => self.update_again(hash, key, update, made, guard),
        }
    }

    /// [`update`](Self::update) after a failed attempt, which made `made.1` from the entry
    /// `made.0`. Out of line and cold: in `update`'s loop, keeping a failed attempt's value cost
    /// 6 instructions an update, here 3 (register allocation; callgrind `hotpath hot-key`, stop
    /// 52: 241.76 -> 244.75 M for 1M updates).
    #[cold]
    #[inline(never)]
    fn update_again<'g, Q, F>(
        &'g self,
        hash: u64,
        key: &Q,
        mut update: F,
        mut made: (Option<&'g Entry<K, V>>, V),
        guard: &'g Guard,
    ) -> Option<&'g V>
    where
        K: Clone,
        Q: Equivalent<K> + ?Sized,
        F: FnMut(&V) -> V,
    {
        loop {
            let located = self.raw.locate(hash, |k| key.equivalent(k), false, guard);
            let current = located.entry()?;
            let (from, value) = made;
            // Still the entry the value was made from, as after a resize that moved it: the
            // value stands, and `update` need not run again (see `same_entry`). A value made
            // from an entry another write replaced is dropped, and made anew.
            let value = if same_entry(from, Some(current)) {
                value
            } else {
                drop(value);
                update(&current.value)
            };
            match self.raw.try_replace_value(&located, value, guard) {
                Ok(stored) => return Some(&stored.value),
                Err(failed) => made = failed,
            }
        }
    }

    /// Reads the current entry for `key` (or its absence) and lets `decide` insert, replace,
    /// remove or abort, atomically per key.
    ///
    /// Under contention `decide` may run more than once, each time on the then current entry;
    /// only the decision of the last run takes effect. It runs again only when another write
    /// changed the key's entry (or its absence) first, not when a resize moved the entry.
    /// `Operation::Insert` over a present key keeps the key that [`insert`](Self::insert)
    /// keeps.
    ///
    /// ```
    /// use lockfree_map::{Compute, HashMap, Operation};
    /// let map = HashMap::new();
    /// let guard = map.guard();
    /// // Increment, removing the counter when it reaches 3.
    /// for _ in 0..3 {
    ///     map.compute("hits", |cur| match cur {
    ///         None => Operation::Insert(1),
    ///         Some((_, &2)) => Operation::Remove,
    ///         Some((_, n)) => Operation::Insert(n + 1),
    ///     }, &guard) as Compute<_, _, ()>;
    /// }
    /// assert_eq!(map.get("hits", &guard), None);
    /// ```
    pub fn compute<'g, F, T>(
        &'g self,
        key: K,
        mut decide: F,
        guard: &'g Guard,
    ) -> Compute<'g, K, V, T>
    where
        F: FnMut(Option<(&'g K, &'g V)>) -> Operation<V, T>,
    {
        let hash = self.hash(&key);
        let mut pending = Pending::Key(key);
        // What a failed attempt decided (`true`: store `pending`, boxed with the value to
        // insert; `false`: remove), and the entry it decided on (`None`: the key was absent).
        let mut decided: Option<(Option<&'g Entry<K, V>>, bool)> = None;
        loop {
            let located = self.raw.locate(hash, |k| k == pending.key(), true, guard);
            let current = located.entry();
            let insert = match decided.take() {
                // The key's entry (or its absence) is still the one the failed attempt decided
                // on, as after a resize that moved it: the decision stands, and `decide` need
                // not run again (see `same_entry`).
                Some((on, insert)) if same_entry(on, current) => insert,
                _ => match decide(current.map(|e| (&e.key, &e.value))) {
                    Operation::Abort(t) => {
                        // The key first, as in `try_insert`, and the closure (a `Drop` of what
                        // it captured that panics would leak `t` otherwise).
                        drop(pending);
                        drop(decide);
                        return Compute::Aborted(t);
                    }
                    Operation::Remove => false,
                    Operation::Insert(value) => {
                        pending = Pending::Boxed(pending.into_entry(hash, value));
                        true
                    }
                },
            };
            if !insert {
                let Some(current) = current else {
                    return Compute::Absent;
                };
                if self.raw.try_remove(&located, guard).is_some() {
                    return Compute::Removed(&current.key, &current.value);
                }
                decided = Some((Some(current), false));
                continue;
            }
            let Pending::Boxed(entry) = pending else {
                unreachable!("an insert decision boxes its value with the key")
            };
            match self.raw.try_store_keeping_key(&located, entry, guard) {
                Ok((Some(old), new)) => {
                    return Compute::Updated {
                        old: (&old.key, &old.value),
                        new: (&new.key, &new.value),
                    }
                }
                Ok((None, new)) => return Compute::Inserted(&new.key, &new.value),
                Err(back) => {
                    pending = Pending::Boxed(back);
                    decided = Some((current, true));
                }
            }
        }
    }

    /// Replaces the value of `key` with `update(&current)` if it is present, or inserts
    /// `make()` if it is absent; returns the value stored. The counter's primitive:
    /// `map.update_or_insert_with(word, |n| n + 1, || 1, &guard)`.
    ///
    /// Atomic per key, as [`update`](Self::update) and [`compute`](Self::compute) are: the value
    /// stored is `update` of the value it replaced, or `make()` where there was none. Under
    /// contention `update` may run more than once, each time on the then current value (not
    /// again for an entry a resize moved, as with [`update`](Self::update)). `make`
    /// runs at most once per call: if the key turns up present before its value lands, the call
    /// updates instead and keeps the made value for a later attempt that finds the key absent
    /// again, and drops it, unused, at the end. Over a present key it keeps the key that
    /// [`insert`](Self::insert) keeps.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<&str, u32> = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// for word in ["a", "b", "a"] {
    ///     map.update_or_insert_with(word, |n| n + 1, || 1, &guard);
    /// }
    /// assert_eq!(map.get("a", &guard), Some(&2));
    /// assert_eq!(map.get("b", &guard), Some(&1));
    /// ```
    pub fn update_or_insert_with<'g, F, G>(
        &'g self,
        key: K,
        mut update: F,
        make: G,
        guard: &'g Guard,
    ) -> &'g V
    where
        F: FnMut(&V) -> V,
        G: FnOnce() -> V,
    {
        let hash = self.hash(&key);
        let mut pending = Pending::Key(key);
        let mut make = Some(make);
        // `make`'s value while an attempt carries an update's instead: `make` runs once at most,
        // whatever the key does between attempts.
        let mut made: Option<V> = None;
        // Whether the boxed entry (after a failed attempt) carries `make`'s value.
        let mut boxed_made = false;
        // The entry a failed attempt's update value was made from (`None` if it carried
        // `make`'s value, or there was none).
        let mut made_from: Option<&'g Entry<K, V>> = None;
        loop {
            let located = self.raw.locate(hash, |k| k == pending.key(), true, guard);
            let current = located.entry();
            let entry = match (current, pending) {
                // Still the entry the update value was made from, as after a resize that moved
                // it: the value stands, and `update` need not run again (see `same_entry`).
                (Some(current), Pending::Boxed(entry))
                    if !boxed_made && same_entry(made_from, Some(current)) =>
                {
                    entry
                }
                (Some(current), pending) => {
                    let value = update(&current.value);
                    let entry = match pending {
                        Pending::Key(key) => Entry::boxed(hash, key, value),
                        Pending::Boxed(mut entry) => {
                            let previous = std::mem::replace(&mut entry.value, value);
                            // `make`'s value is kept for a later attempt; a stale update's goes,
                            // here: dropped after the block's result is built, a panic of its
                            // `Drop` would leak the entry (rust-lang/rust#47949).
                            if boxed_made {
                                made = Some(previous);
                            } else {
                                drop(previous);
                            }
                            entry
                        }
                    };
                    boxed_made = false;
                    entry
                }
                // Absent again: the box still carries `make`'s value.
                (None, Pending::Boxed(entry)) if boxed_made => entry,
                (None, pending) => {
                    let value = match made.take() {
                        Some(value) => value,
                        None => make.take().expect("`make` runs once: its value is kept")(),
                    };
                    boxed_made = true;
                    pending.into_entry(hash, value)
                }
            };
            match self.raw.try_store_keeping_key(&located, entry, guard) {
                Ok((_, stored)) => return &stored.value,
                Err(back) => {
                    pending = Pending::Boxed(back);
                    made_from = if boxed_made { None } else { current };
                }
            }
        }
    }

    /// [`update_or_insert_with`](Self::update_or_insert_with) with a value made in advance:
    /// replaces the value of `key` with `update(&current)` if it is present, or inserts `value`.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// assert_eq!(map.update_or_insert("hits", |n| n + 1, 1, &guard), &1); // absent: inserted
    /// assert_eq!(map.update_or_insert("hits", |n| n + 1, 1, &guard), &2); // present: updated
    /// ```
    pub fn update_or_insert<'g, F>(&'g self, key: K, update: F, value: V, guard: &'g Guard) -> &'g V
    where
        F: FnMut(&V) -> V,
    {
        self.update_or_insert_with(key, update, || value, guard)
    }

    /// Removes `key`; returns its value (readable while `guard` lives).
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, "one", &guard);
    /// assert_eq!(map.remove(&1, &guard), Some(&"one"));
    /// assert_eq!(map.remove(&1, &guard), None); // already gone
    /// ```
    pub fn remove<'g, Q>(&'g self, key: &Q, guard: &'g Guard) -> Option<&'g V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.remove_entry(key, guard).map(|(_, v)| v)
    }

    /// Removes `key`; returns the stored key and value (readable while `guard` lives).
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(String::from("apple"), 3, &guard);
    /// let (key, value) = map.remove_entry("apple", &guard).unwrap();
    /// assert_eq!((key.as_str(), *value), ("apple", 3)); // the stored `String` key
    /// assert!(map.is_empty());
    /// ```
    pub fn remove_entry<'g, Q>(&'g self, key: &Q, guard: &'g Guard) -> Option<(&'g K, &'g V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            let located = self.raw.locate(hash, |k| key.equivalent(k), false, guard);
            located.entry()?;
            if let Some(removed) = self.raw.try_remove(&located, guard) {
                return Some((&removed.key, &removed.value));
            }
        }
    }

    /// Replaces the value of `key` with `value` if `replace(&key, &current)` says so for its
    /// current entry, atomically per key: a compare-and-swap on a value (Java's
    /// `replace(key, old, new)`, folly's `assign_if_equal`) when the predicate compares with a
    /// value read before.
    ///
    /// Returns the replaced value, or hands `value` back if the key is absent or the predicate
    /// refused. The predicate may run more than once under contention, each time on the then
    /// current entry (not again for an entry it approved that a resize moved); the call
    /// replaces only an entry it approved. Over the stored key it keeps
    /// the key that [`update`](Self::update) keeps.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("version", 1, &guard);
    /// // Move from version 1 to 2, unless another writer got there first.
    /// assert_eq!(map.replace_if("version", |_, v| *v == 1, 2, &guard), Ok(&1));
    /// assert_eq!(map.replace_if("version", |_, v| *v == 1, 3, &guard), Err(3)); // it is 2 now
    /// assert_eq!(map.replace_if("absent", |_, _| true, 9, &guard), Err(9));
    /// assert_eq!(map.get("version", &guard), Some(&2));
    /// ```
    pub fn replace_if<'g, Q, F>(
        &'g self,
        key: &Q,
        mut replace: F,
        value: V,
        guard: &'g Guard,
    ) -> Result<&'g V, V>
    where
        K: Clone,
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        let hash = self.hash(key);
        let mut value = value;
        // The entry the predicate approved in a failed attempt.
        let mut approved: Option<&'g Entry<K, V>> = None;
        loop {
            let located = self.raw.locate(hash, |k| key.equivalent(k), false, guard);
            // The closure dropped before `value` is handed back: a `Drop` of what it captured
            // that panics would leak `value` otherwise (rust-lang/rust#47949).
            let Some(current) = located.entry() else {
                drop(replace);
                return Err(value);
            };
            // An entry approved before (and moved since by a resize) is not judged again.
            if !same_entry(approved.take(), Some(current)) && !replace(&current.key, &current.value)
            {
                drop(replace);
                return Err(value);
            }
            match self.raw.try_replace_value(&located, value, guard) {
                Ok(_) => return Ok(&current.value),
                // The slot changed after the predicate approved its entry: a new entry is
                // judged anew, the same one (moved) is not.
                Err((_, back)) => {
                    value = back;
                    approved = Some(current);
                }
            }
        }
    }

    /// Removes `key` if `remove(&key, &value)` says so for its current entry. The predicate may
    /// run more than once under contention, each time on the then current entry (not again for
    /// an entry it approved that a resize moved).
    ///
    /// ```
    /// let map: lockfree_map::HashMap<&str, u32> = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("odd", 1, &guard);
    /// map.insert("even", 2, &guard);
    /// assert_eq!(map.remove_if("odd", |_, v| v % 2 == 0, &guard), None); // kept
    /// assert_eq!(map.remove_if("even", |_, v| v % 2 == 0, &guard), Some((&"even", &2)));
    /// assert!(map.contains_key("odd", &guard) && !map.contains_key("even", &guard));
    /// ```
    pub fn remove_if<'g, Q, F>(
        &'g self,
        key: &Q,
        mut remove: F,
        guard: &'g Guard,
    ) -> Option<(&'g K, &'g V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        let hash = self.hash(key);
        // The entry the predicate approved in a failed attempt.
        let mut approved: Option<&'g Entry<K, V>> = None;
        loop {
            let located = self.raw.locate(hash, |k| key.equivalent(k), false, guard);
            let current = located.entry()?;
            // An entry approved before (and moved since by a resize) is not judged again.
            if !same_entry(approved.take(), Some(current)) && !remove(&current.key, &current.value)
            {
                return None;
            }
            if let Some(removed) = self.raw.try_remove(&located, guard) {
                return Some((&removed.key, &removed.value));
            }
            approved = Some(current);
        }
    }

    /// Keeps only the entries for which `keep` returns `true`.
    ///
    /// Each entry is judged once, on its value when it is visited (again, if another thread
    /// changes it before it can be removed). Entries inserted concurrently may or may not be
    /// visited.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// for i in 0..10u32 {
    ///     map.insert(i, i * i, &guard);
    /// }
    /// map.retain(|k, _| k % 2 == 0, &guard);
    /// assert_eq!(map.len(), 5);
    /// assert!(map.contains_key(&4, &guard) && !map.contains_key(&5, &guard));
    /// ```
    pub fn retain<F>(&self, mut keep: F, guard: &Guard)
    where
        F: FnMut(&K, &V) -> bool,
    {
        for entry in self.raw.iter(guard) {
            if !keep(&entry.key, &entry.value) {
                // The entry judged is removed without asking `keep` again (std's `retain` asks
                // once an element; a stateful `keep` asked twice kept entries it had rejected,
                // found by a review of stop 47); a different entry for the key is judged anew.
                // The same address is the same entry: ours cannot be freed, and its memory
                // reused, while `guard` lives.
                let judged = &entry.value;
                self.remove_visited(entry, |k, v| std::ptr::eq(v, judged) || !keep(k, v), guard);
            }
        }
    }

    /// Removes the key of `entry`, an entry an iteration under `guard` yielded, if `remove`
    /// approves the key's current entry. It finds the key as it was stored
    /// ([`RawMap::locate_stored`]: by the hash kept in the entry and the stored key's address),
    /// so that a key whose `Hash` or `Eq` is not consistent is removed as `std`'s `clear` and
    /// `retain` remove it: looked up by the key, as before stop 48, such an entry survived both
    /// (found by a review). A newer entry for the key (another thread replaced it meanwhile) is
    /// found by the key's `Eq`.
    fn remove_visited(
        &self,
        entry: &Entry<K, V>,
        mut remove: impl FnMut(&K, &V) -> bool,
        guard: &Guard,
    ) {
        let stored = &entry.key;
        loop {
            let located = self.raw.locate_stored(entry, |k| stored == k, guard);
            let Some(current) = located.entry() else {
                return;
            };
            if !remove(&current.key, &current.value)
                || self.raw.try_remove(&located, guard).is_some()
            {
                return;
            }
        }
    }

    /// Removes every entry, then shrinks the table back to the size the map was made with (a new
    /// map's first table, or room for the capacity it was made with, or the room
    /// [`reserve`](Self::reserve) kept), or to what the entries inserted meanwhile need. Each
    /// entry visited is removed whatever its key's `Hash` and `Eq` say now, as with `std`.
    ///
    /// Not atomic: entries inserted while it runs may survive it.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// for i in 0..100 {
    ///     map.insert(i, i, &guard);
    /// }
    /// map.clear(&guard);
    /// assert_eq!(map.len(), 0);
    /// assert_eq!(map.get(&1, &guard), None);
    /// ```
    pub fn clear(&self, guard: &Guard) {
        for entry in self.raw.iter(guard) {
            self.remove_visited(entry, |_, _| true, guard);
        }
        self.raw.shrink_to_fit(true, guard);
    }

    /// Makes room for at least `additional` more entries without further growth.
    ///
    /// The room is kept as a floor, as with the capacity the map was made with: removals do not
    /// shrink the table below it (nor do [`clear`](Self::clear) and [`drain`](Self::drain)) until
    /// [`shrink_to_fit`](Self::shrink_to_fit) gives it back. If another thread resizes the
    /// table meanwhile, the call still returns with the room asked for.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, 1, &guard);
    /// map.reserve(1000, &guard);
    /// assert!(map.capacity() >= 1001); // the entries present, plus `additional`
    /// ```
    ///
    /// # Panics
    /// If the table would not fit in the address space (`lockfree-map: capacity overflow`); the
    /// map is left as it was. If the allocator cannot provide it, the process aborts, as with
    /// `std`'s collections.
    pub fn reserve(&self, additional: usize, guard: &Guard) {
        self.raw.reserve(additional, guard);
    }

    /// Shrinks the table to the smallest one that holds the current entries: smaller than a new
    /// map's first table if they are few, and below the capacity the map was made with, where
    /// the map never shrinks by itself. Its floor stays: a later growth or shrink of its own
    /// takes it back to at least that size. Room kept by [`reserve`](Self::reserve) is given
    /// back.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::with_capacity(1000);
    /// let guard = map.guard();
    /// map.insert(1, "one", &guard);
    /// map.shrink_to_fit(&guard);
    /// assert!(map.capacity() < 1000 && map.capacity() >= 1);
    /// assert_eq!(map.get(&1, &guard), Some(&"one"));
    /// ```
    pub fn shrink_to_fit(&self, guard: &Guard) {
        self.raw.shrink_to_fit(false, guard);
    }

    /// An iterator over `(&K, &V)`; see [`Iter`] for what it guarantees under concurrent writes.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("a", 1, &guard);
    /// map.insert("b", 2, &guard);
    /// let mut all: Vec<_> = map.iter(&guard).collect();
    /// all.sort();
    /// assert_eq!(all, [(&"a", &1), (&"b", &2)]);
    /// ```
    pub fn iter<'g>(&'g self, guard: &'g Guard) -> Iter<'g, K, V> {
        Iter::new(self.raw.iter(guard))
    }

    /// An iterator over the keys.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("a", 1, &guard);
    /// map.insert("b", 2, &guard);
    /// let mut keys: Vec<_> = map.keys(&guard).copied().collect();
    /// keys.sort();
    /// assert_eq!(keys, ["a", "b"]);
    /// ```
    pub fn keys<'g>(&'g self, guard: &'g Guard) -> Keys<'g, K, V> {
        Keys::new(self.iter(guard))
    }

    /// An iterator over the values.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert("a", 1, &guard);
    /// map.insert("b", 2, &guard);
    /// assert_eq!(map.values(&guard).sum::<i32>(), 3);
    /// ```
    pub fn values<'g>(&'g self, guard: &'g Guard) -> Values<'g, K, V> {
        Values::new(self.iter(guard))
    }
}

/// The entry `get_or_try_insert_with_ref` inserts on a miss: `to_owned(key)` and `make()`, the
/// key first, so that if `make` panics or fails the key is dropped (before the error is
/// returned, as in `try_insert`). Out of line: inlined, the check below kept `key` alive across
/// the calls, and the hits paid for it (callgrind `hotpath cache-ref`, 2 instructions a call).
#[inline(never)]
fn made_for_ref<K, V, Q, O, F, E>(
    hash: u64,
    key: &Q,
    to_owned: O,
    make: F,
) -> Result<Box<Entry<K, V>>, E>
where
    Q: Equivalent<K> + ?Sized,
    O: FnOnce(&Q) -> K,
    F: FnOnce() -> Result<V, E>,
{
    let owned = to_owned(key);
    // The entry goes in under `key`'s hash (and, for an integer key, into a slot `key` may have
    // vacated, whose key cell it keeps): a different key would be stored where its lookups never
    // look. hashbrown's `get_or_insert_with` panics here too. Unwinding drops `owned`.
    assert!(
        key.equivalent(&owned),
        "lockfree-map: `to_owned` made a key that is not equal to the key looked up"
    );
    match make() {
        Ok(value) => Ok(Entry::boxed(hash, owned, value)),
        Err(error) => {
            drop(owned);
            Err(error)
        }
    }
}

impl<K, V, S> fmt::Debug for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static + fmt::Debug,
    V: Send + 'static + fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guard = self.guard();
        f.debug_map().entries(self.iter(&guard)).finish()
    }
}

impl<K, V, S> Clone for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static + Clone,
    V: Send + 'static + Clone,
    S: BuildHasher + Clone,
{
    fn clone(&self) -> Self {
        let guard = self.guard();
        // The copy shares the collector, so the source's guard serves both. It keeps the
        // source's floor, and starts at least that large, as the source is (its length is not
        // made a floor).
        let floor = self.raw.floor();
        let copy = HashMap::presized(
            self.len().max(floor),
            floor,
            self.hasher.clone(),
            self.collector().clone(),
        );
        for (k, v) in self.iter(&guard) {
            copy.insert(k.clone(), v.clone(), &guard);
        }
        copy
    }
}

impl<K, V, S> PartialEq for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static + PartialEq,
    S: BuildHasher,
{
    /// Equal if both hold the same keys with equal values. Under concurrent writes the answer
    /// reflects no single moment.
    fn eq(&self, other: &Self) -> bool {
        // One guard per map: the two may use different collectors.
        let (ours, theirs) = (self.guard(), other.guard());
        self.len() == other.len()
            && self
                .iter(&ours)
                .all(|(k, v)| other.get(k, &theirs) == Some(v))
            && other
                .iter(&theirs)
                .all(|(k, _)| self.contains_key(k, &ours))
    }
}

impl<K, V, S> Eq for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static + Eq,
    S: BuildHasher,
{
}

impl<K, V, S> FromIterator<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = HashMap::presized(iter.size_hint().0, 0, S::default(), Collector::global());
        map.extend(iter);
        map
    }
}

/// Builds a map from an array of pairs, as `std`'s `HashMap` does; a later pair replaces an
/// earlier one with an equal key.
///
/// ```
/// let map = lockfree_map::HashMap::from([(1, "one"), (2, "two"), (1, "uno")]);
/// let guard = map.guard();
/// assert_eq!(map.len(), 2);
/// assert_eq!(map.get(&1, &guard), Some(&"uno"));
/// ```
impl<K, V, const N: usize> From<[(K, V); N]> for HashMap<K, V, RandomState>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
{
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K, V, S> Extend<(K, V)> for &HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mut guard = self.guard();
        for (i, (k, v)) in iter.into_iter().enumerate() {
            if i % BULK_REPIN == BULK_REPIN - 1 {
                guard.repin();
            }
            self.insert(k, v, &guard);
        }
    }
}

/// Pairs a bulk insert (`Extend`, and so `FromIterator` and `From`; deserialising; rayon's
/// `par_extend`; the set's of each since stop 49) inserts under one pin before it pins again.
/// Pinned once for the whole input, it kept every value that a later pair with an equal key
/// replaced alive until the end, where `std` drops each at once: a million pairs over ten keys
/// with 4 KiB values held 4 GB (found by a review at stop 48). Pinning costs about as much as an
/// insert; once in 64 pairs it is lost in the inserts.
pub(crate) const BULK_REPIN: usize = 64;

impl<K, V, S> Extend<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

impl<'a, K, V, S> Extend<(&'a K, &'a V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Copy + 'static,
    V: Send + Copy + 'static,
    S: BuildHasher,
{
    /// Copies every pair in, as `std`'s `HashMap` does for `Copy` keys and values: a map
    /// extends from another's iterator, or from a `std` map by reference.
    ///
    /// ```
    /// let from: std::collections::HashMap<u32, char> = [(1, 'a'), (2, 'b')].into();
    /// let mut map: lockfree_map::HashMap<u32, char> = lockfree_map::HashMap::new();
    /// map.extend(&from);
    /// let copy: lockfree_map::HashMap<u32, char> = lockfree_map::HashMap::new();
    /// copy.pin().insert(3, 'c');
    /// map.extend(copy.pin().iter());
    /// assert_eq!(map.len(), 3);
    /// assert_eq!(map.pin().get(&2), Some(&'b'));
    /// ```
    fn extend<I: IntoIterator<Item = (&'a K, &'a V)>>(&mut self, iter: I) {
        (&*self).extend(iter.into_iter().map(|(&k, &v)| (k, v)));
    }
}

impl<'a, K, V, S> IntoIterator for &'a mut HashMap<K, V, S> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = IterMut<'a, K, V>;

    /// [`HashMap::iter_mut`]: `for (k, v) in &mut map`.
    ///
    /// ```
    /// let mut map: lockfree_map::HashMap<u32, u32> = (0..3).map(|i| (i, 0)).collect();
    /// for (k, v) in &mut map {
    ///     *v = k + 1;
    /// }
    /// assert_eq!(map.pin().values().sum::<u32>(), 6);
    /// ```
    fn into_iter(self) -> IterMut<'a, K, V> {
        self.iter_mut()
    }
}

impl<K, V, S> IntoIterator for HashMap<K, V, S> {
    type Item = (K, V);
    type IntoIter = IntoIter<K, V>;

    /// Takes the entries out of the map one at a time, in no particular order. The entries not
    /// taken are dropped with the iterator.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u32, String> = (0..3).map(|i| (i, i.to_string())).collect();
    /// let mut owned: Vec<(u32, String)> = map.into_iter().collect();
    /// owned.sort();
    /// assert_eq!(owned, [(0, "0".into()), (1, "1".into()), (2, "2".into())]);
    /// ```
    fn into_iter(self) -> IntoIter<K, V> {
        // The hasher first, as in `into_raw`: its panicking `Drop` would otherwise leak the
        // iterator, and with it every entry.
        let HashMap { raw, hasher } = self;
        drop(hasher);
        IntoIter::new(RawIntoIter::new(raw))
    }
}
