//! Memory reclamation: the one file that names crossbeam-epoch.
//!
//! The map frees nothing directly that another thread might still read. A thread *pins* before it
//! loads any table or entry pointer and keeps the pin (a [`Guard`]) for as long as it uses what it
//! loaded. Anything unlinked from the map is *retired*: handed to the epoch collector, which runs
//! its destructor only once every thread that was pinned at the time of retirement has unpinned.
//!
//! Rules the rest of the crate keeps (see `ARCHITECTURE.md`, "Reclamation"):
//! - retire a pointer only after it has been unlinked, so no new load can return it;
//! - never publish a pointer again after it may have been retired (the migration's copy
//!   protocol is built around this);
//! - a map retires to its [`Collector`]: crossbeam's global one unless it was built with a private
//!   one. A guard protects only the maps of the collector it was pinned on, so every operation
//!   checks that its guard belongs to the map's collector (flurry#46 shipped without that check:
//!   a guard of another collector let entries be freed under a reader). Keys and values must be
//!   `'static` either way: a retired entry may be dropped after its map.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_epoch as epoch;

/// The epoch collector a map hands its removed entries and old tables to.
///
/// By default every map shares crossbeam's global collector: pinning is then a thread-local
/// operation (a few nanoseconds) and one guard could serve many maps. A private collector
/// ([`Collector::new`], given to [`HashMap::with_collector`](crate::HashMap::with_collector))
/// keeps a map's garbage apart from every other map's: when the map and the last guard pinned on
/// it are gone, everything it retired is dropped (the entries' blocks go to the dropping thread's
/// entry cache, which frees them when the thread exits; its tables are freed), which leak
/// checkers such as valgrind can then confirm. Unless a retired key or value itself owns a clone
/// of the collector (a map made with it, nested in one of its maps, or a `Collector` clone):
/// that garbage keeps the collector alive, a reference cycle, and the collector with all it
/// still holds leaks. Nested maps want the global collector or one of their own. The price: each
/// [`HashMap::guard`](crate::HashMap::guard) on such a map registers with the collector (an
/// allocation of about 2 KiB, freed through the collector itself, so not while another guard
/// of it stays pinned), so pin once per batch ([`HashMap::pin`](crate::HashMap::pin)) rather
/// than once per operation.
///
/// ```
/// use lockfree_map::{Collector, HashMap};
/// use std::collections::hash_map::RandomState;
///
/// let map: HashMap<u64, u64> = HashMap::with_collector(0, RandomState::new(), Collector::new());
/// let m = map.pin();
/// m.insert(1, 10);
/// assert_eq!(m.get(&1), Some(&10));
/// ```
#[derive(Clone)]
pub struct Collector {
    private: Private,
}

/// A private collector's `Arc`, or `None` for crossbeam's global collector.
///
/// Dropping the last `Arc` of a private collector drops crossbeam's `Global`, which runs every
/// retirement left. A user's `Drop` that panics there, or in any collection on a private
/// collector, is caught inside its deferred closure ([`hold_panic`]), so that crossbeam runs the
/// rest of the bag, and the rest of its queue; the panic is resumed once crossbeam is done
/// ([`resume_held_panic`]): here, after the `Arc` is dropped, and after each pin and flush on a
/// private collector. crossbeam calls the closures of a bag, and drops the bags of its queue, in
/// a loop with no guard against unwinding: a panic let out of one leaked the rest.
#[derive(Clone)]
struct Private(Option<Arc<epoch::Collector>>);

impl Drop for Private {
    /// Inlined to the one test a global guard's drop pays (as `Option<Arc<_>>`'s drop did).
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            self.release();
        }
    }
}

impl Private {
    #[cold]
    #[inline(never)]
    fn release(&mut self) {
        drop(self.0.take());
        // A drop already unwinding (a panic of the map's own drop, say) keeps its panic: see
        // `resume_held_panic`.
        resume_held_panic();
    }
}

impl Collector {
    /// A new private collector, for one map (or a few that share it through `clone`).
    ///
    /// ```
    /// use lockfree_map::{Collector, HashMap};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let shared = Collector::new();
    /// let a: HashMap<u8, u8> = HashMap::with_collector(0, RandomState::new(), shared.clone());
    /// let b: HashMap<u8, u8> = HashMap::with_collector(0, RandomState::new(), shared);
    /// let guard = a.guard(); // one guard serves both maps of the collector
    /// a.insert(1, 10, &guard);
    /// b.insert(2, 20, &guard);
    /// assert_eq!((a.get(&1, &guard), b.get(&2, &guard)), (Some(&10), Some(&20)));
    /// ```
    #[allow(clippy::new_without_default)] // `Default` would be ambiguous: global or private?
    pub fn new() -> Self {
        Collector {
            private: Private(Some(Arc::new(epoch::Collector::new()))),
        }
    }

    /// crossbeam's global collector, the default of every map.
    ///
    /// ```
    /// use lockfree_map::{Collector, HashMap};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let a: HashMap<u8, u8> = HashMap::new(); // the global collector, by default
    /// let global = Collector::global();
    /// let b: HashMap<u8, u8> = HashMap::with_collector(0, RandomState::new(), global);
    /// let guard = a.guard(); // one guard serves both global maps
    /// a.insert(1, 10, &guard);
    /// b.insert(2, 20, &guard);
    /// assert_eq!((a.get(&1, &guard), b.get(&2, &guard)), (Some(&10), Some(&20)));
    /// ```
    pub fn global() -> Self {
        // crossbeam builds its global collector once, behind a `OnceLock`, on first use: here,
        // not in some operation's first pin, where a thread stopped inside the construction
        // would hold up every other thread's first pin (a review at stop 48). Every map on the
        // global collector is made with this value, so none of its operations meets it.
        let _ = epoch::default_collector();
        Collector {
            private: Private(None),
        }
    }

    /// Pins the current thread on this collector.
    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        match &self.private.0 {
            None => Guard {
                inner: epoch::pin(),
                private: Private(None),
                retired: Cell::new(0),
            },
            Some(collector) => {
                let guard = Guard {
                    // The handle can go at once: the guard keeps the thread's registration alive.
                    inner: collector.register().pin(),
                    private: Private(Some(collector.clone())),
                    retired: Cell::new(0),
                };
                // A new registration's first pin collects.
                resume_held_panic();
                guard
            }
        }
    }

    /// Panics unless `guard` was pinned on this collector. Letting another collector's guard
    /// through would let this map free memory the caller still reads.
    #[inline]
    pub(crate) fn check(&self, guard: &Guard) {
        // One comparison: `Option<Arc<_>>` is a nullable pointer, null for the global collector.
        if identity(&self.private.0) != identity(&guard.private.0) {
            wrong_guard();
        }
    }
}

/// The address that identifies a collector: its `Arc`'s, or null for the global one. A guard
/// keeps its collector's `Arc` alive, so the address cannot be reused while the guard exists.
#[inline(always)]
fn identity(private: &Option<Arc<epoch::Collector>>) -> *const epoch::Collector {
    private.as_ref().map_or(std::ptr::null(), Arc::as_ptr)
}

#[cold]
#[inline(never)]
#[track_caller]
fn wrong_guard() -> ! {
    panic!(
        "lockfree-map: a guard from another map's collector was passed to this map; \
         use this map's `guard()`"
    )
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.private.0 {
            None => "Collector::global()",
            Some(_) => "Collector::new()",
        })
    }
}

/// A pinned epoch guard.
///
/// While a `Guard` lives, nothing that was reachable when the guard was created, in any map of
/// its [`Collector`], is freed. References returned by the map's explicit-guard methods live as
/// long as the guard. A guard works with every map of the collector it was pinned on (all maps
/// that use the global collector, by default); passing it to a map of another collector panics.
///
/// Holding a guard for a long time delays the freeing of every entry removed or replaced in the
/// meantime, in every map of its collector: pin for an operation or a batch of operations, not
/// for the life of a thread.
pub struct Guard {
    inner: epoch::Guard,
    /// The private collector pinned on, kept alive (and identified) by the guard. Dropped after
    /// `inner`, so that a panic held while the guard unpins is resumed (`Private`'s drop).
    private: Private,
    /// Retirements deferred one by one through this guard since it last flushed
    /// ([`Guard::retire_tick`]).
    retired: Cell<u32>,
}

impl Guard {
    /// Lets the epoch advance past this guard if nothing borrowed from it is still alive.
    ///
    /// Useful in long loops that reuse one guard: call it between batches. On the global
    /// collector it does nothing while the thread holds another guard (every global guard of a
    /// thread shares one registration, and crossbeam repins it only when it has a single
    /// guard): under an outer `MapRef`, a loop that repins lets its retirements pile up. A
    /// private collector's guards have a registration each, so this one moves, but the other
    /// still holds the epoch.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let mut guard = map.guard();
    /// for batch in 0..4 {
    ///     for i in 0..100 {
    ///         map.insert(batch * 100 + i, i, &guard);
    ///     }
    ///     guard.repin(); // between batches: nothing borrowed from `guard` is alive here
    /// }
    /// assert_eq!(map.len(), 400);
    /// ```
    pub fn repin(&mut self) {
        self.inner.repin();
    }

    /// Counts a retirement deferred on its own through this guard (a private collector's, or
    /// any under loom); `true` once every [`RETIRES_PER_FLUSH`], when the caller flushes.
    ///
    /// crossbeam collects (a bounded amount) only every 128th pin of a registration; a guard
    /// that retires many entries would outpace it, and garbage would grow without bound, so
    /// the guard asks for collection itself: flushing collects. The count is the guard's, so
    /// that it is one collector's: counted per thread, as until stop 50, a thread that
    /// alternated retirements on two private collectors landed every 64th on the same one, and
    /// the other's garbage was never collected while its guard lived (a review of resource
    /// bounds found it).
    #[inline]
    fn retire_tick(&self) -> bool {
        if cfg!(loom) {
            // Models retire a handful of entries; flushing on every one explores collection too.
            return true;
        }
        let n = self.retired.get() + 1;
        let due = n >= RETIRES_PER_FLUSH;
        self.retired.set(if due { 0 } else { n });
        due
    }

    /// Pushes this thread's retired garbage to the global queue so other threads can free it.
    ///
    /// ```
    /// let map = lockfree_map::HashMap::new();
    /// let guard = map.guard();
    /// map.insert(1, "one", &guard);
    /// let removed = map.remove(&1, &guard);
    /// guard.flush(); // hands the removed entry on; other threads may free it after `guard`
    /// assert_eq!(removed, Some(&"one")); // still readable while `guard` lives
    /// ```
    pub fn flush(&self) {
        if crate::sync::RETIRE_BATCH && self.private.0.is_none() {
            // Also hand on what this thread gathered in its batch (see `retire`). An empty batch
            // keeps its buffer (taken, it would be freed here and another allocated for the
            // thread's next retirement).
            let gathered = BATCH.try_with(|b| (b.len.get() > 0).then(|| b.take()));
            if let Ok(Some(batch)) = gathered {
                // SAFETY: every pointer in the batch was retired under the promises of
                // `retire`, to the global collector (only its retirements are batched), on
                // which `self.inner` is pinned; `defer_batch` flushes.
                unsafe { defer_batch(&self.inner, batch) };
                return;
            }
        }
        self.inner.flush();
        if self.private.0.is_some() {
            resume_held_panic();
        }
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// Retires `ptr`: `free` runs with it once no thread pinned now can still hold it, on whichever
/// thread collects it, in a [`Run`] of retirements that share `free`.
///
/// # Safety
/// `ptr` has been unlinked from every place a thread that pins later could load it and is
/// retired exactly once; `free` frees each pointer of a run of `*mut T`s retired with it, once,
/// and may be called on any thread, at any later time (after the map itself is gone, too).
#[inline]
pub(crate) unsafe fn retire<T>(guard: &Guard, ptr: *mut T, free: FreeRun) {
    let retired = Retired {
        ptr: ptr.cast(),
        free,
    };
    // The fast path, inlined into every write that retires: the retirement joins the thread's
    // batch, which does not fill. Everything else (the batch filling, no batch, a private
    // collector) goes out of line, so the caller pays no frame for it: as one function, the
    // frame alone was about 20 instructions a retirement (callgrind, `hotpath hot-key`).
    if crate::sync::RETIRE_BATCH
        && guard.private.0.is_none()
        // `try_with`: on a target without native thread-locals the batch can be gone at the
        // thread's exit; with them (it has no destructor) the check folds away.
        && matches!(
            BATCH.try_with(|batch| batch.push_unless_full(retired)),
            Ok(true)
        )
    {
        return;
    }
    // SAFETY: the caller's promises.
    unsafe { retire_slow(guard, retired) }
}

/// How retirements are freed: a run of them at a time, all retired with this function.
///
/// # Safety
/// Called once a run, after the grace period of every retirement in it.
pub(crate) type FreeRun = unsafe fn(Run<'_>);

/// Retirements that share one [`FreeRun`], handed to it together: consecutive retirements of a
/// batch with the same function, or one retirement on its own. A collected batch used to call
/// its retirements' functions one by one; as runs, the entry cache's thread-local is looked up
/// once a run, and the per-retirement call is gone (callgrind, `hotpath hot-key`: see
/// `BENCHMARKS.md`, table of changes).
#[derive(Clone, Copy)]
pub(crate) struct Run<'a>(&'a [Retired]);

impl<'a> Run<'a> {
    /// The run's pointers, in order.
    #[inline(always)]
    pub(crate) fn ptrs(self) -> impl ExactSizeIterator<Item = *mut ()> + 'a {
        self.0.iter().map(|r| r.ptr)
    }

    /// Calls `free` with each pointer of the run, in order, each once. If a call panics, the
    /// rest are still freed while the panic unwinds, each inside `catch_unwind`: a second panic
    /// there would abort the process (a panic while unwinding does, as in a `Vec`'s drop), so it
    /// is caught and its payload dropped, and the first goes on (found by a review at stop 49).
    #[inline(always)]
    pub(crate) fn each<T>(self, free: impl FnMut(*mut T)) {
        /// The pointers from `next` on, freed by `drop` if a call unwinds.
        struct Rest<'a, T, F: FnMut(*mut T)> {
            run: &'a [Retired],
            next: usize,
            free: F,
            _ptr: std::marker::PhantomData<*mut T>,
        }
        impl<T, F: FnMut(*mut T)> Rest<'_, T, F> {
            #[inline(always)]
            fn free_rest(&mut self) {
                while let Some(r) = self.run.get(self.next) {
                    // Past it before it is freed: a call that panics is not made again.
                    self.next += 1;
                    (self.free)(r.ptr.cast());
                }
            }
        }
        impl<T, F: FnMut(*mut T)> Drop for Rest<'_, T, F> {
            fn drop(&mut self) {
                // Pointers are left only if a call unwound: this runs while that panic unwinds.
                while let Some(r) = self.run.get(self.next) {
                    self.next += 1;
                    let free = &mut self.free;
                    let ptr = r.ptr.cast();
                    if let Err(second) = catch_unwind(AssertUnwindSafe(|| free(ptr))) {
                        drop_payload(second);
                    }
                }
            }
        }
        let mut rest = Rest {
            run: self.0,
            next: 0,
            free,
            _ptr: std::marker::PhantomData,
        };
        rest.free_rest();
    }
}

/// [`retire`] when the retirement does not just join a batch that has room.
///
/// # Safety
/// As for [`retire`], for `retired.ptr` and `retired.free`.
#[cold]
#[inline(never)]
unsafe fn retire_slow(guard: &Guard, retired: Retired) {
    if crate::sync::RETIRE_BATCH && guard.private.0.is_none() {
        match BATCH.try_with(|batch| batch.push(retired)) {
            Ok(Ok(None)) => {}
            // SAFETY: the caller's promises for `ptr`, now one of the batch's.
            Ok(Ok(Some(full))) => unsafe { defer_batch(&guard.inner, full) },
            // The thread is exiting and its batch is closed (or gone): retire this one on its
            // own, and flush (nothing of this thread's will flush it later).
            Ok(Err(())) | Err(_) => {
                // SAFETY: the caller's promises.
                unsafe { defer_one(&guard.inner, retired) };
                guard.inner.flush();
            }
        }
        return;
    }
    if guard.private.0.is_some() {
        // A retirement on its own, in a bag with up to 63 others: a panic of its `Drop` is held
        // rather than let out into crossbeam's loop over the bag (see `Private`).
        // SAFETY: as in `defer_one`, whose closure this one runs inside `hold_panic`.
        unsafe {
            guard
                .inner
                .defer_unchecked(move || hold_panic(|| (retired.free)(Run(&[retired]))))
        };
    } else {
        // Unbatched retirements to the global collector: loom's builds only (`RETIRE_BATCH`).
        // SAFETY: the caller's promises.
        unsafe { defer_one(&guard.inner, retired) };
    }
    if guard.retire_tick() {
        guard.inner.flush();
        resume_held_panic();
    }
}

thread_local! {
    /// The first panic of a private collector's deferred closure that this thread's collection
    /// ran, held until crossbeam has run the rest ([`Private`]).
    static HELD_PANIC: Cell<Option<Box<dyn std::any::Any + Send + 'static>>> =
        const { Cell::new(None) };
}

/// Runs `free` (a private collector's deferred closure), holding a panic of it for
/// [`resume_held_panic`] instead of unwinding into crossbeam. The first panic is kept; a later
/// one, before the first is resumed, is dropped. Unwind safety: a [`Run`]'s function has freed
/// the rest of its run by the time its panic gets here (`Run::each`).
fn hold_panic(free: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(free)) {
        // Outside the closure, so that it is not dropped with the closure where the
        // thread-local is gone and the closure never runs.
        let mut payload = Some(payload);
        let _ = HELD_PANIC.try_with(|held| {
            if let first @ Some(_) = held.take() {
                held.set(first);
            } else {
                held.set(payload.take());
            }
        });
        // A later panic's payload, or one with nowhere to be held (the thread-local gone): its
        // own `Drop` may panic too, into crossbeam's loop.
        if let Some(payload) = payload {
            drop_payload(payload);
        }
    }
}

/// Drops a panic's payload that nobody will resume (caught while another panic unwinds, or in
/// a thread-local's destructor). A payload whose own `Drop` panics is leaked instead: that
/// panic, too, would abort the process.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send + 'static>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The panic [`hold_panic`] holds on this thread, if any, taken.
fn take_held_panic() -> Option<Box<dyn std::any::Any + Send + 'static>> {
    HELD_PANIC.try_with(Cell::take).ok().flatten()
}

/// Resumes the panic [`hold_panic`] holds on this thread, if any: called once crossbeam is done
/// with what may have collected. Not while the thread unwinds already (a map used from a `Drop`
/// that runs during another panic, say): a second panic out of a destructor during unwinding
/// aborts the process, so the payload is dropped (its message was printed when it was raised).
/// Until stop 51 only the collector's last release checked this, and a pin, flush or retirement
/// made while unwinding aborted the process when its collection met a panicking `Drop` (a
/// review of thread and process edges).
#[inline]
fn resume_held_panic() {
    if let Some(payload) = take_held_panic() {
        if std::thread::panicking() {
            drop_payload(payload);
        } else {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Retirements between two flushes: one local bag's worth in crossbeam-epoch.
const RETIRES_PER_FLUSH: u32 = 64;

// ---- batched retirement ------------------------------------------------------------------------
//
// Handing crossbeam one pointer at a time cost about 140 instructions a retirement besides the
// freeing itself (callgrind, hot-key updates): the deferred closure is written into the
// thread's bag, the full bag (64 closures, 2 KiB) is copied into the global queue, and every
// flush tries to advance the epoch. So each thread gathers its retirements to the global
// collector in a batch of `BATCH_LEN` and defers the whole batch as one closure (a `Vec`, three
// words, stored inline in crossbeam's bag), then flushes; the cost is paid once per batch.
//
// Safe because deferring later only waits longer: a batch is deferred after every pointer in it
// was unlinked, so every thread that could still read one of them was pinned before the batch
// reached crossbeam, and crossbeam frees the batch only after all of those have unpinned.
//
// A batch holds its retirements back until it fills, the thread's guard is flushed
// (`Guard::flush`, which also empties the batch) or the thread exits (its thread-local's
// destructor defers what is left): at most `BATCH_LEN - 1` entries a thread (crossbeam's own
// bag held back up to 63 before). Private collectors do not batch (a thread-local per collector
// would need a registry, and their point is prompt, complete freeing). Tables do not batch
// either (`retire_box_and_flush`): they are large and should go promptly.

/// Retirements a thread gathers before handing them to crossbeam at once: as many as the entry
/// cache keeps a class (`raw/pool.rs`), so a collected batch refills the collector's cache and
/// no more. Measured (callgrind, `examples/hotpath`): 32, 64 and 128 cut hot-key updates'
/// instructions 0 %, 7 % and 9 %; 256 added 11 %, its blocks overflowing the cache to malloc.
const BATCH_LEN: usize = 128;

/// One retired pointer and the function that frees it.
#[derive(Clone, Copy)]
pub(crate) struct Retired {
    ptr: *mut (),
    free: FreeRun,
}

/// A thread's retirements to the global collector not yet handed to crossbeam, and an empty
/// buffer for its next batch.
///
/// The spare exists because a batch's buffer (`BATCH_LEN` retirements, 2 KiB) is too large for
/// glibc's per-thread cache: allocating one for every batch and freeing it after its collection
/// took glibc's slow paths, about 420 instructions a batch, 3 a retirement (callgrind, `hotpath
/// hot-key`: 274.2 -> 270.9 M). A collected batch's buffer now becomes the collecting thread's
/// spare, which that thread's next batch takes.
///
/// The batch is a buffer taken apart (pointer, length, capacity in `Cell`s) rather than a
/// `RefCell<Vec<_>>`, so that the fast path, inlined into every write that retires, is one
/// comparison, one store and one increment: the borrow flag and `Vec::push`'s own capacity check
/// were 6 instructions a retirement (callgrind, `hotpath hot-key`, 1M updates: 274.8 -> 268.7 M).
/// Nothing here calls out while the buffer is taken apart, so no reentrant call (a user's `Drop`
/// run by a collection, retiring into a map) can see it half updated.
struct LocalBatch {
    /// The batch's buffer, with room for `cap` retirements, the first `len` gathered; null
    /// until the thread's first retirement and after the batch is taken.
    buf: Cell<*mut Retired>,
    len: Cell<usize>,
    cap: Cell<usize>,
    /// `BATCH_LEN - 1` while there is a buffer, 0 while there is none: a retirement with
    /// `len < room` joins the batch without filling it ([`LocalBatch::push_unless_full`]).
    room: Cell<usize>,
    /// The spare: an empty buffer with room for `spare_cap` (at least `BATCH_LEN`)
    /// retirements, taken apart as the batch's is (so that the thread-local has no drop glue);
    /// null if there is none.
    spare: Cell<*mut Retired>,
    spare_cap: Cell<usize>,
}

thread_local! {
    /// The batch. It has no destructor (no drop glue), so the fast path's access, inlined into
    /// every write that retires, is a plain thread-local load: with one, `std` tests a state
    /// byte on every access, 3-4 instructions a retirement (a review of the hot paths, stop 51).
    /// What is left of it at the thread's exit is handed on by `BATCH_OWNER`. (Where `std`
    /// keeps thread-locals in OS keys, not natively, the batch keeps a destructor of its own
    /// instead: `build.rs`.)
    static BATCH: LocalBatch = const {
        LocalBatch {
            buf: Cell::new(std::ptr::null_mut()),
            len: Cell::new(0),
            cap: Cell::new(0),
            room: Cell::new(0),
            spare: Cell::new(std::ptr::null_mut()),
            spare_cap: Cell::new(0),
        }
    };
    /// Hands [`BATCH`]'s retirements on, and frees its buffers, when the thread exits.
    /// Registered (first touched) before the batch takes a buffer or keeps a spare
    /// ([`LocalBatch::push`], [`LocalBatch::give_spare`]), so before it holds anything; once its
    /// destructor has run (or started: `std` marks it destroyed first), the batch takes no
    /// buffer again, and a retirement (by a later thread-local's destructor) goes to crossbeam
    /// on its own.
    #[cfg(lockfree_map_native_tls)]
    static BATCH_OWNER: BatchOwner = const { BatchOwner };
}

/// Hands the thread's batch on when the thread exits (`BATCH_OWNER`).
#[cfg(lockfree_map_native_tls)]
struct BatchOwner;

#[cfg(lockfree_map_native_tls)]
impl Drop for BatchOwner {
    fn drop(&mut self) {
        // `BATCH` has no destructor, so it is still there.
        let _ = BATCH.try_with(LocalBatch::hand_on_at_exit);
    }
}

/// Where thread-locals live in OS keys, the batch's own destructor: a key's value is freed when
/// its destructor ends, and later accesses make a new one (with a destructor of its own), so
/// no owner is needed and none could outlive the batch (`build.rs`).
#[cfg(not(lockfree_map_native_tls))]
impl Drop for LocalBatch {
    fn drop(&mut self) {
        self.hand_on_at_exit();
    }
}

/// Whether this thread's batch may take a buffer: its owner, which hands it on at the thread's
/// exit, is registered and not yet gone (with OS-key thread-locals, the batch's own destructor
/// does that, always).
fn batch_owned() -> bool {
    #[cfg(lockfree_map_native_tls)]
    return BATCH_OWNER.try_with(|_| ()).is_ok();
    #[cfg(not(lockfree_map_native_tls))]
    return true;
}

impl LocalBatch {
    /// Adds one retirement if the batch has its buffer and this one does not fill it; `false`
    /// (and nothing added) otherwise, for [`LocalBatch::push`] to do.
    #[inline(always)]
    fn push_unless_full(&self, retired: Retired) -> bool {
        let len = self.len.get();
        if len < self.room.get() {
            // SAFETY: `room` is non-zero only while `buf` is a buffer of `cap >= BATCH_LEN`
            // retirements (`install`), and `len < room < cap`, so slot `len` is inside it and
            // past the gathered ones.
            unsafe { self.buf.get().add(len).write(retired) };
            self.len.set(len + 1);
            true
        } else {
            false
        }
    }

    /// Adds one retirement; returns the batch once it is full, leaving an empty one behind.
    /// `Err` (and nothing added) once the thread's batch is closed, at its exit.
    #[inline]
    fn push(&self, retired: Retired) -> Result<Option<Vec<Retired>>, ()> {
        if self.buf.get().is_null() {
            if !batch_owned() {
                return Err(());
            }
            self.install(self.new_buffer());
        }
        let len = self.len.get();
        // SAFETY: `buf` is a buffer of `cap >= BATCH_LEN` retirements (just installed, or kept),
        // and `len < BATCH_LEN`: a batch is taken as soon as it fills, below.
        unsafe { self.buf.get().add(len).write(retired) };
        self.len.set(len + 1);
        // The owner is there still: it takes the buffer away (`BatchOwner::drop`) as it goes.
        Ok((len + 1 >= BATCH_LEN).then(|| {
            let full = self.take();
            self.install(self.new_buffer());
            full
        }))
    }

    /// Makes `buffer` (empty, with room for `BATCH_LEN` or more) the batch's buffer. The batch
    /// has none.
    fn install(&self, buffer: Vec<Retired>) {
        debug_assert!(self.buf.get().is_null() && buffer.is_empty());
        debug_assert!(buffer.capacity() >= BATCH_LEN);
        let mut buffer = std::mem::ManuallyDrop::new(buffer);
        self.buf.set(buffer.as_mut_ptr());
        self.len.set(0);
        self.cap.set(buffer.capacity());
        self.room.set(BATCH_LEN - 1);
    }

    /// Takes the retirements gathered so far (with their buffer), leaving the batch without one.
    fn take(&self) -> Vec<Retired> {
        let buf = self.buf.replace(std::ptr::null_mut());
        self.room.set(0);
        let (len, cap) = (self.len.replace(0), self.cap.replace(0));
        if buf.is_null() {
            return Vec::new();
        }
        // The batch no longer holds the parts (nulled above), so the `Vec` is rebuilt once.
        // SAFETY: `buf`, `len`, `cap` are the parts of a `Vec` taken apart in `install` (capacity
        // `cap`, global allocator), whose first `len` elements `push`/`push_unless_full` wrote.
        unsafe { Vec::from_raw_parts(buf, len, cap) }
    }

    /// Takes the spare, if there is one.
    fn take_spare(&self) -> Option<Vec<Retired>> {
        let spare = self.spare.replace(std::ptr::null_mut());
        let cap = self.spare_cap.replace(0);
        // SAFETY: a non-null `spare` and `spare_cap` are the pointer and capacity of an empty
        // `Vec` taken apart in `give_spare` (global allocator), which the batch no longer
        // holds (nulled above).
        (!spare.is_null()).then(|| unsafe { Vec::from_raw_parts(spare, 0, cap) })
    }

    /// An empty buffer for a batch: the spare if there is one.
    fn new_buffer(&self) -> Vec<Retired> {
        self.take_spare()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_LEN))
    }

    /// Keeps `buffer`, emptied, as the spare, unless there is one already or the thread's batch
    /// is closed (then frees it).
    fn give_spare(&self, mut buffer: Vec<Retired>) {
        if !self.spare.get().is_null() || buffer.capacity() < BATCH_LEN || !batch_owned() {
            return;
        }
        buffer.clear();
        let mut buffer = std::mem::ManuallyDrop::new(buffer);
        self.spare.set(buffer.as_mut_ptr());
        self.spare_cap.set(buffer.capacity());
    }
}

impl LocalBatch {
    /// Hands the batch's retirements on and frees its buffers, at the thread's exit.
    fn hand_on_at_exit(&self) {
        drop(self.take_spare());
        let mut rest = Some(self.take()).filter(|rest| !rest.is_empty());
        // The pin and the flush here collect, and may run another thread's batch, whose user
        // `Drop` may panic: a panic must not leave a thread-local's destructor (std aborts the
        // process), and this batch must still reach crossbeam. A panic in the pin (the batch
        // not yet handed on) is followed by another try; that pin's collection popped the bag
        // that panicked, so each try makes progress (once crossbeam's own thread handle is
        // gone, each pin registers anew and its first pin collects, but every collection takes
        // off the bags it ran, so the tries end). A panic in the flush comes after the batch is
        // handed on. Either panic's payload is dropped here: nobody is left to resume it (its
        // message was printed when it was raised).
        while rest.is_some() {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // crossbeam's `pin` works during thread teardown too (with a temporary
                // registration once the thread's own handle is gone).
                let guard = epoch::pin();
                if let Some(batch) = rest.take() {
                    // SAFETY: every pointer in the batch was retired under the promises of
                    // `retire`.
                    unsafe { defer_batch(&guard, batch) };
                }
            }));
            if let Err(payload) = caught {
                drop_payload(payload);
            }
        }
    }
}

/// Hands a batch to crossbeam as one deferred closure and flushes it on.
///
/// # Safety
/// Every pointer in `batch` was retired under the promises of [`retire`].
unsafe fn defer_batch(guard: &epoch::Guard, batch: Vec<Retired>) {
    // SAFETY: the closure runs once, after every thread pinned now (and so every thread pinned
    // when any of these pointers was unlinked) has unpinned; each `free` may run anywhere,
    // at any later time (the promises of `retire`). A `Vec` is three words: stored inline.
    unsafe { guard.defer_unchecked(move || free_all(batch)) };
    guard.flush();
}

/// Retires one pointer through crossbeam directly, without flushing.
///
/// # Safety
/// As for [`retire`].
unsafe fn defer_one(guard: &epoch::Guard, retired: Retired) {
    // SAFETY: crossbeam runs the closure once, after every thread pinned now has unpinned; the
    // caller guarantees nobody pinning later can reach the pointer and that `free` may run
    // anywhere. The closure (two words) is stored inline in the bag: no allocation.
    unsafe { guard.defer_unchecked(move || (retired.free)(Run(&[retired]))) };
}

/// Frees every retirement of a batch, each once, a [`Run`] at a time, then keeps its buffer as
/// this thread's spare (see [`LocalBatch`]). If one `free` panics (a user's `Drop`), the rest are
/// still freed while the panic unwinds, as a `Vec` drops its remaining elements.
///
/// # Safety
/// Every retirement's grace period is over.
unsafe fn free_all(batch: Vec<Retired>) {
    /// The retirements from `next` on; those not yet freed are freed if a `free` unwinds.
    struct Rest {
        batch: Vec<Retired>,
        next: usize,
    }
    impl Rest {
        /// # Safety
        /// As for [`free_all`].
        unsafe fn free_rest(&mut self) {
            let all = self.batch.as_slice();
            while let Some(first) = all.get(self.next) {
                let start = self.next;
                // By address (what `std::ptr::fn_addr_eq` does, after our MSRV): two functions
                // with one address are one body of code, so either frees the other's run.
                let free = first.free as usize;
                let end = all[start + 1..]
                    .iter()
                    .position(|r| r.free as usize != free)
                    .map_or(all.len(), |n| start + 1 + n);
                // Past the run before it is freed: a run's function frees all of it, also when
                // one of its pointers' drops panics (`Run::each`).
                self.next = end;
                // SAFETY: the grace period is over (the caller's promise), and every retirement
                // in `start..end` was retired with `first.free` (`retire`), which frees each
                // pointer of a run once; a run is handed to it once.
                unsafe { (first.free)(Run(&all[start..end])) };
            }
        }
    }
    impl Drop for Rest {
        fn drop(&mut self) {
            // Runs are left only if one unwound: the rest are freed while that panic unwinds,
            // each inside `catch_unwind`, as in `Run::each` (a second panic would abort).
            while self.next < self.batch.len() {
                // SAFETY: a `Rest` is made only in `free_all`, under its caller's promise;
                // `free_rest` moves `next` past each run before it frees it, so a run that
                // unwinds is not freed again.
                let freed = catch_unwind(AssertUnwindSafe(|| unsafe { self.free_rest() }));
                if let Err(second) = freed {
                    drop_payload(second);
                }
            }
        }
    }
    let mut rest = Rest { batch, next: 0 };
    // SAFETY: the caller's promise.
    unsafe { rest.free_rest() };
    let buffer = std::mem::take(&mut rest.batch);
    // A thread whose batch is closed (at its exit) or gone frees the buffer instead.
    let _ = BATCH.try_with(|b| b.give_spare(buffer));
}

/// Pointers nobody else can reach any more (a map's own entries, as the map drops), freed in runs
/// with one [`FreeRun`], as a collected batch frees its retirements: so `free` may keep their
/// blocks in this thread's entry cache, where the thread's next entries (a next map's, say) find
/// them instead of asking the allocator. Each pointer is freed once. A drop that panics does not
/// stop the others: a run's function frees the rest of its run (`Run::each`), the later runs are
/// freed as usual, and [`Unshared::finish`] hands back the first panic for the caller to resume
/// once it has freed what else it owns.
pub(crate) struct Unshared {
    /// The gathered run: the first `len` are initialised (left uninitialised otherwise, so that
    /// making an `Unshared` writes nothing but its length).
    buf: [std::mem::MaybeUninit<Retired>; UNSHARED_RUN],
    len: usize,
    free: FreeRun,
    panic: Option<Box<dyn std::any::Any + Send + 'static>>,
}

/// Pointers an [`Unshared`] gathers into one run.
const UNSHARED_RUN: usize = 64;

impl Unshared {
    pub(crate) fn new(free: FreeRun) -> Self {
        Unshared {
            buf: [const { std::mem::MaybeUninit::uninit() }; UNSHARED_RUN],
            len: 0,
            free,
            panic: None,
        }
    }

    /// Adds `ptr` to the run, freeing the run once it is full.
    ///
    /// # Safety
    /// `ptr` is one `free` frees (as [`retire`] promises of a retirement), nobody else can reach
    /// it any more, and it is passed once.
    #[inline]
    pub(crate) unsafe fn push(&mut self, ptr: *mut ()) {
        self.buf[self.len].write(Retired {
            ptr,
            free: self.free,
        });
        self.len += 1;
        if self.len == UNSHARED_RUN {
            self.free_run();
        }
    }

    /// Frees the gathered run, keeping its first panic.
    fn free_run(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: the first `len` elements were written by `push` (and `len` is reset below
        // before they can be read again).
        let run: &[Retired] =
            unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast(), self.len) };
        self.len = 0;
        let free = self.free;
        // SAFETY: every pointer of `run` was pushed once under `push`'s promises (nobody else
        // can reach it, so no grace period is owed), and the run is handed to `free` once.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { free(Run(run)) }));
        if let Err(payload) = outcome {
            // The first panic is kept for the caller; a later one is dropped as the others
            // nobody resumes are.
            if self.panic.is_none() {
                self.panic = Some(payload);
            } else {
                drop_payload(payload);
            }
        }
    }

    /// Frees what is left and hands back the first panic of a drop, if any. By reference: taken
    /// by value, the 1 KiB of the run's buffer was copied on each call (callgrind `hotpath
    /// small-maps`: two `memcpy`s of a map's drop).
    #[must_use = "a panic of a drop should be resumed"]
    pub(crate) fn finish(&mut self) -> Option<Box<dyn std::any::Any + Send + 'static>> {
        self.free_run();
        self.panic.take()
    }
}

impl Drop for Unshared {
    fn drop(&mut self) {
        // Reached with pointers left only while something else unwinds: free them too, and
        // drop a panic of theirs as the others nobody resumes are.
        self.free_run();
        if let Some(payload) = self.panic.take() {
            drop_payload(payload);
        }
    }
}

/// Frees `ptrs` at once, as a collected batch of retirements with `free` would be.
///
/// # Safety
/// As for [`retire`], with every grace period over.
#[cfg(test)]
pub(crate) unsafe fn free_now(ptrs: &[*mut ()], free: FreeRun) {
    let batch = ptrs.iter().map(|&ptr| Retired { ptr, free }).collect();
    // SAFETY: forwarded from the caller.
    unsafe { free_all(batch) };
}

/// Retires a boxed value and flushes, so that a large allocation (a table) is freed promptly
/// even by a thread that retires little else.
///
/// # Safety
/// `ptr` came from `Box::into_raw`, has been unlinked from every place a thread that pins later
/// could load it, and is retired exactly once; the `T` may be dropped on any thread, at any later
/// time (a table: it owns no key or value, and its drop runs no user code, which is also why a
/// private collector needs no `hold_panic` around it).
pub(crate) unsafe fn retire_box_and_flush<T>(guard: &Guard, ptr: *mut T) {
    // Not through the batch: a table is large, and this is exactly when it should go.
    // SAFETY: crossbeam drops the box once, after every thread pinned now has unpinned; the
    // caller guarantees that `ptr` came from `Box::into_raw`, that nobody pinning later can
    // reach it, and that it is retired once.
    unsafe {
        guard
            .inner
            .defer_unchecked(move || drop(Box::from_raw(ptr)))
    };
    guard.inner.flush();
    if guard.private.0.is_some() {
        resume_held_panic();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The free function of the retirements here: each box holds the counter it bumps.
    fn free_counted(run: Run<'_>) {
        run.each(|p: *mut &'static AtomicUsize| {
            // SAFETY: `p` came from `Box::into_raw` in `retire_counted` and is freed once (the
            // contract of `retire`).
            let counter = unsafe { Box::from_raw(p) };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Retires one box that bumps `freed` when it is freed.
    fn retire_counted(guard: &Guard, freed: &'static AtomicUsize) {
        let p = Box::into_raw(Box::new(freed));
        // SAFETY: `p` is shared with nobody and retired once, and `free_counted` frees it once.
        unsafe { retire(guard, p, free_counted) };
    }

    /// Flushes until `freed` reaches `n` (epochs advance as pinned threads, other tests' too,
    /// move on; each flush hands on this thread's batch and collects what is due), then checks
    /// that it stopped there.
    ///
    /// The bound is time, not a number of tries: libtest runs this file's tests in parallel with
    /// `raw::tests`, one of which parks a pinned thread inside a migration on purpose, and no
    /// epoch advances until it lets go. 100,000 tries ran out before that in a CI run (stop 26).
    fn collect_until(n: usize, freed: &AtomicUsize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::time::Instant::now() < deadline {
            if freed.load(Ordering::Relaxed) >= n {
                break;
            }
            Collector::global().pin().flush();
            std::thread::yield_now();
        }
        assert_eq!(freed.load(Ordering::Relaxed), n, "freed, of {n}");
    }

    /// Batches fill and are handed on (several times over) with no flush between; and flushes
    /// that take a batch part-way (its buffer goes with it, and the next retirement installs
    /// one). Each retirement is freed once.
    #[test]
    fn every_retirement_is_freed_once_through_full_and_partial_batches() {
        static FULL: AtomicUsize = AtomicUsize::new(0);
        static PARTIAL: AtomicUsize = AtomicUsize::new(0);
        let n = if cfg!(miri) {
            3 * BATCH_LEN + 5
        } else {
            20 * BATCH_LEN + 5
        };
        for _ in 0..n {
            retire_counted(&Collector::global().pin(), &FULL);
        }
        collect_until(n, &FULL);
        for i in 0..n {
            let guard = Collector::global().pin();
            retire_counted(&guard, &PARTIAL);
            if i % 37 == 36 {
                guard.flush();
            }
        }
        collect_until(n, &PARTIAL);
    }

    /// A flush that finds the thread's batch empty (just after a batch filled and was handed
    /// on, say) leaves its buffer in place for the next retirement, instead of freeing it.
    #[test]
    fn a_flush_of_an_empty_batch_keeps_its_buffer() {
        static FREED: AtomicUsize = AtomicUsize::new(0);
        std::thread::spawn(|| {
            let guard = Collector::global().pin();
            for _ in 0..BATCH_LEN {
                retire_counted(&guard, &FREED);
            }
            let buffer = || BATCH.with(|b| (b.buf.get(), b.len.get()));
            let (installed, len) = buffer();
            assert!(
                !installed.is_null() && len == 0,
                "the full batch was handed on"
            );
            guard.flush();
            assert_eq!(
                buffer(),
                (installed, 0),
                "the flush kept the empty batch's buffer"
            );
        })
        .join()
        .unwrap();
        collect_until(BATCH_LEN, &FREED);
    }

    /// A collected batch's buffer comes back as its thread's spare, emptied, one spare at most
    /// and only one with room for a batch, and the thread's next batch takes it rather than
    /// allocating. No test saw the spare's handling until stop 56's mutation run: kept as a
    /// second spare, a buffer leaked the first; never taken, the spare leaked at the thread's
    /// exit; never kept, every batch allocated its buffer anew.
    #[test]
    fn a_batch_keeps_one_spare_buffer_and_takes_it_next() {
        std::thread::spawn(|| {
            BATCH.with(|batch| {
                assert!(batch.take_spare().is_none(), "a new thread has no spare");
                let buffer = |cap: usize| {
                    let buffer = Vec::<Retired>::with_capacity(cap);
                    (buffer.as_ptr(), buffer)
                };
                // The spare's own field, not the address of a buffer taken later: the
                // allocator hands a freed buffer's address straight back.
                let (_, small) = buffer(BATCH_LEN / 2);
                batch.give_spare(small);
                assert!(batch.spare.get().is_null(), "a buffer too small was kept");
                let (first_at, mut first) = buffer(BATCH_LEN);
                first.push(Retired {
                    ptr: std::ptr::null_mut(),
                    free: free_item::<0>,
                });
                batch.give_spare(first);
                assert_eq!(batch.spare.get().cast_const(), first_at, "not kept");
                let (_, second) = buffer(BATCH_LEN);
                batch.give_spare(second);
                assert_eq!(
                    batch.spare.get().cast_const(),
                    first_at,
                    "a second spare replaced the first"
                );
                let taken = batch.new_buffer();
                assert_eq!(taken.as_ptr(), first_at, "the next batch took no spare");
                assert!(taken.is_empty() && taken.capacity() >= BATCH_LEN);
                assert!(batch.spare.get().is_null(), "the spare was taken twice");
                let fresh = batch.new_buffer();
                assert!(fresh.is_empty() && fresh.capacity() >= BATCH_LEN);
                batch.give_spare(taken);
            });
        })
        .join()
        .unwrap();
    }

    /// What a thread leaves in its batch when it exits is handed on by the thread-local's
    /// destructor, and freed.
    #[test]
    fn an_exiting_thread_hands_on_its_batch() {
        static FREED: AtomicUsize = AtomicUsize::new(0);
        let n = BATCH_LEN / 2 + 3;
        std::thread::spawn(move || {
            let guard = Collector::global().pin();
            for _ in 0..n {
                retire_counted(&guard, &FREED);
            }
        })
        .join()
        .unwrap();
        collect_until(n, &FREED);
    }

    /// A retired item that says which function must free it, and whether freeing it panics.
    struct Item {
        kind: usize,
        panics: bool,
    }

    /// Which function freed which items, and how many.
    static FREED_BY: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

    fn free_item<const KIND: usize>(run: Run<'_>) {
        run.each(|p: *mut Item| {
            // SAFETY: each item came from `Box::into_raw` in the test and is freed once.
            let item = unsafe { Box::from_raw(p) };
            assert_eq!(
                item.kind, KIND,
                "an item freed by the other kind's function"
            );
            FREED_BY[KIND].fetch_add(1, Ordering::Relaxed);
            if item.panics {
                panic!("a retired item's drop panics");
            }
        });
    }

    /// A batch whose retirements came with two free functions, interleaved in runs of every
    /// length from 1 to 5, is freed run by run, each retirement once, by its own function; and
    /// when one free panics, every other retirement (the rest of its run and the runs after it)
    /// is still freed.
    #[test]
    fn a_batch_of_interleaved_runs_frees_each_by_its_own_function() {
        let fns: [FreeRun; 2] = [free_item::<0>, free_item::<1>];
        // 17 retirements: the first, one inside the run of 5 (6..11), and the last.
        for panic_at in [None, Some(0), Some(8), Some(16)] {
            for c in &FREED_BY {
                c.store(0, Ordering::Relaxed);
            }
            let mut batch = Vec::new();
            let mut counts = [0; 2];
            for (run, len) in [1, 3, 2, 5, 1, 1, 4].into_iter().enumerate() {
                let kind = run % 2;
                for _ in 0..len {
                    let panics = panic_at == Some(batch.len());
                    let ptr = Box::into_raw(Box::new(Item { kind, panics })).cast::<()>();
                    batch.push(Retired {
                        ptr,
                        free: fns[kind],
                    });
                    counts[kind] += 1;
                }
            }
            // SAFETY: nothing else holds these items; each is freed once, by its function.
            let result = std::panic::catch_unwind(|| unsafe { free_all(batch) });
            assert_eq!(result.is_err(), panic_at.is_some());
            for (kind, counter) in FREED_BY.iter().enumerate() {
                assert_eq!(counter.load(Ordering::Relaxed), counts[kind], "kind {kind}");
            }
        }
    }
}
