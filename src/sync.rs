//! The one place that names std's atomics or loom's.
//!
//! Every atomic the map touches comes from here, so a model checker can stand in for all of them
//! by flipping one cfg (`--cfg loom`, with crossbeam-epoch's own `--cfg crossbeam_loom`). No other
//! file in the crate mentions `cfg(loom)`.
//!
//! The table geometry lives here too: under loom the table is shrunk (two slots a group, one-slot
//! migration chunks) so that two or three threads reach freezing, helping and promotion within a
//! handful of operations. Building with the environment variable
//! `LOCKFREE_MAP_STRESS_GEOMETRY` set (to anything) does the same for ordinary test builds, so the
//! stress tests drive many resizes with few keys. An environment variable rather than a
//! `--cfg` in `RUSTFLAGS`: it changes this crate alone (cargo rebuilds it when the variable
//! changes, as it does for every `option_env!`), so a stress build shares every dependency's
//! artifacts with the ordinary release build instead of compiling them all again.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;

/// An atomic that loom does not model, for two values read with `Relaxed` on paths every model
/// takes: `RawMap`'s `reserved_groups` (raised by `reserve`, and ordered against a migration's
/// sizing by [`hint_fence`]), a size that decides no memory safety, and `Table`'s `vacated` flag,
/// set once and read by an iteration's record, which must see it only when the removal happened
/// before the iteration (then happens-before carries the store, `Table::note_vacated`). Loom's
/// atomics would make every model that grows a table or removes a key explore those loads too;
/// loom does not check the flag's argument, nor the room's.
pub(crate) use std::sync::atomic::AtomicUsize as HintUsize;

/// The fence that orders `reserved_groups` (a [`HintUsize`]) against a table's migration record,
/// in `reserve` and in the sizing of a successor (`RawMap::reserve` says how). `std`'s, as the
/// atomic it orders is `std`'s: under loom it stays out of the models, as the room does.
pub(crate) use std::sync::atomic::fence as hint_fence;

/// Slots in one group. A group is one tag word plus this many slot words; with 7 slots and 8-byte
/// words it is exactly one 64-byte cache line.
pub(crate) const GROUP_SLOTS: usize = if STRESS_GEOMETRY { 2 } else { 7 };

/// Whether the table geometry is shrunk for model checking or stress tests (module doc).
pub(crate) const STRESS_GEOMETRY: bool =
    cfg!(loom) || option_env!("LOCKFREE_MAP_STRESS_GEOMETRY").is_some();

/// Groups in the smallest table.
pub(crate) const MIN_GROUPS: usize = 2;

/// Groups in the first table of a map made with no capacity, or with less than this holds (21
/// entries). A map given 16 keys used to start at `MIN_GROUPS` and grow once, and that growth
/// was about 60 % of the instructions of its whole life (callgrind `hotpath small-maps`); the
/// peers' small maps take about as much memory as this (`BENCHMARKS.md`, "A small map's whole
/// life"). The map's own resizes (growth, tombstone cleanup, shrinking when sparse, `clear`) do
/// not go below it; `shrink_to_fit` may, to `MIN_GROUPS`. Under the stress geometry the first
/// table stays the smallest, so that the models and stress tests resize as soon as they did.
pub(crate) const FIRST_GROUPS: usize = if STRESS_GEOMETRY { MIN_GROUPS } else { 4 };

/// Groups a migration helper claims at once. Each write that finds a migration pending moves one
/// chunk, so this bounds the extra work (and the tail latency) of a write during a resize:
/// measured on 2 threads inserting 2M fresh keys, 8 groups gave an insert p99 of about 10 us,
/// 4 gave 5.3 us at the same total time, 2 gave 3.3 us but 5% more total time (BENCHMARKS.md).
pub(crate) const MIGRATE_CHUNK_GROUPS: usize = if STRESS_GEOMETRY { 1 } else { 4 };

/// Chunks of a lazily sized migration's count that an insert counts, on top of its own, before
/// it stores a new key past the source's probe limit while the count runs (`raw/mod.rs`,
/// `RawMap::locate_probe`): a source choked with dead slots (a tombstone rebuild) would
/// otherwise take many long probes, and raise its read bound, before the count ends. At 28 slots
/// a chunk, about 1,800 slots; chosen, not swept (`BENCHMARKS.md`, next step 38).
pub(crate) const COUNT_AHEAD: usize = 64;

/// Whether a write during a migration claims extra chunks when the successor's insert budget
/// left would not cover the chunks still unclaimed (`raw/mod.rs`, `RawMap::pace_moves`). Off under
/// loom: it decides only who moves a chunk (helping is always safe, and the models check it), and
/// its loads would add interleavings to every model that inserts during a migration.
pub(crate) const PACE_MOVES: bool = !cfg!(loom);

/// Lookups in a row, on one thread, that must see no writer claim a chunk of a pending migration
/// (its `writer_claim` hint stands still) before that thread's lookups start helping it
/// (`raw/migrate.rs`, `help_pending_migration`). Zero under loom, whose
/// models check the helping itself and share one OS thread's thread-locals between model threads.
pub(crate) const LOOKUP_HELP_AFTER: u32 = if cfg!(loom) { 0 } else { 64 };

/// Whether an operation that keeps finding every chunk of a migration claimed and not all of
/// them moved finishes the migration itself after a while (`raw/migrate.rs`,
/// `outlast_claimers`), so that a stalled claimer does not keep it pending, and whether a write
/// reads the claim before it adds to it. Off under loom, whose model threads share one OS
/// thread's thread-locals (the patience is counted in one), and whose searches grew with the
/// extra loads (each an interleaving point of every migrating write: the `migrate.rs` models at
/// two preemptions took 73 s with them and 40 s without, stop 48, and CI runs them at three
/// too); the sweep is `finish_migration`'s, which the models check where a budget runs out.
pub(crate) const OUTLAST_STALLED_CLAIMERS: bool = !cfg!(loom);

/// Whether retired entries' blocks are cached per thread for reuse (`raw/pool.rs`). Off under
/// loom, whose model threads share one OS thread's thread-locals.
pub(crate) const ENTRY_CACHE: bool = !cfg!(loom);

/// Entries past the entry cache's share from which a map's drop frees its entries in address
/// order rather than table order (`RawMap`'s `Drop`). Under the stress geometry and Miri every
/// drop does, so that the tests' small maps take that path too.
pub(crate) const ORDERED_FREE_MIN: usize = if STRESS_GEOMETRY || cfg!(miri) {
    0
} else {
    1 << 16
};

/// Whether [`prefetch`] does anything. Callers that load a word only to aim a prefetch skip the
/// load too when it does not, so loom does not explore interleavings of loads that decide nothing.
pub(crate) const PREFETCH: bool = cfg!(all(target_arch = "x86_64", not(loom), not(miri)));

/// `T` with 56 bytes of padding on each side: in an allocation aligned to 8 bytes or more, no
/// cache line that holds a byte of `T` holds a byte of anything outside the `Spaced` (the line
/// of `T`'s first byte starts at most 56 bytes before it, and so does the padding; likewise at
/// the end), so writes elsewhere never invalidate `T`'s lines. Unlike `CachePadded`, which
/// aligns to 128 bytes, it keeps `T`'s own alignment, so a struct holding it is allocated on the
/// allocator's common path (glibc serves 128-byte alignment through `posix_memalign`, about 500
/// instructions more a call), at the price of up to 112 more bytes. It does not keep the
/// neighbouring line of a pair (which some CPUs prefetch together) clear, as `CachePadded` does:
/// for read-mostly data made often, such as a table's header, whose lines stay shared.
#[repr(C)]
pub(crate) struct Spaced<T> {
    _before: [u64; 7],
    value: T,
    _after: [u64; 7],
}

impl<T> Spaced<T> {
    pub(crate) const fn new(value: T) -> Self {
        Spaced {
            _before: [0; 7],
            value,
            _after: [0; 7],
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> std::ops::Deref for Spaced<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Asks the CPU to start loading the cache line at `p`, without waiting for it.
///
/// Only a hint: it never faults, even on a dangling or freed address, and has no effect on what
/// any load returns, so it needs no synchronisation. A no-op where there is no stable prefetch
/// instruction to call, under loom, and under Miri (which has no caches to warm).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // `_mm_prefetch` is an `unsafe fn` on older compilers (MSRV 1.80) and safe on newer ones.
    #[allow(unused_unsafe)]
    // SAFETY: PREFETCHT0 is a hint, not an access: it cannot fault or change memory, whatever
    // the address, and SSE (which provides it) is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = p;
}

/// Whether retirements to the global collector are batched per thread (`reclaim.rs`). Off under
/// loom, whose model threads share one OS thread's thread-locals, and where every retirement
/// should reach the collector at once so that the models explore its reclamation.
pub(crate) const RETIRE_BATCH: bool = !cfg!(loom);

/// How many stripes a length counter gets: the machine's parallelism, rounded up to a power of
/// two, 1 to 64. Asked of the OS once per process and kept: `available_parallelism` reads the
/// cgroup quota files on Linux, about 35 µs a call on the project's VM, which made every
/// `HashMap::new` cost about 47 µs (`std`'s costs nanoseconds), a real price for a program that
/// makes a map per request or per task.
pub(crate) fn stripe_count() -> usize {
    // Outside loom's view on purpose: a process-wide constant, not part of any protocol; racing
    // first callers compute and store the same value. Relaxed: nothing is published through it.
    static STRIPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match STRIPES.load(Ordering::Relaxed) {
        0 => {
            let n = std::thread::available_parallelism()
                .map_or(4, |n| n.get())
                .next_power_of_two()
                .clamp(1, 64);
            STRIPES.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// A hint that spreads threads over the stripes of the length counter.
///
/// Each thread takes the next number from a global counter the first time it asks, so threads
/// land on distinct stripes until there are more threads than stripes.
///
/// Inlined: out of line it was an indirect call in every insert and removal (a function of
/// another codegen unit, called through the GOT).
#[inline]
pub(crate) fn thread_stripe_hint() -> usize {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        HINT.with(|hint| {
            let mut h = hint.get();
            if h == usize::MAX {
                // Relaxed: the number only spreads threads; no memory is published through it.
                h = NEXT.fetch_add(1, Ordering::Relaxed);
                hint.set(h);
            }
            h
        })
    }
    #[cfg(loom)]
    {
        // Under loom every thread is a fresh model thread; a fixed stripe keeps the model small
        // and still exercises the counter's atomics.
        0
    }
}

/// An owned slice of atomics, all zero.
///
/// Outside loom the memory comes from `alloc_zeroed` at the allocator's basic alignment, with
/// room to align the start by hand when `T` wants more (a `Group` is 64-aligned), so that a large
/// table costs only address space until its pages are touched: the allocator's `calloc` hands out
/// fresh mapped pages without writing them. std's `alloc_zeroed` with a larger alignment
/// allocates and then writes every byte (glibc has no aligned `calloc`), which made
/// `HashMap::with_capacity(20_000_000)` resident at once (262 MB, 174 ms before the first
/// insert) and wrote every growth's table twice. loom's atomics must be constructed one by one.
#[cfg(not(loom))]
pub(crate) struct ZeroedSlice<T> {
    /// The first element: `len` of them, aligned for `T`.
    start: std::ptr::NonNull<T>,
    len: usize,
    /// What `start` lies in, as allocated; `None` for an empty slice (a dangling `start`).
    alloc: Option<(std::ptr::NonNull<u8>, std::alloc::Layout)>,
    _owns: std::marker::PhantomData<T>,
}

#[cfg(loom)]
pub(crate) type ZeroedSlice<T> = Box<[T]>;

// SAFETY: a `ZeroedSlice<T>` owns its `T`s as a `Box<[T]>` would, so it may cross threads and be
// shared under the same bounds.
#[cfg(not(loom))]
unsafe impl<T: Send> Send for ZeroedSlice<T> {}
// SAFETY: as above; `&ZeroedSlice<T>` only hands out `&[T]`.
#[cfg(not(loom))]
unsafe impl<T: Sync> Sync for ZeroedSlice<T> {}

#[cfg(not(loom))]
impl<T> std::ops::Deref for ZeroedSlice<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `start` is aligned and non-null, and points to `len` initialised `T`s that live
        // as long as `self` (or `len` is 0); nothing hands out `&mut` to them.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

#[cfg(not(loom))]
impl<T> Drop for ZeroedSlice<T> {
    fn drop(&mut self) {
        // The elements have no drop glue (`ZeroedAtomic`'s contract): only the memory goes.
        if let Some((base, layout)) = self.alloc {
            // SAFETY: `base` came from `alloc_zeroed(layout)` in `zeroed_slice` and is freed once.
            unsafe { std::alloc::dealloc(base.as_ptr(), layout) };
        }
    }
}

/// Whether `slice` frees its memory when it drops (it owns its memory, or has none; always under
/// loom, where every slice owns its own), for tests of the arrays a prep lends
/// ([`Unzeroed::own`], [`disown`]).
#[cfg(test)]
pub(crate) fn owns_memory<T>(slice: &ZeroedSlice<T>) -> bool {
    #[cfg(not(loom))]
    {
        slice.len == 0 || slice.alloc.is_some()
    }
    #[cfg(loom)]
    {
        let _ = slice;
        true
    }
}

/// Makes `slice` free nothing when it drops, its memory left to the [`Unzeroed`] that lent it
/// ([`Unzeroed::own`]). Nothing under loom, where every slice owns memory of its own. Misused,
/// it leaks the memory, nothing worse.
pub(crate) fn disown<T>(slice: &mut ZeroedSlice<T>) {
    #[cfg(not(loom))]
    {
        slice.alloc = None;
    }
    #[cfg(loom)]
    let _ = slice;
}

/// `len` atomics, all zero (see [`ZeroedSlice`]).
pub(crate) fn zeroed_slice<T: ZeroedAtomic>(len: usize) -> ZeroedSlice<T> {
    #[cfg(not(loom))]
    {
        let (start, alloc) = alloc_slice::<T>(len, true);
        // The memory is all zero (`alloc_zeroed`), which `T: ZeroedAtomic` promises is `len`
        // valid `T`s.
        ZeroedSlice {
            start,
            len,
            alloc,
            _owns: std::marker::PhantomData,
        }
    }
    #[cfg(loom)]
    {
        (0..len).map(|_| T::zero()).collect()
    }
}

/// Memory for `len` `T`s, zeroed or not: the first `T` (aligned for `T`) and the allocation it
/// lies in, `None` (and a dangling start) for no bytes.
///
/// The allocation asks for the allocator's basic alignment with room to align the start by
/// hand (see [`ZeroedSlice`] for why).
#[cfg(not(loom))]
fn alloc_slice<T: ZeroedAtomic>(
    len: usize,
    zeroed: bool,
) -> (
    std::ptr::NonNull<T>,
    Option<(std::ptr::NonNull<u8>, std::alloc::Layout)>,
) {
    use std::alloc::Layout;
    use std::ptr::NonNull;
    const { assert!(!std::mem::needs_drop::<T>()) };
    let elems = Layout::array::<T>(len).expect("lockfree-map: capacity overflow");
    if elems.size() == 0 {
        return (NonNull::dangling(), None);
    }
    // The alignment every allocator gives `calloc`-style requests on 64-bit targets (8 on
    // 32-bit ones); `T`'s own, if that is less.
    let basic = elems.align().min(2 * std::mem::size_of::<usize>());
    let slack = elems.align() - basic;
    let layout = elems
        .size()
        .checked_add(slack)
        .and_then(|size| Layout::from_size_align(size, basic).ok())
        .expect("lockfree-map: capacity overflow");
    // SAFETY: `layout` has non-zero size (`elems` has).
    let base = unsafe {
        if zeroed {
            std::alloc::alloc_zeroed(layout)
        } else {
            std::alloc::alloc(layout)
        }
    };
    let Some(base) = NonNull::new(base) else {
        std::alloc::handle_alloc_error(layout);
    };
    // `base` is `basic`-aligned, so at most `slack` bytes bring it to `T`'s alignment.
    let offset = (base.as_ptr() as usize).wrapping_neg() & (elems.align() - 1);
    debug_assert!(offset <= slack);
    // SAFETY: `offset <= slack`, so the `elems.size()` bytes from there lie in the allocation.
    let start = unsafe { base.add(offset) }.cast::<T>();
    (start, Some((base, layout)))
}

/// Bytes zeroed at once by [`Unzeroed::zero_page`].
pub(crate) const ZERO_PAGE_BYTES: usize = 4096;

/// Whether a large growth's successor is allocated without zeroing and zeroed a page per
/// insert before its migration starts (`raw/migrate.rs`, "Preparing a growth"), and a large
/// lazily sized successor a page per counted chunk ("Preparing a lazily sized successor"). Off
/// under loom,
/// whose atomics cannot be made from zeroed memory, and whose models' tables are far below
/// [`PREPARE_MIN_GROUPS`] anyway.
pub(crate) const PREPARE_GROWTH: bool = !cfg!(loom);

/// The smallest successor (in groups) that a growth prepares page by page; a smaller one is
/// allocated zeroed at once. At 2,048 groups the successor and its key lines take 256 KiB,
/// which `calloc` zeroes in tens of microseconds when it has to (heap memory it hands out
/// again); the pause grows with the table, to 7.6-9.8 ms at 262,144 groups (`BENCHMARKS.md`,
/// table of changes). Swept at stop 33 (512, 2,048 and 8,192, `BENCHMARKS.md` next step 45):
/// no difference this host can show in a growth's throughput or its insert latency. Low under
/// the stress geometry, so that the stress tests prepare most of their growths.
pub(crate) const PREPARE_MIN_GROUPS: usize = if STRESS_GEOMETRY { 16 } else { 2048 };

/// Pages ([`ZERO_PAGE_BYTES`]) of a prepared successor that an insert zeroes each time it
/// helps (`raw/migrate.rs`, "Preparing a growth"). One rather than two: while two threads grow a
/// map (`compare --full --only latency`, five alternations) insert p99.9 6.0-6.6 µs against
/// 6.9-9.6, and `hotpath grow` no slower (259-294 against 265-304 ns an insert); a page is a
/// page fault or two, and the successor of 2^19 groups still takes only 16,384 spilling inserts.
pub(crate) const PREPARE_PAGES: usize = 1;

/// An allocation for `len` atomics, not yet zeroed: a [`ZeroedSlice`] in the making, zeroed a
/// page at a time by whoever claims each page, and handed over once every page is.
///
/// It frees nothing by itself: its owner either turns it into a `ZeroedSlice`
/// ([`Unzeroed::to_zeroed_slice`], which then owns the memory) or frees it ([`Unzeroed::free`]).
/// Under loom it allocates nothing until `to_zeroed_slice`, which makes the atomics one by one.
pub(crate) struct Unzeroed<T> {
    #[cfg(not(loom))]
    start: std::ptr::NonNull<T>,
    len: usize,
    #[cfg(not(loom))]
    alloc: Option<(std::ptr::NonNull<u8>, std::alloc::Layout)>,
    #[cfg(loom)]
    _t: std::marker::PhantomData<T>,
}

// SAFETY: an `Unzeroed<T>` is memory for `T`s that only its owner's protocol writes (each page
// by the one thread that claimed it) and hands over; it may cross threads and be shared as a
// `ZeroedSlice<T>` may.
unsafe impl<T: Send> Send for Unzeroed<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Unzeroed<T> {}

impl<T: ZeroedAtomic> Unzeroed<T> {
    /// Allocates room for `len` `T`s (laid out as [`zeroed_slice`] lays them out) without
    /// writing it: a large allocation costs address space only, whatever the allocator did
    /// with the memory before.
    pub(crate) fn new(len: usize) -> Self {
        #[cfg(not(loom))]
        {
            let (start, alloc) = alloc_slice::<T>(len, false);
            Unzeroed { start, len, alloc }
        }
        #[cfg(loom)]
        {
            Unzeroed {
                len,
                _t: std::marker::PhantomData,
            }
        }
    }

    /// How many `T`s.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// Pages of [`ZERO_PAGE_BYTES`] (the last perhaps partial) that the `T`s span.
    pub(crate) fn pages(&self) -> usize {
        self.bytes().div_ceil(ZERO_PAGE_BYTES)
    }

    /// Writes zeros over page `page` of the `T`s.
    ///
    /// # Safety
    /// `page < self.pages()`, the allocation is not freed or handed over, and no other thread
    /// reads or writes that page until this call happens before its access (the caller's
    /// claim hands each page to one thread, which publishes the write with a Release count).
    pub(crate) unsafe fn zero_page(&self, page: usize) {
        #[cfg(not(loom))]
        {
            let from = page * ZERO_PAGE_BYTES;
            let to = (from + ZERO_PAGE_BYTES).min(self.bytes());
            debug_assert!(from < to);
            // SAFETY: `from..to` lies within the `len` `T`s (`page < pages()`), in a live
            // allocation that only this thread touches now (the contract).
            unsafe {
                self.start
                    .as_ptr()
                    .cast::<u8>()
                    .add(from)
                    .write_bytes(0, to - from)
            };
        }
        #[cfg(loom)]
        let _ = page;
    }

    /// The `T`s as a [`ZeroedSlice`], which owns the memory from now on.
    ///
    /// # Safety
    /// Every page was zeroed by [`Unzeroed::zero_page`] in calls that happen before this one;
    /// this is called at most once, [`Unzeroed::free`] never, and [`Unzeroed::own`] never for a
    /// lent slice.
    pub(crate) unsafe fn to_zeroed_slice(&self) -> ZeroedSlice<T> {
        #[cfg(not(loom))]
        {
            // SAFETY: the `len` `T`s are all-zero bytes (the contract), which `T: ZeroedAtomic`
            // promises are valid `T`s; the allocation is handed over once.
            ZeroedSlice {
                start: self.start,
                len: self.len,
                alloc: self.alloc,
                _owns: std::marker::PhantomData,
            }
        }
        #[cfg(loom)]
        {
            zeroed_slice(self.len)
        }
    }

    /// The `T`s as a [`ZeroedSlice`] that frees nothing when it drops: any number of them may
    /// be lent, and the memory stays the `Unzeroed`'s (to free, or to hand to one of them with
    /// [`Unzeroed::own`]). Under loom each is memory of its own, which it frees.
    ///
    /// # Safety
    /// As for [`Unzeroed::to_zeroed_slice`], but for "at most once"; the slices live no longer
    /// than the memory (it is not freed while one of them is in use).
    pub(crate) unsafe fn lend(&self) -> ZeroedSlice<T> {
        #[cfg(not(loom))]
        {
            // SAFETY: as in `to_zeroed_slice` (the caller's promise); without `alloc` the slice
            // frees nothing, and it lives no longer than the memory (the contract).
            ZeroedSlice {
                start: self.start,
                len: self.len,
                alloc: None,
                _owns: std::marker::PhantomData,
            }
        }
        #[cfg(loom)]
        {
            zeroed_slice(self.len)
        }
    }

    /// Makes `slice`, lent by this `Unzeroed` ([`Unzeroed::lend`]), free the memory when it
    /// drops, as if [`Unzeroed::to_zeroed_slice`] had made it; [`disown`] undoes it. Nothing
    /// under loom.
    ///
    /// # Safety
    /// `slice` was lent by this `Unzeroed`. Of the slices given the memory, one at most drops
    /// while it owns it, and then the memory is not freed otherwise; every other is
    /// [`disown`]ed before it drops.
    pub(crate) unsafe fn own(&self, slice: &mut ZeroedSlice<T>) {
        #[cfg(not(loom))]
        {
            debug_assert!(slice.start == self.start && slice.len == self.len);
            slice.alloc = self.alloc;
        }
        #[cfg(loom)]
        let _ = slice;
    }

    /// Frees the memory.
    ///
    /// # Safety
    /// Called at most once, never after [`Unzeroed::to_zeroed_slice`], and after every
    /// [`Unzeroed::zero_page`] call has returned.
    pub(crate) unsafe fn free(&self) {
        #[cfg(not(loom))]
        if let Some((base, layout)) = self.alloc {
            // SAFETY: `base` came from `alloc(layout)` in `new` and is freed once (the contract).
            unsafe { std::alloc::dealloc(base.as_ptr(), layout) };
        }
    }
}

/// Types whose all-zero bit pattern is a valid value equal to `zero()`.
///
/// # Safety
/// Implementors must be valid when every byte is zero (std's atomic integers and pointers are),
/// and have no drop glue (a [`ZeroedSlice`] frees its memory without dropping its elements).
pub(crate) unsafe trait ZeroedAtomic {
    /// The zero value, for loom, whose atomics cannot be made from zeroed memory.
    #[cfg_attr(not(loom), allow(dead_code))]
    fn zero() -> Self;
}

// SAFETY: an all-zero `AtomicUsize` is the integer 0.
unsafe impl ZeroedAtomic for AtomicUsize {
    fn zero() -> Self {
        AtomicUsize::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::Spaced;

    /// Wherever an 8-aligned allocator puts a `Spaced<T>`, every 64-byte line that holds a byte
    /// of `T` lies inside the `Spaced`.
    #[test]
    fn spaced_values_share_no_line_with_other_data() {
        fn check<T>() {
            let size = std::mem::size_of::<Spaced<T>>();
            let offset = std::mem::offset_of!(Spaced<T>, value);
            let len = std::mem::size_of::<T>();
            for start in (0..64).step_by(8) {
                let first_line = (start + offset) / 64 * 64;
                let last_line_end = (start + offset + len - 1) / 64 * 64 + 64;
                assert!(
                    first_line >= start,
                    "{}: line before",
                    std::any::type_name::<T>()
                );
                assert!(
                    last_line_end <= start + size,
                    "{}: line after",
                    std::any::type_name::<T>()
                );
            }
        }
        check::<u64>();
        check::<[u64; 13]>();
        check::<[u64; 14]>();
        check::<[u8; 200]>();
    }
}
