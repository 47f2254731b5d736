//! Incremental, helping migration from one table generation to the next. No step waits for
//! another thread: whoever meets unfinished work can finish it.
//!
//! ## Protocol
//!
//! 1. **Start.** A writer that finds a table too full (or choked with tombstones, or far too big)
//!    allocates a successor and a [`Migration`] record and installs it with one CAS on the table;
//!    a loser frees its own allocation. Only the root may start a migration, so at most two
//!    generations are live: a writer that needs to resize the successor first finishes the
//!    root's migration (step 5) and promotes it.
//!    **Sizing.** A successor at least twice the source is allocated with the record: it has room
//!    for a copy of every source slot. A smaller one (a shrink, a same-size tombstone rebuild, or
//!    a growth sized from a length read while other threads wrote) is sized only once the source's
//!    entries are counted, because the striped length can be far off under preemption (a reader
//!    delayed between two stripes; ThreadSanitizer's scheduler found a shrink whose successor
//!    filled up). Counting is chunked and helped like copying: a chunk's counter marks every free
//!    slot it passes by CAS (EMPTY → COUNTED_EMPTY, VACATED → COUNTED_VACATED), counts the slots
//!    that may need a copy (entries), and records the count once by CAS.
//!    Until the successor exists the source takes inserts as before. An insert into a slot the
//!    count has not passed needs nothing more: its CAS lands before the counter's mark (and is
//!    counted) or fails on it. An insert into a counted slot first registers with the count
//!    (`Migration::register_late`, one `fetch_add`), unless registration is closed; then it goes
//!    on in the successor. The sizer (whoever finds every chunk claimed, or needs the successor
//!    outright) counts any chunk still unrecorded (its claimer may be stalled; counting again is
//!    harmless), closes registration (`close_late`, a `fetch_or`) and installs, by CAS, a table
//!    for `max(wanted, 2 × (count + registrations))` slots. Every entry that can need a copy is
//!    then accounted for: an entry in a slot when it was counted is in the count; a slot counted
//!    free takes an entry only from a registered writer, which the close saw, and holds at most
//!    one entry at a time. Writers that see the close, and any sizer after the first, see at
//!    least as many registrations, so every successor installed is large enough; nobody waits.
//!    New keys may take a quarter of the spare room and the rest is slack. Readers that meet a
//!    free slot before the successor exists conclude "absent": no key can be in a successor that
//!    does not exist yet.
//!    (Until stop 30 the count redirected every empty slot and froze every vacated one, so the
//!    first write to reach one needed the successor and counted every chunk left itself:
//!    14-20 ms for one insert at 1Mi keys, `BENCHMARKS.md` next step 32.) An insert whose free
//!    slot lies past the probe limit while the count runs (a source choked with dead slots, as a
//!    tombstone rebuild's is) counts up to `COUNT_AHEAD` more chunks first, so that few inserts
//!    probe that far, and raise the read bound, before the count ends. It only counts: the
//!    preparing below is left to the operations that count one chunk.
//!    **Preparing a growth.** A growth's successor (its groups and key lines) is not allocated
//!    zeroed when it is large (`PREPARE_MIN_GROUPS`): an allocator that hands out memory it had
//!    before (glibc's heap, below its dynamic mmap threshold, which rises to 32 MiB as a process
//!    frees large blocks) must then write every byte, and the insert that started the growth
//!    waited for all of it to be written and faulted in (7.6-9.8 ms at the growth to 262,144
//!    groups in a process that had freed a 30 MiB block; `BENCHMARKS.md`). Instead
//!    the insert that finds the table full allocates the arrays unzeroed in a `Prep` record on
//!    the table (one CAS; a loser frees its own), and it and every insert after it that spills
//!    out of its home group zero `PREPARE_PAGES` pages each, claimed by `fetch_add` and counted
//!    with a Release add once written, while the inserts themselves go on into the source. The
//!    insert whose count completes the pages (or any later one that sees them complete, while
//!    the table is the root) takes the arrays, once, by CAS on a flag, and installs the
//!    migration with them. Nobody waits for a zeroer: a stalled one (or zeroing slower than the
//!    inserts) only lets the source fill further, and an insert that finds it 7/8 full, or whose
//!    free slot lies past the probe limit, starts the growth at once with a table allocated
//!    zeroed, as before. A stalled zeroer's arrays are then freed with the source table, after
//!    it has unpinned. No lookup or write reads the arrays before the migration that holds them
//!    is installed, which happens after every page's count.
//!    **Preparing a lazily sized successor.** The sizer of a large lazily sized successor (a
//!    tombstone rebuild's, a large shrink's) allocated it zeroed too, with the same pause (1.4-1.5
//!    ms for one operation at 262,144 groups under churn; `BENCHMARKS.md`, table of changes).
//!    Its size is known only once the count ends, but the migration says what it wanted, and the
//!    count asks for that size unless the entries outgrew it meanwhile. So every thread that
//!    counts a chunk (`help_chunk`) also zeroes `PREPARE_PAGES` pages of a `Prep` for the
//!    wanted size on the source table, the same record a growth uses (or the growth's own, if
//!    one was prepared on this table before the rebuild got in: it serves only if its size is
//!    the one counted; and the other way round, a growth takes the record's arrays only if they
//!    are at least twice the source: an insert that found no migration and then stalled before
//!    its growth may meet a rebuild's record, and until stop 47 took its arrays and failed the
//!    prepared growth's size check, a panic). A chunk is four groups and a page 64, so the pages
//!    are done an eighth of the way into the count. A sizer uses the arrays if they have the
//!    counted size and every page is zeroed, and otherwise allocates a zeroed table as before: it
//!    waits for no zeroer.
//!    The arrays are lent, not handed to one sizer (`Prep::share`): two threads often end a
//!    count together and both size, and until stop 35 the one that lost the hand-over
//!    allocated a zeroed table of its own, only to lose the installation as well (7-13 ms for
//!    one operation, every other rebuild, with two threads churning 700,000 keys). Each sizer
//!    builds a table over the lent arrays, which owns them only for its installation's CAS
//!    (`Table::adopt`); the one installed keeps them and says so (`Prep::kept`), the others
//!    give them back (`Table::disown_arrays`). Arrays no installed table kept are freed with
//!    the source table.
//! 2. **Helping.** Every write that finds the root migrating first claims a chunk of groups
//!    (`claim.fetch_add`) and moves each of its slots. Writers that meet a frozen slot of their own
//!    key move that one slot before going on. While a lazily sized successor is still to be
//!    sized, the same writers count a chunk each instead (a shrink is started by a removal and
//!    left to them, as a growth is, and so is a tombstone rebuild, started by an insert). A
//!    lookup that finds the root migrating counts or moves one chunk too, but only while a
//!    chunk is unclaimed and no writer has claimed a chunk during the thread's last 64 lookups
//!    (`help_pending_migration`): otherwise a migration started by the last writes of a phase
//!    would make every lookup of a read-only phase after it probe two tables, while lookups
//!    made as writers move the table leave it to them. Nobody waits.
//! 3. **Moving one slot** (`help_move`), idempotent, any number of threads at once:
//!    - EMPTY: CAS to REDIRECT (frozen and moved in one step).
//!    - otherwise `fetch_or(FROZEN)`: from here on every writer's CAS on the slot fails.
//!    - a frozen tombstone or vacated slot (counted or not) has nothing to copy.
//!    - a frozen entry `p` is copied: a helper looks, in the key's probe sequence in `next`, for
//!      `p` itself (placed already: done), or places it in the first empty slot
//!      (`CAS(EMPTY → p)`), unless the source slot is MOVED when it is about to try (it is stale,
//!      below). Helpers racing on one slot meet one copy. Where the copy is, it writes the tag
//!      (if not there yet). A helper that finds `next` itself migrating, or with no empty slot
//!      left in the key's probe sequence, is stale too: the slot was moved long ago (`next` was
//!      promoted, then resized or filled).
//!    - finally a plain store of the slot's final word: `COPIED(i)` for an entry copied to slot
//!      `i` of `next` (the index, for iterators that follow a move, in place of the pointer),
//!      `frozen | MOVED` for a slot with nothing to copy. Only helpers change a frozen slot, and
//!      all of them to that same word; a helper that finds the slot MOVED already stores
//!      nothing. (Until stop 33 the index went to a `dest` register of the migration, 8 bytes a
//!      source slot written by every move: `slot.rs`.)
//!
//!    Slots are not counted one by one: a chunk's claimer, having brought each of its slots to
//!    MOVED, counts the chunk in `done` (each chunk has one claimer). (Until
//!    2026-12-02 each slot's MOVED was a CAS whose winner counted the slot: one more serializing
//!    read-modify-write a move.)
//! 4. **Promotion.** The thread that counts the last chunk swings the root to `next` with a CAS
//!    and retires the old table through the epoch. Its entries are not dropped: they belong to
//!    `next`.
//! 5. **Copy-all.** An operation that needs the migration finished (a second resize, iteration,
//!    `clear`) moves every slot itself rather than wait for the threads holding claimed chunks,
//!    then promotes without counting: it saw every slot MOVED.
//!
//! ## Why the copy has one place, and stale helpers never publish
//!
//! A helper may be stalled for any length of time between reading `frozen(p)` and acting on it.
//! A design that let helpers insert `p` wherever they found room would need `p`'s identity to
//! survive every later update and removal in `next`, or else it could bring back a removed key,
//! or publish a pointer after it was retired. Here a helper publishes `p` only by
//! `CAS(EMPTY → p)` at the first empty slot of the key's probe sequence, and only if its load of
//! the source slot just before the CAS saw it not MOVED, a load made after it read every slot it
//! passed.
//!
//! Every helper scans the same probe sequence, never passes an EMPTY slot without trying to
//! take it, and slots never return to EMPTY. Say a helper's CAS at `Y` succeeds. No copy of `p`
//! was placed after `Y` in the sequence (whoever placed it found `Y` taken, yet `Y` was EMPTY
//! later), and none before `Y` is still there (the helper read each slot before `Y`, by its word
//! or its tag, after it was taken, and would have stopped at `p`). One case is left: a copy
//! placed at `X` before `Y` and changed since by a writer in `next`, so that the helper passed
//! `X` without knowing it. A writer changes its key in `next` only after it saw the source slot
//! MOVED, and the helper's Acquire load of `X` then makes its load of the source slot see MOVED
//! too: it places nothing. A placement that passes the check is therefore the only copy, made
//! before MOVED, and MOVED precedes any write to the copy: no key comes back, and no retired
//! pointer is published. Every helper that reaches the copy stores the same final word,
//! `COPIED(i)`, naming it.
//!
//! (Until stop 32 a helper first reserved the slot with a sentinel naming the source slot,
//! `EMPTY → RESV(s, tag)`, checked the source slot, and then published, `RESV → p`, or released
//! a stale reservation to a tombstone: one more serializing read-modify-write a move, and wasted
//! slots. Placing with one CAS made `hotpath grow` 2-7 % faster (two sets of ten alternated
//! runs) and took 2.7 % of its instructions away; `BENCHMARKS.md`, table of changes. Until
//! 2026-12-02 the `dest` register was decided by CAS as well. The loom model of helpers racing
//! on one slot catches both halves of the rule taken away: without the check a removed key comes
//! back, and without recognising `p` the entry is published twice and freed twice.)
//!
//! What this needs of writers: a write changes an entry in `next` only after that entry's old
//! slot is MOVED. An honest write meets its key's frozen slot in the source first and moves it,
//! but a key whose `Eq` lies can pass its own slot there and match another key's copy here; so
//! a write that found its entry in `next` while the source still migrates into it makes sure
//! by identity: it finds the entry's old slot (the same pointer, frozen, along the entry's own
//! hash) and finishes its move ([`RawMap::settle_copy`], called from `RawMap::settled`). Until
//! stop 33 it relied on `Eq`, and a lying one let a stalled helper place a retired entry again
//! (ARCHITECTURE.md, "What the stress runs found", item 4).
//!
//! A writer acts on its key in `next` only after that key's old slot is MOVED (it helps move it
//! first), and MOVED is set only after the publication. A MOVED slot's word holds no pointer
//! (the entry may since have been replaced and freed in `next`); readers treat it as "maybe my
//! key" and carry on probing, then continue in `next`.

use crate::reclaim::{self, Guard};
use crate::sync::{
    hint_fence, AtomicUsize, Ordering, COUNT_AHEAD, GROUP_SLOTS, LOOKUP_HELP_AFTER,
    MIGRATE_CHUNK_GROUPS, OUTLAST_STALLED_CLAIMERS, PREPARE_GROWTH, PREPARE_MIN_GROUPS,
};

use super::keys::has_lines;
use super::slot::{self, Word, COUNTED_EMPTY, COUNTED_VACATED, FROZEN, MOVED, REDIRECT, VACATED};
use super::table::{groups_for_live, grown_groups, Group, Migration, Probe, Table};
use super::tag;
use super::{prefetch_entry_hash, RawMap};

impl<K, V> RawMap<K, V> {
    /// Moves one chunk of `table`'s slots, or promotes `next` if every slot has moved. A
    /// `writer` says so in the migration's `writer_claim` hint, which lookups watch.
    #[cold]
    #[inline(never)]
    pub(super) fn help_chunk(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        writer: bool,
        guard: &Guard,
    ) {
        if mig.next().is_none() {
            // A lazily sized successor: help count the source first.
            if self.count_one(table, mig, writer, guard) {
                prepare_during_count(table, mig);
            }
            return;
        }
        // Relaxed: the claim only divides work; correctness rests on each slot's own states.
        // Read before it is added to, so that once every chunk is claimed the writes leave it
        // alone: added to by every write, it was a contended read-modify-write for as long as a
        // stalled claimer kept the migration pending, and on a 32-bit target it wrapped after
        // 2^30 writes, after which chunks were claimed and counted twice and the successor was
        // promoted with the stalled chunk's slots unmoved (a review at stop 48). Now it passes
        // the source's groups by at most a chunk for each thread racing for the last one.
        // Not under loom (`OUTLAST_STALLED_CLAIMERS`): the load would add an interleaving point to
        // every write of every model that migrates, and no model makes enough writes to wrap.
        if OUTLAST_STALLED_CLAIMERS && mig.claim().load(Ordering::Relaxed) >= table.groups() {
            self.outlast_claimers(table, mig, guard);
            return;
        }
        let start = mig
            .claim()
            .fetch_add(MIGRATE_CHUNK_GROUPS, Ordering::Relaxed);
        if start < table.groups() {
            if writer && LOOKUP_HELP_AFTER > 0 {
                // Relaxed: a hint for lookups' heuristic; it orders nothing. A plain store on
                // the line the claim just took: each writer's value is new (claims are unique).
                mig.writer_claim().store(start + 1, Ordering::Relaxed);
            }
            let end = (start + MIGRATE_CHUNK_GROUPS).min(table.groups());
            write_next_pages(mig);
            prefetch_chunk(table, mig, start..end);
            for g in start..end {
                for i in 0..GROUP_SLOTS {
                    self.help_move_at(table, mig, g, i, guard);
                }
            }
            // Every slot of the chunk is MOVED now: each `help_move` saw to it.
            if mig.count_moved_chunk() {
                // Tests park the last chunk's mover here: the next write must promote in its
                // stead (`outlast_claimers`).
                pause_point("counted");
                self.promote(table, mig, guard);
            }
        } else {
            self.outlast_claimers(table, mig, guard);
        }
    }

    /// For an operation that found every chunk of `table`'s migration claimed: promotes the
    /// successor if every chunk has been counted as moved; if not, notes that this thread waited
    /// on the claimers once more, and once it has done so as many times as the table has groups
    /// (at least [`OUTLAST_MIN_PATIENCE`]) with no chunk counted as moved meanwhile, finishes the
    /// migration itself (`finish_migration`, which sweeps every slot).
    ///
    /// A claimer stalled inside its chunk (preempted, stopped in a debugger) would otherwise keep
    /// the migration pending until it resumes, whenever no insert runs out of the successor's
    /// budget (the only other writes that finish a migration): an update-only, remove-only or
    /// read-only workload then probed two tables on every operation, off the inline fast paths,
    /// for as long as the claimer stood still (a review at stop 48). The sweep visits every
    /// slot of the source, most of them MOVED already; waiting for as many of this thread's
    /// operations as the source has groups first keeps its cost per operation bounded by a few
    /// slots, and leaves a claimer that is merely slow (a chunk's moves take microseconds) the
    /// time to count its chunk. A heuristic: whether it sweeps decides only who finishes the
    /// moves, as in `finish_migration`'s own sweep, which was always safe beside a claimer.
    #[cold]
    #[inline(never)]
    fn outlast_claimers(&self, table: &Table<K, V>, mig: &Migration<K, V>, guard: &Guard) {
        if mig.all_chunks_moved() {
            self.promote(table, mig, guard);
        } else if claimers_stalled(mig, table.groups().max(OUTLAST_MIN_PATIENCE)) {
            self.finish_migration(table, mig, guard);
        }
    }

    /// Counts one more chunk of `table`'s lazily sized migration and returns `true`, or, if
    /// every chunk is claimed, sizes the successor (unless another thread did) and returns
    /// `false`. A `writer` says so in the migration's `writer_claim` hint, as in `help_chunk`.
    fn count_one(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        writer: bool,
        guard: &Guard,
    ) -> bool {
        // Relaxed: the claim only divides work; each chunk's count is recorded by CAS.
        let chunk = mig.count_claim().fetch_add(1, Ordering::Relaxed);
        if chunk < mig.chunks() {
            if writer && LOOKUP_HELP_AFTER > 0 {
                // Relaxed: a hint, as in `help_chunk`. Counting claims take values no moving
                // claim takes (those are at most the source's groups), each new.
                mig.writer_claim()
                    .store(usize::MAX - chunk, Ordering::Relaxed);
            }
            self.count_chunk(table, mig, chunk);
            true
        } else {
            self.sized_next(table, mig, guard);
            false
        }
    }

    /// Counts up to [`COUNT_AHEAD`] more chunks of `table`'s lazily sized migration, or fewer
    /// if the successor gets sized meanwhile (by this thread, when the count ends here).
    ///
    /// It zeroes none of a prepared successor's pages, as the operations that count one chunk
    /// do (`help_chunk`): from stop 34 to stop 35 it zeroed one for each chunk it counted, and a
    /// call took 0.1-0.7 ms (64 pages, most of them first touches that fault) where it had
    /// taken under 0.05 ms, once or twice a rebuild while two threads churned 700,000 keys.
    /// The single-chunk counters zero the pages long before the count ends without it (a page
    /// a chunk, an eighth of the chunks).
    #[cold]
    #[inline(never)]
    pub(super) fn count_ahead(&self, table: &Table<K, V>, mig: &Migration<K, V>, guard: &Guard) {
        for _ in 0..COUNT_AHEAD {
            if mig.next().is_some() || !self.count_one(table, mig, true, guard) {
                return;
            }
        }
    }

    /// A lookup's share of a pending migration: one chunk to count or to move, but only while
    /// some chunk is still unclaimed (or the successor is still to be sized), and no writer has
    /// claimed a chunk during this thread's last [`LOOKUP_HELP_AFTER`] lookups.
    ///
    /// Without it a map that grows and then only serves reads (a cache after its warm-up, a
    /// table loaded once) probes two tables on every lookup for as long as it lives. Once every
    /// chunk is claimed lookups claim nothing: a stalled claimer must not turn every later lookup
    /// into a read-modify-write. They promote the successor when every chunk is counted, and
    /// outlast a stalled claimer as writes do (`outlast_claimers`). A successor still to be sized is helped too: since stop 29 a
    /// removal that finds the table sparse only starts the shrink, and a map emptied and then
    /// only read would otherwise keep every lookup on the full probe. (Since stop 30 a tombstone
    /// rebuild is left to later operations too: the insert that starts it no longer needs the
    /// successor.)
    ///
    /// While writers are moving the table, lookups leave it to them: a lookup that moves a
    /// chunk (28 slots) takes microseconds, and when every lookup that found a chunk unclaimed
    /// moved one, lookups made during a growth had a p99 of 3 us against 0.7 us for papaya's
    /// (`compare --only latency`, BENCHMARKS.md). So each thread watches the migration's
    /// `writer_claim` hint, which every writer's claim changes (a lookup's does not), and its
    /// lookups help only once the hint has stood still for [`LOOKUP_HELP_AFTER`] of them in a
    /// row: the writers have stopped. They go on helping, on every lookup, until a writer claims
    /// again. Helping readers do not hold each other back, since their claims leave the hint
    /// alone. Whether a lookup helps decides nothing about correctness (helping is always safe,
    /// and so is not helping); it only decides who pays for the move.
    #[cold]
    #[inline(never)]
    pub(super) fn help_pending_migration(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        guard: &Guard,
    ) {
        // A successor still to be sized: the count is the work left, and `help_chunk` counts a
        // chunk, or sizes the successor once every chunk is claimed (counting those whose
        // claimers stalled: once, after which the successor exists).
        // Relaxed: the claim only divides work (as in `help_chunk`), and the successor is
        // re-read with Acquire by whoever uses it.
        if mig.next().is_some() && mig.claim().load(Ordering::Relaxed) >= table.groups() {
            // Every chunk claimed: nothing to help with, unless a claimer has stalled (never under
            // loom, where lookups leave this state alone as before stop 48: `sync.rs`).
            if OUTLAST_STALLED_CLAIMERS {
                self.outlast_claimers(table, mig, guard);
            }
            return;
        }
        if !writers_stalled(mig) {
            return;
        }
        self.help_chunk(table, mig, false, guard);
    }

    /// Moves every slot of `table` not yet moved, then promotes `next`.
    #[cold]
    #[inline(never)]
    pub(super) fn finish_migration(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        guard: &Guard,
    ) {
        // Take unclaimed chunks first, so that concurrent finishers split the work rather than
        // race slot by slot (each lost race is a wasted CAS); then sweep every
        // slot, to finish chunks whose claimers are slow or stalled.
        // Relaxed: as in `help_chunk`.
        while mig.claim().load(Ordering::Relaxed) < table.groups() {
            self.help_chunk(table, mig, true, guard);
        }
        for g in 0..table.groups() {
            for i in 0..GROUP_SLOTS {
                self.help_move_at(table, mig, g, i, guard);
            }
        }
        // Every slot is MOVED now: we saw each one get there. Promote without counting chunks:
        // a claimer stalled inside its chunk would otherwise keep the migration from ever being
        // promoted, and a later migration could then start on the successor while this one stays
        // the root.
        self.promote(table, mig, guard);
    }

    /// Brings slot `index` of `table` to its final MOVED state. Nobody counts single slots: a
    /// chunk is counted once a thread has brought every slot of it there (`count_moved_chunk`).
    #[cold]
    pub(super) fn help_move(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        index: usize,
        guard: &Guard,
    ) {
        self.help_move_at(table, mig, index / GROUP_SLOTS, index % GROUP_SLOTS, guard);
    }

    /// [`help_move`](Self::help_move) for slot `i` of group `g`: loops over a chunk address the
    /// slots by group, with no division per slot (the division and bounds checks were about
    /// 5 % of the instructions of a growth, callgrind `hotpath grow`).
    fn help_move_at(
        &self,
        table: &Table<K, V>,
        mig: &Migration<K, V>,
        g: usize,
        i: usize,
        guard: &Guard,
    ) {
        let _ = guard;
        let group = table.group(g);
        let slot = &group.slots[i];
        // Acquire: pairs with the Release CAS that stored the entry we may copy.
        let mut w = Word(slot.load(Ordering::Acquire));
        loop {
            if w.is_moved() {
                return;
            }
            if !w.is_frozen() {
                if w.is_empty() || w.0 == COUNTED_EMPTY {
                    match try_redirect(slot, w) {
                        Ok(()) => {
                            set_group_tag(group, i, tag::REDIRECT);
                            return;
                        }
                        Err(actual) => {
                            w = actual;
                            continue;
                        }
                    }
                }
                // Another helper may freeze the slot, or finish it, between our load and here.
                pause_point("unfrozen");
                // AcqRel: Acquire to read the final entry; Release so that a writer whose CAS
                // fails on the frozen slot, and which then reloads the slot with Acquire (its
                // retry's probe does; the failed CAS itself is Relaxed and pairs with nothing),
                // sees everything the freezer saw (the installed migration).
                w = Word(slot.fetch_or(FROZEN, Ordering::AcqRel) | FROZEN);
                if w.is_moved() {
                    return;
                }
            }
            pause_point("frozen");
            let last = match w.entry_ptr::<K, V>() {
                Some(p) => {
                    // SAFETY: the slot is frozen, not moved: `p` is still its key's live entry
                    // (replacing or removing it fails on a frozen slot), so not retired, and our
                    // guard was pinned before we loaded it.
                    let hash = unsafe { (*p).hash };
                    // Readers must find the entry by its tag even if its inserter has not written
                    // it yet; the tag must be right before MOVED makes the pointer
                    // undereferenceable.
                    ensure_group_tag(group, i, tag::full_tag(hash));
                    let next = self.sized_next(table, mig, guard);
                    let key = table.key_copy(g, i);
                    match Self::copy_to_next(next, slot, p as usize, hash, key) {
                        Some(at) => slot::copied(at),
                        // Another helper finished the slot: its word is final already.
                        None => return,
                    }
                }
                None => w.0 | MOVED,
            };
            // A plain store, not a CAS: only helpers change a frozen slot, and each of them to
            // this same word (a frozen word changes only by becoming final, and the copy has one
            // place). Release: a reader that sees MOVED continues in `next` and must find the
            // copy published above; an iterator that follows COPIED reads the copy's slot.
            slot.store(last, Ordering::Release);
            return;
        }
    }

    /// Publishes the frozen entry `entry` of a source slot in `next`, unless another helper
    /// already has, and returns where the copy is; `None` if the source slot is MOVED already
    /// (another helper finished it).
    ///
    /// Helpers racing on one slot meet one copy ([`place`]), so a race wastes no room in `next`,
    /// and every helper that gets an index gets the same one. A helper places the copy only if
    /// the source slot is still not MOVED just before its CAS: see "Why the copy has one place"
    /// in the module docs.
    ///
    /// `key` is the source slot's key cell, if it has one (`keys.rs`); a copy placed here gets it
    /// too.
    fn copy_to_next(
        next: &Table<K, V>,
        source: &AtomicUsize,
        entry: usize,
        hash: u64,
        key: Option<u64>,
    ) -> Option<usize> {
        let tag = tag::full_tag(hash);
        match place(next, source, hash, entry, tag, key) {
            Placed::At(at) => {
                pause_point("placed");
                // The copy's tag must be in place before the copy can be found through `MOVED`:
                // the helper that placed it may be stalled between its CAS and its tag write,
                // and a helper that found the copy by its slot word (its tag byte still EMPTY)
                // has not written the tag at all. A reader in `next` would then pass over the
                // published copy (found by the lazy-shrink loom model).
                ensure_tag(next, at, tag);
                Some(at)
            }
            Placed::Moved => None, // Another helper finished this slot.
            Placed::Stale => {
                // `next` is migrating itself, or has no empty slot left in this key's probe
                // sequence. Either way this table's migration finished while this helper
                // stalled (every slot moved, `next` promoted and since then resized or filled by
                // writers). Unmoved, the migration is still running, and `next` is sized with
                // room for every copy: a bug.
                // Acquire: pairs with the Release store of MOVED.
                if !Word(source.load(Ordering::Acquire)).is_moved() {
                    panic!(
                        "lockfree-map: no room left in a migration target of {} slots; \
                         this is a bug in lockfree-map",
                        next.slots()
                    );
                }
                None
            }
        }
    }

    /// Moves the source slot of the entry `word` found in `mig`'s successor, if that entry is a
    /// copy whose source slot in `source` is frozen and not yet MOVED (see `RawMap::settled`).
    ///
    /// The slot is found by the entry's identity, not by its key: a copy is placed only after
    /// its source slot is frozen, so that slot still holds `word`'s entry, frozen, until it is
    /// MOVED (when its word becomes `COPIED(i)`, without the pointer); [`slot_holding`] finds it.
    #[cold]
    #[inline(never)]
    pub(super) fn settle_copy(
        &self,
        source: &Table<K, V>,
        mig: &Migration<K, V>,
        word: usize,
        guard: &Guard,
    ) {
        let Some(p) = Word(word).entry_ptr::<K, V>() else {
            return;
        };
        // SAFETY: `word` was loaded (Acquire) from a slot of the successor while pinned: an
        // unmoved entry there is retired only after being unlinked, so not before we unpin.
        let hash = unsafe { (*p).hash };
        if let Some((g, i)) = slot_holding(source, p as usize, hash) {
            self.help_move_at(source, mig, g, i, guard);
        }
    }

    /// Makes `next` the root if `table` is still the root. Every slot of `table` must be MOVED.
    fn promote(&self, table: &Table<K, V>, mig: &Migration<K, V>, guard: &Guard) {
        // Every slot may have moved with nothing to copy (all empty or removed) before anyone
        // needed the successor: make it now.
        self.sized_next(table, mig, guard);
        // Compared by address only: the pointer retired below is the one the CAS returns, which
        // carries the allocation's own provenance (a pointer derived from `&Table` may not free
        // it).
        let expected = table as *const Table<K, V> as *mut Table<K, V>;
        // AcqRel: Release publishes the completed `next` to new readers of the root; Acquire
        // pairs with the previous promotion (the counts we read were acquired through `done`).
        if let Ok(old) = self.root.compare_exchange(
            expected,
            mig.next_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            pause_point("promoted");
            // The old table's `Drop` frees its groups and migration record, not the entries (now
            // owned by `next`) and not `next`.
            // SAFETY: `old` is the `Box::into_raw` pointer stored in the root; it is no longer the
            // root and no table links to it, so no thread pinning from now on can reach it; only
            // the CAS winner retires it.
            unsafe { reclaim::retire_box_and_flush(guard, old) };
        }
    }

    /// Starts migrating `table` into a new table of `groups` groups, unless it is migrating
    /// already. If `table` is not the root, finishes the root's migration first (which makes
    /// `table` the root).
    #[cold]
    #[inline(never)]
    pub(super) fn start_migration(&self, table: &Table<K, V>, groups: usize, guard: &Guard)
    where
        K: 'static,
    {
        if table.migration().is_some() {
            return;
        }
        // `table` was reached from a root through successors; finish every migration before it,
        // oldest first, so that it is the root when its own migration starts (each finish
        // promotes, so this ends). A migration installed on a table that is not yet the root
        // would let copies into it still be in flight while it migrates away.
        loop {
            if table.migration().is_some() {
                // `table` got its migration meanwhile (and may have been promoted and migrated
                // away since): nothing to start.
                return;
            }
            let root = self.root(guard);
            if std::ptr::eq(root, table) {
                break;
            }
            match root.migration() {
                Some(mig) => self.finish_migration(root, mig, guard),
                // The root moved past `table`'s generation and `table` is stale.
                None => return,
            }
        }
        table.install_migration(Migration::new(
            groups,
            table.groups(),
            super::keys::cached::<K>(),
        ));
    }

    /// An insert found `table` (no migration yet) full enough to grow to `groups` groups, with
    /// `live` entries in the map, at a free slot `dist` groups into its probe. Starts the growth
    /// at once, or helps zero its successor first (see "Preparing a growth" above). Returns
    /// whether `table` has a migration now (the caller probes again); `false` means the insert
    /// goes on into `table`, at the free slot it found.
    #[cold]
    #[inline(never)]
    pub(super) fn grow(
        &self,
        table: &Table<K, V>,
        groups: usize,
        live: usize,
        dist: usize,
        guard: &Guard,
    ) -> bool
    where
        K: 'static,
    {
        let groups = grown_groups(table.groups(), groups);
        // Past the probe limit, or past 7/8 full (the zeroing is slow, or a zeroer stalled), or
        // for a successor small enough to zero at once: start the growth now.
        if !PREPARE_GROWTH
            || groups < PREPARE_MIN_GROUPS
            || dist >= table.probe_limit()
            || live * 8 >= table.slots() * 7
        {
            self.start_migration(table, groups, guard);
            return true;
        }
        let prep = table.prep(groups, super::keys::cached::<K>());
        // The prep may be a lazily sized migration's (`prepare_during_count`), smaller than a
        // growth's successor, if that migration was installed after our caller looked: then it is
        // not ours to take, and the caller goes on into that migration.
        if prep.groups() >= 2 * table.groups()
            && prep.help()
            && std::ptr::eq(self.root(guard), table)
        {
            // Every page is zeroed, and `table` is the root (a successor not yet promoted waits
            // for its promotion: a later insert's `grow` starts it). One thread takes the
            // arrays; its installation fails only if another migration (a rebuild, a growth past
            // the probe limit) got in first, and then the arrays are freed with the record.
            if let Some(prepared) = prep.take() {
                table.install_migration(Migration::prepared(table.groups(), prepared));
            }
        }
        table.migration().is_some()
    }

    /// The successor of `table`, sizing it first if that is still to do (see "Sizing" above).
    #[inline]
    pub(super) fn sized_next<'g>(
        &self,
        table: &'g Table<K, V>,
        mig: &'g Migration<K, V>,
        guard: &Guard,
    ) -> &'g Table<K, V> {
        match mig.next() {
            Some(next) => next,
            None => self.size_next(table, mig, guard),
        }
    }

    /// Counts every chunk not yet counted (unclaimed ones first, so that concurrent sizers split
    /// the work; then all the others, whose claimers may be stalled) and installs a successor
    /// that holds the counted entries twice over.
    #[cold]
    #[inline(never)]
    fn size_next<'g>(
        &self,
        table: &'g Table<K, V>,
        mig: &'g Migration<K, V>,
        // Unused: proof that the caller is pinned, which the tables it reads need.
        _guard: &Guard,
    ) -> &'g Table<K, V> {
        loop {
            // Relaxed: as in `help_chunk`.
            let chunk = mig.count_claim().fetch_add(1, Ordering::Relaxed);
            if chunk >= mig.chunks() {
                break;
            }
            self.count_chunk(table, mig, chunk);
        }
        let mut live = 0;
        for chunk in 0..mig.chunks() {
            // Acquire: pairs with the AcqRel CAS that recorded the count.
            if mig.chunk_live(chunk).load(Ordering::Acquire) == 0 {
                self.count_chunk(table, mig, chunk);
            }
            live += mig.chunk_live(chunk).load(Ordering::Acquire) - 1;
        }
        if let Some(next) = mig.next() {
            return next;
        }
        // Every chunk is counted; the entries that registered writers add to counted slots come
        // on top, and from here on none is added (a writer that registers now goes to `next`).
        let live = live + mig.close_late();
        // Room for the counted entries twice over. New keys get a quarter of the spare room; the
        // rest is slack (the stress geometry's four-slot tables overflowed when new keys could
        // take half, while stalled helpers' reservations wasted slots; since stop 32 copies waste
        // none, and the share was kept).
        // Not below the room reserved, read again after this fence: the one in `reserve`,
        // between its raising the room and its check for a migration, pairs with it (ours comes
        // after the Acquire load that found this migration). A shrink decided before a
        // `reserve` raised the room is sized to that room, or that `reserve` sees the shrink's
        // migration and makes its room again once it is finished.
        hint_fence(Ordering::SeqCst);
        let reserved = self.reserved_groups.load(Ordering::Relaxed);
        let groups = mig.wanted_groups().max(groups_for_live(live)).max(reserved);
        let budget = (groups * GROUP_SLOTS - live) / 4;
        // A large successor was zeroed a page at a time while the source was counted, if the
        // count asks for the size the migration wanted ("Preparing a lazily sized successor").
        // Every sizer that finds them zeroed builds on the same arrays, and the one whose table
        // is installed keeps them.
        let (next, shared) = match share_prepared(table, groups) {
            Some((prep, arrays)) => (Table::from_prepared(arrays), Some(prep)),
            None => (Table::successor(groups), None),
        };
        let mut next = Box::new(next);
        pause_point("sized");
        if let Some(prep) = shared {
            // SAFETY: `next` is made over arrays `prep` lent. It adopts them only for its
            // installation: installed, it keeps them; lost, it gives them back below before it
            // drops. Nothing between here and there (a CAS and two stores) can unwind.
            unsafe { next.adopt(prep) };
        }
        match mig.install_next(next, budget, shared.is_some()) {
            Ok(next) => {
                if let Some(prep) = shared {
                    prep.kept();
                }
                next
            }
            Err((next, lost)) => {
                match shared {
                    // `lost` was never published: taken apart, it leaves the arrays to the
                    // prep (or to the installed table, which adopted them too).
                    Some(prep) => lost.disown_arrays(prep),
                    None => drop(lost),
                }
                next
            }
        }
    }

    /// Counts one chunk of source groups: marks each free slot (EMPTY or VACATED) as counted,
    /// so that an entry can enter it afterwards only through a writer registered with the count
    /// (`Migration::register_late`), then records, once, how many of its slots may still need
    /// a copy.
    ///
    /// Slots are addressed by group (no division per slot). A counted slot keeps its tag, and
    /// takes writes as before: the count no longer stops inserts into the source (until stop 30
    /// it redirected empty slots, and the first insert that met one needed the successor and
    /// counted every chunk still uncounted itself; see "Sizing" in the module docs).
    fn count_chunk(&self, table: &Table<K, V>, mig: &Migration<K, V>, chunk: usize) {
        let first = chunk * MIGRATE_CHUNK_GROUPS;
        let last = (first + MIGRATE_CHUNK_GROUPS).min(table.groups());
        let mut live = 0;
        for g in first..last {
            for slot in &table.group(g).slots {
                // Acquire: pairs with the Release CAS that stored an entry here.
                let mut w = Word(slot.load(Ordering::Acquire));
                if w.is_empty() || w.0 == VACATED {
                    let counted = if w.is_empty() {
                        COUNTED_EMPTY
                    } else {
                        COUNTED_VACATED
                    };
                    match slot.compare_exchange(
                        w.0,
                        counted,
                        // AcqRel: Release so that an insert whose CAS fails on the mark, and which
                        // then reloads the slot with Acquire (its retry's probe; the failed CAS is
                        // Relaxed), sees the migration. Acquire on failure is more than needed:
                        // the count only tells an entry from a free slot, never reads the entry.
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => continue,
                        Err(actual) => w = Word(actual),
                    }
                }
                // An entry not yet moved may need a copy. A free slot counted before (by
                // another counter of this chunk) may have taken one since, from a registered
                // writer: counting it too only leaves more room.
                if !w.is_moved() && w.entry_ptr::<K, V>().is_some() {
                    live += 1;
                }
            }
        }
        // AcqRel: Release passes on what this counter saw to the sizer that reads the count
        // (which reads no marks itself: more than it needs); a loser (the chunk was counted
        // meanwhile) changes nothing.
        let _ = mig.chunk_live(chunk).compare_exchange(
            0,
            live + 1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// What [`place`] found for a copy in `next`.
enum Placed {
    /// The slot that holds the copy: placed by this call, or by another helper of the same
    /// source slot.
    At(usize),
    /// The source slot is MOVED: another helper finished it.
    Moved,
    /// `next` is migrating itself, or has no empty slot left in the key's probe sequence: both
    /// mean the caller is a stale helper (see `copy_to_next`).
    Stale,
}

/// Finds the copy of `entry` (frozen in `source`) in `next`, or publishes it there: in `hash`'s
/// probe sequence, the first slot that already holds `entry`, or failing that the first empty
/// slot, taken by `CAS(EMPTY → entry)` and then tagged; unless the source slot is MOVED when a
/// CAS is about to be tried.
///
/// Every helper of a source slot scans the same sequence and never passes an empty slot without
/// trying to take it, and slots never return to EMPTY; so the first copy placed is the one
/// every later helper meets, as `entry`, until a writer changes that slot in `next`, which it
/// does only after the source slot is MOVED. A helper that passed that slot read the writer's
/// change (Acquire) before it loads the source slot, and so sees MOVED and places nothing: see
/// "Why the copy has one place" in the module docs.
///
/// The helper that places the copy stores `key` in the slot's key cell, if given, and sets its
/// key bit with the tag: the source slot's key is the copy's for good.
fn place<K, V>(
    next: &Table<K, V>,
    source: &AtomicUsize,
    hash: u64,
    entry: usize,
    tag: u8,
    key: Option<u64>,
) -> Placed {
    let mut probe = Probe::new(hash, next.group_mask());
    for dist in 0..next.groups() {
        let group = next.group(probe.pos);
        // Acquire: pairs with the Release `fetch_or`s that write tags.
        let tags = group.tags.load(Ordering::Acquire);
        for i in tag::match_tag(tags, tag) {
            // Acquire: pairs with the Release CAS that published the entry, or that changed
            // its slot after the source slot was MOVED.
            if group.slots[i].load(Ordering::Acquire) == entry {
                return Placed::At(probe.pos * GROUP_SLOTS + i);
            }
        }
        if tag::match_tag(tags, tag::REDIRECT).next().is_some() {
            // `next` is migrating itself (its empty slots are being redirected): this helper is
            // stale, and the copy was published long ago.
            return Placed::Stale;
        }
        for i in tag::match_empty(tags) {
            let index = probe.pos * GROUP_SLOTS + i;
            let slot = next.slot(index);
            // Acquire: to read an entry whose tag is not written yet.
            let mut w = Word(slot.load(Ordering::Acquire));
            if w.is_empty() {
                // Acquire: pairs with the Release store of MOVED. Every slot this scan passed
                // was read before this load, by its word or by its tag (a remover that turns
                // the tag into a TOMBSTONE does so with a Release `fetch_or` after its CAS): if
                // one of them held the copy once and a writer has since changed it, that writer
                // saw MOVED first, and so does this load.
                if Word(source.load(Ordering::Acquire)).is_moved() {
                    return Placed::Moved;
                }
                if dist + 1 > next.probe_limit() {
                    next.raise_read_bound(dist + 1);
                }
                match slot.compare_exchange(
                    slot::EMPTY,
                    entry,
                    // Release: publishes the entry (already fully built) to readers of `next`,
                    // after the read-bound raise; Acquire on failure to read what took the slot.
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        match key {
                            Some(bits) => {
                                // Relaxed: published by the Release `fetch_or` below, whose key
                                // bit says the cell is written. Only we write it: our CAS took
                                // the slot out of EMPTY.
                                next.key_line(probe.pos).cells[i].store(bits, Ordering::Relaxed);
                                // Release: pairs with the Acquire tag loads of lookups.
                                group.tags.fetch_or(
                                    tag::tag_bits(i, tag) | tag::key_bit(i),
                                    Ordering::Release,
                                );
                            }
                            None => set_tag(next, index, tag),
                        }
                        return Placed::At(index);
                    }
                    Err(actual) => w = Word(actual),
                }
            }
            if w.0 == entry {
                return Placed::At(index); // another helper placed it, before its tag reached us
            }
            if w.is_frozen() || w.is_counted() {
                // `next` is migrating itself: this helper is stale, as above.
                return Placed::Stale;
            }
            repair_tag(next, index, w);
        }
        probe.advance();
    }
    // No empty slot in the whole probe sequence. While the migration runs that cannot happen: an
    // eager successor is at least twice the source, a lazy one twice the counted entries (see
    // "Sizing"), and part of the remaining room is kept from new keys (the insert budget). So
    // the caller is stale, and `next`, promoted long ago, has filled up; the caller decides.
    Placed::Stale
}

/// A counter's share of preparing a large lazily sized successor: it zeroes up to
/// [`PREPARE_PAGES`](crate::sync::PREPARE_PAGES) pages of a table of the groups the migration
/// asked for (see "Preparing a lazily sized successor" above), which the sizers build on if the
/// count asks for that size.
fn prepare_during_count<K, V>(table: &Table<K, V>, mig: &Migration<K, V>) {
    if PREPARE_GROWTH && mig.wanted_groups() >= PREPARE_MIN_GROUPS {
        table.prep(mig.wanted_groups(), mig.key_lines_used()).help();
    }
}

/// The arrays prepared on `table` for a successor of `groups` groups, once every page is zeroed
/// (this thread zeroing a page more if one is unclaimed), lent to this sizer with their
/// [`Prep`] (see [`Prep::share`]); `None` if there are none of that size, their zeroing is
/// unfinished (a zeroer may be stalled: the sizer does not wait, it allocates a zeroed table),
/// or a growth took them.
fn share_prepared<K, V>(
    table: &Table<K, V>,
    groups: usize,
) -> Option<(&super::table::Prep, super::table::Prepared)> {
    let prep = table.prepared()?;
    if prep.groups() != groups || !prep.help() {
        return None;
    }
    // SAFETY: `help` returned `true` just now; the one caller, `size_next`, installs the table
    // it makes over the arrays, which then lives as the successor, or drops it at once; the
    // prep lives as long as `table`, which its caller has pinned.
    let arrays = unsafe { prep.share() }?;
    Some((prep, arrays))
}

/// Whether `next` holds `entry`, whose hash is `hash`, as a migration's copy: under exclusive
/// access, for a source slot found frozen and unmoved (`owned_entry` in `raw/mod.rs`).
pub(super) fn holds_copy<K, V>(next: &Table<K, V>, entry: usize, hash: u64) -> bool {
    slot_holding(next, entry, hash).is_some()
}

/// The slot of `table` (group, slot) whose word holds the entry `entry` unmoved (live or
/// frozen), searched by identity along `hash`'s probe sequence: `hash` is the one the entry
/// stores, and every write puts an entry in a slot on that hash's sequence, raising the table's
/// read bound first if it must (inserts, replacements that keep a slot, and `place` for a
/// migration's copy), so the search stops at the read bound.
pub(super) fn slot_holding<K, V>(
    table: &Table<K, V>,
    entry: usize,
    hash: u64,
) -> Option<(usize, usize)> {
    let mut probe = Probe::new(hash, table.group_mask());
    for _ in 0..table.read_bound() {
        let group = table.group(probe.pos);
        for (i, slot) in group.slots.iter().enumerate() {
            // Acquire: a copy found in a successor was placed after its source slot was frozen
            // (the placer, whoever froze the slot, read it frozen with Acquire before its Release
            // CAS, which the caller's Acquire load of the copy read), so by coherence this load
            // sees the frozen word or its final one. Under exclusive
            // access it orders nothing.
            let w = Word(slot.load(Ordering::Acquire));
            if w.entry_ptr::<K, V>().map(|q| q as usize) == Some(entry) {
                return Some((probe.pos, i));
            }
        }
        probe.advance();
    }
    None
}

/// What one thread has seen of one pending migration, for [`writers_stalled`] (the value is the
/// migration's `writer_claim` hint) or [`claimers_stalled`] (its count of chunks moved): which
/// migration (its address), the value last seen, how many of the thread's operations on it in a
/// row saw that value, and when the thread last looked (its [`Watches::clock`]).
#[derive(Clone, Copy)]
struct Watch {
    migration: usize,
    value: usize,
    count: usize,
    touched: u64,
}

/// Slots of a thread's [`Watches`]. A thread that reads from this many maps in turn, each with
/// a migration pending, keeps a watch on each.
const WATCH_SLOTS: usize = 8;

/// The thread's operations, counted by [`Watches::clock`], after which a watch not looked at
/// since may be taken for another migration whatever its count (its migration most likely
/// finished).
const WATCH_STALE: u64 = 1024;

/// One thread's watches on the pending migrations it meets, one table for each question.
///
/// Until stop 50 each question had one watch a thread, which a different migration took over:
/// a thread that looked up keys of two maps in turn, each with a growth pending and no writer
/// left, started the count again at every lookup, so no lookup ever helped, and both maps probed
/// two tables (and kept both) for as long as they were only read; the same for a stalled
/// claimer's sweep (a review of resource bounds found it). With a table the counts of up to
/// [`WATCH_SLOTS`] migrations go on side by side. A migration that finds the table full takes
/// the slot of one not looked at for [`WATCH_STALE`] operations, or else the slot with the
/// lowest count, the newest of those: the watches that have counted furthest stay, so that with
/// more maps than slots in turn those migrations still reach their count and finish, and their
/// slots, no longer looked at, go to the others.
struct Watches {
    slots: [Watch; WATCH_SLOTS],
    /// The thread's operations that asked this table, to age the slots.
    clock: u64,
}

impl Watches {
    const fn new() -> Self {
        Watches {
            slots: [Watch {
                migration: 0,
                value: 0,
                count: 0,
                touched: 0,
            }; WATCH_SLOTS],
            clock: 0,
        }
    }

    /// Records that this thread found `migration` with `value`, and returns its watch, whose
    /// count says how many times in a row (this one included) the thread found it so.
    fn observe(&mut self, migration: usize, value: usize) -> &mut Watch {
        self.clock += 1;
        let clock = self.clock;
        let i = match self.slots.iter().position(|w| w.migration == migration) {
            Some(i) => i,
            None => {
                // A stale (or unused) slot first, then the lowest count, and of those the one
                // looked at last: the newest comer gives way, so that with more migrations than
                // slots, all counts at one, the first comers keep theirs (the oldest would give
                // way to each comer in turn, and no count would pass one).
                let evict = |w: &Watch| {
                    let stale = clock - w.touched > WATCH_STALE || w.migration == 0;
                    (!stale, w.count, std::cmp::Reverse(w.touched))
                };
                let i = (0..WATCH_SLOTS)
                    .min_by_key(|&i| evict(&self.slots[i]))
                    .unwrap_or(0);
                self.slots[i] = Watch {
                    migration,
                    value,
                    count: 0,
                    touched: clock,
                };
                i
            }
        };
        let w = &mut self.slots[i];
        if w.value == value {
            w.count = w.count.saturating_add(1);
        } else {
            w.value = value;
            w.count = 1;
        }
        w.touched = clock;
        w
    }
}

thread_local! {
    static CLAIM_WATCH: std::cell::RefCell<Watches> = const {
        std::cell::RefCell::new(Watches::new())
    };
    static CLAIMERS_WATCH: std::cell::RefCell<Watches> = const {
        std::cell::RefCell::new(Watches::new())
    };
}

/// Operations of one thread that must find a migration's chunks all claimed, with no chunk
/// counted as moved in between, before that thread finishes the migration itself
/// (`outlast_claimers`), in a table of fewer groups than this: a chunk's moves take a few
/// microseconds, which a thread's lookups in a small table would otherwise outnumber while
/// its claimer is merely at work (found by a review at stop 48).
const OUTLAST_MIN_PATIENCE: usize = 1024;

/// Whether this thread has now found `mig`'s chunks all claimed and not all counted `patience`
/// times (this one included) since any chunk was last counted as moved; if so, starts the count
/// again. Never under loom ([`OUTLAST_STALLED_CLAIMERS`]). A heuristic, as [`writers_stalled`]
/// is: an address reused by a later migration, or a thread-local already destroyed, at worst
/// makes a thread finish a migration early or late.
fn claimers_stalled<K, V>(mig: &Migration<K, V>, patience: usize) -> bool {
    if !OUTLAST_STALLED_CLAIMERS {
        return false;
    }
    let migration = std::ptr::from_ref(mig) as usize;
    let moved = mig.chunks_moved();
    CLAIMERS_WATCH
        .try_with(|watches| {
            let mut watches = watches.borrow_mut();
            let w = watches.observe(migration, moved);
            let stalled = w.count >= patience;
            if stalled {
                w.count = 0;
            }
            stalled
        })
        .unwrap_or(false)
}

/// Whether this thread's lookups have seen `mig`'s writers claim nothing for
/// [`LOOKUP_HELP_AFTER`] of its lookups on `mig` in a row (this one included; lookups on other
/// maps in between do not break the row: [`Watches`]). A heuristic: an address reused by a later
/// migration, or a thread-local already destroyed, at worst makes a lookup help early (as every
/// lookup did before the watch) or late.
#[inline]
fn writers_stalled<K, V>(mig: &Migration<K, V>) -> bool {
    if LOOKUP_HELP_AFTER == 0 {
        return true;
    }
    let migration = std::ptr::from_ref(mig) as usize;
    // Relaxed: a hint (see `Migration::writer_claim`).
    let writer_claim = mig.writer_claim().load(Ordering::Relaxed);
    CLAIM_WATCH
        .try_with(|watches| {
            watches.borrow_mut().observe(migration, writer_claim).count
                >= LOOKUP_HELP_AFTER as usize
        })
        .unwrap_or(true)
}

/// Writes the successor's next `WRITE_PAGES` pages, if some are still to write: each claimed
/// chunk's share of mapping the successor ([`Table::write_pages`]).
#[inline]
fn write_next_pages<K, V>(mig: &Migration<K, V>) {
    #[cfg(not(loom))]
    if let Some(next) = mig.next() {
        use super::table::WRITE_PAGES;
        let pages = next.pages();
        // Relaxed: the claim only divides the work (which is only ever a hint to the kernel's
        // page tables); the load spares a read-modify-write once every page is handed out.
        if mig.page_claim().load(Ordering::Relaxed) < pages {
            let first = mig.page_claim().fetch_add(WRITE_PAGES, Ordering::Relaxed);
            next.write_pages(claimed_pages(first, pages));
        }
    }
    #[cfg(loom)]
    let _ = mig;
}

/// The pages of a successor of `pages` pages that a page claim returning `first` hands out:
/// none once the claim has passed the last page. `first` may be anything up to `usize::MAX`:
/// `install_next` stores `usize::MAX` over the claim of a successor written already, and a
/// helper that loaded the claim before that store still adds to it (stop 43's coverage run
/// found `first + WRITE_PAGES` overflowing there, a panic in a build with overflow checks, as a
/// debug build has; the add of the atomic itself wraps, and a wrapped claim writes a few pages
/// again, which changes nothing).
#[cfg(not(loom))]
#[inline]
pub(super) fn claimed_pages(first: usize, pages: usize) -> std::ops::Range<usize> {
    use super::table::WRITE_PAGES;
    first.min(pages)..first.saturating_add(WRITE_PAGES).min(pages)
}

/// Starts loading what moving the slots of `table`'s `groups` will read: each entry (for its hash),
/// then the group of `next` where its copy will go. Moving a chunk otherwise waits on those
/// cache misses one slot at a time; entries are at random addresses, and so are their groups in
/// `next`. Only hints: nothing here is relied on, and nothing is written.
fn prefetch_chunk<K, V>(
    table: &Table<K, V>,
    mig: &Migration<K, V>,
    groups: std::ops::Range<usize>,
) {
    if !crate::sync::PREFETCH {
        return;
    }
    for g in groups.clone() {
        for slot in &table.group(g).slots {
            prefetch_entry_hash::<K, V>(slot);
        }
        if has_lines::<K>() {
            // The cells `key_copy` reads, if the slots have them.
            crate::sync::prefetch(table.key_line(g));
        }
    }
    let Some(next) = mig.next() else {
        return;
    };
    for g in groups {
        // Relaxed: only decides which lines to hint; `key_copy` reads the bits again, Acquire.
        let keyed = has_lines::<K>() && tag::any_key(table.group(g).tags.load(Ordering::Relaxed));
        for slot in &table.group(g).slots {
            // Acquire: pairs with the Release CAS that published the entry, whose hash we read.
            let w = Word(slot.load(Ordering::Acquire));
            if w.is_moved() {
                continue;
            }
            if let Some(p) = w.entry_ptr::<K, V>() {
                // The caller holds a guard for the whole step; a replaced or removed entry is
                // freed only after that guard is gone, and its hash never changes.
                // SAFETY: an unmoved entry pointer loaded (Acquire) while pinned: still allocated.
                let hash = unsafe { (*p).hash };
                let pos = hash as usize & next.group_mask();
                crate::sync::prefetch(next.group(pos));
                if keyed {
                    // The cell the copy's placement will write (`place`).
                    crate::sync::prefetch(next.key_line(pos));
                }
            }
        }
    }
}

/// ORs `tag` into slot `index`'s tag byte.
#[inline]
pub(super) fn set_tag<K, V>(table: &Table<K, V>, index: usize, tag: u8) {
    set_group_tag(table.group(index / GROUP_SLOTS), index % GROUP_SLOTS, tag);
}

/// Turns a free slot that held `free` (EMPTY or COUNTED_EMPTY) into REDIRECT, so that no entry
/// can enter it in this table; the word found instead if the slot changed. The caller writes
/// the REDIRECT tag.
#[inline]
pub(super) fn try_redirect(slot: &AtomicUsize, free: Word) -> Result<(), Word> {
    debug_assert!(free.is_empty() || free.0 == COUNTED_EMPTY);
    slot.compare_exchange(
        free.0,
        REDIRECT,
        // AcqRel: Release so that a writer whose CAS fails on this slot, and which then reloads it
        // with Acquire (its retry's probe; the failed CAS is Relaxed), sees the migration;
        // Acquire (also on failure) to read the entry that took the slot.
        Ordering::AcqRel,
        Ordering::Acquire,
    )
    .map(|_| ())
    .map_err(Word)
}

/// ORs `tag` into the tag byte of `group`'s slot `slot`.
#[inline]
pub(super) fn set_group_tag(group: &Group, slot: usize, tag: u8) {
    // Release: pairs with the Acquire tag loads of lookups, which then find the slot's content.
    group
        .tags
        .fetch_or(tag::tag_bits(slot, tag), Ordering::Release);
}

/// Makes sure slot `index`'s tag byte holds `tag`, writing it only if it does not yet.
///
/// A mover re-asserts tags that are almost always in place already (the inserter's, or the
/// placing helper's): a load of the group line it has just read replaces a locked RMW (about
/// 20 cycles, and a barrier to the loads of the moves around it). Skipping is safe because tags
/// only ever gain bits (every write is a `fetch_or`): once this load sees the bits, any load that
/// happens after it (a reader that synchronizes with our later MOVED or publication CAS) sees
/// them too, by read-read coherence; and a lookup that reads the bits synchronizes with the
/// `fetch_or` that wrote them (whose release sequence the later RMWs continue), as it would with
/// ours.
#[inline]
pub(super) fn ensure_tag<K, V>(table: &Table<K, V>, index: usize, tag: u8) {
    ensure_group_tag(table.group(index / GROUP_SLOTS), index % GROUP_SLOTS, tag);
}

/// [`ensure_tag`] for slot `slot` of `group`.
#[inline]
pub(super) fn ensure_group_tag(group: &Group, slot: usize, tag: u8) {
    let bits = tag::tag_bits(slot, tag);
    // Relaxed: only decides whether to write; see `ensure_tag` for why seeing the bits is enough.
    if group.tags.load(Ordering::Relaxed) & bits != bits {
        set_group_tag(group, slot, tag);
    }
}

/// Writes the tag for a non-empty slot word `w` read from a slot whose tag byte was still EMPTY,
/// so that lookups stop treating the group as ending there.
pub(super) fn repair_tag<K, V>(table: &Table<K, V>, index: usize, w: Word) {
    if w.copied_to().is_some() {
        // A moved entry's final word: its mover wrote the tag before MOVED. (`entry_ptr` is
        // `None` for it, so below it would have been tagged REDIRECT, ORed into the full tag;
        // harmless, since nothing reads a moved slot's tag as a key's, but wrong. Found by a
        // review of stop 47.)
        return;
    }
    if w.is_vacated() {
        // Its remover wrote the key's tag before vacating it (`try_remove`): our tag word was
        // read before that. A TOMBSTONE here would hide the key's own slot from its inserts.
        return;
    }
    if w.is_counted() {
        // A free slot passed by a count keeps its EMPTY tag: it is still where a probe stops.
        return;
    }
    let tag = if w.is_sentinel() {
        tag::TOMBSTONE
    } else if let Some(p) = w.entry_ptr::<K, V>() {
        // SAFETY: `entry_ptr` is `Some` only for an unmoved entry, which has not been retired
        // (retiring follows unlinking, and unlinking a frozen entry happens only after MOVED);
        // the caller is pinned.
        tag::full_tag(unsafe { (*p).hash })
    } else {
        tag::REDIRECT
    };
    set_tag(table, index, tag);
}

/// A point where tests can stall the current thread in the middle of a migration.
#[inline(always)]
pub(super) fn pause_point(site: &'static str) {
    #[cfg(test)]
    hooks::pause(site);
    let _ = site;
}

#[cfg(test)]
pub(crate) mod hooks {
    use std::cell::RefCell;

    type Hook = Box<dyn FnMut(&'static str)>;

    thread_local! {
        static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Installs a callback run (on this thread only) at each pause point.
    pub(crate) fn set(hook: Option<Hook>) {
        HOOK.with(|h| *h.borrow_mut() = hook);
    }

    pub(super) fn pause(site: &'static str) {
        // Take the hook out while it runs, so a hook may itself use the map.
        if let Some(mut hook) = HOOK.with(|h| h.borrow_mut().take()) {
            hook(site);
            HOOK.with(|h| {
                let mut slot = h.borrow_mut();
                if slot.is_none() {
                    *slot = Some(hook);
                }
            });
        }
    }
}

#[cfg(test)]
mod watch_tests {
    use super::{Watches, WATCH_SLOTS, WATCH_STALE};

    /// A thread's watches count each migration it meets on, whatever it meets in between: two
    /// in turn each count every meeting, and with more than the slots in turn the first comers
    /// keep counting, then leave their slots to the rest once they are no longer met (their
    /// migrations finished).
    #[test]
    fn watches_count_migrations_met_in_turn() {
        let mut watches = Watches::new();
        for round in 1..=100 {
            for m in [1, 2] {
                assert_eq!(watches.observe(m * 64, 7).count, round);
            }
        }
        assert_eq!(watches.observe(64, 8).count, 1, "a new value counts again");

        let mut watches = Watches::new();
        let many = WATCH_SLOTS + 4;
        for round in 1..=100 {
            for m in 1..=many {
                let count = watches.observe(m * 64, 0).count;
                if m < WATCH_SLOTS {
                    assert_eq!(count, round, "first comer {m} keeps its watch");
                }
            }
        }
        // The first comers' migrations are gone: the others take their slots once stale.
        let rest = WATCH_SLOTS..=many;
        let mut rounds = 0;
        loop {
            let counts: Vec<usize> = rest
                .clone()
                .map(|m| watches.observe(m * 64, 0).count)
                .collect();
            if counts.iter().all(|&c| c >= 64) {
                break;
            }
            rounds += 1;
            assert!(
                rounds <= WATCH_STALE as usize + 100,
                "the later comers never counted on: {counts:?}"
            );
        }
    }

    /// A slot not looked at for [`WATCH_STALE`] operations goes to a new comer before any slot
    /// with a lower count: the watches of migrations long finished, whatever their counts, make
    /// room for two new ones met in turn. Ranked by count alone, the new comers would take the
    /// one slot with the lowest count from each other at every meeting, and neither would count
    /// past one. (The mutant that made the staleness test `==` lived in stop 56's mutation run:
    /// in the test above the later comers' meetings evict at every clock tick, and so meet each
    /// old slot's exact moment of staleness.)
    #[test]
    fn stale_watches_go_to_new_comers_before_lower_counts() {
        let mut watches = Watches::new();
        for _ in 0..100 {
            for m in 1..=WATCH_SLOTS {
                watches.observe(m * 64, 0);
            }
        }
        // One of them goes on being met, and nothing is evicted meanwhile: the other slots go
        // stale, each with its count of 100, below the busy one's.
        for _ in 0..2 * WATCH_STALE {
            watches.observe(64, 0);
        }
        let new_comers = [(WATCH_SLOTS + 1) * 64, (WATCH_SLOTS + 2) * 64];
        for round in 1..=100 {
            for m in new_comers {
                assert_eq!(watches.observe(m, 0).count, round, "new comer {m}");
            }
        }
        assert_eq!(
            watches.observe(64, 0).count,
            2 * WATCH_STALE as usize + 101,
            "the busy slot stays"
        );
    }
}
