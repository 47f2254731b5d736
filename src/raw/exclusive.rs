//! Access through `&mut` (`get_mut`, `iter_mut`, `par_iter_mut`, owned removal, the owned
//! `into_par_iter`): values lent out as `&mut V`, or entries handed over whole, with no
//! retirement.
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
//!
//! The owned `into_par_iter` ([`Draining`]) owns the map outright: its ranges of the settled
//! root move each entry out and empty its slot, and the map's `Drop` then frees whatever no
//! range took.

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
    #[cfg(any(feature = "rayon", test))]
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

    /// Starts loading the entries of the range's first groups, which the walks' own hints (a
    /// few groups ahead of the one they visit) do not cover; `freeing` as for
    /// `prefetch_entry_lines`.
    fn prefetch_first(&self, freeing: bool) {
        for g in self.start..self.end.min(self.start + super::PREFETCH_GROUPS) {
            for slot in &self.table.group(g).slots {
                super::prefetch_entry_lines::<K, V>(slot, freeing);
            }
        }
    }

    /// The range's entries, in slot order.
    pub(crate) fn walk(self) -> WalkMut<'a, K, V> {
        self.prefetch_first(false);
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

/// A map being taken apart by rayon's workers (`into_par_iter`): the map, owned; how many
/// entries the workers took out of it; and one list, shared by the workers, of the blocks they
/// emptied, to be freed in address order when the workers are done.
///
/// Dropped after the workers return (or as a panic unwinds), it frees the listed blocks in
/// address order, as `RawIntoIter` does and for its reason; sets the count to the entries left;
/// and the map's own `Drop` frees those. The list is one allocation, sized as the sequential
/// iterator's, zeroed, and handed out in blocks of [`CLAIM`] cells by a counter. A list per
/// range instead (stop 42's first version) cost more than the sequential walk: freeing each
/// range's list, a large chunk of glibc's heap, made glibc merge the blocks the range had just
/// freed, once a range (`BENCHMARKS.md`, next step 62).
#[cfg(any(feature = "rayon", test))]
pub(crate) struct Draining<K, V> {
    raw: RawMap<K, V>,
    taken: crate::sync::AtomicUsize,
    /// Walks made and not yet dropped: non-zero at the end only if a consumer leaked one
    /// (`mem::forget`), whose entries taken are then missing from `taken`.
    walks: crate::sync::AtomicUsize,
    /// Zeroed up to its capacity; a cell holds a block's address once a walk has listed it.
    spent: Vec<*mut Entry<K, V>>,
    /// The cells handed out so far (may pass the capacity: those past it were never had).
    claimed: crate::sync::AtomicUsize,
}

/// Cells of [`Draining`]'s list a walk claims at a time: one counter update per this many
/// entries taken.
#[cfg(any(feature = "rayon", test))]
const CLAIM: usize = 1024;

#[cfg(any(feature = "rayon", test))]
impl<K, V> Draining<K, V> {
    pub(crate) fn new(raw: RawMap<K, V>) -> Self {
        // Sized as `RawIntoIter`'s list (the count is exact under `&mut`), for every entry: the
        // blocks go to the allocator, not to the entry cache as a map's drop sends its first.
        let live = raw.len.sum();
        let mut spent = Vec::new();
        if live > super::ORDERED_FREE_MIN {
            let _ = spent.try_reserve_exact(live);
        }
        // SAFETY: the capacity is reserved; all-zero bytes are a null pointer, so every cell is
        // initialised whether or not a walk writes it (a walk a consumer leaks never does).
        unsafe { std::ptr::write_bytes(spent.as_mut_ptr(), 0, spent.capacity()) };
        Draining {
            raw,
            taken: crate::sync::AtomicUsize::new(0),
            walks: crate::sync::AtomicUsize::new(0),
            spent,
            claimed: crate::sync::AtomicUsize::new(0),
        }
    }

    /// The settled root's groups, whose entries are taken out as the ranges are walked.
    pub(crate) fn groups(&mut self) -> GroupsOwned<'_, K, V> {
        let Draining {
            raw,
            taken,
            walks,
            spent,
            claimed,
        } = self;
        GroupsOwned {
            groups: raw.groups_mut(),
            taken,
            walks,
            list: spent.as_mut_ptr(),
            cells: spent.capacity(),
            claimed,
        }
    }
}

#[cfg(any(feature = "rayon", test))]
impl<K, V> Drop for Draining<K, V> {
    fn drop(&mut self) {
        let listed = (*self.claimed.get_mut()).min(self.spent.capacity());
        // SAFETY: every cell up to the capacity is initialised (zeroed in `new`, then written
        // only by walks, with block addresses), and the walks are done (rayon joined them).
        unsafe { self.spent.set_len(listed) };
        self.spent.retain(|p| !p.is_null());
        self.spent.sort_unstable();
        for p in self.spent.drain(..) {
            // SAFETY: `p` came from `Box::into_raw` of a `Box<Entry<K, V>>` and is listed once (a
            // walk lists each entry it takes, once, in a cell it alone claimed); the walk moved
            // its contents out, so it is freed as a `MaybeUninit`, which drops nothing.
            drop(unsafe { Box::from_raw(p.cast::<std::mem::MaybeUninit<Entry<K, V>>>()) });
        }
        let left = if *self.walks.get_mut() == 0 {
            self.raw.len.sum().saturating_sub(*self.taken.get_mut())
        } else {
            // A walk was leaked: what it took was never added to `taken`. Count what is left
            // (one pass over the slots, on this path only), so that the count stays exact.
            self.raw.groups_mut().walk().count()
        };
        self.raw.len.set_exclusive(left);
    }
}

/// A range of a [`Draining`] map's groups: its entries are moved out, each by the one range
/// that holds its slot, and its slots emptied, so that the map's `Drop` frees only the entries
/// no range took (a consumer that stops early, or panics).
#[cfg(any(feature = "rayon", test))]
pub(crate) struct GroupsOwned<'a, K, V> {
    groups: GroupsMut<'a, K, V>,
    taken: &'a crate::sync::AtomicUsize,
    walks: &'a crate::sync::AtomicUsize,
    /// `Draining`'s list: `cells` cells from `list`, handed out by `claimed`.
    list: *mut *mut Entry<K, V>,
    cells: usize,
    claimed: &'a crate::sync::AtomicUsize,
}

// SAFETY: a range moves out the keys and values of entries no other range reaches (hence `K:
// Send` and `V: Send`); of the table it reads and writes only slot words, atomics, while the
// map is owned by the `Draining` that lent the range out, so no other thread reaches it; of the
// list it writes only cells it claimed from the shared counter, which no other range writes.
#[cfg(any(feature = "rayon", test))]
unsafe impl<K: Send, V: Send> Send for GroupsOwned<'_, K, V> {}

#[cfg(any(feature = "rayon", test))]
impl<'a, K, V> GroupsOwned<'a, K, V> {
    /// Splits off the upper half, if the range has two groups or more.
    pub(crate) fn split_off_upper(&mut self) -> Option<Self> {
        let upper = self.groups.split_off_upper()?;
        Some(GroupsOwned {
            groups: upper,
            taken: self.taken,
            walks: self.walks,
            list: self.list,
            cells: self.cells,
            claimed: self.claimed,
        })
    }

    /// The range's entries, moved out in slot order.
    pub(crate) fn take_all(self) -> TakeWalk<'a, K, V> {
        self.groups.prefetch_first(self.cells == 0);
        // Relaxed: read by `Draining`'s drop after rayon has joined the workers.
        self.walks.fetch_add(1, Ordering::Relaxed);
        TakeWalk {
            range: self,
            slot: 0,
            count: 0,
            next: 0,
            end: 0,
        }
    }
}

/// Walks a [`GroupsOwned`] range and moves each live entry's key and value out, emptying its
/// slot. Each block emptied is listed in [`Draining`]'s list, in cells claimed [`CLAIM`] at a
/// time, to be freed when the map's walks are done (or freed at once when the list is full or
/// there is none). The count of entries taken goes to the `Draining` when the walk drops,
/// whether the consumer finished, stopped early or panicked.
#[cfg(any(feature = "rayon", test))]
pub(crate) struct TakeWalk<'a, K, V> {
    /// The groups not yet finished: `range.groups.start` is the group being walked.
    range: GroupsOwned<'a, K, V>,
    /// The next slot of group `range.groups.start`.
    slot: usize,
    count: usize,
    /// The cells claimed and not yet written: `next..end` of the list.
    next: usize,
    end: usize,
}

#[cfg(any(feature = "rayon", test))]
impl<K, V> TakeWalk<'_, K, V> {
    /// Lists the emptied block `p`, or frees it if the list has no cell left for it.
    ///
    /// # Safety
    /// `p` came from `Box::into_raw` of a `Box<Entry<K, V>>`, its contents were moved out, and
    /// nothing else can reach it.
    #[inline]
    unsafe fn spend(&mut self, p: *mut Entry<K, V>) {
        if self.next == self.end && self.end < self.range.cells {
            // Relaxed: the counter only divides the cells; the writes to them are read by
            // `Draining`'s drop after rayon has joined the workers.
            let start = self.range.claimed.fetch_add(CLAIM, Ordering::Relaxed);
            self.next = start.min(self.range.cells);
            self.end = start.saturating_add(CLAIM).min(self.range.cells);
        }
        if self.next < self.end {
            // SAFETY: a cell of the list's capacity that this walk claimed, so no other walk
            // writes it, and `Draining` reads it only after the walks are done.
            unsafe { self.range.list.add(self.next).write(p) };
            self.next += 1;
        } else {
            // SAFETY: the caller's promise; the block is freed once, here, without a drop.
            drop(unsafe { Box::from_raw(p.cast::<std::mem::MaybeUninit<Entry<K, V>>>()) });
        }
    }
}

#[cfg(any(feature = "rayon", test))]
impl<K, V> Iterator for TakeWalk<'_, K, V> {
    type Item = (K, V);

    #[inline]
    fn next(&mut self) -> Option<(K, V)> {
        let table = self.range.groups.table;
        let freeing = self.range.cells == 0;
        while self.range.groups.start < self.range.groups.end {
            let g = self.range.groups.start;
            let group = table.group(g);
            if self.slot == 0 && g + super::PREFETCH_GROUPS < self.range.groups.end {
                prefetch_ahead_exclusive(table, g, freeing);
            }
            while self.slot < GROUP_SLOTS {
                let slot = &group.slots[self.slot];
                self.slot += 1;
                // Relaxed (both): exclusive access.
                let w = Word(slot.load(Ordering::Relaxed));
                debug_assert!(!w.is_frozen(), "a frozen slot in a settled root");
                let Some(p) = w.entry_ptr::<K, V>() else {
                    continue;
                };
                slot.store(super::slot::EMPTY, Ordering::Relaxed);
                self.count += 1;
                // SAFETY: a live entry of the settled root, reached by this range alone
                // (`GroupsMut`) and owned by the map that `Draining` owns; its slot is now empty,
                // so neither a walk nor the map's `Drop` reaches it again. Read once, here.
                let entry = unsafe { p.read() };
                // SAFETY: the block came from `Box::into_raw` of a `Box<Entry<K, V>>` (the entry
                // cache hands out blocks of its layout), its contents are moved out (above), and
                // it is unreachable (above).
                unsafe { self.spend(p) };
                return Some((entry.key, entry.value));
            }
            self.range.groups.start += 1;
            self.slot = 0;
        }
        None
    }
}

#[cfg(any(feature = "rayon", test))]
impl<K, V> Drop for TakeWalk<'_, K, V> {
    fn drop(&mut self) {
        // Relaxed (both): read by `Draining`'s drop, after rayon has joined the workers (a join
        // orders their work before its return). The cells claimed and not written stay null.
        self.range.taken.fetch_add(self.count, Ordering::Relaxed);
        self.range.walks.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reclaim::Collector;

    /// A range splits into two non-empty halves that cover it, down to single groups, which do
    /// not split: what rayon's producers over the groups (`par_iter_mut`, `into_par_iter`)
    /// rely on to end their splitting with every group in exactly one piece.
    #[test]
    fn ranges_split_into_non_empty_halves_down_to_one_group() {
        let mut map: RawMap<u64, u64> = RawMap::with_capacity(1_000, 1_000, Collector::global());
        let whole = map.groups_mut();
        let groups = whole.end;
        assert!(groups >= 4, "{groups}");
        let mut pending = vec![whole];
        let mut singles = Vec::new();
        while let Some(mut range) = pending.pop() {
            let before = (range.start, range.end);
            match range.split_off_upper() {
                Some(upper) => {
                    assert!(range.start < range.end && upper.start < upper.end);
                    assert_eq!(
                        (range.start, range.end, upper.end),
                        (before.0, upper.start, before.1)
                    );
                    pending.push(range);
                    pending.push(upper);
                }
                None => {
                    assert_eq!(range.end - range.start, 1, "only single groups stay whole");
                    singles.push(range.start);
                }
            }
        }
        singles.sort_unstable();
        assert_eq!(singles, (0..groups).collect::<Vec<_>>());
    }
}
