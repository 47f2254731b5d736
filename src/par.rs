//! rayon support (feature `rayon`): parallel iteration, `FromParallelIterator` and
//! `ParallelExtend`.
//!
//! A parallel iteration records the full slots once, like a sequential one, then rayon splits the
//! table's groups among its workers; each worker walks its groups exactly as [`Iter`](crate::Iter)
//! does, so the guarantee is the same: every key present for the whole iteration is yielded
//! exactly once, none twice. Workers read under the caller's guard: an epoch guard keeps
//! everything it protects alive for every thread, and rayon returns only when they are done.
//!
//! Through `&mut` ([`HashMap::par_iter_mut`]) the map first finishes any pending resize, and
//! rayon splits the root's groups among its workers, each lending out the values of its own
//! groups as `&mut`: no two workers reach one entry, and no other thread reaches the map. The
//! owned `into_par_iter` splits them the same way, each worker moving its entries out, and the
//! entries no worker took are dropped with the map when rayon returns.
//!
//! Filling a map from rayon pins once per rayon job (`for_each_init`), not once per entry.
//!
//! A [`HashSet`] is a map with `()` values: its parallel iterator is the map's over keys, and
//! filling it is the map's `par_extend` with `try_insert`.

use std::hash::{BuildHasher, Hash};

use rayon::iter::plumbing::{bridge_unindexed, Folder, UnindexedConsumer, UnindexedProducer};
use rayon::iter::{FromParallelIterator, IntoParallelIterator, ParallelExtend, ParallelIterator};

use crate::map::{HashMap, BULK_REPIN};
use crate::map_ref::MapRef;
use crate::raw::{Draining, Entry, GroupsMut, GroupsOwned, RawMap, Snapshot};
use crate::reclaim::Guard;
use crate::set::{HashSet, SetRef};

/// A parallel iterator over `(&K, &V)`. Made by [`HashMap::par_iter`] or [`MapRef::par_iter`].
pub struct ParIter<'g, K, V> {
    snapshot: Snapshot<'g, K, V>,
}

/// A parallel iterator over the keys. Made by [`HashMap::par_keys`].
pub struct ParKeys<'g, K, V> {
    inner: ParIter<'g, K, V>,
}

/// A parallel iterator over the values. Made by [`HashMap::par_values`].
pub struct ParValues<'g, K, V> {
    inner: ParIter<'g, K, V>,
}

impl<K, V> std::fmt::Debug for ParIter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParIter").finish_non_exhaustive()
    }
}

impl<K, V> std::fmt::Debug for ParKeys<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParKeys").finish_non_exhaustive()
    }
}

impl<K, V> std::fmt::Debug for ParValues<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParValues").finish_non_exhaustive()
    }
}

/// One worker's share: a range of the snapshot's groups.
struct Groups<'s, 'g, K, V> {
    snapshot: &'s Snapshot<'g, K, V>,
    start: usize,
    end: usize,
}

impl<'s, 'g, K: Sync, V: Sync> UnindexedProducer for Groups<'s, 'g, K, V> {
    type Item = (&'g K, &'g V);

    fn split(self) -> (Self, Option<Self>) {
        if self.end - self.start < 2 {
            return (self, None);
        }
        let mid = self.start + (self.end - self.start) / 2;
        let right = Groups {
            snapshot: self.snapshot,
            start: mid,
            end: self.end,
        };
        (Groups { end: mid, ..self }, Some(right))
    }

    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        let entries = self.snapshot.entries(self.start..self.end);
        folder.consume_iter(entries.map(|e: &'g Entry<K, V>| (&e.key, &e.value)))
    }
}

impl<'g, K: Sync + 'g, V: Sync + 'g> ParallelIterator for ParIter<'g, K, V> {
    type Item = (&'g K, &'g V);

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let producer = Groups {
            snapshot: &self.snapshot,
            start: 0,
            end: self.snapshot.groups(),
        };
        bridge_unindexed(producer, consumer)
    }
}

impl<'g, K: Sync + 'g, V: Sync + 'g> ParallelIterator for ParKeys<'g, K, V> {
    type Item = &'g K;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        self.inner.map(|(k, _)| k).drive_unindexed(consumer)
    }
}

impl<'g, K: Sync + 'g, V: Sync + 'g> ParallelIterator for ParValues<'g, K, V> {
    type Item = &'g V;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        self.inner.map(|(_, v)| v).drive_unindexed(consumer)
    }
}

/// A parallel iterator over `(&K, &mut V)`. Made by [`HashMap::par_iter_mut`].
pub struct ParIterMut<'a, K, V> {
    groups: GroupsMut<'a, K, V>,
}

/// A parallel iterator over mutable references to the values. Made by
/// [`HashMap::par_values_mut`].
pub struct ParValuesMut<'a, K, V> {
    inner: ParIterMut<'a, K, V>,
}

impl<K, V> std::fmt::Debug for ParIterMut<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParIterMut").finish_non_exhaustive()
    }
}

impl<K, V> std::fmt::Debug for ParValuesMut<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParValuesMut").finish_non_exhaustive()
    }
}

impl<'a, K: Sync + 'a, V: Send + 'a> UnindexedProducer for GroupsMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn split(mut self) -> (Self, Option<Self>) {
        let upper = self.split_off_upper();
        (self, upper)
    }

    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        folder.consume_iter(self.walk().map(|e| (&e.key, &mut e.value)))
    }
}

impl<'a, K: Sync + 'a, V: Send + 'a> ParallelIterator for ParIterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        bridge_unindexed(self.groups, consumer)
    }
}

impl<'a, K: Sync + 'a, V: Send + 'a> ParallelIterator for ParValuesMut<'a, K, V> {
    type Item = &'a mut V;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        self.inner.map(|(_, v)| v).drive_unindexed(consumer)
    }
}

impl<K, V, S> HashMap<K, V, S>
where
    K: Sync,
    V: Send,
{
    /// A parallel iterator over `(&K, &mut V)`, the parallel [`iter_mut`](Self::iter_mut):
    /// `&mut self` keeps every other thread out, and each of rayon's workers lends out the
    /// values of its own share of the table. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let mut map: lockfree_map::HashMap<u64, u64> = (0..1000).map(|k| (k, k)).collect();
    /// map.par_iter_mut().for_each(|(k, v)| *v += k);
    /// assert_eq!(map.pin().get(&999), Some(&1998));
    /// ```
    pub fn par_iter_mut(&mut self) -> ParIterMut<'_, K, V> {
        ParIterMut {
            groups: self.raw_mut().groups_mut(),
        }
    }

    /// A parallel iterator over mutable references to the values. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let mut map: lockfree_map::HashMap<u64, String> =
    ///     (0..100).map(|k| (k, k.to_string())).collect();
    /// map.par_values_mut().for_each(|v| v.push('!'));
    /// assert_eq!(map.pin().get(&42).map(String::as_str), Some("42!"));
    /// ```
    pub fn par_values_mut(&mut self) -> ParValuesMut<'_, K, V> {
        ParValuesMut {
            inner: self.par_iter_mut(),
        }
    }
}

impl<'a, K: Sync + 'a, V: Send + 'a, S> IntoParallelIterator for &'a mut HashMap<K, V, S> {
    type Iter = ParIterMut<'a, K, V>;
    type Item = (&'a K, &'a mut V);

    /// [`HashMap::par_iter_mut`].
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let mut map: lockfree_map::HashMap<u64, u64> = (0..10).map(|k| (k, 0)).collect();
    /// (&mut map).into_par_iter().for_each(|(k, v)| *v = k * 2);
    /// assert_eq!(map.pin().values().sum::<u64>(), 90);
    /// ```
    fn into_par_iter(self) -> ParIterMut<'a, K, V> {
        self.par_iter_mut()
    }
}

/// A parallel iterator that takes the entries out of a map it owns, as `(K, V)`. Made by
/// `into_par_iter` on a [`HashMap`] (`IntoParallelIterator`).
///
/// Any pending resize is finished first; then rayon splits the table's groups among its
/// workers, and each moves the keys and values out of its own groups. Entries the consumer
/// does not take (it stops early, or panics) are dropped with the map when the iteration ends.
pub struct IntoParIter<K, V> {
    raw: RawMap<K, V>,
}

// SAFETY: the iterator owns the map's entries and moves them to rayon's workers: moving it to
// another thread moves keys and values (hence `Send` for both), and nothing is shared.
unsafe impl<K: Send, V: Send> Send for IntoParIter<K, V> {}

impl<K, V> std::fmt::Debug for IntoParIter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoParIter").finish_non_exhaustive()
    }
}

impl<'a, K: Send + 'a, V: Send + 'a> UnindexedProducer for GroupsOwned<'a, K, V> {
    type Item = (K, V);

    fn split(mut self) -> (Self, Option<Self>) {
        let upper = self.split_off_upper();
        (self, upper)
    }

    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        folder.consume_iter(self.take_all())
    }
}

impl<K: Send, V: Send> ParallelIterator for IntoParIter<K, V> {
    type Item = (K, V);

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        // Dropped after the workers return (or as a panic unwinds through here): the entries not
        // taken are dropped with the map. Dropped before the result is returned, not as the
        // function ends: a key's or value's `Drop` that panics there would leak a result already
        // built (rust-lang/rust#47949; found by a review at stop 48).
        let mut draining = Draining::new(self.raw);
        let result = bridge_unindexed(draining.groups(), consumer);
        drop(draining);
        result
    }
}

impl<K: Send, V: Send, S> IntoParallelIterator for HashMap<K, V, S> {
    type Iter = IntoParIter<K, V>;
    type Item = (K, V);

    /// Takes the entries out of the map from rayon's workers, in no particular order, as
    /// `into_iter` does on one thread (and as dashmap's and `std`'s maps do with rayon).
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, String> = (0..1000).map(|k| (k, k.to_string())).collect();
    /// let mut owned: Vec<(u64, String)> = map.into_par_iter().collect();
    /// owned.par_sort_unstable();
    /// assert_eq!(owned.len(), 1000);
    /// assert_eq!(owned[42], (42, "42".to_string()));
    /// ```
    fn into_par_iter(self) -> IntoParIter<K, V> {
        IntoParIter {
            raw: self.into_raw(),
        }
    }
}

impl<K, V, S> HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// A parallel iterator over `(&K, &V)`, with [`iter`](Self::iter)'s guarantee under
    /// concurrent writes. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, u64> = (0..1000).map(|k| (k, k * 2)).collect();
    /// let guard = map.guard();
    /// let sum: u64 = map.par_iter(&guard).map(|(_, v)| *v).sum();
    /// assert_eq!(sum, 999 * 1000);
    /// ```
    pub fn par_iter<'g>(&'g self, guard: &'g Guard) -> ParIter<'g, K, V> {
        ParIter {
            snapshot: self.raw().snapshot(guard),
        }
    }

    /// A parallel iterator over the keys. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, ()> = (0..100).map(|k| (k, ())).collect();
    /// let guard = map.guard();
    /// assert_eq!(map.par_keys(&guard).filter(|k| **k % 2 == 0).count(), 50);
    /// ```
    pub fn par_keys<'g>(&'g self, guard: &'g Guard) -> ParKeys<'g, K, V> {
        ParKeys {
            inner: self.par_iter(guard),
        }
    }

    /// A parallel iterator over the values. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<&str, u32> = [("a", 1), ("b", 2)].into_iter().collect();
    /// let guard = map.guard();
    /// assert_eq!(map.par_values(&guard).max(), Some(&2));
    /// ```
    pub fn par_values<'g>(&'g self, guard: &'g Guard) -> ParValues<'g, K, V> {
        ParValues {
            inner: self.par_iter(guard),
        }
    }
}

impl<'m, K, V, S> MapRef<'m, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// See [`HashMap::par_iter`]. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, u64> = (0..10).map(|k| (k, k)).collect();
    /// let m = map.pin();
    /// assert_eq!(m.par_iter().count(), 10);
    /// ```
    pub fn par_iter(&self) -> ParIter<'_, K, V> {
        self.map().par_iter(self.guard())
    }

    /// See [`HashMap::par_keys`]. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, u64> = (0..10).map(|k| (k, k)).collect();
    /// assert_eq!(map.pin().par_keys().copied().sum::<u64>(), 45);
    /// ```
    pub fn par_keys(&self) -> ParKeys<'_, K, V> {
        self.map().par_keys(self.guard())
    }

    /// See [`HashMap::par_values`]. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, u64> = (0..10).map(|k| (k, k + 1)).collect();
    /// assert_eq!(map.pin().par_values().copied().sum::<u64>(), 55);
    /// ```
    pub fn par_values(&self) -> ParValues<'_, K, V> {
        self.map().par_values(self.guard())
    }
}

impl<K, V, S> FromParallelIterator<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Default + Sync,
{
    /// Builds a map from a parallel iterator; for equal keys, which value wins is unspecified
    /// (the items arrive in no particular order).
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let squares: lockfree_map::HashMap<u64, u64> =
    ///     (0..10_000u64).into_par_iter().map(|k| (k, k * k)).collect();
    /// assert_eq!(squares.len(), 10_000);
    /// assert_eq!(squares.get_cloned(&300), Some(90_000));
    /// ```
    fn from_par_iter<I>(items: I) -> Self
    where
        I: IntoParallelIterator<Item = (K, V)>,
    {
        let map = HashMap::default();
        (&map).par_extend(items);
        map
    }
}

impl<K, V, S> ParallelExtend<(K, V)> for &HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Sync,
{
    /// Inserts every item, from rayon's workers, concurrently with any other writer.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::new();
    /// let mut shared = &map;
    /// shared.par_extend((0..100u64).into_par_iter().map(|k| (k, k)));
    /// assert_eq!(map.len(), 100);
    /// ```
    fn par_extend<I>(&mut self, items: I)
    where
        I: IntoParallelIterator<Item = (K, V)>,
    {
        let map: &HashMap<K, V, S> = self;
        items.into_par_iter().for_each_init(
            || (map.guard(), 0),
            |(guard, pairs), (k, v)| {
                // A duplicate key's replaced value is freed as the input goes on (`BULK_REPIN`).
                *pairs += 1;
                if *pairs % BULK_REPIN == 0 {
                    guard.repin();
                }
                map.insert(k, v, guard);
            },
        );
    }
}

impl<K, V, S> ParallelExtend<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Sync,
{
    /// As for `&HashMap`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let mut map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::new();
    /// map.par_extend((0..100u64).into_par_iter().map(|k| (k, k)));
    /// assert_eq!(map.len(), 100);
    /// ```
    fn par_extend<I>(&mut self, items: I)
    where
        I: IntoParallelIterator<Item = (K, V)>,
    {
        (&*self).par_extend(items);
    }
}

/// A parallel iterator that takes the values out of a set it owns. Made by `into_par_iter` on
/// a [`HashSet`] (`IntoParallelIterator`); exported as `set::IntoParIter`. See
/// [`IntoParIter`] for how the work is split, and what becomes of the values not taken.
pub struct SetIntoParIter<T> {
    inner: IntoParIter<T, ()>,
}

impl<T> std::fmt::Debug for SetIntoParIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetIntoParIter").finish_non_exhaustive()
    }
}

impl<T: Send> ParallelIterator for SetIntoParIter<T> {
    type Item = T;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        self.inner
            .map(|(value, ())| value)
            .drive_unindexed(consumer)
    }
}

impl<T: Send, S> IntoParallelIterator for HashSet<T, S> {
    type Iter = SetIntoParIter<T>;
    type Item = T;

    /// Takes the values out of the set from rayon's workers, in no particular order.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let set: lockfree_map::HashSet<u64> = (0..1000).collect();
    /// let total: u64 = set.into_par_iter().sum();
    /// assert_eq!(total, 999 * 1000 / 2);
    /// ```
    fn into_par_iter(self) -> SetIntoParIter<T> {
        SetIntoParIter {
            inner: self.into_map().into_par_iter(),
        }
    }
}

/// A parallel iterator over a set's values. Made by [`HashSet::par_iter`] or
/// [`SetRef::par_iter`]; exported as `set::ParIter`.
pub struct SetParIter<'g, T> {
    inner: ParKeys<'g, T, ()>,
}

impl<T> std::fmt::Debug for SetParIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParIter").finish_non_exhaustive()
    }
}

impl<'g, T: Sync + 'g> ParallelIterator for SetParIter<'g, T> {
    type Item = &'g T;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        self.inner.drive_unindexed(consumer)
    }
}

impl<T, S> HashSet<T, S>
where
    T: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher,
{
    /// A parallel iterator over the values, with [`iter`](Self::iter)'s guarantee under
    /// concurrent writes. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let set: lockfree_map::HashSet<u64> = (0..1000).collect();
    /// let guard = set.guard();
    /// assert_eq!(set.par_iter(&guard).copied().sum::<u64>(), 999 * 1000 / 2);
    /// ```
    pub fn par_iter<'g>(&'g self, guard: &'g Guard) -> SetParIter<'g, T> {
        SetParIter {
            inner: self.map().par_keys(guard),
        }
    }
}

impl<'s, T, S> SetRef<'s, T, S>
where
    T: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher,
{
    /// See [`HashSet::par_iter`]. Feature `rayon`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let set: lockfree_map::HashSet<u64> = (0..10).collect();
    /// assert_eq!(set.pin().par_iter().filter(|v| **v % 2 == 0).count(), 5);
    /// ```
    pub fn par_iter(&self) -> SetParIter<'_, T> {
        self.set().par_iter(self.guard())
    }
}

impl<T, S> FromParallelIterator<T> for HashSet<T, S>
where
    T: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher + Default + Sync,
{
    /// Builds a set from a parallel iterator; of equal values, which one is kept is unspecified
    /// (the items arrive in no particular order).
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let residues: lockfree_map::HashSet<u64> =
    ///     (0..10_000u64).into_par_iter().map(|k| k % 7).collect();
    /// assert_eq!(residues.len(), 7);
    /// ```
    fn from_par_iter<I>(items: I) -> Self
    where
        I: IntoParallelIterator<Item = T>,
    {
        let set = HashSet::default();
        (&set).par_extend(items);
        set
    }
}

impl<T, S> ParallelExtend<T> for &HashSet<T, S>
where
    T: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher + Sync,
{
    /// Inserts every item, from rayon's workers, concurrently with any other writer.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let set: lockfree_map::HashSet<u64> = lockfree_map::HashSet::new();
    /// let mut shared = &set;
    /// shared.par_extend((0..100u64).into_par_iter());
    /// assert_eq!(set.len(), 100);
    /// ```
    fn par_extend<I>(&mut self, items: I)
    where
        I: IntoParallelIterator<Item = T>,
    {
        let set: &HashSet<T, S> = self;
        items.into_par_iter().for_each_init(
            || (set.pin(), 0),
            |(s, values), value| {
                // Pinned anew as the map's `par_extend` is (`BULK_REPIN`).
                *values += 1;
                if *values % BULK_REPIN == 0 {
                    s.repin();
                }
                s.insert(value);
            },
        );
    }
}

impl<T, S> ParallelExtend<T> for HashSet<T, S>
where
    T: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher + Sync,
{
    /// As for `&HashSet`.
    ///
    /// ```
    /// use rayon::prelude::*;
    ///
    /// let mut set: lockfree_map::HashSet<u64> = lockfree_map::HashSet::new();
    /// set.par_extend((0..100u64).into_par_iter());
    /// assert_eq!(set.len(), 100);
    /// ```
    fn par_extend<I>(&mut self, items: I)
    where
        I: IntoParallelIterator<Item = T>,
    {
        (&*self).par_extend(items);
    }
}

#[cfg(test)]
mod tests {
    use rayon::iter::plumbing::UnindexedProducer;

    use super::Groups;

    /// A worker's share splits into halves of its range of groups, down to single groups: the
    /// halves are disjoint and cover the range, so each group is visited once, and the splits
    /// are balanced (`ceil(log2(groups))` deep), so rayon's workers get even shares. (A split
    /// that never split, or split off one group at a time, still visited every entry, and every
    /// other test passed: the mutation run of stop 46.)
    #[test]
    fn a_share_splits_into_balanced_halves_down_to_single_groups() {
        let map: crate::HashMap<u64, u64> = (0..2_000).map(|k| (k, k)).collect();
        let guard = map.guard();
        let snapshot = map.raw().snapshot(&guard);
        let groups = snapshot.groups();
        assert!(groups >= 64);
        let most_depth = usize::BITS - (groups - 1).leading_zeros();
        let whole = Groups {
            snapshot: &snapshot,
            start: 0,
            end: groups,
        };
        let mut shares = vec![(whole, 0)];
        let mut leaves = Vec::new();
        while let Some((share, depth)) = shares.pop() {
            assert!(
                depth <= most_depth,
                "split {depth} deep, of {groups} groups"
            );
            let range = share.start..share.end;
            match share.split() {
                (left, Some(right)) => {
                    assert_eq!(left.start, range.start);
                    assert_eq!(right.end, range.end);
                    assert_eq!(left.end, right.start, "the halves meet");
                    assert!(left.start < left.end && right.start < right.end);
                    shares.push((left, depth + 1));
                    shares.push((right, depth + 1));
                }
                (unsplit, None) => {
                    assert_eq!(unsplit.start..unsplit.end, range);
                    leaves.push(range);
                }
            }
        }
        assert!(
            leaves.iter().all(|r| r.len() == 1),
            "split down to one group"
        );
        assert_eq!(leaves.len(), groups);
    }
}
