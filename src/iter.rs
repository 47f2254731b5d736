//! Iterators over a map.
//!
//! Iteration never blocks writers and never waits for them. It first finishes any migration in
//! progress (helping, not waiting), so that every key present at that moment has exactly one slot
//! in the root table, and records which slots are full (one bit a slot). Then it visits those
//! slots, following a slot that has moved since to the key's slot in the newest table (each
//! migration records where every slot went).
//!
//! The guarantee, exactly ("`iter`" being the call that makes the iterator, which records the
//! table group by group):
//! - a key present from the call to `iter` until the iteration ends is yielded exactly once,
//!   with the value it had when its slot was visited;
//! - no key is yielded twice, even one removed and inserted again during the iteration;
//! - a key absent for the whole call to `iter` and inserted after it returned is not yielded;
//!   one inserted or removed while `iter` runs may be; one removed afterwards may be, and one
//!   removed and inserted again may be yielded once, with its old value or its new one (an
//!   integer key takes its own slot back, other keys take a new one);
//! - resizes during the iteration change none of the above.
//!
//! Starting an iteration finishes any migration in progress and costs one pass over the table's
//! tag words (and, in a table where integer keys were removed, over the full slots' words), and
//! one byte per group.

use std::iter::FusedIterator;

use crate::raw::{RawIntoIter, RawIter, RawIterMut};

/// An iterator over a map's entries, as `(&K, &V)`. Made by
/// [`HashMap::iter`](crate::HashMap::iter).
///
/// It never blocks writers. Under concurrent writes, exactly:
/// - a key present from the call to `iter` until the iteration ends is yielded exactly once,
///   with the value it had when its slot was visited;
/// - no key is yielded twice, even one removed and inserted again during the iteration;
/// - a key absent for the whole call to `iter` and inserted after it returned is not yielded;
///   one inserted or removed while `iter` runs (it records the table group by group) may be; one
///   removed afterwards may be, and one removed and inserted again may be yielded once, with its
///   old value or its new one;
/// - resizes during the iteration change none of the above.
///
/// ```
/// let map = lockfree_map::HashMap::new();
/// let m = map.pin();
/// m.insert(1, "a");
/// m.insert(2, "b");
/// let mut all: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
/// all.sort();
/// assert_eq!(all, [(1, "a"), (2, "b")]);
/// ```
pub struct Iter<'g, K, V> {
    raw: RawIter<'g, K, V>,
}

impl<'g, K, V> Iter<'g, K, V> {
    pub(crate) fn new(raw: RawIter<'g, K, V>) -> Self {
        Iter { raw }
    }
}

impl<'g, K, V> Iterator for Iter<'g, K, V> {
    type Item = (&'g K, &'g V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.raw.next().map(|e| (&e.key, &e.value))
    }

    // `for_each`, `sum`, `count` and the like go through `fold`: forwarded, they keep the raw
    // iterator's loop over whole groups.
    #[inline]
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        self.raw.fold(init, |acc, e| f(acc, (&e.key, &e.value)))
    }
}

impl<K, V> std::fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// An iterator over a map's keys. Made by [`HashMap::keys`](crate::HashMap::keys).
#[derive(Debug)]
pub struct Keys<'g, K, V> {
    inner: Iter<'g, K, V>,
}

impl<'g, K, V> Keys<'g, K, V> {
    pub(crate) fn new(inner: Iter<'g, K, V>) -> Self {
        Keys { inner }
    }
}

impl<'g, K, V> Iterator for Keys<'g, K, V> {
    type Item = &'g K;

    #[inline]
    fn next(&mut self) -> Option<&'g K> {
        self.inner.next().map(|(k, _)| k)
    }

    #[inline]
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        self.inner.fold(init, |acc, (k, _)| f(acc, k))
    }
}

/// An iterator over a map's values. Made by [`HashMap::values`](crate::HashMap::values).
#[derive(Debug)]
pub struct Values<'g, K, V> {
    inner: Iter<'g, K, V>,
}

impl<'g, K, V> Values<'g, K, V> {
    pub(crate) fn new(inner: Iter<'g, K, V>) -> Self {
        Values { inner }
    }
}

impl<'g, K, V> Iterator for Values<'g, K, V> {
    type Item = &'g V;

    #[inline]
    fn next(&mut self) -> Option<&'g V> {
        self.inner.next().map(|(_, v)| v)
    }

    #[inline]
    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        self.inner.fold(init, |acc, (_, v)| f(acc, v))
    }
}

/// An iterator over a map's entries through `&mut`, as `(&K, &mut V)`, in no particular order.
/// Made by [`HashMap::iter_mut`](crate::HashMap::iter_mut).
///
/// The map is borrowed mutably, so no other thread can reach it while the iterator lives: it
/// yields every entry exactly once, and knows how many remain.
///
/// ```
/// let mut map: lockfree_map::HashMap<u32, u32> = (0..4).map(|i| (i, i)).collect();
/// let mut it = map.iter_mut();
/// assert_eq!(it.len(), 4);
/// for (_, v) in &mut it {
///     *v *= 10;
/// }
/// assert_eq!(it.len(), 0);
/// assert_eq!(map.pin().get(&3), Some(&30));
/// ```
pub struct IterMut<'a, K, V> {
    raw: RawIterMut<'a, K, V>,
}

impl<'a, K, V> IterMut<'a, K, V> {
    pub(crate) fn new(raw: RawIterMut<'a, K, V>) -> Self {
        IterMut { raw }
    }
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.raw.next().map(|e| (&e.key, &mut e.value))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.raw.size_hint()
    }
}

impl<K, V> ExactSizeIterator for IterMut<'_, K, V> {}

impl<K, V> FusedIterator for IterMut<'_, K, V> {}

impl<K, V> std::fmt::Debug for IterMut<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IterMut")
            .field("remaining", &self.raw.remaining())
            .finish_non_exhaustive()
    }
}

// SAFETY: as `std`'s `IterMut`: the iterator hands out `&K` (hence `K: Sync` to move it) and
// `&mut V` (hence `V: Send`), and of the map itself it reads only slot words, atomics that any
// thread may load, while the map's `&mut` borrow keeps every other thread out.
unsafe impl<K: Sync, V: Send> Send for IterMut<'_, K, V> {}
// SAFETY: through `&IterMut` only the remaining count is reachable.
unsafe impl<K, V> Sync for IterMut<'_, K, V> {}

/// An iterator over a map's values through `&mut`, in no particular order. Made by
/// [`HashMap::values_mut`](crate::HashMap::values_mut).
///
/// ```
/// let mut map: lockfree_map::HashMap<&str, String> =
///     [("a", "x".to_string()), ("b", "y".to_string())].into_iter().collect();
/// map.values_mut().for_each(|v| v.push('!'));
/// assert_eq!(map.pin().get("b").map(String::as_str), Some("y!"));
/// ```
#[derive(Debug)]
pub struct ValuesMut<'a, K, V> {
    inner: IterMut<'a, K, V>,
}

impl<'a, K, V> ValuesMut<'a, K, V> {
    pub(crate) fn new(inner: IterMut<'a, K, V>) -> Self {
        ValuesMut { inner }
    }
}

impl<'a, K, V> Iterator for ValuesMut<'a, K, V> {
    type Item = &'a mut V;

    #[inline]
    fn next(&mut self) -> Option<&'a mut V> {
        self.inner.next().map(|(_, v)| v)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K, V> ExactSizeIterator for ValuesMut<'_, K, V> {}

impl<K, V> FusedIterator for ValuesMut<'_, K, V> {}

/// An owning iterator over a map's entries, as `(K, V)`, in no particular order. Made by the
/// map's [`IntoIterator`] implementation.
///
/// It takes the entries out of the table one at a time (no second copy of the map is built);
/// the entries not yet taken are dropped with it. From a map of more than about 65,000 entries
/// it keeps the emptied memory of the entries taken in a list (a word an entry, reserved at the
/// start; without it if the allocator refuses) and frees it in address order when the iteration
/// ends or the iterator is dropped, as the map's drop does (see [`HashMap`](crate::HashMap)).
///
/// ```
/// let map: lockfree_map::HashMap<u32, u32> = (0..100).map(|i| (i, i * 2)).collect();
/// let mut it = map.into_iter();
/// assert_eq!(it.len(), 100);
/// let (k, v) = it.next().unwrap();
/// assert_eq!(v, k * 2);
/// assert_eq!(it.len(), 99);
/// drop(it); // drops the other 99 entries
/// ```
pub struct IntoIter<K, V> {
    raw: RawIntoIter<K, V>,
}

impl<K, V> IntoIter<K, V> {
    pub(crate) fn new(raw: RawIntoIter<K, V>) -> Self {
        IntoIter { raw }
    }
}

impl<K, V> Iterator for IntoIter<K, V> {
    type Item = (K, V);

    #[inline]
    fn next(&mut self) -> Option<(K, V)> {
        self.raw.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.raw.size_hint()
    }
}

impl<K, V> ExactSizeIterator for IntoIter<K, V> {}

impl<K, V> FusedIterator for IntoIter<K, V> {}

impl<K, V> std::fmt::Debug for IntoIter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.raw.remaining())
            .finish_non_exhaustive()
    }
}

// SAFETY: the iterator owns the entries it has not yet yielded, as the map did: moving it to
// another thread moves them (hence `K: Send, V: Send`); of those it has yielded it keeps only
// the emptied blocks, memory that any thread may free. Its `&self` methods read only a count.
unsafe impl<K: Send, V: Send> Send for IntoIter<K, V> {}
// SAFETY: through `&IntoIter` nothing of a key or value is reachable (only the remaining count).
unsafe impl<K, V> Sync for IntoIter<K, V> {}

/// An owning iterator over a map's keys, in no particular order; each value is dropped as its key
/// is taken. Made by [`HashMap::into_keys`](crate::HashMap::into_keys).
pub struct IntoKeys<K, V> {
    inner: IntoIter<K, V>,
}

impl<K, V> IntoKeys<K, V> {
    pub(crate) fn new(inner: IntoIter<K, V>) -> Self {
        IntoKeys { inner }
    }
}

impl<K, V> Iterator for IntoKeys<K, V> {
    type Item = K;

    #[inline]
    fn next(&mut self) -> Option<K> {
        // The value dropped before the key is handed out: a value's `Drop` that panics would
        // otherwise leak the key already moved into the result (rust-lang/rust#47949).
        self.inner.next().map(|(k, v)| {
            drop(v);
            k
        })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K, V> ExactSizeIterator for IntoKeys<K, V> {}

impl<K, V> FusedIterator for IntoKeys<K, V> {}

impl<K, V> std::fmt::Debug for IntoKeys<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoKeys")
            .field("remaining", &self.inner.len())
            .finish_non_exhaustive()
    }
}

/// An owning iterator over a map's values, in no particular order; each key is dropped as its
/// value is taken. Made by [`HashMap::into_values`](crate::HashMap::into_values).
pub struct IntoValues<K, V> {
    inner: IntoIter<K, V>,
}

impl<K, V> IntoValues<K, V> {
    pub(crate) fn new(inner: IntoIter<K, V>) -> Self {
        IntoValues { inner }
    }
}

impl<K, V> Iterator for IntoValues<K, V> {
    type Item = V;

    #[inline]
    fn next(&mut self) -> Option<V> {
        // The key dropped first, as in `IntoKeys::next`.
        self.inner.next().map(|(k, v)| {
            drop(k);
            v
        })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K, V> ExactSizeIterator for IntoValues<K, V> {}

impl<K, V> FusedIterator for IntoValues<K, V> {}

impl<K, V> std::fmt::Debug for IntoValues<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoValues")
            .field("remaining", &self.inner.len())
            .finish_non_exhaustive()
    }
}

// The shared walks stay at their end once there (`RawIter` keeps its last group), as `std`'s do.
impl<K, V> FusedIterator for Iter<'_, K, V> {}
impl<K, V> FusedIterator for Keys<'_, K, V> {}
impl<K, V> FusedIterator for Values<'_, K, V> {}
