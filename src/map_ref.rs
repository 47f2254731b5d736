//! The pinned handle: one guard, held for many operations, and guard-free methods.
//!
//! Pinning costs a few nanoseconds (a thread-local lookup and a fence); a [`MapRef`] pays it once
//! for any number of calls. References it returns live as long as the handle. Holding one for a
//! long time delays the freeing of removed entries, in every map: drop it, or call
//! [`MapRef::repin`], between batches.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::equivalent::Equivalent;
use crate::iter::{Iter, Keys, Values};
use crate::map::{Compute, HashMap, OccupiedError, Operation};
use crate::reclaim::Guard;

/// A map borrowed together with a pinned guard. Made by [`HashMap::pin`].
pub struct MapRef<'m, K, V, S> {
    map: &'m HashMap<K, V, S>,
    guard: Guard,
}

impl<'m, K, V, S> MapRef<'m, K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    pub(crate) fn new(map: &'m HashMap<K, V, S>, guard: Guard) -> Self {
        MapRef { map, guard }
    }

    /// The map this handle borrows.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// assert!(std::ptr::eq(m.map(), &map));
    /// assert_eq!(m.map().len(), 1);
    /// ```
    pub fn map(&self) -> &'m HashMap<K, V, S> {
        self.map
    }

    /// The guard this handle holds.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// map.insert(1, "one", m.guard()); // the explicit-guard API, with the handle's guard
    /// assert_eq!(m.get(&1), Some(&"one"));
    /// ```
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Lets reclamation advance past this handle. Takes `&mut self`, so no reference obtained
    /// through the handle can be alive across it.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let mut m = map.pin();
    /// for batch in 0..4 {
    ///     for i in 0..100 {
    ///         m.insert(batch * 100 + i, i);
    ///     }
    ///     m.repin(); // between batches: let removed entries be freed
    /// }
    /// assert_eq!(m.len(), 400);
    /// ```
    pub fn repin(&mut self) {
        self.guard.repin();
    }

    /// See [`HashMap::len`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("a", 1);
    /// m.insert("b", 2);
    /// assert_eq!(m.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// See [`HashMap::is_empty`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert!(m.is_empty());
    /// m.insert("a", 1);
    /// assert!(!m.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// See [`HashMap::capacity`].
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::with_capacity(100);
    /// let m = map.pin();
    /// assert!(m.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// See [`HashMap::get`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(String::from("apple"), 3);
    /// assert_eq!(m.get("apple"), Some(&3)); // a `String` key, looked up by `&str`
    /// assert_eq!(m.get("pear"), None);
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.get(key, &self.guard)
    }

    /// See [`HashMap::get_key_value`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(String::from("apple"), 3);
    /// let (key, value) = m.get_key_value("apple").unwrap();
    /// assert_eq!((key.as_str(), *value), ("apple", 3));
    /// assert_eq!(m.get_key_value("pear"), None);
    /// ```
    #[inline]
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.get_key_value(key, &self.guard)
    }

    /// See [`HashMap::contains_key`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// assert!(m.contains_key(&1));
    /// assert!(!m.contains_key(&2));
    /// ```
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.contains_key(key, &self.guard)
    }

    /// See [`HashMap::insert`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.insert("a", 1), None);
    /// assert_eq!(m.insert("a", 2), Some(&1)); // the replaced value
    /// assert_eq!(m.get("a"), Some(&2));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<&V> {
        self.map.insert(key, value, &self.guard)
    }

    /// See [`HashMap::try_insert`].
    ///
    /// ```
    /// use lockfree_map::{HashMap, OccupiedError};
    ///
    /// let map = HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.try_insert("a", 1), Ok(&1));
    /// let err = m.try_insert("a", 2).unwrap_err();
    /// assert_eq!(err, OccupiedError { current: &1, not_inserted: 2 });
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<&V, OccupiedError<'_, V>> {
        self.map.try_insert(key, value, &self.guard)
    }

    /// See [`HashMap::get_or_insert_with`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// let mut runs = 0;
    /// assert_eq!(m.get_or_insert_with("a", || { runs += 1; 1 }), &1);
    /// assert_eq!(m.get_or_insert_with("a", || { runs += 1; 2 }), &1);
    /// assert_eq!(runs, 1); // present the second time: `make` did not run
    /// ```
    pub fn get_or_insert_with<F: FnOnce() -> V>(&self, key: K, make: F) -> &V {
        self.map.get_or_insert_with(key, make, &self.guard)
    }

    /// See [`HashMap::get_or_try_insert_with`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.get_or_try_insert_with("n", || "7".parse::<u32>()), Ok(&7));
    /// assert!(m.get_or_try_insert_with("bad", || "x".parse::<u32>()).is_err());
    /// assert_eq!(m.len(), 1);
    /// ```
    pub fn get_or_try_insert_with<F, E>(&self, key: K, make: F) -> Result<&V, E>
    where
        F: FnOnce() -> Result<V, E>,
    {
        self.map.get_or_try_insert_with(key, make, &self.guard)
    }

    /// See [`HashMap::get_or_insert_with_ref`].
    ///
    /// ```
    /// let cache: lockfree_map::HashMap<String, usize> = lockfree_map::HashMap::new();
    /// let m = cache.pin();
    /// assert_eq!(m.get_or_insert_with_ref("apple", str::to_owned, || 5), &5); // made and inserted
    /// assert_eq!(m.get_or_insert_with_ref("apple", |_| unreachable!(), || 6), &5); // a hit
    /// ```
    pub fn get_or_insert_with_ref<Q, O, F>(&self, key: &Q, to_owned: O, make: F) -> &V
    where
        Q: Hash + Equivalent<K> + ?Sized,
        O: FnOnce(&Q) -> K,
        F: FnOnce() -> V,
    {
        self.map
            .get_or_insert_with_ref(key, to_owned, make, &self.guard)
    }

    /// See [`HashMap::get_or_try_insert_with_ref`].
    ///
    /// ```
    /// let cache: lockfree_map::HashMap<String, u32> = lockfree_map::HashMap::new();
    /// let c = cache.pin();
    /// assert_eq!(c.get_or_try_insert_with_ref("8", str::to_owned, || "8".parse()), Ok(&8));
    /// assert!(c.get_or_try_insert_with_ref("x", str::to_owned, || "x".parse::<u32>()).is_err());
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn get_or_try_insert_with_ref<Q, O, F, E>(
        &self,
        key: &Q,
        to_owned: O,
        make: F,
    ) -> Result<&V, E>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        O: FnOnce(&Q) -> K,
        F: FnOnce() -> Result<V, E>,
    {
        self.map
            .get_or_try_insert_with_ref(key, to_owned, make, &self.guard)
    }

    /// See [`HashMap::get_or_insert`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.get_or_insert("a", 1), &1); // absent: inserted
    /// assert_eq!(m.get_or_insert("a", 2), &1); // present: kept
    /// ```
    pub fn get_or_insert(&self, key: K, value: V) -> &V {
        self.map.get_or_insert(key, value, &self.guard)
    }

    /// See [`HashMap::update`].
    ///
    /// ```
    /// let map: lockfree_map::HashMap<String, u32> = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.update("hits", |n| n + 1), None); // absent: nothing inserted
    /// m.insert("hits".to_string(), 1);
    /// assert_eq!(m.update("hits", |n| n + 1), Some(&2));
    /// ```
    pub fn update<Q, F>(&self, key: &Q, update: F) -> Option<&V>
    where
        K: Clone,
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&V) -> V,
    {
        self.map.update(key, update, &self.guard)
    }

    /// See [`HashMap::compute`].
    ///
    /// ```
    /// use lockfree_map::{Compute, HashMap, Operation};
    ///
    /// let map: HashMap<&str, u32> = HashMap::new();
    /// let m = map.pin();
    /// m.insert("a", 1);
    /// let done = m.compute("a", |cur| match cur {
    ///     Some((_, n)) => Operation::Insert(n * 10),
    ///     None => Operation::Abort("absent"),
    /// });
    /// assert_eq!(done, Compute::Updated { old: (&"a", &1), new: (&"a", &10) });
    /// assert_eq!(m.compute("b", |_| Operation::Abort("absent")), Compute::Aborted("absent"));
    /// ```
    pub fn compute<'a, F, T>(&'a self, key: K, decide: F) -> Compute<'a, K, V, T>
    where
        F: FnMut(Option<(&'a K, &'a V)>) -> Operation<V, T>,
    {
        self.map.compute(key, decide, &self.guard)
    }

    /// See [`HashMap::update_or_insert_with`].
    ///
    /// ```
    /// let map: lockfree_map::HashMap<char, usize> = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// for c in "hello".chars() {
    ///     m.update_or_insert_with(c, |n| n + 1, || 1);
    /// }
    /// assert_eq!(m.get(&'l'), Some(&2));
    /// ```
    pub fn update_or_insert_with<F, G>(&self, key: K, update: F, make: G) -> &V
    where
        F: FnMut(&V) -> V,
        G: FnOnce() -> V,
    {
        self.map
            .update_or_insert_with(key, update, make, &self.guard)
    }

    /// See [`HashMap::update_or_insert`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.update_or_insert("hits", |n| n + 1, 1), &1);
    /// assert_eq!(m.update_or_insert("hits", |n| n + 1, 1), &2);
    /// ```
    pub fn update_or_insert<F>(&self, key: K, update: F, value: V) -> &V
    where
        F: FnMut(&V) -> V,
    {
        self.map.update_or_insert(key, update, value, &self.guard)
    }

    /// See [`HashMap::remove`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// assert_eq!(m.remove(&1), Some(&"one"));
    /// assert_eq!(m.remove(&1), None); // already gone
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.remove(key, &self.guard)
    }

    /// See [`HashMap::remove_entry`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(String::from("apple"), 3);
    /// let (key, value) = m.remove_entry("apple").unwrap();
    /// assert_eq!((key.as_str(), *value), ("apple", 3));
    /// assert!(m.is_empty());
    /// ```
    pub fn remove_entry<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.map.remove_entry(key, &self.guard)
    }

    /// See [`HashMap::replace_if`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("version", 1);
    /// assert_eq!(m.replace_if("version", |_, v| *v == 1, 2), Ok(&1));
    /// assert_eq!(m.replace_if("version", |_, v| *v == 1, 3), Err(3));
    /// assert_eq!(m.get("version"), Some(&2));
    /// ```
    pub fn replace_if<Q, F>(&self, key: &Q, replace: F, value: V) -> Result<&V, V>
    where
        K: Clone,
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        self.map.replace_if(key, replace, value, &self.guard)
    }

    /// See [`HashMap::remove_if`].
    ///
    /// ```
    /// let map: lockfree_map::HashMap<&str, u32> = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("odd", 1);
    /// m.insert("even", 2);
    /// assert_eq!(m.remove_if("odd", |_, v| v % 2 == 0), None); // kept
    /// assert_eq!(m.remove_if("even", |_, v| v % 2 == 0), Some((&"even", &2)));
    /// assert!(m.contains_key("odd") && !m.contains_key("even"));
    /// ```
    pub fn remove_if<Q, F>(&self, key: &Q, remove: F) -> Option<(&K, &V)>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        self.map.remove_if(key, remove, &self.guard)
    }

    /// See [`HashMap::retain`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// for i in 0..10u32 {
    ///     m.insert(i, i * i);
    /// }
    /// m.retain(|_, v| *v < 25); // keeps 0, 1, 4, 9, 16
    /// assert_eq!(m.len(), 5);
    /// ```
    pub fn retain<F: FnMut(&K, &V) -> bool>(&self, keep: F) {
        self.map.retain(keep, &self.guard)
    }

    /// See [`HashMap::clear`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// for i in 0..100 {
    ///     m.insert(i, i);
    /// }
    /// m.clear();
    /// assert_eq!(m.len(), 0);
    /// ```
    pub fn clear(&self) {
        self.map.clear(&self.guard)
    }

    /// See [`HashMap::reserve`].
    ///
    /// ```
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.reserve(1000);
    /// assert!(m.capacity() >= 1000);
    /// ```
    ///
    /// # Panics
    /// As [`HashMap::reserve`]: if the table would not fit in the address space
    /// (`lockfree-map: capacity overflow`), with the map left as it was.
    pub fn reserve(&self, additional: usize) {
        self.map.reserve(additional, &self.guard)
    }

    /// See [`HashMap::shrink_to_fit`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// m.reserve(1000);
    /// m.shrink_to_fit(); // the room `reserve` kept is given back
    /// assert!(m.capacity() < 1000);
    /// assert_eq!(m.get(&1), Some(&"one"));
    /// ```
    pub fn shrink_to_fit(&self) {
        self.map.shrink_to_fit(&self.guard)
    }

    /// See [`HashMap::iter`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("a", 1);
    /// m.insert("b", 2);
    /// let mut all: Vec<_> = m.iter().collect();
    /// all.sort();
    /// assert_eq!(all, [(&"a", &1), (&"b", &2)]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.map.iter(&self.guard)
    }

    /// See [`HashMap::keys`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("a", 1);
    /// m.insert("b", 2);
    /// let mut keys: Vec<_> = m.keys().copied().collect();
    /// keys.sort();
    /// assert_eq!(keys, ["a", "b"]);
    /// ```
    pub fn keys(&self) -> Keys<'_, K, V> {
        self.map.keys(&self.guard)
    }

    /// See [`HashMap::values`].
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let m = map.pin();
    /// m.insert("a", 1);
    /// m.insert("b", 2);
    /// assert_eq!(m.values().sum::<i32>(), 3);
    /// ```
    pub fn values(&self) -> Values<'_, K, V> {
        self.map.values(&self.guard)
    }
}

impl<'a, K, V, S> IntoIterator for &'a MapRef<'_, K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, V, S> fmt::Debug for MapRef<'_, K, V, S>
where
    K: Hash + Eq + Send + 'static + fmt::Debug,
    V: Send + 'static + fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
