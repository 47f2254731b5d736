//! The raw table: get, insert, update and remove across table generations.
//!
//! Everything unsafe about the map lives under this module; the public map is a plain layer over
//! [`RawMap::find`], [`RawMap::locate`], [`RawMap::try_store`] and [`RawMap::try_remove`].
//!
//! ## Invariants (one table generation)
//! 1. **One slot per key.** A new key is stored only in the *first* slot of its probe sequence
//!    whose word is EMPTY, by CAS. Slots never return to EMPTY, so concurrent inserters of one key
//!    converge on one slot, and a key is never stored past a slot that was empty when it was
//!    stored.
//!    With key lines (integer keys), a removal leaves the slot VACATED, with its tag and key cell,
//!    and an insert of that key takes it back by CAS: the key's one slot, found by its cell.
//!    So the tag and cell are written before the slot is vacated (`try_remove`: the remover
//!    writes them if the inserter has not yet), every probe for the key recognises the slot
//!    (`examine_vacated`), and nothing else takes it back. A slot released by a stale migration
//!    helper is a TOMB, never VACATED: its key was published elsewhere.
//! 2. **Early stop.** A lookup stops at the first group with a tag that is not full (EMPTY or
//!    REDIRECT): its key would have been stored there or earlier.
//! 3. **Tags never lag behind a finished operation.** A slot's word is written before its tag;
//!    an operation that relies on a slot whose tag is still EMPTY (it probes past it, or acts on
//!    the key in it) first writes the tag, from the word alone (the entry stores its hash).
//! 4. **No inserts into a migrating table once its successor exists.** A writer that finds its
//!    key absent in a table with a successor turns the first empty slot of its probe sequence
//!    into REDIRECT before going on, so no other writer can insert that key into the old table
//!    afterwards; one that finds the key's vacated slot there moves it (freezing it) instead.
//!    While a lazily sized successor is still to be sized, the source takes inserts as before,
//!    into slots the count has not passed, or into counted ones by writers registered with the
//!    count (`migrate.rs`, "Sizing").
//! 5. **MOVED pointers are never dereferenced.** The entry may have been replaced in `next` and
//!    retired; a lookup that meets a MOVED slot with a matching tag keeps probing, then follows
//!    the chain to `next`.
//!
//! ## Memory orderings
//! Slot words are loaded with Acquire and written by AcqRel CASes (Release publishes an entry,
//! Acquire reads the one found on failure); tag words are loaded with Acquire and written by
//! Release `fetch_or`s. The root and migration pointers are published with Release CASes and read
//! with Acquire. Each site names its pair.

mod counter;
mod exclusive;
mod keys;
mod migrate;
mod pool;
pub(crate) mod slot;
mod table;
pub(crate) mod tag;

use crate::reclaim::{self, Collector, Guard};
use crate::sync::{
    hint_fence, AtomicPtr, AtomicUsize, HintUsize, Ordering, FIRST_GROUPS, GROUP_SLOTS,
    MIGRATE_CHUNK_GROUPS, ORDERED_FREE_MIN, PACE_MOVES,
};

use counter::Counter;
#[cfg(any(feature = "rayon", test))]
pub(crate) use exclusive::Draining;
#[cfg(feature = "rayon")]
pub(crate) use exclusive::GroupsMut;
#[cfg(feature = "rayon")]
pub(crate) use exclusive::GroupsOwned;
pub(crate) use exclusive::RawIterMut;
use keys::KeyLine;
use migrate::{repair_tag, set_group_tag, set_tag};
pub(crate) use slot::Entry;
use slot::{Word, COUNTED_EMPTY, REDIRECT, TOMB, VACATED};
use table::{
    capacity_of, groups_for_capacity, groups_to_grow_to, groups_to_resize_to, grown_groups, Group,
    Migration, Probe, Table, MAX_LOAD, REBUILD_DEAD,
};

pub(crate) struct RawMap<K, V> {
    root: AtomicPtr<Table<K, V>>,
    len: Counter,
    /// Where retired entries and tables go; every entry point checks its guard against it.
    collector: Collector,
    /// The entries asked for at construction (`with_capacity`), and the groups of the table that
    /// holds them: the resizes the map makes on its own (shrinking when sparse, tombstone
    /// rebuilds, `clear`) never go below it, as papaya keeps its initial capacity and scc its
    /// minimum capacity. Only `shrink_to_fit` does.
    floor: usize,
    made_floor_groups: usize,
    /// The groups of the largest room a `reserve` asked for since the map was made or last
    /// `shrink_to_fit` (0 if none). The map's own resizes keep the larger of it and
    /// `made_floor_groups` (`floor_groups`), so that removals made after a reservation do not
    /// shrink the table under the room it promised (found by a review at stop 48). Relaxed where
    /// it filters (a shrink or rebuild asks for no fewer groups); what keeps a reservation is the
    /// sizing of the successor (`size_next`), which reads it again after a `SeqCst` fence, against
    /// `reserve`'s fence between raising it and checking for a migration (see `reserve`). Kept
    /// apart from the made floor because the sizing applies it to every migration,
    /// `shrink_to_fit`'s too, which may go below the made floor.
    reserved_groups: HintUsize,
}

/// Where a write for one key can act: slot `slot` of `group`.
///
/// The group is kept as a reference rather than a slot index of the table: the write's CAS and
/// tag update then need no division by `GROUP_SLOTS` and no bounds check (callgrind, `hotpath
/// hot-key`: about 20 instructions an update).
pub(crate) enum Located<'g, K, V> {
    /// The key's live entry, in a slot that was not frozen when read.
    Occupied {
        table: &'g Table<K, V>,
        group: &'g Group,
        slot: usize,
        word: usize,
        entry: &'g Entry<K, V>,
    },
    /// The key is absent; it would be stored in this slot of `table`, which held `word`: EMPTY,
    /// or VACATED (the key's own slot, from which it was removed: `slot.rs`), or one of them as
    /// passed by a migration's count (COUNTED_EMPTY, COUNTED_VACATED; the writer registered).
    Vacant {
        table: &'g Table<K, V>,
        group: &'g Group,
        slot: usize,
        word: usize,
    },
}

impl<'g, K, V> Located<'g, K, V> {
    #[inline]
    pub(crate) fn entry(&self) -> Option<&'g Entry<K, V>> {
        match self {
            Located::Occupied { entry, .. } => Some(entry),
            Located::Vacant { .. } => None,
        }
    }
}

/// What the key cells of a group's tag matches say about a key ([`scan_cells`]).
enum Cells {
    /// Slot `slot` is the key's, and held `word` when read.
    Key { slot: usize, word: Word },
    /// No slot of the group whose tag matches holds the key.
    NoKey,
    /// The full probe must tell: the match has no key cell yet, or there is a second match.
    Unsure,
}

/// The first slot of `group` (a key's home group, whose tag word was `tags`) without a full
/// tag, if it is empty: where the full probe would store a key absent from the group's tag
/// matches, on its first step (no spill check at home, and the root takes any insert).
#[inline(always)]
fn vacant_at_home<'g, K, V>(
    table: &'g Table<K, V>,
    group: &'g Group,
    tags: u64,
) -> Option<Located<'g, K, V>> {
    let i = tag::match_not_full(tags).next()?;
    // Acquire: pairs with the Release CAS that wrote the slot; a non-empty word goes to the full
    // probe.
    Word(group.slots[i].load(Ordering::Acquire))
        .is_empty()
        .then_some(Located::Vacant {
            table,
            group,
            slot: i,
            word: slot::EMPTY,
        })
}

/// The tag word of group `pos` of `table` (a key's home group, in a table with key lines) and
/// what [`scan_cells`] says of the key there; the key line is hinted before the tag load, so the
/// two lines load side by side.
#[inline(always)]
fn home_cells<K: 'static, V>(
    table: &Table<K, V>,
    pos: usize,
    hash: u64,
    eq: &mut impl FnMut(&K) -> bool,
) -> (u64, Cells) {
    let group = table.group(pos);
    let line = table.key_line(pos);
    crate::sync::prefetch(line);
    // Acquire: pairs with the Release `fetch_or`s that wrote a tag after its entry and set a key
    // bit after its cell.
    let tags = group.tags.load(Ordering::Acquire);
    (tags, scan_cells(line, group, tags, hash, eq))
}

/// Compares a key with the key cell (in `line`) of the first tag match in `group`, whose tag
/// word was `tags` (loaded with Acquire), as the full probe's first step compares the entries of
/// the matches: that slot if it holds the key, `NoKey` if it does not and it was the only match.
/// A slot's key never changes within a table, so a cell that holds another key rules its slot out
/// for good. A second match, rare (a seven-bit tag), is left to the full probe: a straight line
/// here, as in `find` (ARCHITECTURE.md, "The table").
#[inline(always)]
fn scan_cells<K: 'static>(
    line: &KeyLine,
    group: &Group,
    tags: u64,
    hash: u64,
    eq: &mut impl FnMut(&K) -> bool,
) -> Cells {
    let mut matches = tag::match_tag(tags, tag::full_tag(hash));
    let Some(i) = matches.next() else {
        return Cells::NoKey;
    };
    if !tag::has_key(tags, i) {
        return Cells::Unsure;
    }
    // Relaxed: the cell was stored before the Release `fetch_or` that set its key bit, which the
    // caller's Acquire load of `tags` read (`keys.rs`).
    let bits = line.cells[i].load(Ordering::Relaxed);
    // SAFETY: a key bit is set only where `cached::<K>()`, and the cell holds a key's bits.
    if eq(&unsafe { keys::key::<K>(bits) }) {
        // Acquire: pairs with the Release CAS that published the entry.
        let word = Word(group.slots[i].load(Ordering::Acquire));
        Cells::Key { slot: i, word }
    } else if matches.next().is_none() {
        Cells::NoKey
    } else {
        Cells::Unsure
    }
}

/// Slots of the first `groups` groups of `hash`'s probe in `table` that are removed (tombstones
/// and vacated slots, and free slots a count passed): room that only a rebuild gives back to new
/// keys.
fn dead_slots<K, V>(table: &Table<K, V>, hash: u64, groups: usize) -> usize {
    let mut probe = Probe::new(hash, table.group_mask());
    let mut dead = 0;
    for _ in 0..groups {
        for slot in &table.group(probe.pos).slots {
            // Relaxed: a count for a heuristic; nothing is read through the words.
            let w = Word(slot.load(Ordering::Relaxed));
            if w.is_sentinel() {
                dead += 1;
            }
        }
        probe.advance();
    }
    dead
}

/// Writes the key cell of `group`'s slot `slot` (of `table`, which has key lines) from the slot's
/// live `entry`, then sets the slot's tag and key bit: what the slot's inserter (or the migration
/// helper that placed a copy there) does after its CAS, done by a remover that got there first.
/// Every writer of the cell stores the same bits: the slot's key never changes within a table.
#[cold]
#[inline(never)]
fn publish_key<K: 'static, V>(
    table: &Table<K, V>,
    group: &Group,
    slot: usize,
    entry: &Entry<K, V>,
) {
    let pos = table.group_index(group);
    // SAFETY: `cached::<K>()` (the caller's condition).
    let bits = unsafe { keys::bits(&entry.key) };
    // Relaxed: published by the Release `fetch_or` below.
    table.key_line(pos).cells[slot].store(bits, Ordering::Relaxed);
    // Release: pairs with the Acquire tag loads that read the cell after the key bit.
    group.tags.fetch_or(
        tag::tag_bits(slot, tag::full_tag(entry.hash)) | tag::key_bit(slot),
        Ordering::Release,
    );
}

/// What a probe learns from one slot that might hold the key.
enum Examined<'g, K, V> {
    NotIt,
    Found(Located<'g, K, V>),
    /// The key's slot was frozen; it has been moved, continue in this table.
    Moved(&'g Table<K, V>),
}

impl<K, V> RawMap<K, V> {
    /// A map whose first table holds `capacity` entries, and that never shrinks by itself below
    /// a table that holds `floor` (nor below a new map's first table).
    pub(crate) fn with_capacity(capacity: usize, floor: usize, collector: Collector) -> Self {
        let groups = groups_for_capacity(capacity).max(FIRST_GROUPS);
        let table = Box::new(Table::new(groups));
        let floor_groups = if floor == capacity {
            groups
        } else {
            groups_for_capacity(floor).max(FIRST_GROUPS)
        };
        RawMap {
            root: AtomicPtr::new(Box::into_raw(table)),
            len: Counter::new(),
            collector,
            floor,
            made_floor_groups: floor_groups,
            reserved_groups: HintUsize::new(0),
        }
    }

    /// The entries the map keeps room for whatever is removed (the `floor` it was made with).
    pub(crate) fn floor(&self) -> usize {
        self.floor
    }

    /// An empty map on the same collector that keeps what this one keeps: the floor it was made
    /// with and the room [`reserve`](Self::reserve) kept, in a first table of that size (what
    /// `clear` shrinks back to). What `drain` leaves in the map's place.
    pub(crate) fn emptied(&self) -> Self {
        let groups = self.floor_groups();
        RawMap {
            root: AtomicPtr::new(Box::into_raw(Box::new(Table::new(groups)))),
            len: Counter::new(),
            collector: self.collector.clone(),
            floor: self.floor,
            made_floor_groups: self.made_floor_groups,
            // Relaxed: the caller has `&mut` access to this map (the field's doc).
            reserved_groups: HintUsize::new(self.reserved_groups.load(Ordering::Relaxed)),
        }
    }

    /// The size of a resize the map makes on its own for `live` entries: what they need, and not
    /// below the floor.
    fn groups_to_resize_to(&self, live: usize) -> usize {
        groups_to_resize_to(live).max(self.floor_groups())
    }

    /// The groups the map's own resizes keep (the field's doc).
    fn floor_groups(&self) -> usize {
        // Relaxed: see the field.
        self.made_floor_groups
            .max(self.reserved_groups.load(Ordering::Relaxed))
    }

    pub(crate) fn collector(&self) -> &Collector {
        &self.collector
    }

    /// The root table. Every operation reaches the tables through here, so this is where a guard
    /// of another collector is refused (a comparison of two words on the guard and the map).
    #[inline]
    fn root<'g>(&'g self, guard: &'g Guard) -> &'g Table<K, V> {
        self.collector.check(guard);
        // Acquire: pairs with the Release half of the promotion CAS in `promote` (and with
        // the construction of the first table), so the table is fully built.
        let root = self.root.load(Ordering::Acquire);
        // SAFETY: the root is never null. A table is freed only through the epoch after it
        // stopped being the root, and the guard was pinned before this load.
        unsafe { &*root }
    }

    /// Number of entries; see `Counter` for its meaning under concurrent writes.
    pub(crate) fn len(&self) -> usize {
        self.len.sum()
    }

    /// Entries the current table can hold without growing.
    pub(crate) fn capacity(&self, guard: &Guard) -> usize {
        let root = self.root(guard);
        let table = root.migration().and_then(|m| m.next()).unwrap_or(root);
        // Only an insert that spills out of its home group checks the load, so a table can hold
        // a little more than its nominal load; what it holds now it holds without growing.
        capacity_of(table.slots()).max(self.len.sum())
    }

    /// Finds the live entry for a key. Never waits; writes shared memory only to move one chunk
    /// of a pending migration that the writers have left, while a chunk is unclaimed
    /// (`help_pending_migration`).
    ///
    /// The two common cases, with no migration running, are answered here, inlined into the
    /// caller, as the first step of [`RawMap::find_probe`] would answer them: the first slot of
    /// the home group whose tag matches holds the key's entry (a present key), or no tag there
    /// matches and the group has a slot whose tag is not full (an absent key: the probe would
    /// stop here, and with no migration after it either, there is no next table to follow).
    /// Everything else (a second tag match, a moved slot, a full group, a migration) starts over
    /// in the full probe, a lookup of its own. A hit is then one straight run of code from the
    /// hash to the key compare. With the probe loop inlined instead, the same lookups ran about
    /// a quarter slower in some code layouts (the alignment the compiler gave the loop) than in
    /// others; this shape ran level with papaya's in every layout tried (`BENCHMARKS.md`,
    /// "Hot-path changes").
    ///
    /// For integer keys the first tag match of the home group is compared through its key cell
    /// (`keys.rs`, [`scan_cells`]), and a hit returns its entry without reading it.
    #[inline]
    pub(crate) fn find<'g>(
        &'g self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>>
    where
        K: 'static,
    {
        let table = self.root(guard);
        if table.migration().is_none() {
            let pos = Probe::new(hash, table.group_mask()).pos;
            let group = table.group(pos);
            if keys::cached::<K>() {
                let (tags, cells) = home_cells(table, pos, hash, &mut eq);
                match cells {
                    Cells::Key { word, .. } => {
                        if !word.is_moved() {
                            if let Some(p) = word.entry_ptr::<K, V>() {
                                // SAFETY: an unmoved entry pointer loaded while pinned: it is
                                // retired only after being unlinked, so not before our guard
                                // unpins.
                                return Some(unsafe { &*p });
                            }
                        }
                        // The key's one slot in the table, vacated: absent (a migration that
                        // started since may hold it only after freezing this slot, but check,
                        // as below).
                        if word.0 == VACATED && table.migration().is_none() {
                            return None;
                        }
                    }
                    // As below: the tags first, then the migration.
                    Cells::NoKey if tag::any_not_full(tags) && table.migration().is_none() => {
                        return None
                    }
                    Cells::NoKey | Cells::Unsure => {}
                }
                return self.find_probe(hash, eq, guard);
            }
            // Acquire: pairs with the Release `fetch_or` that wrote a tag after its entry.
            let tags = group.tags.load(Ordering::Acquire);
            match tag::match_tag(tags, tag::full_tag(hash)).next() {
                Some(i) => {
                    // Acquire: pairs with the Release CAS that published the entry.
                    let w = Word(group.slots[i].load(Ordering::Acquire));
                    if !w.is_moved() {
                        if let Some(p) = w.entry_ptr::<K, V>() {
                            // SAFETY: an unmoved entry pointer loaded while pinned: it is retired
                            // only after being unlinked, so not before our guard unpins.
                            let entry = unsafe { &*p };
                            if entry.matches(hash, &mut eq) {
                                return Some(entry);
                            }
                        }
                    }
                }
                // The full probe's order: the tags first, then the migration (a migration that
                // started after our first look may already have taken inserts of this key).
                None if tag::any_not_full(tags) && table.migration().is_none() => return None,
                None => {}
            }
        }
        self.find_probe(hash, eq, guard)
    }

    /// [`RawMap::find`]'s full probe: every table of the chain, every group up to the table's
    /// read bound.
    #[inline(never)]
    fn find_probe<'g>(
        &'g self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        let mut table = self.root(guard);
        if let Some(mig) = table.migration() {
            // A migration left pending makes every lookup probe two tables until it finishes,
            // and in a read-only phase nothing else would finish it.
            self.help_pending_migration(table, mig, guard);
        }
        loop {
            // SAFETY: pinned: an entry is retired only after being unlinked, so none that the
            // table's slots hold now is freed before our guard unpins.
            if let Some(p) = unsafe { probe_table(table, hash, &mut eq) } {
                // SAFETY: as above; the guard is borrowed for `'g`.
                return Some(unsafe { &*p });
            }
            // A migration whose successor is not sized yet has copied nothing: absent.
            table = table.migration()?.next()?;
        }
    }

    /// Finds where a write for a key acts: its live entry, or the slot a new entry would take.
    ///
    /// Along the way it helps a pending migration by one chunk, moves the key's slot if it is
    /// frozen, redirects the key's first empty slot in a migrating table, and starts a resize if
    /// `may_insert` and the table is too full.
    ///
    /// The two common cases, with no migration running, are answered here, inlined into the
    /// write: the first slot of the key's home group whose tag matches holds its entry,
    /// unfrozen (a present key); or no tag there matches and the group's first slot without a
    /// full tag is empty (an absent key, and room at home). Everything else goes to
    /// [`RawMap::locate_probe`]. Either answer is the one the full probe gives on its first
    /// step: it examines the home group's tag matches first, in slot order, returning the first
    /// that holds the key, then its slots without a full tag, in slot order, and takes the first
    /// empty one (no spill check at home, and the root takes any insert). Inlining saves the
    /// probe's frame and lets the write keep the answer in registers: 55 instructions a hot-key
    /// update (callgrind, `hotpath hot-key`, stop 12).
    ///
    /// For integer keys the first tag match of the home group is compared through its key cell
    /// (`keys.rs`, [`scan_cells`]), and the entry of a present key is not read.
    #[inline]
    pub(crate) fn locate<'g>(
        &'g self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        may_insert: bool,
        guard: &'g Guard,
    ) -> Located<'g, K, V>
    where
        K: 'static,
    {
        let table = self.root(guard);
        if table.migration().is_none() {
            // Tests park a writer here: a migration may start, and freeze the key's slot, before
            // the slot's word is loaded below (only a test build has the pause).
            migrate::pause_point("unmigrated");
            let pos = Probe::new(hash, table.group_mask()).pos;
            let group = table.group(pos);
            if keys::cached::<K>() {
                let (tags, cells) = home_cells(table, pos, hash, &mut eq);
                match cells {
                    Cells::Key { slot, word } => {
                        if !word.is_moved() && !word.is_frozen() {
                            if let Some(p) = word.entry_ptr::<K, V>() {
                                // SAFETY: an unmoved, unfrozen entry loaded while pinned: it is
                                // retired only after being unlinked from this slot, after our
                                // load.
                                let entry = unsafe { &*p };
                                return Located::Occupied {
                                    table,
                                    group,
                                    slot,
                                    word: word.0,
                                    entry,
                                };
                            }
                            if word.0 == VACATED {
                                // The key's own slot, vacated: the insert takes it back (a
                                // migration that freezes it first makes the CAS fail).
                                return Located::Vacant {
                                    table,
                                    group,
                                    slot,
                                    word: VACATED,
                                };
                            }
                        }
                    }
                    Cells::NoKey => {
                        if let Some(vacant) = vacant_at_home(table, group, tags) {
                            return vacant;
                        }
                    }
                    Cells::Unsure => {}
                }
                return self.locate_probe(hash, eq, may_insert, guard);
            }
            // Acquire: pairs with the Release tag writes.
            let tags = group.tags.load(Ordering::Acquire);
            match tag::match_tag(tags, tag::full_tag(hash)).next() {
                Some(i) => {
                    // Acquire: pairs with the Release CAS that published the entry.
                    let w = Word(group.slots[i].load(Ordering::Acquire));
                    if !w.is_moved() && !w.is_frozen() {
                        if let Some(p) = w.entry_ptr::<K, V>() {
                            // SAFETY: an unmoved, unfrozen entry loaded while pinned: it is
                            // retired only after being unlinked from this slot, after our load.
                            let entry = unsafe { &*p };
                            if entry.matches(hash, &mut eq) {
                                return Located::Occupied {
                                    table,
                                    group,
                                    slot: i,
                                    word: w.0,
                                    entry,
                                };
                            }
                        }
                    }
                }
                None => {
                    if let Some(vacant) = vacant_at_home(table, group, tags) {
                        return vacant;
                    }
                }
            }
        }
        self.locate_probe(hash, eq, may_insert, guard)
    }

    /// Locates `entry`, an entry an iteration under `guard` yielded, for `clear` or `retain` to
    /// remove: by its stored hash and the stored key's address, so that a key whose `Eq` or
    /// `Hash` is not consistent (a NaN in a float wrapper, "always equal", a hash that changed
    /// since the insert) is found without being compared, and no other entry that its `Eq`
    /// accepts is found first. Only if the key's entry has been replaced since (its key then has
    /// another address) is it found by `eq`. Integer keys, which the key lines compare as copies
    /// and whose `Eq` cannot lie, by `eq` alone. (A review at stop 48 found `clear` removing the
    /// first entry an "always equal" key's `Eq` accepted, and leaving the one it visited.)
    pub(crate) fn locate_stored<'g>(
        &'g self,
        entry: &Entry<K, V>,
        eq: impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Located<'g, K, V>
    where
        K: 'static,
    {
        if !keys::cached::<K>() {
            let stored: *const K = &entry.key;
            let located = self.locate(entry.hash, |k| std::ptr::eq(k, stored), false, guard);
            if located.entry().is_some() {
                return located;
            }
        }
        self.locate(entry.hash, eq, false, guard)
    }

    /// [`RawMap::locate`]'s full probe.
    #[inline(never)]
    fn locate_probe<'g>(
        &'g self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        may_insert: bool,
        guard: &'g Guard,
    ) -> Located<'g, K, V>
    where
        K: 'static,
    {
        let mut table = self.root(guard);
        if let Some(mig) = table.migration() {
            self.help_chunk(table, mig, true, guard);
            self.pace_moves(table, mig, guard);
        }
        let tag = tag::full_tag(hash);
        let mut counted_ahead = false;
        'tables: loop {
            let mut probe = Probe::new(hash, table.group_mask());
            let mut tombstones = 0;
            for dist in 0..table.groups() {
                let group = table.group(probe.pos);
                if may_insert && keys::cached::<K>() {
                    // The cell an insert into this group writes (its first empty slot, most
                    // often in the successor's home group while a migration runs): without the
                    // hint, the locked tag write after the cell's store waited for the line.
                    crate::sync::prefetch(table.key_line(probe.pos));
                }
                // Acquire: pairs with the Release tag writes.
                let tags = group.tags.load(Ordering::Acquire);
                for i in tag::match_tag(tags, tag) {
                    let index = probe.pos * GROUP_SLOTS + i;
                    // Acquire: pairs with the Release CAS that published the entry.
                    let w = Word(group.slots[i].load(Ordering::Acquire));
                    match self.examine(table, index, w, hash, &mut eq, guard) {
                        Examined::NotIt => {}
                        Examined::Found(found) => return self.settled(found, guard),
                        Examined::Moved(next) => {
                            table = next;
                            continue 'tables;
                        }
                    }
                }
                // Slots whose tag is not full, in slot order: really empty, redirected, or
                // written but not yet tagged.
                for i in tag::match_not_full(tags) {
                    let index = probe.pos * GROUP_SLOTS + i;
                    let slot = &group.slots[i];
                    // Acquire: as above.
                    let mut w = Word(slot.load(Ordering::Acquire));
                    // A free slot: the key is not in this table. (A loop: a free slot can change
                    // only into another, EMPTY into COUNTED_EMPTY, or out of being free.)
                    while w.is_empty() || w.0 == COUNTED_EMPTY {
                        let Some(mig) = table.migration() else {
                            // (A counted slot implies a migration: the counter's mark, which
                            // our Acquire load read, came after it saw the migration.)
                            if may_insert
                                && dist > 0
                                && self.resize_for_spill(table, hash, dist, tombstones, guard)
                            {
                                continue 'tables;
                            }
                            if may_insert && !self.may_insert_into(table, guard) {
                                continue 'tables;
                            }
                            return Located::Vacant {
                                table,
                                group,
                                slot: i,
                                word: slot::EMPTY,
                            };
                        };
                        // While the successor is still to be sized, the source takes new keys
                        // (see "Sizing" in `migrate.rs`): into a slot the count has not passed
                        // (its counter will see the entry, or the insert's CAS fails on the
                        // count's mark), or into a counted one by a writer registered with the
                        // count. A write that inserts nothing only learns the key is absent:
                        // it cannot be in a successor that does not exist.
                        if mig.next().is_none() {
                            if may_insert && !counted_ahead && dist + 1 > table.probe_limit() {
                                // Past the probe limit the source is choked (a tombstone
                                // rebuild's is): count ahead, so that few inserts probe this
                                // far and raise the read bound before the count ends; then
                                // probe again (the count may have marked this slot, or sized
                                // the successor).
                                counted_ahead = true;
                                self.count_ahead(table, mig, guard);
                                continue 'tables;
                            }
                            if !may_insert || w.is_empty() || mig.register_late() {
                                if may_insert && dist + 1 > table.probe_limit() {
                                    // As `resize_for_spill` does outside a migration.
                                    table.raise_read_bound(dist + 1);
                                }
                                return Located::Vacant {
                                    table,
                                    group,
                                    slot: i,
                                    word: w.0,
                                };
                            }
                        }
                        match migrate::try_redirect(slot, w) {
                            Ok(()) => {
                                set_tag(table, index, tag::REDIRECT);
                                table = self.sized_next(table, mig, guard);
                                continue 'tables;
                            }
                            Err(actual) => w = actual,
                        }
                    }
                    if w.0 == REDIRECT {
                        // A stop: the key is not in this table (invariant 4).
                        set_tag(table, index, tag::REDIRECT);
                        let mig = table.migration().expect("a redirect implies a migration");
                        table = self.sized_next(table, mig, guard);
                        continue 'tables;
                    }
                    repair_tag(table, index, w);
                    match self.examine(table, index, w, hash, &mut eq, guard) {
                        Examined::NotIt => {}
                        Examined::Found(found) => return self.settled(found, guard),
                        Examined::Moved(next) => {
                            table = next;
                            continue 'tables;
                        }
                    }
                }
                tombstones += tag::count_tombstones(tags);
                probe.advance();
            }
            // Every group probed and not one empty slot: the key is not in this table.
            match table.migration() {
                Some(mig) => table = self.sized_next(table, mig, guard),
                None => {
                    let live = self.len.sum();
                    let mut groups =
                        groups_to_grow_to(table.groups(), live).max(self.floor_groups());
                    if live >= capacity_of(table.slots()) {
                        // Full of live entries, a rebuild to the same size would leave no room
                        // (the largest table's sizes stop at its size): a growth, which past the
                        // largest table panics before anything is installed.
                        groups = grown_groups(table.groups(), groups);
                    }
                    self.start_migration(table, groups, guard);
                }
            }
        }
    }

    /// `found`, made safe for a write to act on. An entry a write finds in the successor while
    /// the root still migrates into it may be a copy whose source slot is not yet MOVED; with
    /// honest keys the write has just moved that slot itself (it met its key's frozen slot in
    /// the source first), but a key whose `Eq` lies can pass its own slot there and match
    /// another key's copy here. Changing such a copy before its source slot is MOVED would let a
    /// stalled helper of that slot place the entry again after the write retired it ("Why the
    /// copy has one place" in `migrate.rs`), so the write finishes that slot's move first.
    #[inline]
    fn settled<'g>(&'g self, found: Located<'g, K, V>, guard: &'g Guard) -> Located<'g, K, V> {
        if let Located::Occupied { table, word, .. } = found {
            let root = self.root(guard);
            if !std::ptr::eq(root, table) {
                if let Some(mig) = root.migration() {
                    if mig.next().is_some_and(|next| std::ptr::eq(next, table)) {
                        self.settle_copy(root, mig, word, guard);
                    }
                }
            }
        }
        found
    }

    /// Looks at a slot word that might hold the key.
    #[inline]
    fn examine<'g>(
        &'g self,
        table: &'g Table<K, V>,
        index: usize,
        w: Word,
        hash: u64,
        eq: &mut impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Examined<'g, K, V>
    where
        K: 'static,
    {
        if w.is_moved() {
            return Examined::NotIt;
        }
        let Some(p) = w.entry_ptr::<K, V>() else {
            return if w.is_vacated() {
                self.examine_vacated(table, index, w, hash, eq, guard)
            } else {
                Examined::NotIt
            };
        };
        // SAFETY: an unmoved entry loaded while pinned: a live one is retired only after being
        // unlinked, and a frozen one is not retired before MOVED (see `migrate.rs`).
        let entry = unsafe { &*p };
        if !entry.matches(hash, &mut *eq) {
            return Examined::NotIt;
        }
        if w.is_frozen() {
            let mig = table
                .migration()
                .expect("a frozen slot implies a migration");
            self.help_move(table, mig, index, guard);
            return Examined::Moved(self.sized_next(table, mig, guard));
        }
        Examined::Found(Located::Occupied {
            table,
            group: table.group(index / GROUP_SLOTS),
            slot: index % GROUP_SLOTS,
            word: w.0,
            entry,
        })
    }

    /// [`RawMap::examine`] for a vacated slot: if it is the key's own slot, where an insert of
    /// the key takes it back, or, if `table` is migrating, moves it first (freezing it, so that
    /// no insert takes it back here) and goes on in the successor, as for a frozen entry.
    #[cold]
    #[inline(never)]
    fn examine_vacated<'g>(
        &'g self,
        table: &'g Table<K, V>,
        index: usize,
        w: Word,
        hash: u64,
        eq: &mut impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Examined<'g, K, V>
    where
        K: 'static,
    {
        debug_assert!(
            keys::cached::<K>(),
            "only tables with key lines vacate slots"
        );
        let (g, i) = (index / GROUP_SLOTS, index % GROUP_SLOTS);
        // Relaxed: the remover saw the slot's key bit with an Acquire load of the tag word (or set
        // it, after storing the cell) before its Release CAS to VACATED, which our Acquire load
        // of the slot word read: the cell's store happens before this load.
        let bits = table.key_line(g).cells[i].load(Ordering::Relaxed);
        // SAFETY: `cached::<K>()`, and a vacated slot's cell holds its key's bits (above).
        if !eq(&unsafe { keys::key::<K>(bits) }) {
            return Examined::NotIt;
        }
        let vacant = || {
            // An insert that takes the slot back past the probe limit of `hash`'s probe raises
            // the read bound as any insert there does, before its CAS: for an honest key the
            // bound covers the slot already (the key's first insert there raised it, along the
            // same hash), but a borrowed form whose `Hash` disagrees with the key's
            // (`get_or_insert_with_ref`, say) reaches the slot along another hash, which the
            // new entry then stores. The search of a copy's source slot by the entry's hash
            // (`migrate::slot_holding`, within the bound) missed the slot, and a stalled helper
            // could then place a retired entry again (found by a review of stop 47;
            // `a_take_back_along_a_lying_hash_raises_the_read_bound`). A lookup that ends here
            // raises it too, harmlessly: only along such a hash is the bound not there already.
            // The distance is found again here, on this cold path, rather than passed down the
            // probe's loop, where the extra argument cost `locate_probe` 2 % more instructions.
            let mut probe = Probe::new(hash, table.group_mask());
            let mut dist = 0;
            while probe.pos != g && dist < table.groups() {
                probe.advance();
                dist += 1;
            }
            if dist + 1 > table.probe_limit() {
                table.raise_read_bound((dist + 1).min(table.groups()));
            }
            Examined::Found(Located::Vacant {
                table,
                group: table.group(g),
                slot: i,
                word: w.0,
            })
        };
        match table.migration() {
            None if !w.is_frozen() => vacant(),
            // The successor is still to be sized: the key takes its slot back in the source, as
            // an insert of a new key takes a free slot (`locate_probe`): a slot the count has
            // not passed as is (its counter sees the entry, or the CAS fails on the mark), a
            // counted one once registered with the count. A plain VACATED slot in a counted
            // chunk held an entry when counted, and holds at most one at any time.
            Some(mig)
                if !w.is_frozen()
                    && mig.next().is_none()
                    && (w.0 == VACATED || mig.register_late()) =>
            {
                vacant()
            }
            mig => {
                let mig = mig.expect("a frozen slot implies a migration");
                self.help_move(table, mig, index, guard);
                Examined::Moved(self.sized_next(table, mig, guard))
            }
        }
    }

    /// Whether a new key may go into `table` now. If `table` is the successor of a migrating
    /// root whose insert budget has run out, finishes that migration first and returns `false`
    /// (the caller probes again: the copies may have taken its slot). Writes keep the moves
    /// ahead of the budget ([`RawMap::pace_moves`]), so that this happens only when a claimer
    /// stalls or many inserts race for the last units.
    #[inline]
    fn may_insert_into(&self, table: &Table<K, V>, guard: &Guard) -> bool {
        let root = self.root(guard);
        if std::ptr::eq(root, table) {
            return true;
        }
        match root.migration() {
            Some(mig)
                if mig.next().is_some_and(|next| std::ptr::eq(next, table))
                    && !mig.take_insert_budget() =>
            {
                self.finish_migration(root, mig, guard);
                false
            }
            _ => true,
        }
    }

    /// Keeps the moves of `table`'s migration ahead of its insert budget, for a write that has
    /// just claimed its chunk. Each write claims one chunk, and each insert of a new key into the
    /// successor takes a unit of the budget; if new keys could use the budget up while chunks
    /// are still unclaimed, the insert that found it run out would move all of those itself
    /// (`finish_migration`). So while the unclaimed chunks outnumber the units left, a write
    /// claims an even share of them, `ceil(chunks / units)` in all, before it probes (claimed
    /// later, the copies could take the slot it found, and its insert would probe again and take
    /// a second unit). The share never grows from one write to the next, so the chunks run out
    /// no later than the budget.
    ///
    /// A growth's budget (half its successor's spare room) is many times its chunks, so this
    /// claims nothing there. A shrink's is not: sized for twice the entries counted in a table
    /// 1/8 full, a shrink of 1Mi keys had 65,536 chunks to move and a budget of about 57,000 new
    /// keys, and the insert that found it run out moved 8,500 chunks at once (10-12 ms; stop 29).
    #[inline]
    fn pace_moves(&self, table: &Table<K, V>, mig: &Migration<K, V>, guard: &Guard) {
        if !PACE_MOVES || mig.next().is_none() {
            return;
        }
        let left = mig.insert_budget_left();
        // Relaxed: the claim only divides work (as in `help_chunk`); a stale value only changes
        // how much this write helps.
        let claimed = mig.claim().load(Ordering::Relaxed);
        let unclaimed = table
            .groups()
            .saturating_sub(claimed)
            .div_ceil(MIGRATE_CHUNK_GROUPS);
        // With the chunk this write claimed on its way in.
        let share = (unclaimed + 1).div_ceil(left.max(1));
        if share > 1 {
            self.help_ahead(table, mig, share - 1, guard);
        }
    }

    /// Claims and moves up to `chunks` more chunks of `table`'s migration, for [`pace_moves`].
    ///
    /// [`pace_moves`]: RawMap::pace_moves
    #[cold]
    #[inline(never)]
    fn help_ahead(&self, table: &Table<K, V>, mig: &Migration<K, V>, chunks: usize, guard: &Guard) {
        for _ in 0..chunks {
            // Relaxed: as in `pace_moves`.
            if mig.claim().load(Ordering::Relaxed) >= table.groups() {
                return;
            }
            self.help_chunk(table, mig, true, guard);
        }
    }

    /// An insert found its first empty slot outside its home group, `dist` groups along its
    /// probe, past `tombstones` tombstones. Starts a resize and returns `true` if
    /// - the table holds `MAX_LOAD` of its slots: it grows (to twice the live entries' slots),
    ///   or, for a large successor still being zeroed, this insert zeroes a page of it and goes
    ///   on into the table (`false`; see "Preparing a growth" in `migrate.rs`);
    /// - or the probe ran past the probe limit and `REBUILD_DEAD` of it (an eighth) was dead
    ///   slots: a rebuild, sized for the live entries (the same size, smaller, or larger when
    ///   more than half the slots are live).
    ///
    /// Otherwise returns `false`; past the probe limit (a poorly spread hash, not a full table)
    /// it first raises the table's read bound so lookups probe as far.
    ///
    /// The load is checked here, on a spill, rather than on every insert: summing the length
    /// counter reads every stripe, and below the maximum load most inserts land in their home
    /// group. Until 2026-12-01 the load was checked only past the probe limit, so a table grew
    /// once some probe got long, at 82-86 % full and at a point that varied with the keys; the
    /// growth now starts at a known load, and a table runs at most about 3/4 full.
    #[cold]
    #[inline(never)]
    fn resize_for_spill(
        &self,
        table: &Table<K, V>,
        hash: u64,
        dist: usize,
        mut tombstones: usize,
        guard: &Guard,
    ) -> bool
    where
        K: 'static,
    {
        let live = self.len.sum();
        if live * MAX_LOAD.1 >= table.slots() * MAX_LOAD.0 {
            // A large growth first zeroes its successor a page a spilling insert, while the source
            // takes the inserts (see "Preparing a growth" in `migrate.rs`).
            return self.grow(
                table,
                groups_to_grow_to(table.groups(), live).max(self.floor_groups()),
                live,
                dist,
                guard,
            );
        }
        if dist < table.probe_limit() {
            return false;
        }
        if keys::cached::<K>() {
            // Vacated slots keep their tags, so the caller's count of tombstone tags missed them:
            // count the dead slots of the probe from their words.
            tombstones = dead_slots(table, hash, dist + 1);
        }
        let probed = (dist + 1) * GROUP_SLOTS;
        if tombstones * REBUILD_DEAD.1 >= probed * REBUILD_DEAD.0 {
            self.start_migration(table, self.groups_to_resize_to(live), guard);
            return true;
        }
        table.raise_read_bound(dist + 1);
        false
    }

    /// Stores `new` where `located` says, if the slot still holds what `locate` saw.
    ///
    /// On success returns the replaced entry (now retired, still readable under `guard`) and the
    /// stored one; on failure hands `new` back so the caller can locate again.
    ///
    /// Always inlined: out of line, passing `located` and the result through memory cost about
    /// 40 instructions a hot-key update (callgrind `hotpath hot-key`, 334.1 -> 294.4 M; a plain
    /// `#[inline]` was not taken at these call sites).
    #[allow(clippy::type_complexity)] // The pair is named at each call site.
    #[inline(always)]
    pub(crate) fn try_store<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        new: Box<Entry<K, V>>,
        guard: &'g Guard,
    ) -> Result<(Option<&'g Entry<K, V>>, &'g Entry<K, V>), Box<Entry<K, V>>>
    where
        K: 'static,
    {
        // SAFETY: `recycle_run` drops each entry's key and value: a replaced entry owns both.
        unsafe { self.try_store_freeing(located, new, pool::recycle_run::<K, V>, guard) }
    }

    /// [`RawMap::try_store`], retiring a replaced entry to `free`.
    ///
    /// # Safety
    /// `free` frees a run of entries that came from `Box::into_raw` and drops what each replaced
    /// entry owns once its replacement is published, once; it may run on any thread, at any
    /// later time.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    unsafe fn try_store_freeing<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        new: Box<Entry<K, V>>,
        free: reclaim::FreeRun,
        guard: &'g Guard,
    ) -> Result<(Option<&'g Entry<K, V>>, &'g Entry<K, V>), Box<Entry<K, V>>>
    where
        K: 'static,
    {
        let hash = new.hash;
        // SAFETY: `cached::<K>()`.
        let key_bits = keys::cached::<K>().then(|| unsafe { keys::bits(&new.key) });
        let new_word = new.into_word();
        let (group, i, expected) = match *located {
            Located::Occupied {
                group, slot, word, ..
            } => (group, slot, word),
            Located::Vacant {
                group, slot, word, ..
            } => (group, slot, word),
        };
        // AcqRel: Release publishes the new entry. Acquire is more than needed: the word was
        // acquired by the load that located it, and other threads' reads of the old entry are
        // ordered before its free by the epoch. Failure needs nothing: we only retry, and the
        // retry's probe reloads the slot with Acquire.
        match located_slot(group, i).compare_exchange(
            expected,
            new_word,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // SAFETY: `new_word` is the entry we just published; it stays valid while pinned.
                let stored = unsafe { &*(new_word as *const Entry<K, V>) };
                match located.entry() {
                    Some(old) => {
                        // `free` may run on another thread after the map is gone: the map's
                        // operations require `K, V: Send + 'static`.
                        // SAFETY: our CAS unlinked the old entry (only its winner retires it), it
                        // came from `Box::into_raw`, and `free` suits it (caller's promise).
                        unsafe { reclaim::retire(guard, entry_ptr::<K, V>(expected), free) };
                        Ok((Some(old), stored))
                    }
                    None => {
                        // Tests park a writer here, its entry published and not yet tagged.
                        migrate::pause_point("untagged");
                        let tag = tag::full_tag(hash);
                        match (key_bits, located) {
                            // The key's own slot taken back: its tag, key bit and cell are in
                            // place since before it was vacated (`try_remove`).
                            _ if Word(expected).is_vacated() => {}
                            (Some(bits), Located::Vacant { table, .. }) => {
                                let pos = table.group_index(group);
                                // Relaxed: published by the Release `fetch_or` below, whose key
                                // bit says the cell is written (`keys.rs`). Only we write it: our
                                // CAS took the slot out of EMPTY.
                                table.key_line(pos).cells[i].store(bits, Ordering::Relaxed);
                                // Release: pairs with the Acquire tag loads of lookups, which
                                // then find the entry by its tag and the key in its cell.
                                group.tags.fetch_or(
                                    tag::tag_bits(i, tag) | tag::key_bit(i),
                                    Ordering::Release,
                                );
                            }
                            _ => set_group_tag(group, i, tag),
                        }
                        self.len.increment();
                        Ok((None, stored))
                    }
                }
            }
            // SAFETY: the CAS failed, so `new_word` was never shared and is still ours.
            Err(_) => Err(unsafe { Box::from_raw(new_word as *mut Entry<K, V>) }),
        }
    }

    /// Replaces the value of the entry `located` found, keeping its key, if the slot still holds
    /// that entry; on failure hands back that entry and `value`.
    ///
    /// The new entry's key is the stored one: cloned, or, for the key types of
    /// [`key_hands_on`], the very same bytes. Then the old entry is retired without its key
    /// (`pool::recycle_value_run`), and exactly one entry owns the key at any time: the old one
    /// until our CAS succeeds, the new one after; if the CAS fails, our copy is forgotten and
    /// the old entry still owns the key, whatever became of it. A reader may still read the
    /// key through the old entry after the CAS: the bytes it reads are the old entry's (freed
    /// only after the reader unpins), and what they point to belongs to the new entry, which is
    /// unlinked, and so freed, only after the old one was. Nothing can change those bytes or
    /// what they point to meanwhile: the map hands out only `&K`, and these types let nothing
    /// be changed through a shared reference (the reason for the list).
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub(crate) fn try_replace_value<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        value: V,
        guard: &'g Guard,
    ) -> Result<&'g Entry<K, V>, (Option<&'g Entry<K, V>>, V)>
    where
        K: Clone + 'static,
    {
        let Some(entry) = located.entry() else {
            return Err((None, value));
        };
        let hand_on = key_hands_on::<K>();
        let key = if hand_on {
            // The copy is either published as the key's new owner or forgotten below, never
            // dropped unless published; `key_hands_on` admits only types for which two copies,
            // one owning and one only read, are sound (see above).
            // SAFETY: a bitwise copy of a key we may read (`guard` protects the entry).
            unsafe { std::ptr::read(&entry.key) }
        } else {
            // A user's `Clone` may panic: nothing has changed yet, and `value` is dropped.
            entry.key.clone()
        };
        let new = Entry::boxed(entry.hash, key, value);
        // The old entry goes without its key if the key was handed on: it belongs to the entry
        // we publish.
        let free = if hand_on {
            pool::recycle_value_run::<K, V>
        } else {
            pool::recycle_run::<K, V>
        };
        // SAFETY: `free` drops what the old entry owns once `new` replaces it: its value, and
        // its key unless the key was handed on to `new`.
        match unsafe { self.try_store_freeing(located, new, free, guard) } {
            Ok((_, stored)) => Ok(stored),
            Err(new) => {
                let Entry { key, value, .. } = pool::unbox(new);
                if hand_on {
                    // The old entry still owns the key; ours was a copy.
                    std::mem::forget(key);
                } else {
                    drop(key);
                }
                Err((Some(entry), value))
            }
        }
    }

    /// [`RawMap::try_store`] for an insert whose key may already be stored: if `located` found
    /// the key, the entry published takes over the stored key (a bitwise copy, for the key types
    /// of [`key_hands_on`] only) and the insert's own key is dropped at once, never having been
    /// shared; the old entry is retired without its key. So the map keeps the key it had, as
    /// `std`'s maps do, and an insert over a present `String` key frees the caller's key while
    /// its allocation is still hot instead of a batch later (on failure `new` comes back with
    /// its own key). Why two owners of the key's bytes are sound: [`RawMap::try_replace_value`].
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub(crate) fn try_store_keeping_key<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        mut new: Box<Entry<K, V>>,
        guard: &'g Guard,
    ) -> Result<(Option<&'g Entry<K, V>>, &'g Entry<K, V>), Box<Entry<K, V>>>
    where
        K: 'static,
    {
        let Some(stored) = located.entry().filter(|_| key_hands_on::<K>()) else {
            return self.try_store(located, new, guard);
        };
        // The copy is either published as the key's new owner or forgotten below, never dropped
        // unless published, and `key_hands_on` admits only types for which two copies, one
        // owning and one only read, are sound.
        // SAFETY: a bitwise copy of a key we may read (`guard` protects the entry).
        let copy = unsafe { std::ptr::read(&stored.key) };
        let own = std::mem::replace(&mut new.key, copy);
        // SAFETY: `recycle_value_run` drops the old entry's value and not its key, which now
        // belongs to `new`.
        match unsafe {
            self.try_store_freeing(located, new, pool::recycle_value_run::<K, V>, guard)
        } {
            Ok(pair) => {
                drop(own);
                Ok(pair)
            }
            Err(mut back) => {
                // The old entry still owns the stored key; ours was a copy.
                std::mem::forget(std::mem::replace(&mut back.key, own));
                Err(back)
            }
        }
    }

    /// Removes the entry `located` found, if the slot still holds it. Returns the removed entry
    /// (retired, readable under `guard`), or `None` if the slot changed.
    ///
    /// In a table with key lines the slot is left VACATED, with its tag and key cell: the key's
    /// own slot, which an insert of that key takes back (`slot.rs`). Elsewhere it becomes a
    /// tombstone.
    ///
    /// Always inlined: with a plain `#[inline]` the compiler left it a call in every removal
    /// (callgrind, `hotpath exchange`: 235.2 -> 230.1 M instructions inlined).
    #[inline(always)]
    pub(crate) fn try_remove<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>>
    where
        K: 'static,
    {
        // SAFETY: with `retire` the contract asks nothing more of the caller.
        let p = unsafe { self.unlink(located, true, guard) }?;
        // SAFETY: retired under `guard`, the entry stays allocated while the guard (`'g`) lives.
        Some(unsafe { &*p })
    }

    /// [`RawMap::try_remove`]'s CAS and its bookkeeping: unlinks the located entry and returns
    /// it; `retire` retires it too.
    ///
    /// # Safety
    /// Without `retire`, the caller takes the entry over, and must have exclusive access to the
    /// map: with no reader that could have seen the entry, nothing else frees or reads it.
    #[inline(always)]
    unsafe fn unlink<'g>(
        &'g self,
        located: &Located<'g, K, V>,
        retire: bool,
        guard: &'g Guard,
    ) -> Option<*mut Entry<K, V>>
    where
        K: 'static,
    {
        let Located::Occupied {
            table,
            group,
            slot,
            word,
            entry,
        } = *located
        else {
            return None;
        };
        let vacate = keys::cached::<K>();
        if vacate {
            table.note_vacated();
            // A vacated slot is found by its tag and cell alone (its entry is gone), so both must
            // be in place before the CAS: an insert of the key that passed the slot unrecognised
            // would take a second slot, and a later insert could take this one back beside it.
            // Acquire: pairs with the Release `fetch_or` that set the key bit after the cell, so
            // that the cell's store happens before our CAS, and so before any reader that sees
            // VACATED reads the cell (`examine_vacated`).
            if !tag::has_key(group.tags.load(Ordering::Acquire), slot) {
                publish_key(table, group, slot, entry);
            }
        }
        let gone = if vacate { VACATED } else { TOMB };
        located_slot(group, slot)
            // AcqRel: Release orders the tombstone (or VACATED) after our reads of the entry and
            // the key cell's store; Acquire is more than needed (the epoch orders other threads'
            // reads before the free). Failure: we only retry, reloading with Acquire.
            .compare_exchange(word, gone, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        if !vacate {
            set_group_tag(group, slot, tag::TOMBSTONE);
        }
        self.len.decrement();
        let p = entry_ptr::<K, V>(word);
        if retire {
            // SAFETY: our CAS unlinked the entry, it came from `Box::into_raw`, and only the CAS
            // winner retires it.
            unsafe { retire_entry(guard, p) };
        }
        // One removal in 64, by the index of the group it removed from (not by the entry's hash,
        // which is on the entry's second line half the time: `Entry`; nor by the group's address,
        // which would differ from run to run, and loom needs each run of a model to take the
        // same branches under the same schedule).
        if table.group_index(group) & 63 == 0 {
            self.shrink_if_sparse(table, guard);
        }
        Some(p)
    }

    /// Gives memory back when removals left the root table mostly empty (checked on a sample of
    /// removals, by group, to keep the length sum off the common path).
    ///
    /// Only starts the shrink: the operations after this one count and move it a chunk each,
    /// as they do a growth (lookups too, once no writer is left to). Until stop 29 the removal
    /// that found the table sparse finished the whole migration itself, visiting every slot of
    /// the source: one removal took 62-89 ms emptying a map of 1Mi `u64` keys, 256-327 ms at
    /// 4Mi (`BENCHMARKS.md`, table of changes).
    #[cold]
    #[inline(never)]
    fn shrink_if_sparse(&self, table: &Table<K, V>, guard: &Guard)
    where
        K: 'static,
    {
        if table.groups() <= self.floor_groups() || !std::ptr::eq(table, self.root(guard)) {
            return;
        }
        let live = self.len.sum();
        if live * 8 > table.slots() {
            return;
        }
        let groups = self.groups_to_resize_to(live);
        if groups < table.groups() {
            // Tests park a shrink here, decided before a `reserve` raises the room it keeps.
            migrate::pause_point("shrinking");
            self.start_migration(table, groups, guard);
        }
    }

    /// Migrates `table` into a table of `groups` groups and finishes the migration here.
    fn resize_now(&self, table: &Table<K, V>, groups: usize, guard: &Guard)
    where
        K: 'static,
    {
        self.start_migration(table, groups, guard);
        if let Some(mig) = table.migration() {
            self.finish_migration(table, mig, guard);
        }
    }

    /// Makes room for `additional` more entries, and keeps it: the map's own resizes go no lower
    /// until `shrink_to_fit`.
    ///
    /// It loops because another thread may start a resize of its own between the settle and
    /// ours, which `resize_now` then finishes instead of ours (until stop 48 `reserve` returned
    /// then, with the room of that resize: a growth to twice the old table, or a shrink; found
    /// by a review). It returns once a settled table has the room and, after the room is raised
    /// and fenced, still shows no migration: every resize sized from then on keeps the room
    /// (`size_next`), and each extra round means another thread started a resize, which the
    /// next round's settle finishes.
    pub(crate) fn reserve(&self, additional: usize, guard: &Guard)
    where
        K: 'static,
    {
        // Read once: recounted each round, inserts racing the call could keep it growing.
        let wanted = self.len.sum().saturating_add(additional);
        // Panics (before anything is done, a pending resize finished included) if the table
        // would not fit in the address space.
        let groups = groups_for_capacity(wanted);
        loop {
            let table = self.settle(guard);
            // Tests park a reserve here, for another thread to start a resize before ours.
            migrate::pause_point("reserving");
            // Relaxed, with the fence below. Not for `reserve(0)`, which asks for no room
            // (`std`'s does nothing), and would otherwise keep room for the entries it found.
            if additional > 0 {
                self.reserved_groups.fetch_max(groups, Ordering::Relaxed);
            }
            if capacity_of(table.slots()) >= wanted {
                // A shrink (or a rebuild) may have been installed on `table` since the settle,
                // decided before we raised the room. Its successor is sized later, after a
                // `SeqCst` fence that pairs with this one (`size_next`): either that sizing reads
                // our room, or this load sees its migration (the two fences are ordered one way
                // or the other), and the loop settles it and checks the room again. A shrink of
                // a later table is covered too: it can start only once that table is the root,
                // after `table`'s own migration was installed and finished, and this load would
                // see that installation.
                // Until stop 49 `reserve` could return here and leave such a shrink to take the
                // table below the room (a race a note of stop 48 left as found).
                hint_fence(Ordering::SeqCst);
                if table.migration().is_none() {
                    return;
                }
                continue;
            }
            self.resize_now(table, groups, guard);
        }
    }

    /// Shrinks the root to the smallest table that holds the current entries, or (`floor`) to
    /// no smaller than the map's floor.
    pub(crate) fn shrink_to_fit(&self, floor: bool, guard: &Guard)
    where
        K: 'static,
    {
        let table = self.settle(guard);
        let mut groups = groups_for_capacity(self.len.sum());
        if floor {
            groups = groups.max(self.floor_groups());
        } else {
            // The room `reserve` kept is given back too; the floor the map was made with stays.
            // Relaxed: see the field.
            self.reserved_groups.store(0, Ordering::Relaxed);
        }
        if groups < table.groups() {
            self.resize_now(table, groups, guard);
        }
    }

    /// Finishes any pending migration and returns a root with none (at the moment it is read).
    fn settle<'g>(&'g self, guard: &'g Guard) -> &'g Table<K, V> {
        loop {
            let root = self.root(guard);
            match root.migration() {
                None => return root,
                Some(mig) => self.finish_migration(root, mig, guard),
            }
        }
    }

    /// Iterates over the entries; see [`RawIter`].
    pub(crate) fn iter<'g>(&'g self, guard: &'g Guard) -> RawIter<'g, K, V> {
        RawIter::new(self.settle(guard))
    }

    /// Calls `f` once with every entry the map owns.
    ///
    /// # Safety
    /// Needs exclusive access (no operation in flight), so that every slot is in a settled state.
    unsafe fn for_each_owned(&mut self, hint: bool, mut f: impl FnMut(*mut Entry<K, V>)) {
        let (root, next) = owning_tables(self);
        for table in std::iter::once(root).chain(next) {
            for group in 0..table.groups() {
                // Without the hints, dropping a map of 1M `u64` entries in table order took about
                // 200 ns an entry.
                if hint {
                    prefetch_ahead_exclusive(table, group, true);
                }
                let group_slots = &table.group(group).slots;
                for slot in group_slots {
                    // Relaxed: exclusive access.
                    let w = Word(slot.load(Ordering::Relaxed));
                    if let Some(p) = owned_entry::<K, V>(table, w) {
                        f(p);
                    }
                }
            }
        }
    }
}

/// The tables that may own entries, under exclusive access: the root, and its successor if a
/// migration is pending.
#[allow(clippy::type_complexity)]
fn owning_tables<K, V>(map: &mut RawMap<K, V>) -> (&Table<K, V>, Option<&Table<K, V>>) {
    // Relaxed: exclusive access.
    let root_ptr = map.root.load(Ordering::Relaxed);
    // SAFETY: the root is valid while we have `&mut` access to the map.
    let root = unsafe { &*root_ptr };
    (root, root.migration().and_then(|m| m.next()))
}

/// The entry that a slot of `table` owns, given its word `w`, under exclusive access (no
/// operation in flight).
///
/// A root slot that is MOVED holds no entry (its copy, in the successor, is the successor's). A
/// frozen one whose copy was placed holds an entry the successor owns too. (Every helper finishes
/// the move of a slot it froze before it returns, so a frozen, unmoved slot is unreachable here;
/// if its copy was placed anyway, the successor owns it. A raw test builds both states by
/// unwinding a helper out of its move: `a_move_left_mid_slot_leaves_each_entry_owned_once`.) A
/// successor's slot owns the entry it holds.
fn owned_entry<K, V>(table: &Table<K, V>, w: Word) -> Option<*mut Entry<K, V>> {
    let p = w.entry_ptr::<K, V>()?;
    if w.is_frozen() {
        let mig = table
            .migration()
            .expect("a frozen slot implies a migration");
        if let Some(next) = mig.next() {
            // SAFETY: `p` is a frozen, unmoved slot's entry under exclusive access: not retired
            // (see `help_move_at`), so still allocated.
            let hash = unsafe { (*p).hash };
            if migrate::holds_copy(next, p as usize, hash) {
                return None;
            }
        }
    }
    Some(p)
}

/// Takes the entries out of a map it owns, one at a time, in slot order.
///
/// Each slot it passes is emptied, whether it gave an entry or not, so the map's `Drop` (when
/// the iterator is dropped) frees exactly the entries not yet taken. A root slot is passed
/// before any of the successor's: `owned_entry` of an unpassed root slot may look for its copy
/// in the successor, whose slots must still hold what the migration left there.
pub(crate) struct RawIntoIter<K, V> {
    map: RawMap<K, V>,
    /// Whether `group` counts the successor's groups (else the root's).
    in_next: bool,
    /// The group being passed, and the next slot in it.
    group: usize,
    slot: usize,
    /// Entries not yet taken (the length counter is exact with no operation in flight).
    remaining: usize,
    /// The blocks of the entries taken, their contents moved out, kept to be freed together in
    /// address order once the iteration ends or the iterator drops, as a large map's drop frees
    /// its entries (see `RawMap`'s `Drop` for why). Freed as they were taken, one at a time and
    /// in table order, glibc's merge of them ran at random during a consumer's next large
    /// allocations: most of `into_iter().collect()`'s time at 4M `u64` entries (`BENCHMARKS.md`,
    /// table of changes). No capacity (each block freed as its entry is taken) for a map of
    /// up to [`ORDERED_FREE_MIN`] entries or where the allocator refused the list.
    spent: Vec<*mut Entry<K, V>>,
}

impl<K, V> RawIntoIter<K, V> {
    pub(crate) fn new(map: RawMap<K, V>) -> Self {
        let remaining = map.len.sum();
        RawIntoIter {
            map,
            in_next: false,
            group: 0,
            slot: 0,
            remaining,
            spent: ordered_free_list::<K, V>(remaining),
        }
    }

    /// Frees the blocks of the entries taken so far, in address order.
    fn free_spent(&mut self) {
        let mut spent = std::mem::take(&mut self.spent);
        spent.sort_unstable();
        for p in spent {
            // SAFETY: `p` came from `Box::into_raw` of a `Box<Entry<K, V>>` and is listed once
            // (`next` lists each entry it takes, once); `next` moved its contents out, so it is
            // freed as a `MaybeUninit`, which drops nothing, with the same layout.
            drop(unsafe { Box::from_raw(p.cast::<std::mem::MaybeUninit<Entry<K, V>>>()) });
        }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }
}

impl<K, V> Iterator for RawIntoIter<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        let (root, next) = owning_tables(&mut self.map);
        loop {
            let table = if self.in_next { next? } else { root };
            while self.group < table.groups() {
                let group = table.group(self.group);
                if self.slot == 0 {
                    prefetch_ahead_exclusive(table, self.group, true);
                }
                while self.slot < GROUP_SLOTS {
                    let i = self.slot;
                    self.slot += 1;
                    let slot = &group.slots[i];
                    // Relaxed (both): exclusive access.
                    let w = Word(slot.load(Ordering::Relaxed));
                    if w.is_empty() {
                        continue;
                    }
                    slot.store(slot::EMPTY, Ordering::Relaxed);
                    if let Some(p) = owned_entry::<K, V>(table, w) {
                        self.remaining = self.remaining.saturating_sub(1);
                        // The map owned the entry (`owned_entry`, exclusive access), it came
                        // from `Box::into_raw`, and its slot is now empty: neither this iterator
                        // nor the map's `Drop` can reach it again.
                        let entry = if self.spent.len() < self.spent.capacity() {
                            // SAFETY: valid and unreachable (above); read once, here, and the
                            // block, listed, is freed by `free_spent` without a drop.
                            let entry = unsafe { p.read() };
                            // Within the capacity reserved: no reallocation, which could fail.
                            self.spent.push(p);
                            entry
                        } else {
                            // SAFETY: a `Box`'s block, unreachable (above), freed once, here.
                            *unsafe { Box::from_raw(p) }
                        };
                        return Some((entry.key, entry.value));
                    }
                }
                self.group += 1;
                self.slot = 0;
            }
            if self.in_next || next.is_none() {
                debug_assert_eq!(
                    self.remaining, 0,
                    "the length counter disagreed with the slots"
                );
                self.remaining = 0;
                self.free_spent();
                return None;
            }
            self.in_next = true;
            self.group = 0;
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> Drop for RawIntoIter<K, V> {
    /// Frees the blocks of the entries taken; the map's own `Drop` then drops the entries not
    /// taken, sized by the count set here (the entries taken left without a `decrement`).
    fn drop(&mut self) {
        self.free_spent();
        self.map.len.set_exclusive(self.remaining);
    }
}

impl<K, V> Drop for RawMap<K, V> {
    /// Drops every entry the map owns, then frees its tables. The entries' blocks go to this
    /// thread's entry cache, as collected retirements' do, so that the next entries this thread
    /// boxes (a next map's, for a program that makes a map per task) take them instead of
    /// asking the allocator. A key's or value's drop that panics does not stop the others, nor
    /// the tables' freeing; the first such panic is resumed at the end, as `Vec` does.
    fn drop(&mut self) {
        let mut cached = reclaim::Unshared::new(pool::recycle_run::<K, V>);
        let mut freed = reclaim::Unshared::new(drop_boxes::<K, V>);
        let live = self.len.sum();
        let mut ordered = ordered_free_list::<K, V>(live);
        // The walk's hints fetch each entry ahead of its free; entries put in order are not
        // touched until they are freed, after the sort.
        let hint = ordered.capacity() == 0;
        let mut seen = 0;
        let mut owned = 0usize;
        // SAFETY: `&mut self`: every entry the map owns is reached once (`for_each_owned`), came
        // from `Box::into_raw` of a `Box<Entry<K, V>>` (what both free functions free), and
        // nothing else can reach it; `push` catches a drop's panic, so the walk is not cut short.
        unsafe {
            self.for_each_owned(hint, |p| {
                owned += 1;
                // Only the first entries go to the cache: as many as a class keeps to begin
                // with. A large map's others would overflow it (its cap grows by what the thread
                // allocated, up to 1 MiB of blocks), to be freed on the thread's exit rather than
                // now, and few of them would be reused (`hotpath grow`: 8 % more instructions).
                if seen < pool::FIRST_CAP {
                    cached.push(p.cast());
                    seen += 1;
                } else if ordered.len() < ordered.capacity() {
                    // Within the capacity reserved: no reallocation, which could fail here.
                    ordered.push(p);
                } else {
                    free_owned(&mut freed, p);
                }
            })
        };
        // Address order: glibc's fast bins then hold the blocks in that order, and the merge of
        // them that its next large request runs (`malloc_consolidate`) walks memory in order
        // instead of at random. Freed in table order, a map of 4M `u64` entries took 116-128 ms
        // to drop and left the process's next allocation of 16 KiB 612-649 ms of merging; in
        // order, 136-168 ms and at most 25 ms (`BENCHMARKS.md`, table of changes).
        ordered.sort_unstable();
        for p in ordered {
            // SAFETY: as above: each pointer was gathered once by the walk, and is freed once.
            unsafe { free_owned(&mut freed, p) };
        }
        // Both finish, whichever panicked: the first panic is the one resumed.
        let (first, second) = (cached.finish(), freed.finish());
        let panic = first.or(second);
        // Under `&mut` the count is exact: every write counts its entry right after its CAS,
        // and the owning iterators set it to what they left (`Counter::set_exclusive`). A
        // difference is a lost count (a wrong `len()`, and a wrongly sized drop list here).
        // Not when a drop panicked: a second panic in `drop` would abort.
        debug_assert!(
            panic.is_some() || owned == live,
            "lockfree-map: the map owned {owned} entries and counted {live}"
        );
        // Relaxed: exclusive access.
        let root = self.root.load(Ordering::Relaxed);
        // SAFETY: the map is being dropped; nobody else can reach its tables.
        unsafe { free_tables(root) };
        if let Some(payload) = panic {
            // Not while the thread unwinds already (the map dropped as another panic passes, a
            // consumer's in `into_par_iter`, say): a second panic out of a drop then aborts the
            // process. Everything is freed; the payload's message was printed when it was raised.
            if std::thread::panicking() {
                crate::reclaim::drop_payload(payload);
            } else {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

/// Where a map's drop gathers the entries it frees in address order: empty (no capacity) for a
/// map of fewer than [`ORDERED_FREE_MIN`] entries past the entry cache's share, or where the
/// allocator cannot spare the list (a word an entry); the drop then frees in table order.
fn ordered_free_list<K, V>(live: usize) -> Vec<*mut Entry<K, V>> {
    let mut list = Vec::new();
    let wanted = live.saturating_sub(pool::FIRST_CAP);
    if wanted > ORDERED_FREE_MIN {
        // The count is exact under `&mut`; were it short, the walk frees the rest in table order.
        let _ = list.try_reserve_exact(wanted);
    }
    list
}

/// Frees one entry the map owns as it drops: straight to the allocator when nothing in it has
/// a drop (nothing can panic), otherwise through `freed`, which catches a drop's panic.
///
/// # Safety
/// As for [`reclaim::Unshared::push`]: `p` came from `Box::into_raw` of a `Box<Entry<K, V>>`,
/// nothing else can reach it, and it is passed once.
#[inline]
unsafe fn free_owned<K, V>(freed: &mut reclaim::Unshared, p: *mut Entry<K, V>) {
    if std::mem::needs_drop::<Entry<K, V>>() {
        // SAFETY: forwarded from the caller; `drop_boxes` frees `Box<Entry<K, V>>`s.
        unsafe { freed.push(p.cast()) };
    } else {
        // SAFETY: forwarded from the caller.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// `group.slots[i]` without the bounds check, which the compiler cannot drop where `i` comes
/// from elsewhere (a [`Located`]'s probe, an iteration's record): 2 instructions a write and an
/// entry visited (reviews of the hot paths, stop 51).
///
/// # Safety
/// `i < GROUP_SLOTS`.
#[inline(always)]
unsafe fn slot_at(group: &Group, i: usize) -> &AtomicUsize {
    debug_assert!(i < GROUP_SLOTS, "slot {i} of a {GROUP_SLOTS}-slot group");
    // SAFETY: `i < GROUP_SLOTS`, the array's length (the caller's promise).
    unsafe { group.slots.get_unchecked(i) }
}

/// `i < GROUP_SLOTS` for the slot of a `Located`: every `Located` is built with either the index
/// at which it has just loaded `group.slots[i]` through a bounds-checked index
/// (`vacant_at_home`, `locate`, `locate_probe`) or `index % GROUP_SLOTS` (`examine`,
/// `examine_vacated`), and a `Located`'s fields are never changed after.
#[inline(always)]
fn located_slot(group: &Group, i: usize) -> &AtomicUsize {
    // SAFETY: `i < GROUP_SLOTS`, as above.
    unsafe { slot_at(group, i) }
}

/// The entry pointer in a LIVE slot word, as stored (with the provenance `Box::into_raw` exposed),
/// so that freeing through it is allowed; a pointer derived from `&Entry` may not free it.
///
/// A LIVE word is the entry's address and nothing else (no state bit: `slot.rs`), and both
/// callers hold the word of an [`Located::Occupied`] that their CAS just replaced, so the word is
/// the pointer. Decoding it (`Word::entry_ptr`'s state-bit and null tests, and the `expect`) cost
/// 4 instructions and 2 branches a replacing write or removal (a review of the hot paths, stop
/// 51); it is a debug assertion now.
#[inline]
fn entry_ptr<K, V>(word: usize) -> *mut Entry<K, V> {
    debug_assert_eq!(
        Word(word).entry_ptr::<K, V>(),
        Some(word as *mut Entry<K, V>),
        "a LIVE slot word is its entry's address"
    );
    word as *mut Entry<K, V>
}

/// Frees a run of boxed entries to the allocator (a `reclaim::FreeRun`), dropping each key and
/// value.
///
/// # Safety
/// Every pointer of `run` came from `Box::into_raw` of a `Box<Entry<K, V>>`, and nothing else
/// uses or frees it.
unsafe fn drop_boxes<K, V>(run: reclaim::Run<'_>) {
    // SAFETY: forwarded from the caller; each box is dropped once (`Run::each`).
    run.each(|p: *mut Entry<K, V>| unsafe { drop(Box::from_raw(p)) });
}

/// Retires an unlinked entry; its block goes to the collecting thread's entry cache.
///
/// # Safety
/// As for [`reclaim::retire`]: `p` came from `Box::into_raw`, was unlinked by the caller's CAS,
/// and is retired once.
#[inline]
unsafe fn retire_entry<K, V>(guard: &Guard, p: *mut Entry<K, V>) {
    // SAFETY: forwarded from the caller; `recycle_run` takes a `Box`'s pointer once. It may run on
    // another thread after the map is gone: the map's operations require `K, V: Send + 'static`.
    unsafe { reclaim::retire(guard, p, pool::recycle_run::<K, V>) };
}

/// Whether a value update hands the stored key on to the new entry by a bitwise copy instead
/// of a clone (`RawMap::try_replace_value`). Folds to a constant for each type.
///
/// Only for types whose bytes nothing can change through a shared reference (no `Cell`,
/// `RefCell`, lock or atomic inside: a reader could otherwise take a resource out through the
/// old entry's `&K` and leave it in the copy too, to be dropped twice; `Freeze`, which says so,
/// is unstable) and that carry no uniqueness claim a second copy would break (`Box` does, for
/// Miri's aliasing model). These are the owned key types that allocate, where the clone and its
/// later free are most of an update's cost; other keys are cloned (`Copy` ones for free).
#[inline(always)]
pub(crate) fn key_hands_on<K: 'static>() -> bool {
    use std::any::TypeId;
    let k = TypeId::of::<K>();
    k == TypeId::of::<String>()
        || k == TypeId::of::<Vec<u8>>()
        || k == TypeId::of::<std::sync::Arc<str>>()
        || k == TypeId::of::<std::sync::Arc<[u8]>>()
}

/// Frees a root table and its successor, if any (not the entries).
///
/// # Safety
/// Exclusive access to the chain; its entries have been dealt with.
unsafe fn free_tables<K, V>(root: *mut Table<K, V>) {
    // SAFETY: the caller has exclusive access; both tables came from `Box::into_raw`.
    unsafe {
        if let Some(mig) = (*root).migration() {
            let next = mig.next_ptr();
            if !next.is_null() {
                drop(Box::from_raw(next));
            }
        }
        drop(Box::from_raw(root));
    }
}

/// Iterates over a map's entries, following moved slots to their copies.
///
/// It starts from a root with no migration in progress (finishing one if needed), so every key
/// present at that moment has one slot in that table, with a full tag (an insert writes its tag
/// before it returns). It records which slots have a full tag, one bit a slot, then visits only
/// those slots; one that has moved since is followed, through each migration's decided
/// destinations, to the key's slot in the newest table.
///
/// Hence a key present for the whole iteration is yielded exactly once, with its value when its
/// slot is visited. No key is yielded twice: a key removed and inserted again lands in a slot that
/// was empty at the start (slots never return to empty), or in its own vacated slot (integer
/// keys: `slot.rs`), which is not recorded (its word is read beside the tag), or in a newer
/// table, where no recorded slot leads. Keys inserted during the iteration are not yielded; keys removed during it may be.
pub(crate) struct RawIter<'g, K, V, F = Box<[u8]>> {
    table: &'g Table<K, V>,
    /// Bit `i` of byte `g`: slot `i` of group `g` had a full tag when the iteration started.
    /// Owned by a sequential iteration, borrowed from the snapshot by a parallel one's workers.
    started_full: F,
    /// The next group to look at.
    next_group: usize,
    /// One past the last group to visit: all of them, or a parallel worker's range.
    end: usize,
    /// The group whose slots `pending` lists, and that group (found once a group, not once an
    /// entry: a `for` loop's `next`).
    group: usize,
    current: &'g Group,
    /// Recorded slots of `group` not yet visited.
    pending: u8,
}

impl<'g, K, V> RawIter<'g, K, V> {
    fn new(table: &'g Table<K, V>) -> Self {
        // Acquire: pairs with the Release tag writes.
        let full = |group: &Group| tag::match_full(group.tags.load(Ordering::Acquire)).slot_bits();
        // Over the array, not by index: each index's group was found again, the mask and base
        // reloaded (the Acquire loads keep them from being hoisted).
        let groups = table.group_array();
        // Two loops, so that the common one (no slot ever vacated) is the loop of old.
        let started_full: Box<[u8]> = if keys::has_lines::<K>() && table.has_vacated() {
            groups
                .iter()
                .map(|group| {
                    let bits = full(group);
                    bits & !vacated_bits(group, bits)
                })
                .collect()
        } else {
            groups.iter().map(full).collect()
        };
        let end = started_full.len();
        RawIter::over(table, started_full, 0..end)
    }
}

impl<'g, K, V, F: std::ops::Deref<Target = [u8]>> RawIter<'g, K, V, F> {
    /// Visits the recorded slots of `groups`, and starts loading the entries of the first few.
    fn over(table: &'g Table<K, V>, started_full: F, groups: std::ops::Range<usize>) -> Self {
        debug_assert!(groups.end <= started_full.len());
        for g in groups.start..groups.end.min(groups.start + PREFETCH_GROUPS) {
            prefetch_entries(table, &started_full, g);
        }
        RawIter {
            table,
            started_full,
            next_group: groups.start,
            end: groups.end,
            group: 0,
            // Any group: read only once `pending` lists a slot of it, after `next` set both.
            current: table.group(0),
            pending: 0,
        }
    }

    /// Starts loading the entries of the group `PREFETCH_GROUPS` after `g`, if it is ours to
    /// visit.
    #[inline]
    fn prefetch_ahead(&self, g: usize) {
        if g + PREFETCH_GROUPS < self.end {
            prefetch_entries(self.table, &self.started_full, g + PREFETCH_GROUPS);
        }
    }
}

/// Bit `i`: slot `i` of `group`, one of the slots `full` names, is vacated (a removed integer
/// key's slot, which keeps its full tag and its key cell for the key to take back: `slot.rs`).
/// An iteration leaves such slots out of its record: recorded, the slot would yield the key if
/// it were inserted again during the iteration (found by a review at stop 48). Only tables with
/// key lines vacate slots, and the record asks only in a table where a removal has
/// (`Table::has_vacated`): read for every group, the words cost `hotpath values` 14 % more
/// instructions.
#[inline]
fn vacated_bits(group: &Group, full: u8) -> u8 {
    let mut bits = 0;
    let mut left = full;
    while left != 0 {
        let i = left.trailing_zeros() as usize;
        left &= left - 1;
        // Acquire: pairs with the Release CAS that published an entry, as every slot load does;
        // the word read decides only whether the slot is recorded.
        bits |= u8::from(Word(group.slots[i].load(Ordering::Acquire)).is_vacated()) << i;
    }
    bits
}

/// The live entry a recorded slot holds, if it holds one unmoved: the common case of a visit,
/// answered from the slot's group without going through its index (whose group the table would
/// find again by a division). A moved slot goes to [`resolve`].
///
/// `group` is `table.group(g)`, found by the caller once a group (in `fold`, the path of
/// `for_each`, `sum` and the like, and in `next`, a `for` loop's): found here, its address was
/// worked out again for every entry, the mask and the array's base loaded anew (the Acquire slot
/// loads keep the compiler from hoisting them), about 4 instructions an entry; and `i`, a bit of
/// the record (`tag::slot_bits` of a group), is below `GROUP_SLOTS`, which the bounds check did
/// not know (2 more). A review of the iteration paths, stop 51.
#[inline]
fn visit<'g, K, V>(
    table: &'g Table<K, V>,
    group: &'g Group,
    g: usize,
    i: usize,
) -> Option<&'g Entry<K, V>> {
    debug_assert!(std::ptr::eq(group, table.group(g)));
    // SAFETY: `i` is a bit of a group's record, and a record byte has only the low
    // `GROUP_SLOTS` bits (`tag::slot_bits`, masked by `vacated_bits`).
    let slot = unsafe { slot_at(group, i) };
    // Acquire: pairs with the Release CAS that published the entry.
    let w = Word(slot.load(Ordering::Acquire));
    match w.entry_ptr::<K, V>() {
        // SAFETY: an unmoved entry loaded while pinned (every iterator borrows a guard).
        Some(p) => Some(unsafe { &*p }),
        None if w.copied_to().is_some() => resolve(table, g * GROUP_SLOTS + i),
        None => None,
    }
}

impl<'g, K, V, F: std::ops::Deref<Target = [u8]>> Iterator for RawIter<'g, K, V, F> {
    type Item = &'g Entry<K, V>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pending != 0 {
                let i = self.pending.trailing_zeros() as usize;
                self.pending &= self.pending - 1;
                if let Some(entry) = visit(self.table, self.current, self.group, i) {
                    return Some(entry);
                }
                continue;
            }
            let g = self.next_group;
            if g == self.end {
                return None;
            }
            self.pending = self.started_full[g];
            self.group = g;
            self.current = self.table.group(g);
            self.next_group = g + 1;
            self.prefetch_ahead(g);
        }
    }

    /// Internal iteration (`for_each`, `sum`, `count`, ...) visits the groups in a loop of its
    /// own, with no iterator state written back between entries.
    fn fold<B, G: FnMut(B, Self::Item) -> B>(self, init: B, mut f: G) -> B {
        let table = self.table;
        // The rest of the group `next` was in, then the groups not yet reached.
        let mut acc = fold_group(table, self.group, self.pending, init, &mut f);
        // The record sliced once: indexed, each group's byte had its bounds check.
        let rest = &self.started_full[self.next_group..self.end];
        for (g, &bits) in (self.next_group..).zip(rest) {
            self.prefetch_ahead(g);
            acc = fold_group(table, g, bits, acc, &mut f);
        }
        acc
    }
}

/// Folds the live entries of the slots `bits` lists in group `g`.
#[inline]
fn fold_group<'g, K, V, B>(
    table: &'g Table<K, V>,
    g: usize,
    mut bits: u8,
    mut acc: B,
    f: &mut impl FnMut(B, &'g Entry<K, V>) -> B,
) -> B {
    let group = table.group(g);
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if let Some(entry) = visit(table, group, g, i) {
            acc = f(acc, entry);
        }
    }
    acc
}

/// The slots of a table that were full when a parallel iteration started, split by group range
/// among rayon's workers. Each range is walked like [`RawIter`] walks the whole table, so the
/// parallel iterator keeps the sequential one's guarantee.
#[cfg(feature = "rayon")]
pub(crate) struct Snapshot<'g, K, V> {
    table: &'g Table<K, V>,
    started_full: Box<[u8]>,
}

// SAFETY: a snapshot is only read: atomic loads of the table's slots, and shared references to
// entries handed out as `&K`/`&V`, which may cross threads when `K` and `V` are `Sync`. The
// table outlives `'g`, the lifetime of the guard the caller holds while the workers run (a
// pinned guard protects what any thread reads, not only its own thread's reads).
#[cfg(feature = "rayon")]
unsafe impl<K: Sync, V: Sync> Sync for Snapshot<'_, K, V> {}
// SAFETY: as for `Sync`: moving a snapshot moves only its recorded bits and a table reference.
#[cfg(feature = "rayon")]
unsafe impl<K: Sync, V: Sync> Send for Snapshot<'_, K, V> {}

#[cfg(feature = "rayon")]
impl<K, V> RawMap<K, V> {
    /// Settles any migration and records the full slots, as [`RawMap::iter`] does.
    pub(crate) fn snapshot<'g>(&'g self, guard: &'g Guard) -> Snapshot<'g, K, V> {
        let it = self.iter(guard);
        Snapshot {
            table: it.table,
            started_full: it.started_full,
        }
    }
}

#[cfg(feature = "rayon")]
impl<'g, K, V> Snapshot<'g, K, V> {
    pub(crate) fn groups(&self) -> usize {
        self.started_full.len()
    }

    /// The entries of the recorded slots in groups `groups`, following moves: walked as
    /// [`RawIter`] walks the whole table.
    pub(crate) fn entries(&self, groups: std::ops::Range<usize>) -> RawIter<'g, K, V, &'_ [u8]> {
        RawIter::over(self.table, &self.started_full[..], groups)
    }
}

/// How many groups ahead of the one it visits an iteration prefetches entries. The slot words
/// come in order, but each entry is at a random address: without the hint every entry is a cache
/// miss the loop waits for; with it the entries of the next few groups (about 40) are in flight.
/// At 1M u64 entries, hinting only each entry's first line, 4 groups beat 2, 3, 6, 8 and 16 (8
/// was 1.6x slower than 4); since the hints cover each entry's last line too, 8 beats 4 (13 %
/// fewer ns an entry over ten alternated runs) and 6, 12 and 16 are within this host's noise of
/// 8 (BENCHMARKS.md, table of changes).
const PREFETCH_GROUPS: usize = 8;

/// Starts loading the entries of group `g`, if there is such a group and it had a recorded slot.
///
/// For entries whose front fits a line (`u64` keys and values), every slot of the group gets a
/// hint, recorded or not, full or not (an empty one hints the group's own line, loaded already):
/// seven loads and hints with no branch on each slot's fullness, which is random and
/// mispredicts, cost less than walking the recorded bits. A `/tmp` program folding a map of
/// 16,384 `u64` entries, three alternated runs, median fold: 4.83-5.25 -> 3.65-4.04 ns an entry
/// in cache, 8.55-9.33 -> 7.42-8.20 with 64 MiB written between folds, 1M entries level
/// (11.43-11.98 -> 10.15-11.77); callgrind's branch simulation, 200 folds: 36.8 -> 23.7 M
/// conditional branches, 1.85 -> 0.98 M mispredicted (stop 28, `BENCHMARKS.md`). Entries whose
/// front may straddle two lines keep the walk: with two hints a slot the branch-free version was
/// faster in cache but slower with the map out of it (`String` keys, median 13.3-16.3 ->
/// 14.9-18.6 ns an entry).
#[inline]
fn prefetch_entries<K, V>(table: &Table<K, V>, started_full: &[u8], g: usize) {
    if !crate::sync::PREFETCH || !matches!(started_full.get(g), Some(&bits) if bits != 0) {
        return;
    }
    let group = table.group(g);
    // The group line whose entries the next call will want: the hardware prefetcher does not
    // follow the walk across page boundaries. Aimed from `group` with a wrapping add, which may
    // point past the array near its end: a hint cannot fault, and clamping the index (and
    // finding its group again) was about 7 instructions a group (a review, stop 51).
    crate::sync::prefetch(std::ptr::from_ref(group).wrapping_add(PREFETCH_GROUPS));
    if Entry::<K, V>::FRONT > 16 {
        // An entry whose front may straddle two lines: a walk over the recorded slots, two
        // hints each (`prefetch_entry_lines`).
        let mut bits = started_full[g];
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            prefetch_entry_lines::<K, V>(&group.slots[i], false);
        }
        return;
    }
    let own_line = std::ptr::from_ref(group) as usize;
    for slot in &group.slots {
        // Relaxed: the word only aims a hint, which cannot fault (a stale or moved entry's
        // address too); the visit loads it again, with Acquire.
        crate::sync::prefetch(
            Word(slot.load(Ordering::Relaxed)).entry_addr_or(own_line) as *const u8
        );
    }
}

/// The live entry for a key in one table, probing its groups up to the table's read bound: the
/// address of the first unmoved entry that holds the key, or `None` where the probe ends without
/// one (the key may still be in a successor: a moved slot is passed over, its copy is there).
///
/// # Safety
/// Every entry `table`'s slots hold must stay allocated while this runs: the caller is pinned,
/// or has exclusive access to the map.
#[inline(always)]
unsafe fn probe_table<K, V>(
    table: &Table<K, V>,
    hash: u64,
    eq: &mut impl FnMut(&K) -> bool,
) -> Option<*mut Entry<K, V>> {
    let tag = tag::full_tag(hash);
    let mut probe = Probe::new(hash, table.group_mask());
    for _ in 0..table.read_bound() {
        let group = table.group(probe.pos);
        // Acquire: pairs with the Release `fetch_or` that wrote a tag after its entry.
        let tags = group.tags.load(Ordering::Acquire);
        for i in tag::match_tag(tags, tag) {
            // Acquire: pairs with the Release CAS that published the entry.
            let w = Word(group.slots[i].load(Ordering::Acquire));
            if w.is_moved() {
                continue;
            }
            if let Some(p) = w.entry_ptr::<K, V>() {
                // SAFETY: the caller keeps the entries of `table` allocated (see the contract).
                if unsafe { &*p }.matches(hash, &mut *eq) {
                    return Some(p);
                }
            }
        }
        if tag::any_not_full(tags) {
            break;
        }
        probe.advance();
    }
    None
}

/// Starts loading the entries of group `g + PREFETCH_GROUPS`, if there is one, for a walk under
/// exclusive access that reads every entry it passes (`iter_mut`) or, with `freeing`, frees them
/// (the map's `Drop`, `into_iter`): each is at a random address, and freeing it reads and writes
/// its block.
#[inline]
fn prefetch_ahead_exclusive<K, V>(table: &Table<K, V>, g: usize, freeing: bool) {
    if crate::sync::PREFETCH && g + PREFETCH_GROUPS < table.groups() {
        for slot in &table.group(g + PREFETCH_GROUPS).slots {
            prefetch_entry_lines::<K, V>(slot, freeing);
        }
    }
}

/// Starts loading the lines of the entry that `slot` holds, if it holds one: for a visit that
/// reads the key or the value, and, with `freeing`, for freeing it as well.
///
/// An entry need not start on a line: glibc hands out 16-aligned blocks, so a 24-byte
/// `Entry<u64, u64>` starts 48 bytes into a line about half the time (blocks malloc'd in a row
/// alternate between offsets 16 and 48). A visit reads the entry's front, the key and the value
/// (the hash is last: `Entry`), so the hints cover the front's first and last byte (a second
/// hint on the same line costs next to nothing; a front of 16 bytes or less, as `u64` and `u64`,
/// never straddles). Freeing a block reads the allocator's header in front of it (glibc: the
/// chunk size, in the 8 bytes before the block), on the line before when the block starts one.
#[inline]
fn prefetch_entry_lines<K, V>(slot: &AtomicUsize, freeing: bool) {
    // Relaxed: the word only aims hints, which cannot fault (a stale or moved entry's address
    // too); whoever then uses the slot loads it again, or owns the map.
    if let Some(p) = Word(slot.load(Ordering::Relaxed)).entry_ptr::<K, V>() {
        let start = p.cast::<u8>();
        crate::sync::prefetch(start);
        if Entry::<K, V>::FRONT > 16 {
            crate::sync::prefetch(start.wrapping_add(Entry::<K, V>::FRONT - 1));
        }
        if freeing {
            crate::sync::prefetch(start.wrapping_sub(8));
        }
    }
}

/// Starts loading the hash of the entry that `slot` holds, if it holds one: the one field a
/// migration's move reads. Moves use it to overlap the cache misses on entries, which sit at
/// random addresses.
#[inline]
pub(super) fn prefetch_entry_hash<K, V>(slot: &AtomicUsize) {
    // Relaxed: the word only aims a hint, which cannot fault; whoever then uses the slot loads it
    // again, with Acquire.
    if let Some(p) = Word(slot.load(Ordering::Relaxed)).entry_ptr::<K, V>() {
        crate::sync::prefetch(Entry::hash_addr(p));
    }
}

/// The live entry that slot `index` of `table` stands for, following moves.
fn resolve<K, V>(mut table: &Table<K, V>, mut index: usize) -> Option<&Entry<K, V>> {
    loop {
        // Acquire: pairs with the Release CAS that published the entry, or with the Release
        // store of COPIED, which followed the placement of the copy we go on to read.
        let w = Word(table.slot(index).load(Ordering::Acquire));
        if let Some(p) = w.entry_ptr::<K, V>() {
            // SAFETY: an unmoved entry loaded while pinned (the iterator borrows a guard).
            return Some(unsafe { &*p });
        }
        index = w.copied_to()?;
        let mig = table.migration().expect("a moved slot implies a migration");
        table = mig.next().expect("a moved entry implies a successor");
    }
}

#[cfg(test)]
mod tests;
