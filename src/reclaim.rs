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
//! - all maps use crossbeam's global collector, so any [`Guard`] protects any map; this is why
//!   keys and values must be `'static` (a retired entry may be dropped after its map).

use crossbeam_epoch as epoch;

/// A pinned epoch guard.
///
/// While a `Guard` lives, nothing that was reachable in any map when the guard was created is
/// freed. References returned by the map's explicit-guard methods live as long as the guard.
///
/// Holding a guard for a long time delays the freeing of every entry removed or replaced in the
/// meantime, in every map: pin for an operation or a batch of operations, not for the life of a
/// thread.
pub struct Guard {
    inner: epoch::Guard,
}

impl Guard {
    /// Lets the epoch advance past this guard if nothing borrowed from it is still alive.
    ///
    /// Useful in long loops that reuse one guard: call it between batches.
    pub fn repin(&mut self) {
        self.inner.repin();
    }

    /// Pushes this thread's retired garbage to the global queue so other threads can free it.
    pub fn flush(&self) {
        self.inner.flush();
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// Pins the current thread.
#[inline]
pub(crate) fn pin() -> Guard {
    Guard {
        inner: epoch::pin(),
    }
}

/// Retires a boxed value: it is dropped once no thread pinned now can still hold it.
///
/// # Safety
/// `ptr` came from `Box::into_raw`, has been unlinked from every place a thread that pins later
/// could load it, and is retired exactly once.
#[inline]
pub(crate) unsafe fn retire_box<T>(guard: &Guard, ptr: *mut T) {
    // SAFETY: crossbeam's `Pointable` for a sized `T` is `Box<T>`, so `defer_destroy` drops the
    // `Box` we made; the caller guarantees the pointer is unlinked and retired once.
    unsafe {
        guard
            .inner
            .defer_destroy(epoch::Shared::from(ptr as *const T))
    };
    // crossbeam collects (a bounded amount) only every 128th pin; a thread retiring many
    // entries per pin would outpace it. Flushing also collects. One flush per bag's worth.
    if crate::sync::retire_tick(RETIRES_PER_FLUSH) {
        guard.inner.flush();
    }
}

/// Retirements between two flushes: one local bag's worth in crossbeam-epoch.
const RETIRES_PER_FLUSH: u32 = 64;

/// Retires a boxed value and flushes, so that a large allocation (a table) is freed promptly
/// even by a thread that retires little else.
///
/// # Safety
/// As for [`retire_box`].
pub(crate) unsafe fn retire_box_and_flush<T>(guard: &Guard, ptr: *mut T) {
    // SAFETY: forwarded from the caller.
    unsafe { retire_box(guard, ptr) };
    guard.inner.flush();
}
