//! One table generation: a header and an array of groups, and the record of its migration.
//!
//! A group is one tag word and `GROUP_SLOTS` slot words; with seven slots it fills exactly one
//! 64-byte line, so one miss answers "is the key here?" for seven slots and a hit costs about two
//! misses (the group, then the entry), or for integer keys the group and its key line side by
//! side (`keys.rs`), the entry only if the caller reads the value. The groups come zeroed
//! (`zeroed_slice`): all-zero is a valid empty table, so a large table costs only address space
//! until it is touched.
//!
//! Probing is triangular over groups (`pos += 1, 2, 3, …` modulo a power of two), which visits
//! every group once in `groups` steps.
//!
//! A table knows its successor only through its [`Migration`], installed once by a CAS race (no
//! lock): the loser frees its allocation, which was never shared. Where a moved slot's copy went
//! is in the slot's own final word, `COPIED(i)` (since stop 33; see `slot.rs` and `migrate.rs`).

use std::marker::PhantomData;

use crossbeam_utils::CachePadded;

use crate::sync::{
    zeroed_slice, AtomicPtr, AtomicU64, AtomicUsize, HintUsize, Ordering, Spaced, Unzeroed,
    ZeroedAtomic, ZeroedSlice, FIRST_GROUPS, GROUP_SLOTS, MIGRATE_CHUNK_GROUPS, MIN_GROUPS,
    PREPARE_PAGES,
};

use super::keys::{self, KeyLine};
use super::slot::Entry;

/// One cache line: seven tags and seven slot words.
#[repr(C, align(64))]
pub(crate) struct Group {
    pub(crate) tags: AtomicU64,
    pub(crate) slots: [AtomicUsize; GROUP_SLOTS],
}

// SAFETY: a `Group` is nothing but atomic integers, for which all-zero bytes are the value 0.
unsafe impl ZeroedAtomic for Group {
    fn zero() -> Self {
        Group {
            tags: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }
}

/// Groups on one 4 KiB page of a table's group array.
#[cfg(not(loom))]
const PAGE_GROUPS: usize = if std::mem::size_of::<Group>() >= 4096 {
    1
} else {
    4096 / std::mem::size_of::<Group>()
};

/// Pages of a successor's group array that a helper writes for each chunk it claims, until every
/// page has been written ([`Table::write_pages`]): a few microseconds of page faults added to an
/// operation, and a twofold growth's successor is all written once a sixteenth of the chunks are
/// claimed (a page holds 64 groups, a chunk 4). Measured with 1, 2, 4 and 8 (2 threads x 1M
/// inserts into an empty map, one run a process, three each): the tails were alike within this
/// host's noise, 2 the lowest p99.9 and p99.99 (19.8-22.5 us, 35-46 us); 8 took the fewest page
/// faults (28,275 against 29,608 for 2 and 27,736 when the installer wrote them all).
#[cfg(not(loom))]
pub(crate) const WRITE_PAGES: usize = 2;

/// The probe sequence of one hash over a table's groups.
pub(crate) struct Probe {
    pub(crate) pos: usize,
    stride: usize,
    mask: usize,
}

impl Probe {
    #[inline]
    pub(crate) fn new(hash: u64, mask: usize) -> Self {
        Probe {
            pos: hash as usize & mask,
            stride: 0,
            mask,
        }
    }

    #[inline]
    pub(crate) fn advance(&mut self) {
        self.stride += 1;
        self.pos = (self.pos + self.stride) & self.mask;
    }
}

pub(crate) struct Table<K, V> {
    /// Read on every operation and written only by `fetch_max` on rare long probes (and once by
    /// the CAS that installs a migration). Spaced by padding, not aligned: `CachePadded`'s
    /// 128-byte alignment sent every table's allocation through glibc's `posix_memalign`, about
    /// 580 instructions, a tenth of a 16-key map's whole life (callgrind `hotpath small-maps`
    /// 590.7 -> 527.1 M). The header may now straddle a line, but its lines stay cached: a
    /// simulated first-level cache missed no more often on any mix (fewer, on exchange and hot-key:
    /// `BENCHMARKS.md`, table of changes).
    hot: Spaced<Hot<K, V>>,
    /// A growth's successor being zeroed before the migration into it starts, or null (see
    /// "Preparing a growth" in `migrate.rs`). Set once by CAS; freed with this table.
    prep: AtomicPtr<Prep>,
    _entries: PhantomData<*mut Entry<K, V>>,
}

struct Hot<K, V> {
    groups: ZeroedSlice<Group>,
    /// One key line a group for keys that fit one ([`keys::has_lines`]); empty otherwise.
    key_lines: ZeroedSlice<KeyLine>,
    group_mask: usize,
    /// Groups an insert may probe before it considers resizing.
    probe_limit: usize,
    /// Groups a lookup must probe before it may conclude "not in this table". Starts at
    /// `probe_limit`; raised (before the entry is published) by an insert that had to go further,
    /// which happens only with a degenerate hasher, since a long probe in a well-spread table
    /// triggers a resize instead.
    read_bound: AtomicUsize,
    migration: AtomicPtr<Migration<K, V>>,
    /// Whether a removal has vacated a slot of this table (`slot.rs`): set once, before the first
    /// VACATED CAS, and read by an iteration's record, which reads the slot words of a table
    /// only then ([`Table::has_vacated`]).
    vacated: HintUsize,
}

impl<K, V> Table<K, V> {
    pub(crate) fn new(groups: usize) -> Self {
        Self::with_arrays(
            zeroed_slice(groups),
            zeroed_slice(if keys::has_lines::<K>() { groups } else { 0 }),
        )
    }

    /// A table over zeroed arrays: `groups` (a power of two, at least `MIN_GROUPS`) and, for a
    /// key type with lines, as many key lines (otherwise none), or none to be allocated here
    /// (a prep's arrays for keys that do not use their lines: [`Table::prep`]).
    fn with_arrays(groups: ZeroedSlice<Group>, key_lines: ZeroedSlice<KeyLine>) -> Self {
        let len = groups.len();
        let key_lines = if keys::has_lines::<K>() && key_lines.is_empty() {
            zeroed_slice(len)
        } else {
            key_lines
        };
        assert!(len.is_power_of_two() && len >= MIN_GROUPS);
        assert_eq!(
            key_lines.len(),
            if keys::has_lines::<K>() { len } else { 0 }
        );
        let probe_limit = (len.trailing_zeros() as usize + 1).clamp(2, len);
        Table {
            hot: Spaced::new(Hot {
                groups,
                key_lines,
                group_mask: len - 1,
                probe_limit,
                read_bound: AtomicUsize::new(probe_limit),
                migration: AtomicPtr::new(std::ptr::null_mut()),
                vacated: HintUsize::new(0),
            }),
            prep: AtomicPtr::new(std::ptr::null_mut()),
            _entries: PhantomData,
        }
    }

    /// This table's prepared successor, if a growth or a lazily sized migration has made one.
    pub(crate) fn prepared(&self) -> Option<&Prep> {
        // SAFETY: as in `prep`.
        unsafe { self.prep.load(Ordering::Acquire).as_ref() }
    }

    /// This table's prepared successor, made now (for `groups` groups) if there is none yet.
    /// `lines`: whether the successor's key lines will be used (`keys::cached`, which the
    /// callers can ask and this cannot: `K` is not known to be `'static` here); if not, the prep
    /// leaves them out, and the table made over its arrays gets them from `calloc`, untouched.
    /// Prepared with the groups, they were zeroed, and so resident, for nothing: 64 bytes a group
    /// for a `char` or `struct Id(u64)` key (a review of resource bounds, stop 50).
    pub(crate) fn prep(&self, groups: usize, lines: bool) -> &Prep {
        // Acquire: pairs with the Release half of the CAS below, so the record is built.
        let current = self.prep.load(Ordering::Acquire);
        // SAFETY: a prep, once installed, lives as long as this table (freed by its `Drop`).
        if let Some(prep) = unsafe { current.as_ref() } {
            return prep;
        }
        // SAFETY: a prep, once installed, lives as long as this table (freed by its `Drop`).
        match unsafe { install_once(&self.prep, Box::new(Prep::new::<K>(groups, lines))) } {
            Ok(prep) => prep,
            Err((prep, lost)) => {
                drop(lost);
                prep
            }
        }
    }

    /// A table over a prepared successor's arrays ([`Prep::take`], [`Prep::share`]).
    pub(crate) fn from_prepared(prepared: Prepared) -> Self {
        let (groups, key_lines) = prepared;
        Self::with_arrays(groups, key_lines)
    }

    /// Gives this table, made over arrays lent by `prep` ([`Prep::share`]), their ownership:
    /// from now on it frees them when it drops, unless [`Table::disown_arrays`] gives them back.
    ///
    /// # Safety
    /// The table's arrays were lent by `prep`. Of the tables that adopt them, one at most drops
    /// with them: the one installed as the successor. Every other gives them back before it
    /// drops, with nothing that can unwind in between (two sizers may hold them adopted at
    /// once, for the instant of their installations, of which one wins).
    pub(crate) unsafe fn adopt(&mut self, prep: &Prep) {
        let hot = self.hot.get_mut();
        // SAFETY: forwarded from the caller: the slices are the prep's, lent, and freed by one
        // table at most.
        unsafe {
            prep.groups.own(&mut hot.groups);
            if prep.lends_key_lines() {
                prep.key_lines.own(&mut hot.key_lines);
            }
        }
    }

    /// Drops a table that adopted arrays lent by `prep` ([`Table::adopt`]) but was not
    /// installed, leaving the arrays to `prep`, and freeing what the table allocated itself
    /// (key lines the prep left out). (On any other table it would leak them.)
    pub(crate) fn disown_arrays(mut self: Box<Self>, prep: &Prep) {
        let hot = self.hot.get_mut();
        crate::sync::disown(&mut hot.groups);
        if prep.lends_key_lines() {
            crate::sync::disown(&mut hot.key_lines);
        }
    }

    /// A table to migrate into: [`Table::new`], whose pages the migration's helpers write a few
    /// at a time ([`Table::write_pages`]).
    pub(crate) fn successor(groups: usize) -> Self {
        Self::new(groups)
    }

    /// Pages of the group array (4 KiB each, the last perhaps partial).
    #[cfg(not(loom))]
    pub(crate) fn pages(&self) -> usize {
        self.groups().div_ceil(PAGE_GROUPS)
    }

    /// Writes one word of each page of `pages` of the group array, changing nothing.
    ///
    /// A successor's groups come zeroed but unmapped (`zeroed_slice`), and a migration's first
    /// touch of a group, or an insert's, is a read (a tag load): on a fresh page that maps the
    /// kernel's shared zero page, and the write that follows faults a second time. One write a
    /// page first saves that fault: while 1M inserts grow a map (`examples/hotpath.rs grow`),
    /// 27,755 -> 19,601 page faults and 208-222 -> 200-212 ns an insert. Until stop 28 the thread
    /// that installed a migration wrote every page of its successor at once, which made that one
    /// insert take time in proportion to the table: 10-15 ms for the growth to 2^18 groups (16
    /// MiB, 4,096 pages), the slowest insert of a growing map. Now each chunk a helper claims
    /// writes the next `WRITE_PAGES` pages first (`Migration::page_claim`), so the writes are
    /// spread over the first chunks (a growth to twice the groups has 8 chunks for each page).
    /// With 2 threads inserting 1M keys each into an empty map, one run a process: the slowest
    /// insert 23.6-28.2 ms -> 3.2-4.0 ms, inserts over 1 ms 16-17 -> 3-10, and the cost spread over
    /// more of them: p99.9 8.7-11.8 -> 19.8-22.5 us (`BENCHMARKS.md`, stop 28).
    #[cfg(not(loom))]
    pub(crate) fn write_pages(&self, pages: std::ops::Range<usize>) {
        for page in pages {
            // Relaxed: it changes no value and orders nothing; it is here for the write, which
            // maps the page. A CAS because the table is shared (a plain store could undo another
            // thread's write), and not `fetch_or(0)`: LLVM lowers an RMW that cannot change the
            // value to a plain load, which maps the zero page (page faults were level with no
            // writes at all). A word that is no longer zero was written, so its page is mapped.
            let _ = self.group(page * PAGE_GROUPS).tags.compare_exchange(
                0,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    #[inline]
    pub(crate) fn group_mask(&self) -> usize {
        self.hot.group_mask
    }
    #[inline]
    pub(crate) fn groups(&self) -> usize {
        self.hot.groups.len()
    }
    #[inline]
    pub(crate) fn slots(&self) -> usize {
        self.groups() * GROUP_SLOTS
    }
    #[inline]
    pub(crate) fn probe_limit(&self) -> usize {
        self.hot.probe_limit
    }
    /// Group `pos`, which must be below [`Table::groups`] (it is masked, so a larger `pos` would
    /// wrap around instead of panicking: every caller passes a probe position, which is masked
    /// already, or an index it bounds by `groups()`).
    #[inline]
    pub(crate) fn group(&self, pos: usize) -> &Group {
        debug_assert!(pos < self.groups());
        let pos = pos & self.hot.group_mask;
        // SAFETY: `group_mask` is `groups.len() - 1` (set with the array, neither ever changes,
        // and the length is a power of two), so `pos & group_mask` is in bounds. A lookup's probe
        // step is a few instructions, and the bounds check was three of them.
        unsafe { self.hot.groups.get_unchecked(pos) }
    }
    /// Every group, in order: for a walk over all of them (an iteration's record), which then
    /// finds each group without its index's mask and the array's base loaded again.
    #[inline]
    pub(crate) fn group_array(&self) -> &[Group] {
        &self.hot.groups
    }
    /// The key line of group `pos`; `pos` as for [`Table::group`].
    ///
    /// # Panics
    /// For a key type without lines ([`keys::has_lines`]), which no caller asks for: every call
    /// is behind that check or [`keys::cached`], so this one folds away.
    #[inline]
    pub(crate) fn key_line(&self, pos: usize) -> &KeyLine {
        assert!(
            keys::has_lines::<K>(),
            "a key line of a key type without lines"
        );
        debug_assert!(pos < self.groups());
        let pos = pos & self.hot.group_mask;
        // SAFETY: `K` has lines (checked above), so there are as many key lines as groups (`new`),
        // and `pos & group_mask` is below that, as in `group`.
        unsafe { self.hot.key_lines.get_unchecked(pos) }
    }

    /// The key cell of slot `i` of group `g`, if that slot's key bit is set (which only happens
    /// for a key type that uses lines, [`keys::cached`]): what a migration copies with the slot.
    #[inline]
    pub(crate) fn key_copy(&self, g: usize, i: usize) -> Option<u64> {
        if !keys::has_lines::<K>() {
            return None;
        }
        // Acquire: pairs with the Release `fetch_or` that set the key bit after the cell.
        let tags = self.group(g).tags.load(Ordering::Acquire);
        // Relaxed: the cell was stored before that `fetch_or` (see `keys.rs`).
        super::tag::has_key(tags, i).then(|| self.key_line(g).cells[i].load(Ordering::Relaxed))
    }

    /// The position of `group`, one of this table's groups.
    #[inline]
    pub(crate) fn group_index(&self, group: &Group) -> usize {
        let offset =
            (group as *const Group as usize).wrapping_sub(self.hot.groups.as_ptr() as usize);
        let index = offset / std::mem::size_of::<Group>();
        debug_assert!(index < self.groups(), "a group of another table");
        index
    }
    #[inline]
    pub(crate) fn slot(&self, index: usize) -> &AtomicUsize {
        &self.hot.groups[index / GROUP_SLOTS].slots[index % GROUP_SLOTS]
    }

    /// Notes that a removal is about to vacate a slot of this table. Stored once, so that the
    /// header's line stays shared: a removal loads the flag from a line it has read already.
    #[inline]
    pub(crate) fn note_vacated(&self) {
        // Relaxed: an iteration that must see the flag is one that began after this removal
        // returned, and so after this store (happens-before carries a Relaxed store too); one
        // racing the removal may miss it, and may then yield the key inserted again into the
        // vacated slot: a key removed while `iter` runs, which the guarantee lets it yield.
        if self.hot.vacated.load(Ordering::Relaxed) == 0 {
            self.hot.vacated.store(1, Ordering::Relaxed);
        }
    }

    /// Whether this table frees its group array and its key lines when it drops (a table made
    /// over lent arrays frees them only once it has adopted them: [`Table::adopt`]), for tests.
    #[cfg(test)]
    pub(crate) fn owns_arrays(&self) -> (bool, bool) {
        (
            crate::sync::owns_memory(&self.hot.groups),
            crate::sync::owns_memory(&self.hot.key_lines),
        )
    }

    /// Whether any slot of this table has been vacated ([`Table::note_vacated`]).
    #[inline]
    pub(crate) fn has_vacated(&self) -> bool {
        // Relaxed: see `note_vacated`.
        self.hot.vacated.load(Ordering::Relaxed) != 0
    }

    /// Groups a lookup must probe before concluding absence.
    #[inline]
    pub(crate) fn read_bound(&self) -> usize {
        // Acquire: pairs with the Release `fetch_max` in `raise_read_bound`, which precedes the
        // publication of the entry that needed the longer probe.
        let bound = self.hot.read_bound.load(Ordering::Acquire);
        // The bound starts at `probe_limit` (at most `groups`) and is raised only to a count of
        // groups probed within one table, so it never exceeds `groups`.
        debug_assert!(bound <= self.groups());
        bound
    }

    pub(crate) fn raise_read_bound(&self, groups_probed: usize) {
        debug_assert!(groups_probed <= self.groups());
        // Release: pairs with the Acquire load in `read_bound`.
        self.hot
            .read_bound
            .fetch_max(groups_probed, Ordering::Release);
    }

    /// The migration of this table, if one has started.
    #[inline]
    pub(crate) fn migration(&self) -> Option<&Migration<K, V>> {
        // Acquire: pairs with the Release half of the CAS in `install_migration`, so the new
        // table and the migration record are fully built before we read them.
        let m = self.hot.migration.load(Ordering::Acquire);
        // SAFETY: a migration, once installed, lives as long as this table (it is freed by this
        // table's `Drop`), and the caller holds a reference to this table.
        unsafe { m.as_ref() }
    }

    /// Installs `migration` unless one is installed already; returns the one in place.
    pub(crate) fn install_migration(&self, migration: Box<Migration<K, V>>) -> &Migration<K, V> {
        // SAFETY: a migration, once installed, lives as long as this table (see `migration`).
        match unsafe { install_once(&self.hot.migration, migration) } {
            Ok(mig) => mig,
            Err((mig, lost)) => {
                lost.discard();
                mig
            }
        }
    }
}

impl<K, V> Drop for Table<K, V> {
    fn drop(&mut self) {
        // The entries are not ours to drop: the map owns them (see `RawMap::drop`). The successor
        // table is not ours either: by the time a table is dropped its successor is the root.
        // Acquire: the table is dropped either by the epoch collector (whose grace period already
        // orders every write to it before us) or under `&mut` by the map; the load just needs
        // to see the installed record, and a loom atomic has no `get_mut`.
        let m = self.hot.migration.load(Ordering::Acquire);
        if !m.is_null() {
            // SAFETY: the migration was made by `Box::into_raw` in `install_migration`, and this
            // table, its only owner, is being dropped.
            drop(unsafe { Box::from_raw(m) });
        }
        // Acquire: as for the migration.
        let p = self.prep.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: made by `Box::into_raw` in `prep`; this table, its only owner, is being
            // dropped (after every thread that could zero its pages has unpinned).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// A growth's successor (its groups and key lines), allocated without zeroing and zeroed a few
/// pages at a time by the inserts that find the table full, before the migration into it starts
/// (see "Preparing a growth" in `migrate.rs`); or a lazily sized migration's, zeroed by the
/// threads that count the source ("Preparing a lazily sized successor").
pub(crate) struct Prep {
    groups: Unzeroed<Group>,
    key_lines: Unzeroed<KeyLine>,
    /// `[0]`: the next page to zero, numbered over the groups and then the key lines. `[1]`:
    /// pages zeroed. `[2]`: who has the arrays: [`ARRAYS_HERE`], [`ARRAYS_TAKEN`],
    /// [`ARRAYS_SHARED`] or [`ARRAYS_KEPT`].
    counters: CachePadded<[AtomicUsize; 3]>,
}

/// The arrays are the prep's, freed with it.
const ARRAYS_HERE: usize = 0;
/// A growth took the arrays ([`Prep::take`]): its migration record owns them.
const ARRAYS_TAKEN: usize = 1;
/// Lent to the sizers of a lazily sized migration ([`Prep::share`]), none of whose successors
/// over them is known to be installed: the prep frees them unless one is.
const ARRAYS_SHARED: usize = 2;
/// A sizer's successor over the arrays was installed ([`Prep::kept`]): that table owns them.
const ARRAYS_KEPT: usize = 3;

/// What [`Prep::take`] and [`Prep::share`] hand over: a successor's groups and key lines.
pub(crate) type Prepared = (ZeroedSlice<Group>, ZeroedSlice<KeyLine>);

impl Prep {
    fn new<K>(groups: usize, lines: bool) -> Self {
        Prep {
            groups: Unzeroed::new(groups),
            key_lines: Unzeroed::new(if keys::has_lines::<K>() && lines {
                groups
            } else {
                0
            }),
            counters: CachePadded::new([
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ]),
        }
    }

    pub(crate) fn pages(&self) -> usize {
        self.groups.pages() + self.key_lines.pages()
    }

    /// Whether the arrays it hands over include key lines (else the table made over them
    /// allocates its own: [`Table::prep`]).
    fn lends_key_lines(&self) -> bool {
        self.key_lines.len() > 0
    }

    /// The groups of the table this prepares.
    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Pages zeroed so far, and whether a table owns the arrays now (a growth's that took them,
    /// or a sizer's installed successor), for tests.
    #[cfg(test)]
    pub(crate) fn progress(&self) -> (usize, bool) {
        let owner = self.counters[2].load(Ordering::Relaxed);
        (
            self.counters[1].load(Ordering::Acquire),
            owner == ARRAYS_TAKEN || owner == ARRAYS_KEPT,
        )
    }

    /// Where the group array starts, to tell a table made over it (for tests).
    #[cfg(test)]
    pub(crate) fn groups_start(&self) -> *const Group {
        // SAFETY: every page is zeroed before a test asks; the lent slice frees nothing and is
        // gone before this returns.
        unsafe { self.groups.lend() }.as_ptr()
    }

    /// Zeroes page `page` of the groups and then the key lines, numbered in turn.
    ///
    /// # Safety
    /// As for [`Unzeroed::zero_page`]: the caller claimed `page`, which is below `pages()`.
    unsafe fn zero_page(&self, page: usize) {
        let g = self.groups.pages();
        // SAFETY: the caller's claim (the contract); each index is below its array's pages.
        unsafe {
            if page < g {
                self.groups.zero_page(page);
            } else {
                self.key_lines.zero_page(page - g);
            }
        }
    }

    /// Zeroes up to [`PREPARE_PAGES`] pages no other thread has claimed; returns whether every
    /// page is zeroed now (and, if so, that the zeroing happens before the caller's next step).
    pub(crate) fn help(&self) -> bool {
        let total = self.pages();
        // Relaxed: the claim only divides the pages; the load spares a read-modify-write once
        // every page is handed out.
        if self.counters[0].load(Ordering::Relaxed) < total {
            let first = self.counters[0].fetch_add(PREPARE_PAGES, Ordering::Relaxed);
            if first < total {
                let end = (first + PREPARE_PAGES).min(total);
                for page in first..end {
                    // SAFETY: the `fetch_add` handed pages `first..end` to this thread alone, and
                    // nothing reads them before the count below says every page is zeroed.
                    unsafe { self.zero_page(page) };
                }
                super::migrate::pause_point("zeroed");
                // AcqRel: Release publishes our zeroes; Acquire, for the thread that completes
                // the count, takes in every other zeroer's (their adds are one release sequence).
                let done = self.counters[1].fetch_add(end - first, Ordering::AcqRel);
                return done + (end - first) == total;
            }
        }
        // Acquire: pairs with the zeroers' Release adds, as above.
        self.counters[1].load(Ordering::Acquire) == total
    }

    /// The zeroed arrays, to the one thread that takes them for a growth; `None` to any other,
    /// and once they are shared. Call only after [`Prep::help`] returned `true` on this thread.
    pub(crate) fn take(&self) -> Option<Prepared> {
        // Relaxed: the flag only decides who takes; the zeroes were acquired through `help`'s
        // count, and `Drop` runs only after every thread that took part has unpinned.
        if self.counters[2]
            .compare_exchange(
                ARRAYS_HERE,
                ARRAYS_TAKEN,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return None;
        }
        // SAFETY: every page is zeroed, and the zeroing happens before this (`help` returned
        // `true` here); the flag makes this the only hand-over (`share` lends nothing once it is
        // set), and `Drop` sees it and frees nothing.
        Some(unsafe {
            (
                self.groups.to_zeroed_slice(),
                self.key_lines.to_zeroed_slice(),
            )
        })
    }

    /// The zeroed arrays, lent to every sizer of a lazily sized migration that asks (`None`
    /// once a growth took them), as slices that free nothing. Each sizer builds a successor over
    /// them and tries to install it, giving it the arrays for that instant ([`Table::adopt`]):
    /// the one installed keeps them (its installer calls [`Prep::kept`]), every other gives
    /// them back ([`Table::disown_arrays`]), and if none is installed (a sizer that found the
    /// zeroing unfinished installed a table of its own) the prep frees them.
    ///
    /// Lent rather than handed to one taker: two sizers that finish a count together both
    /// need a successor, and the one that lost a hand-over allocated a zeroed table of its own,
    /// only to lose the installation too (7-13 ms of `calloc` from reused heap memory at
    /// 262,144 groups; `BENCHMARKS.md`, table of changes).
    ///
    /// # Safety
    /// [`Prep::help`] returned `true` on this thread, and the tables made over what this
    /// returns live no longer than this prep unless one is installed as the successor.
    pub(crate) unsafe fn share(&self) -> Option<Prepared> {
        // Relaxed: as in `take`. A sizer that finds the arrays kept already is lent them too:
        // its table loses the installation (one is installed) and gives them back.
        match self.counters[2].compare_exchange(
            ARRAYS_HERE,
            ARRAYS_SHARED,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) | Err(ARRAYS_SHARED | ARRAYS_KEPT) => {}
            Err(_) => return None,
        }
        // SAFETY: every page was zeroed before this (`help` returned `true`, the caller's
        // promise); the flag stops `take`, so the arrays live as long as this prep (or the
        // table installed over them), and the caller's tables no longer (the contract).
        Some(unsafe { (self.groups.lend(), self.key_lines.lend()) })
    }

    /// Records that a successor made over the arrays lent by [`Prep::share`] was installed, and
    /// owns them now.
    pub(crate) fn kept(&self) {
        // Relaxed: read by `Drop` only, after every thread that took part has unpinned.
        self.counters[2].store(ARRAYS_KEPT, Ordering::Relaxed);
    }
}

impl Drop for Prep {
    fn drop(&mut self) {
        // Relaxed: the prep is dropped with its table, after every thread that took part has
        // unpinned (or under `&mut`), which orders their writes before this.
        let owner = self.counters[2].load(Ordering::Relaxed);
        if owner == ARRAYS_HERE || owner == ARRAYS_SHARED {
            // SAFETY: no table owns the arrays (nobody took them, no table over them was
            // installed, the others gave them back), so they are ours, freed once here; no
            // zeroing is in progress (see above).
            unsafe {
                self.groups.free();
                self.key_lines.free();
            }
        }
    }
}

/// What [`Migration::install_next`] did: `Ok` with the successor installed, or `Err` with the
/// one installed before and the table that lost, handed back.
pub(crate) type Installed<'a, K, V> = Result<&'a Table<K, V>, (&'a Table<K, V>, Box<Table<K, V>>)>;

/// Set in a lazily sized migration's count of late entries once the successor's size is being
/// decided ([`Migration::close_late`]).
const LATE_CLOSED: usize = 1 << (usize::BITS - 1);

/// The migration of one table into its successor.
///
/// The counters every helper writes are `CachePadded`, each on lines of its own. Stop 26 spaced
/// them by padding instead (`sync::Spaced`), to keep the record off glibc's `posix_memalign`
/// path (about 500 instructions) when a 16-key map grew out of its first table; since a map
/// starts with room for 21 entries, only maps past that migrate, where moving the entries costs
/// about 200 instructions each and the record's `posix_memalign` is a small share.
pub(crate) struct Migration<K, V> {
    /// The successor. Allocated with the record when it is at least twice the source (it then
    /// has room for every source slot); otherwise null until the source's entries are counted
    /// (see "Sizing" in `migrate.rs`), then set once by CAS.
    next: AtomicPtr<Table<K, V>>,
    /// The successor's size asked for by whoever started the migration: a floor.
    wanted_groups: usize,
    /// Lazily sized migrations only: for each chunk of `MIGRATE_CHUNK_GROUPS` source groups,
    /// `1 +` the number of its slots that may still need a copy, `0` until counted; set once.
    chunk_live: ZeroedSlice<AtomicUsize>,
    /// `[0]`, lazily sized migrations only: the next chunk to count. `[1]`: the next page of
    /// the successor to write (`Table::write_pages`), handed out once the successor exists, when
    /// the count is over: the two never contend. `[2]`, lazily sized migrations only: the
    /// entries that writers may still add to counted slots of the source (see "Sizing" in
    /// `migrate.rs`), with [`LATE_CLOSED`] set once the successor's size is being decided. On
    /// the count's line: a writer that registers here has just claimed a chunk to count.
    count_claim: CachePadded<[AtomicUsize; 3]>,
    /// `[0]`: the next group to hand out to a helper. `[1]`, on the same line, which the claim
    /// has just taken (a separate field could share a line with `next`, which every lookup
    /// reads during a migration): `1 +` the first group of the chunk a writer claimed last, `0`
    /// before any; a hint, not part of the protocol. Lookups help only once it stands still
    /// (see `help_pending_migration` in `migrate.rs`), so that they leave a growth to writers
    /// that are moving it.
    claim: CachePadded<[AtomicUsize; 2]>,
    /// Chunks of `MIGRATE_CHUNK_GROUPS` groups in the source table.
    source_chunks: usize,
    /// Chunks of the source table whose claimers have brought every slot to MOVED. Only a
    /// chunk's claimer counts it, and each chunk is claimed once (`claim` only grows).
    done: CachePadded<AtomicUsize>,
    /// New keys that may still be inserted straight into `next` before the source is finished.
    /// `next` must keep room for every entry still to be copied; once this runs out, an inserter
    /// finishes the migration itself before inserting (see `RawMap::locate`).
    insert_budget: CachePadded<AtomicUsize>,
    /// Whether the keys use their key lines ([`Migration::key_lines_used`]).
    key_lines_used: bool,
}

impl<K, V> Migration<K, V> {
    /// `lines`: whether the keys use their key lines (`keys::cached`), for the prep of a lazily
    /// sized successor ([`Migration::key_lines_used`]).
    pub(crate) fn new(wanted_groups: usize, source_groups: usize, lines: bool) -> Box<Self> {
        // At twice the source or more, the successor has room for a copy of every source slot
        // and as much again: it can be made now. A smaller one (a shrink, a same-size rebuild,
        // or a growth sized from a stale count) waits until the source's entries are counted.
        let eager = wanted_groups >= 2 * source_groups;
        let (next, chunks) = if eager {
            (Box::into_raw(Box::new(Table::successor(wanted_groups))), 0)
        } else {
            let chunks = source_groups.div_ceil(MIGRATE_CHUNK_GROUPS);
            (std::ptr::null_mut(), chunks)
        };
        Self::with_parts(wanted_groups, source_groups, next, chunks, 0, lines)
    }

    /// The record of a growth of a table of `source_groups` groups into a successor prepared
    /// page by page (see "Preparing a growth" in `migrate.rs`): its groups and key lines, zeroed,
    /// at least twice the source.
    pub(crate) fn prepared(source_groups: usize, prepared: Prepared) -> Box<Self> {
        let (groups, key_lines) = prepared;
        let wanted_groups = groups.len();
        assert!(wanted_groups >= 2 * source_groups);
        let lines = !key_lines.is_empty();
        let next = Box::into_raw(Box::new(Table::with_arrays(groups, key_lines)));
        // Every page of the successor was written by its zeroing: no page is left for
        // `Table::write_pages`.
        Self::with_parts(wanted_groups, source_groups, next, 0, usize::MAX, lines)
    }

    fn with_parts(
        wanted_groups: usize,
        source_groups: usize,
        next: *mut Table<K, V>,
        chunks: usize,
        pages_written: usize,
        key_lines_used: bool,
    ) -> Box<Self> {
        let budget = if next.is_null() {
            0
        } else {
            // Copies need at most the source's slots; half of what is left over may go to new
            // keys, the other half is slack (it absorbed reservations lost in helper races until
            // stop 32; copies waste no slot since).
            (wanted_groups * GROUP_SLOTS - source_groups * GROUP_SLOTS) / 2
        };
        Box::new(Migration {
            next: AtomicPtr::new(next),
            wanted_groups,
            chunk_live: zeroed_slice(chunks),
            count_claim: CachePadded::new([
                AtomicUsize::new(0),
                AtomicUsize::new(pages_written),
                AtomicUsize::new(0),
            ]),
            claim: CachePadded::new([AtomicUsize::new(0), AtomicUsize::new(0)]),
            source_chunks: source_groups.div_ceil(MIGRATE_CHUNK_GROUPS),
            done: CachePadded::new(AtomicUsize::new(0)),
            insert_budget: CachePadded::new(AtomicUsize::new(budget)),
            key_lines_used,
        })
    }

    /// Whether the keys use their key lines (`keys::cached`), for whoever prepares the
    /// successor where `K` is not known to be `'static` ([`Table::prep`]).
    #[inline]
    pub(crate) fn key_lines_used(&self) -> bool {
        self.key_lines_used
    }

    /// The table being migrated into, once it has been sized.
    #[inline]
    pub(crate) fn next(&self) -> Option<&Table<K, V>> {
        // Acquire: pairs with the Release half of the CAS in `install_next` (or the record's
        // own publication), so the table is fully built.
        let next = self.next.load(Ordering::Acquire);
        // SAFETY: `next` is null or the successor, which is the root or about to become it; it
        // is retired only after it has been promoted and then migrated away itself, through the
        // epoch, so it outlives every reference to this migration that a pinned thread can hold.
        unsafe { next.as_ref() }
    }

    /// The successor as allocated (with its allocation's provenance), or null.
    pub(crate) fn next_ptr(&self) -> *mut Table<K, V> {
        // Acquire: as in `next`.
        self.next.load(Ordering::Acquire)
    }

    /// Sets the successor of a lazily sized migration, unless another thread did: `Ok` with it,
    /// or `Err` with the one in place and `table`, for the caller to drop (or take apart). The
    /// winner also grants new keys `budget` slots of it. `written`: every page
    /// of `table` was written already (a prepared successor's, by its zeroing), so the helpers
    /// need not write them again ([`Table::write_pages`]).
    pub(crate) fn install_next(
        &self,
        table: Box<Table<K, V>>,
        budget: usize,
        written: bool,
    ) -> Installed<'_, K, V> {
        // SAFETY: the successor, once installed, lives as long as described in `next`.
        let installed = unsafe { install_once(&self.next, table) };
        if installed.is_ok() {
            #[cfg(not(loom))]
            if written {
                // Relaxed: a hint, as every use of the page claim. A helper that read the
                // claim before this store may still write a page (or, adding to this value,
                // wrap it and let a few more do so): harmless, a write changes nothing.
                self.page_claim().store(usize::MAX, Ordering::Relaxed);
            }
            // Relaxed: the budget only hands out permissions; an inserter that reads 0
            // before this store finishes the migration instead, which is always allowed.
            self.insert_budget.store(budget, Ordering::Relaxed);
        }
        #[cfg(loom)]
        let _ = written;
        installed
    }

    #[inline]
    pub(crate) fn wanted_groups(&self) -> usize {
        self.wanted_groups
    }

    /// Chunks to count before a lazily sized successor can be made (0 for an eager one).
    #[inline]
    pub(crate) fn chunks(&self) -> usize {
        self.chunk_live.len()
    }

    #[inline]
    pub(crate) fn chunk_live(&self, chunk: usize) -> &AtomicUsize {
        &self.chunk_live[chunk]
    }

    #[inline]
    pub(crate) fn count_claim(&self) -> &AtomicUsize {
        &self.count_claim[0]
    }

    /// Registers one more entry to be added to a counted slot of the source (a slot the count
    /// found free: `COUNTED_EMPTY` or `COUNTED_VACATED`), unless the successor's size is being
    /// decided already; then returns `false`, and the caller must not add the entry to the
    /// source (it goes on in the successor). See "Sizing" in `migrate.rs`.
    #[inline]
    pub(crate) fn register_late(&self) -> bool {
        // AcqRel: the read-modify-write order on this counter is what decides, for each writer,
        // whether the sizer's `close_late` saw its registration (then the successor has room
        // for its entry) or it sees LATE_CLOSED (then it adds nothing to the source). Acquire
        // so that a writer that sees LATE_CLOSED also sees the counts the closer recorded
        // before closing (it may have to size the successor itself).
        self.count_claim[2].fetch_add(1, Ordering::AcqRel) & LATE_CLOSED == 0
    }

    /// Closes registration ([`Migration::register_late`]) and returns how many writers
    /// registered before the close: at least every entry added to a counted slot of the source
    /// whose writer did not see the close. Any number of sizers may call it; later ones see
    /// more registrations, never fewer.
    pub(crate) fn close_late(&self) -> usize {
        // AcqRel: Release so that a writer that sees LATE_CLOSED sees the chunk counts recorded
        // before this; Acquire for symmetry with `register_late` (the value is all we read).
        self.count_claim[2].fetch_or(LATE_CLOSED, Ordering::AcqRel) & !LATE_CLOSED
    }

    /// The next page of the successor to write (see [`Table::write_pages`]).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn page_claim(&self) -> &AtomicUsize {
        &self.count_claim[1]
    }

    #[inline]
    pub(crate) fn claim(&self) -> &AtomicUsize {
        &self.claim[0]
    }

    #[inline]
    pub(crate) fn writer_claim(&self) -> &AtomicUsize {
        &self.claim[1]
    }

    /// Counts the caller's claimed chunk as moved; returns whether it was the last. The caller
    /// must have seen every slot of the chunk MOVED, and may count each chunk it claimed once.
    pub(crate) fn count_moved_chunk(&self) -> bool {
        // AcqRel: Release passes on the MOVED states the caller saw, through `done` (whose
        // increments continue each other's release sequences), to whoever counts the last chunk;
        // Acquire so that one sees them all before it promotes.
        self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.source_chunks
    }

    /// Whether every chunk has been counted as moved.
    #[inline]
    pub(crate) fn all_chunks_moved(&self) -> bool {
        self.chunks_moved() == self.source_chunks
    }

    /// How many chunks have been counted as moved (all of them: [`Migration::all_chunks_moved`]).
    #[inline]
    pub(crate) fn chunks_moved(&self) -> usize {
        // Acquire: pairs with the AcqRel increments in `count_moved_chunk`.
        self.done.load(Ordering::Acquire)
    }

    /// Takes one unit of the insert budget; `false` once it has run out.
    #[inline]
    pub(crate) fn take_insert_budget(&self) -> bool {
        // Relaxed: a counter of permissions; the copies it protects synchronise through the slot
        // words. Counting attempts (not successes) only makes it run out sooner.
        self.insert_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    }

    /// The insert budget left: a hint for pacing the moves (`RawMap::pace_moves`).
    #[inline]
    pub(crate) fn insert_budget_left(&self) -> usize {
        // Relaxed: a hint; permissions are taken only by `take_insert_budget`.
        self.insert_budget.load(Ordering::Relaxed)
    }

    /// Frees a migration that lost the installation race, with its never-shared table.
    pub(crate) fn discard(self: Box<Self>) {
        let next = self.next_ptr();
        if !next.is_null() {
            // SAFETY: the table was made by `Box::into_raw` in `new` and, as the installation
            // failed, was never shared.
            drop(unsafe { Box::from_raw(next) });
        }
    }
}

/// Installs `new` in `slot` if it is null, by one CAS. Returns the installed value: `Ok` if it
/// is ours, otherwise `Err` with the winner's and our box back (never shared), for the caller to
/// dispose of.
///
/// # Safety
/// Whatever `slot` holds once installed stays allocated for as long as `slot` is borrowed
/// (it is freed only by the owner of `slot`, after every thread that could read it is gone).
unsafe fn install_once<T>(slot: &AtomicPtr<T>, new: Box<T>) -> Result<&T, (&T, Box<T>)> {
    let new = Box::into_raw(new);
    match slot.compare_exchange(
        std::ptr::null_mut(),
        new,
        // Release: publishes the value; Acquire (also on failure): we read the winner's.
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: installed; it lives as long as `slot` is borrowed (the contract).
        Ok(_) => Ok(unsafe { &*new }),
        Err(current) => {
            // SAFETY: `new` lost the race and was never shared; we still own it. `current` is
            // the winner's, which lives as above.
            Err(unsafe { (&*current, Box::from_raw(new)) })
        }
    }
}

/// The most groups a table may have: the largest power of two whose groups fit in `isize::MAX`
/// bytes, the most one allocation may take (2^24 on a 32-bit target, 1 GiB of groups).
pub(crate) const MAX_GROUPS: usize = {
    let fit = isize::MAX as usize / std::mem::size_of::<Group>();
    1 << (usize::BITS - 1 - fit.leading_zeros())
};

/// Groups for a table that should hold `live` entries at most half full, so it can take as many
/// again before its next resize; at most [`MAX_GROUPS`], which holds any count of entries a table
/// of the same or a smaller size held. Without the cap a rebuild or shrink of a table over half
/// full at the largest size panicked ("capacity overflow"), and as a successor is sized after
/// its migration is installed, so did every operation after it (reachable on a 32-bit target
/// with about 59M entries; found by a review at stop 49).
pub(crate) fn groups_for_live(live: usize) -> usize {
    groups_for_slots(live.saturating_mul(2).min(MAX_GROUPS * GROUP_SLOTS))
}

/// The size of a growth of a table of `groups` groups that asked for `wanted`: at least twice
/// the table.
///
/// # Panics
/// If the table is the largest there can be (`lockfree-map: capacity overflow`): before any
/// migration is installed, so the map stays usable (a rebuild or shrink of it never asks for
/// more).
pub(crate) fn grown_groups(groups: usize, wanted: usize) -> usize {
    assert!(groups < MAX_GROUPS, "lockfree-map: capacity overflow");
    wanted.max(2 * groups)
}

/// [`groups_for_live`] for the resizes a map makes on its own (growth, tombstone cleanup,
/// shrinking when sparse): never fewer than a new map's first table, so that they do not take a
/// small map below where it started, to grow back on its next few inserts.
pub(crate) fn groups_to_resize_to(live: usize) -> usize {
    groups_for_live(live).max(FIRST_GROUPS)
}

/// Tables of at most this many groups grow fourfold rather than twofold (outside the stress
/// geometry, whose models keep their twofold growths).
const QUAD_GROWTH_GROUPS: usize = if crate::sync::STRESS_GEOMETRY { 0 } else { 8 };

/// The size a full table of `groups` groups holding `live` entries grows to: twice what the
/// entries need, and four times the table while it is small. A small table's growth is mostly
/// fixed costs (the migration record, the successor, the flush that retires the source) and moves
/// at about 200 instructions an entry, so a map that grows past its first table skips a
/// generation: a 100-key map grows 4 -> 16 -> 32 groups, moving 105 entries in two migrations
/// instead of 147 in three (`hotpath small-maps-100`, `BENCHMARKS.md`). The memory is that of a
/// map of the same entries a growth later: at most 16 groups (2 KiB) for up to 42 entries.
pub(crate) fn groups_to_grow_to(groups: usize, live: usize) -> usize {
    let wanted = groups_to_resize_to(live);
    if groups <= QUAD_GROWTH_GROUPS {
        wanted.max(groups * 4)
    } else {
        wanted
    }
}

/// The load (as `numerator / denominator` of the slots) at which an insert that spills out of its
/// home group makes the table grow; also what `capacity` reports.
pub(crate) const MAX_LOAD: (usize, usize) = (3, 4);

/// The share of dead slots (tombstones, vacated slots) in a probe that ran
/// past the probe limit at which the insert rebuilds the table rather than raising its read
/// bound: in a well-spread table a probe that long means the empty slots have run out, and below
/// `MAX_LOAD` live the rest are dead. At one half (until stop 28) a table more than half live
/// could not get there: with ever-new keys churning through it at 70-75 % live (a cache evicting
/// its oldest entry for each new one), inserts probed ever further, raising the read bound that
/// every miss probes, until one went round every group and found no empty slot to take
/// (`hotpath churn-full`: 1.24-1.53 us a pair where it is now 0.34-0.66, thousands of pairs
/// averaging 107 us each before the table grew; test
/// `raw::tests::churn_just_under_the_maximum_load_rebuilds_before_the_empty_slots_run_out`). An
/// eighth is under the quarter a table just below `MAX_LOAD` leaves dead, and a rebuild is still
/// paid for: it moves every live entry, and an eighth of a long probe must die again before the
/// next (with a constant hasher, whose one chain is every entry, an eighth of the entries).
pub(crate) const REBUILD_DEAD: (usize, usize) = (1, 8);

/// Entries a table of `slots` slots holds before it grows: `MAX_LOAD` of the slots, rounded
/// down once, the inverse of [`groups_for_capacity`]'s rounding up, so a table sized for `c`
/// entries reports at least `c` (the fuzzer found `reserve(10)` reporting 9 when this divided
/// first and rounded down twice).
pub(crate) fn capacity_of(slots: usize) -> usize {
    // No overflow: a table's slots are far below `usize::MAX / MAX_LOAD.0`.
    slots * MAX_LOAD.0 / MAX_LOAD.1
}

/// Groups for a table whose capacity (`MAX_LOAD` of its slots) is at least `capacity`.
///
/// # Panics
/// If the table would not fit in the address space.
pub(crate) fn groups_for_capacity(capacity: usize) -> usize {
    let slots = capacity
        .checked_mul(MAX_LOAD.1)
        .expect("lockfree-map: capacity overflow")
        .div_ceil(MAX_LOAD.0);
    groups_for_slots(slots)
}

/// The smallest power-of-two number of groups with at least `slots` slots.
fn groups_for_slots(slots: usize) -> usize {
    let groups = slots.div_ceil(GROUP_SLOTS).max(MIN_GROUPS);
    let groups = groups
        .checked_next_power_of_two()
        .expect("lockfree-map: capacity overflow");
    assert!(
        groups
            .checked_mul(std::mem::size_of::<Group>())
            .is_some_and(|b| b <= isize::MAX as usize),
        "lockfree-map: capacity overflow"
    );
    groups
}
