//! Access through `&mut` (`get_mut`, `iter_mut`, `par_iter_mut`, owned removal): values lent
//! out as `&mut V`, or entries handed over whole, with no retirement.
//!
//! Everywhere else a value is shared: a thread that read it may hold `&V` until its guard
//! unpins, so a write must publish a new entry. Under `&mut RawMap` no such reader exists:
//! every reference the map hands out borrows the map (the `'g` of `&'g self`), so while `&mut`
//! lives no operation is in flight, and none starts. What is left to make a `&mut V` sound is
//! that the entry is reachable through exactly one owner, and stays allocated for the borrow:
//! - a pending migration may show an entry in two tables (a frozen root slot whose copy, the
//!   same address, was placed in the successor), so both paths first finish it, after which the
//!   root alone holds every live entry, one slot each (invariant 1), and nothing starts another;
//! - entries retired before are no longer in any slot, and an entry is freed only after it is
//!   retired, which takes an operation.
//!
//! Keys stay shared (`&K`): a key's bytes also serve the key lines and the hand-on of `String`
//! keys (`ARCHITECTURE.md`, "Reclamation"), and `std` hands out no `&mut K` either.
//!
//! An owned removal (`take`) goes through `remove`'s own path, under a guard, and skips only the
//! retirement: the entry is the caller's the moment its slot lets go of it.

use std::marker::PhantomData;

use super::{owning_tables, prefetch_ahead_exclusive, probe_table, Entry, RawMap, Table, Word};
use crate::sync::{Ordering, GROUP_SLOTS};

impl<K, V> RawMap<K, V> {
    /// Finishes any pending migration, leaving every entry in the root; nothing can start
    /// another while `&mut self` lives.
    fn settle_exclusive(&mut self) -> &Table<K, V> {
        // With none pending (the common case) no guard is needed: under `&mut` the root stays
        // put. A pin on a private collector costs a registration, which a loop of `get_mut`
        // calls would otherwise pay each time.
        if owning_tables(self).0.migration().is_some() {
            let guard = self.collector.pin();
            self.settle(&guard);
        }
        let (root, next) = owning_tables(self);
        debug_assert!(next.is_none(), "settled, yet a successor is pending");
        root
    }

    /// The entry for a key, for a mutable borrow of its value.
    pub(crate) fn find_mut(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
    ) -> Option<&mut Entry<K, V>> {
        let table = self.settle_exclusive();
        // SAFETY: exclusive access: no entry the root holds is retired (that takes an
        // operation), so none is freed while this runs.
        let p = unsafe { probe_table(table, hash, &mut eq) }?;
        // SAFETY: as above, it stays allocated while `self` is borrowed, and it is reachable
        // only through the root's one slot for the key (the module docs): this is the one
        // reference to it while the borrow lives.
        Some(unsafe { &mut *p })
    }

    /// Removes the entry for a key and hands it over, owned: with no reader that could have
    /// seen it, nothing is retired, and the key and value move out at once.
    pub(crate) fn take(&mut self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<Entry<K, V>>
    where
        K: 'static,
    {
        self.settle_exclusive();
        // The removal is `remove`'s own path (the slot's state machine, the key cell of a
        // vacated slot, the count, the sampled shrink), which takes a guard.
        let guard = self.collector.pin();
        loop {
            let located = self.locate(hash, &mut eq, false, &guard);
            located.entry()?;
            // SAFETY: exclusive access (`&mut self`): no reference to the entry exists, and no
            // operation is in flight that could read it.
            if let Some(p) = unsafe { self.unlink(&located, false, &guard) } {
                // SAFETY: unlinked by our CAS and not retired, so ours alone (above); it came
                // from `Box::into_raw` (the entry cache hands out blocks of the entry's layout).
                return Some(*unsafe { Box::from_raw(p) });
            }
        }
    }

    /// Visits every entry once, for mutable borrows of the values; see [`RawIterMut`].
    pub(crate) fn iter_mut(&mut self) -> RawIterMut<'_, K, V> {
        let remaining = self.len.sum();
        RawIterMut {
            walk: self.groups_mut().walk(),
            remaining,
        }
    }

    /// The settled root's groups, to be walked whole or split among threads.
    pub(crate) fn groups_mut(&mut self) -> GroupsMut<'_, K, V> {
        let table = self.settle_exclusive();
        GroupsMut {
            table,
            start: 0,
            end: table.groups(),
            entries: PhantomData,
        }
    }
}

/// A range of the settled root's groups, whose entries the map's `&mut` borrow (`'a`) lends out
/// as `&mut`. Ranges are made only by splitting the whole, so no two overlap, and no entry can
/// be reached through two of them (each live entry has one slot).
pub(crate) struct GroupsMut<'a, K, V> {
    table: &'a Table<K, V>,
    start: usize,
    end: usize,
    entries: PhantomData<&'a mut Entry<K, V>>,
}

// SAFETY: a range hands out `&K` (hence `K: Sync` to move it) and `&mut V` (hence `V: Send`) of
// entries no other range reaches; of the table it reads only slot words, atomics that any thread
// may load, while the map's `&mut` borrow keeps every other thread out.
unsafe impl<K: Sync, V: Send> Send for GroupsMut<'_, K, V> {}

impl<'a, K, V> GroupsMut<'a, K, V> {
    /// Splits off the upper half, if the range has two groups or more.
    #[cfg(feature = "rayon")]
    pub(crate) fn split_off_upper(&mut self) -> Option<Self> {
        if self.end - self.start < 2 {
            return None;
        }
        let mid = self.start + (self.end - self.start) / 2;
        let upper = GroupsMut {
            table: self.table,
            start: mid,
            end: self.end,
            entries: PhantomData,
        };
        self.end = mid;
        Some(upper)
    }

    /// The range's entries, in slot order.
    pub(crate) fn walk(self) -> WalkMut<'a, K, V> {
        let table = self.table;
        for g in self.start..self.end.min(self.start + super::PREFETCH_GROUPS) {
            for slot in &table.group(g).slots {
                super::prefetch_entry_lines::<K, V>(slot, false);
            }
        }
        WalkMut {
            groups: self,
            slot: 0,
        }
    }
}

/// Walks a [`GroupsMut`] and yields each live entry once, as `&mut`.
pub(crate) struct WalkMut<'a, K, V> {
    /// The groups not yet finished: `start` is the group being walked.
    groups: GroupsMut<'a, K, V>,
    /// The next slot of group `groups.start`.
    slot: usize,
}

impl<'a, K, V> Iterator for WalkMut<'a, K, V> {
    type Item = &'a mut Entry<K, V>;

    #[inline]
    fn next(&mut self) -> Option<&'a mut Entry<K, V>> {
        let table = self.groups.table;
        while self.groups.start < self.groups.end {
            let g = self.groups.start;
            let group = table.group(g);
            if self.slot == 0 && g + super::PREFETCH_GROUPS < self.groups.end {
                prefetch_ahead_exclusive(table, g, false);
            }
            while self.slot < GROUP_SLOTS {
                // Relaxed: exclusive access.
                let w = Word(group.slots[self.slot].load(Ordering::Relaxed));
                self.slot += 1;
                debug_assert!(!w.is_frozen(), "a frozen slot in a settled root");
                if let Some(p) = w.entry_ptr::<K, V>() {
                    // SAFETY: a live entry of the settled root, which the map's `&mut` borrow
                    // (`'a`) keeps allocated and unshared (the module docs); each slot is passed
                    // once, by one range, and holds its own entry, so no two items alias.
                    return Some(unsafe { &mut *p });
                }
            }
            self.groups.start += 1;
            self.slot = 0;
        }
        None
    }
}

/// [`WalkMut`] over the whole root, counting down the entries left.
pub(crate) struct RawIterMut<'a, K, V> {
    walk: WalkMut<'a, K, V>,
    /// Entries not yet yielded (the length counter is exact with no operation in flight).
    remaining: usize,
}

impl<'a, K, V> RawIterMut<'a, K, V> {
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }
}

impl<'a, K, V> Iterator for RawIterMut<'a, K, V> {
    type Item = &'a mut Entry<K, V>;

    #[inline]
    fn next(&mut self) -> Option<&'a mut Entry<K, V>> {
        let next = self.walk.next();
        match next {
            Some(_) => self.remaining = self.remaining.saturating_sub(1),
            None => debug_assert_eq!(
                self.remaining, 0,
                "the length counter disagreed with the slots"
            ),
        }
        next
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
