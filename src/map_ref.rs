//! The pinned handle: one guard, held for many operations, and guard-free methods.
//!
//! Pinning costs a few nanoseconds (a thread-local lookup and a fence); a [`MapRef`] pays it once
//! for any number of calls. References it returns live as long as the handle. Holding one for a
//! long time delays the freeing of removed entries, in every map: drop it, or call
//! [`MapRef::repin`], between batches.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

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
    pub fn map(&self) -> &'m HashMap<K, V, S> {
        self.map
    }

    /// The guard this handle holds.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Lets reclamation advance past this handle. Takes `&mut self`, so no reference obtained
    /// through the handle can be alive across it.
    pub fn repin(&mut self) {
        self.guard.repin();
    }

    /// See [`HashMap::len`].
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// See [`HashMap::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// See [`HashMap::capacity`].
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// See [`HashMap::get`].
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key, &self.guard)
    }

    /// See [`HashMap::get_key_value`].
    #[inline]
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_key_value(key, &self.guard)
    }

    /// See [`HashMap::contains_key`].
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key, &self.guard)
    }

    /// See [`HashMap::insert`].
    pub fn insert(&self, key: K, value: V) -> Option<&V> {
        self.map.insert(key, value, &self.guard)
    }

    /// See [`HashMap::try_insert`].
    pub fn try_insert(&self, key: K, value: V) -> Result<&V, OccupiedError<'_, V>> {
        self.map.try_insert(key, value, &self.guard)
    }

    /// See [`HashMap::get_or_insert_with`].
    pub fn get_or_insert_with<F: FnOnce() -> V>(&self, key: K, make: F) -> &V {
        self.map.get_or_insert_with(key, make, &self.guard)
    }

    /// See [`HashMap::get_or_insert`].
    pub fn get_or_insert(&self, key: K, value: V) -> &V {
        self.map.get_or_insert(key, value, &self.guard)
    }

    /// See [`HashMap::update`].
    pub fn update<F: FnMut(&V) -> V>(&self, key: K, update: F) -> Option<&V> {
        self.map.update(key, update, &self.guard)
    }

    /// See [`HashMap::compute`].
    pub fn compute<'a, F, T>(&'a self, key: K, decide: F) -> Compute<'a, K, V, T>
    where
        F: FnMut(Option<(&'a K, &'a V)>) -> Operation<V, T>,
    {
        self.map.compute(key, decide, &self.guard)
    }

    /// See [`HashMap::remove`].
    pub fn remove<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key, &self.guard)
    }

    /// See [`HashMap::remove_entry`].
    pub fn remove_entry<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove_entry(key, &self.guard)
    }

    /// See [`HashMap::remove_if`].
    pub fn remove_if<Q, F>(&self, key: &Q, remove: F) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnMut(&K, &V) -> bool,
    {
        self.map.remove_if(key, remove, &self.guard)
    }

    /// See [`HashMap::retain`].
    pub fn retain<F: FnMut(&K, &V) -> bool>(&self, keep: F) {
        self.map.retain(keep, &self.guard)
    }

    /// See [`HashMap::clear`].
    pub fn clear(&self) {
        self.map.clear(&self.guard)
    }

    /// See [`HashMap::reserve`].
    pub fn reserve(&self, additional: usize) {
        self.map.reserve(additional, &self.guard)
    }

    /// See [`HashMap::iter`].
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.map.iter(&self.guard)
    }

    /// See [`HashMap::keys`].
    pub fn keys(&self) -> Keys<'_, K, V> {
        self.map.keys(&self.guard)
    }

    /// See [`HashMap::values`].
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
