//! A per-thread cache of entry blocks.
//!
//! Every write boxes a new entry, and every replacement or removal retires the old one; the
//! epoch collector frees retired entries a bag (64) at a time, on whichever thread collects.
//! glibc's per-thread cache keeps 7 blocks of a size, so most of a bag fell through to its
//! slower bins, and malloc plus free were a fifth of an exchange workload's instructions and a
//! third of a hot-key one's (callgrind, `BENCHMARKS.md`). Here each thread keeps freed blocks
//! per size class and hands them to its next entries.
//!
//! How many it keeps adapts to the thread's cycle. Garbage comes back in waves: nothing is
//! freed while some pinned thread holds the epoch back (with more threads than cores, a thread
//! preempted while pinned holds it for its whole time slice), and then the whole wave is freed at
//! once by whichever thread collects. A thread that wrote through the stall took fresh blocks
//! from malloc; if its cache then overflows while the wave comes back, it had kept too few to
//! cover the cycle, and a fixed cap would free the surplus to glibc only to malloc it again in
//! the next stall (cross-arena frees take glibc's arena lock: at 4 threads on 2 cores, 40 % of
//! a hot-key run was in malloc and free with a cap of 128). So a class starts with a cap of
//! [`FIRST_CAP`] blocks, and each overflow raises it by the number of blocks the thread had to
//! malloc since its previous overflow, up to [`MAX_BYTES`] of blocks a class. A thread that
//! never runs dry (one that only removes, or collects a `clear` of a big map) keeps its cap, and
//! frees the rest. The most a thread holds is `MAX_BYTES` a class it uses, freed when it exits.
//!
//! A block is a plain allocation of the global allocator with layout `(size, 8)`. Entries of
//! every type with that layout share a class: a `Box<Entry<K, V>>` built on a block frees it
//! correctly (same layout), so an entry that leaves the map by any other path (dropped with the
//! map, returned to a caller) needs nothing special. Entries aligned beyond 8 or larger than
//! the largest class bypass the cache.
//!
//! Only the owning thread touches its cache: no atomics, no sharing, no ABA. A block that
//! arrives when the class is full, or after the thread's cache was destroyed (a destructor run by
//! another thread-local's teardown), goes straight back to the allocator. A thread's cached
//! blocks are freed when it exits. Under loom the cache is off (`sync::ENTRY_CACHE`): model
//! threads share one OS thread, and the cache would only add state to explore.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::Cell;
use std::ptr;

use super::slot::Entry;
use crate::reclaim::Run;
use crate::sync::ENTRY_CACHE;

/// Size classes: blocks of 8, 16, ..., 8 * `CLASSES` (128) bytes.
const CLASSES: usize = 16;
/// Blocks a thread keeps per class to begin with: one retirement batch's worth
/// (`reclaim::BATCH_LEN`), so a whole collected batch is reused.
pub(crate) const FIRST_CAP: usize = 128;
/// The most bytes of blocks a thread keeps in one class, however its cap grows: 1 MiB, 43,690
/// entries of a `u64` map (24-byte blocks, 32-byte chunks in glibc: 1.3 MiB of its memory),
/// and their addresses (8 bytes a block: 341 KiB at most for that class).
const MAX_BYTES: usize = 1 << 20;
/// The alignment of every cached block: an `Entry`'s (`slot.rs`), unless a key or value needs more.
const ALIGN: usize = 8;

/// The class of `Entry<K, V>`, if it has one. Folds to a constant for each type.
#[inline(always)]
const fn class_of<K, V>() -> Option<usize> {
    let size = std::mem::size_of::<Entry<K, V>>();
    let align = std::mem::align_of::<Entry<K, V>>();
    if ENTRY_CACHE && align == ALIGN && size <= ALIGN * CLASSES {
        // `Entry` is 8-aligned and holds a `u64`, so `size` is a non-zero multiple of 8.
        Some(size / ALIGN - 1)
    } else {
        None
    }
}

/// One class's cached blocks: a stack of their addresses in a buffer of its own.
///
/// Until stop 18 it was an intrusive stack (each free block's first word linked to the next),
/// which wrote into every block as it was cached and read that word back as it was taken: after
/// a wave of garbage the blocks are colder than the core's caches, so each recycling was a store
/// miss (5.5 % of a 4-thread exchange run in `perf`) and each pop a load miss the pop had to
/// prefetch one block ahead to hide. The buffer is one contiguous, hot array; a cached block is
/// not touched between the drop of its entry's fields and the write of the next entry.
struct Class {
    /// A null slot, then `buf_cap` slots (never more than `cap`), the first `len` of them
    /// cached blocks (`buf[1..=len]`); null until the first push. The null slot lets `pop`
    /// prefetch the block under the one it takes without a bounds check.
    buf: Cell<*mut *mut u8>,
    buf_cap: Cell<usize>,
    len: Cell<usize>,
    /// The most blocks this class keeps now: from [`FIRST_CAP`] up to `MAX_BYTES` of blocks.
    cap: Cell<usize>,
    /// Entries of this class boxed by malloc since the class last overflowed: how far short of
    /// the thread's cycle the cap fell.
    misses: Cell<usize>,
}

impl Class {
    /// Raises a full class's cap by the blocks it had to malloc since it last overflowed, up to
    /// `MAX_BYTES` of blocks; `false` if that leaves it full.
    #[cold]
    fn grow(&self, class: usize) -> bool {
        let max = MAX_BYTES / block_layout(class).size();
        let cap = (self.cap.get() + self.misses.replace(0)).min(max);
        self.cap.set(cap);
        self.len.get() < cap
    }

    /// Makes room in the buffer for at least one more block (it is full, and `len < cap`):
    /// doubles it, at least to [`FIRST_CAP`] and at most to `cap`; `false` if the allocator
    /// refuses.
    #[cold]
    fn grow_buffer(&self) -> bool {
        // The owner first: its destructor frees this buffer with the thread. Gone (a block
        // recycled by another thread-local's destructor at the thread's exit), nothing would free
        // a new buffer: refused, and the block goes to the allocator.
        #[cfg(lockfree_map_native_tls)]
        if CACHE_OWNER.try_with(|_| ()).is_err() {
            return false;
        }
        let old_cap = self.buf_cap.get();
        let new_cap = (old_cap * 2).max(FIRST_CAP).min(self.cap.get());
        debug_assert!(
            new_cap > old_cap,
            "grow_buffer is called with room under the cap"
        );
        let Ok(layout) = buffer_layout(new_cap) else {
            return false;
        };
        // SAFETY: `layout` has a non-zero size (at least the null slot).
        let new = unsafe { alloc(layout) }.cast::<*mut u8>();
        if new.is_null() {
            return false;
        }
        // SAFETY: `new` has room for its null slot.
        unsafe { new.write(ptr::null_mut()) };
        let old = self.buf.get();
        if !old.is_null() {
            // `old` was allocated here for `old_cap` blocks; nothing refers to it once `buf`
            // points to `new`.
            // SAFETY: `old` holds `len <= old_cap` addresses after its null slot, `new` has room
            // for `new_cap > old_cap` after its own, and two allocations never overlap.
            unsafe {
                ptr::copy_nonoverlapping(old.add(1), new.add(1), self.len.get());
                dealloc(old.cast(), buffer_layout(old_cap).expect("was allocated"));
            }
        }
        self.buf.set(new);
        self.buf_cap.set(new_cap);
        true
    }

    /// [`push`] into a full buffer: grows the cap (by the misses) or the buffer, or refuses.
    ///
    /// # Safety
    /// As for [`push`].
    #[cold]
    #[inline(never)]
    unsafe fn push_slow(&self, class: usize, block: *mut u8) -> bool {
        let len = self.len.get();
        if len >= self.cap.get() && !self.grow(class) {
            return false;
        }
        if !self.grow_buffer() {
            return false;
        }
        // SAFETY: `grow_buffer` left room for at least one more block (slot `len + 1`); the
        // block is ours.
        unsafe { self.buf.get().add(len + 1).write(block) };
        self.len.set(len + 1);
        true
    }
}

struct Cache {
    classes: [Class; CLASSES],
}

/// Frees the thread's cache when the thread exits (`CACHE_OWNER`).
#[cfg(lockfree_map_native_tls)]
struct CacheOwner;

#[cfg(lockfree_map_native_tls)]
impl Drop for CacheOwner {
    fn drop(&mut self) {
        // `CACHE` has no destructor, so it is still there.
        let _ = CACHE.try_with(Cache::release);
    }
}

/// Where thread-locals live in OS keys, the cache's own destructor: a key's value is freed when
/// its destructor ends, and a later access makes a new one, with a destructor of its own
/// (`build.rs`).
#[cfg(not(lockfree_map_native_tls))]
impl Drop for Cache {
    fn drop(&mut self) {
        self.release();
    }
}

impl Cache {
    /// Frees every class's blocks and buffer, leaving each class empty with no buffer: the fast
    /// paths then fall through to [`Class::grow_buffer`], which takes no new buffer once the
    /// owner is gone, so every later block goes to the allocator.
    fn release(&self) {
        for (class, blocks) in self.classes.iter().enumerate() {
            let buf = blocks.buf.replace(ptr::null_mut());
            if buf.is_null() {
                continue;
            }
            let (len, buf_cap) = (blocks.len.replace(0), blocks.buf_cap.replace(0));
            // SAFETY: slots `1..=len` of `buf` hold cached blocks, each an allocation of this
            // class's layout owned by the cache; `buf` itself was allocated by `grow_buffer`
            // for `buf_cap` blocks, and the cache no longer refers to either.
            unsafe {
                for i in 1..=len {
                    dealloc(buf.add(i).read(), block_layout(class));
                }
                dealloc(buf.cast(), buffer_layout(buf_cap).expect("was allocated"));
            }
        }
    }
}

/// The layout of a class's buffer with room for `blocks` blocks: one slot more, the null one.
fn buffer_layout(blocks: usize) -> Result<Layout, std::alloc::LayoutError> {
    Layout::array::<*mut u8>(blocks + 1)
}

fn block_layout(class: usize) -> Layout {
    // A multiple of 8 up to 128 with alignment 8 is always a valid layout.
    Layout::from_size_align((class + 1) * ALIGN, ALIGN).expect("a valid block layout")
}

thread_local! {
    /// The cache. It has no destructor (no drop glue), so the accesses of the fast paths (a
    /// write's `pop`, a collection's `keep`) are plain thread-local loads: with one, `std` tests
    /// a state byte on every access, 3-4 instructions a write (a review of the hot paths, stop
    /// 51). Its memory is freed at the thread's exit by `CACHE_OWNER` (where `std` keeps
    /// thread-locals in OS keys, not natively, by a destructor of its own: `build.rs`).
    static CACHE: Cache = const {
        Cache {
            classes: [const {
                Class {
                    buf: Cell::new(ptr::null_mut()),
                    buf_cap: Cell::new(0),
                    len: Cell::new(0),
                    cap: Cell::new(FIRST_CAP),
                    misses: Cell::new(0),
                }
            }; CLASSES],
        }
    };
    /// Frees [`CACHE`]'s blocks and buffers when the thread exits. Registered (first touched)
    /// by [`Class::grow_buffer`], the one place a class gets a buffer, and so before the
    /// cache holds anything to free; once its destructor has run (or started: `std` marks it
    /// destroyed first), `grow_buffer` refuses, so the cache holds nothing again.
    #[cfg(lockfree_map_native_tls)]
    static CACHE_OWNER: CacheOwner = const { CacheOwner };
}

/// Takes a cached block of `class`, if this thread has one.
#[inline]
fn pop(class: usize) -> Option<*mut u8> {
    // `try_with`: on a target without native thread-locals the cache can be gone at the
    // thread's exit; with them (it has no destructor) the check folds away.
    CACHE
        .try_with(|cache| {
            let c = &cache.classes[class];
            let len = c.len.get();
            if len == 0 {
                c.misses.set(c.misses.get() + 1);
                return None;
            }
            let buf = c.buf.get();
            // SAFETY: `len > 0`, so `buf` is allocated, slot `len` holds a block, and slot
            // `len - 1` a block or the null slot.
            let (block, under) = unsafe { (buf.add(len).read(), buf.add(len - 1).read()) };
            // The entry boxed on the next block writes it: after a wave of garbage the blocks
            // are colder than the core's caches (stop 14: 15 % of a 4-thread hot-key run's
            // `update` waited on that block when it was read as a link). Null is harmless.
            crate::sync::prefetch(under);
            c.len.set(len - 1);
            Some(block)
        })
        .ok()
        .flatten()
}

impl Class {
    /// Caches `block` (of this class, `class`); `false` (the caller frees it) if the class is
    /// full. A full class first grows by the blocks it missed since it last overflowed.
    ///
    /// # Safety
    /// `block` is an allocation of `block_layout(class)` that the caller owns and gives up.
    #[inline(always)]
    unsafe fn keep(&self, class: usize, block: *mut u8) -> bool {
        let len = self.len.get();
        // One comparison on the common path: the buffer never holds more than `cap` slots.
        if len < self.buf_cap.get() {
            // SAFETY: slot `len + 1 <= buf_cap` is inside the allocated buffer; the block is
            // ours to keep (caller's contract).
            unsafe { self.buf.get().add(len + 1).write(block) };
            self.len.set(len + 1);
            true
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { self.push_slow(class, block) }
        }
    }
}

/// Boxes `entry`, on a cached block when this thread has one. Always inlined: with a 40-byte
/// `String`-keyed entry passed by value it stayed out of line, 11 instructions a write
/// (callgrind `hotpath hot-key-string`).
#[inline(always)]
pub(crate) fn boxed<K, V>(entry: Entry<K, V>) -> Box<Entry<K, V>> {
    if let Some(class) = class_of::<K, V>() {
        if let Some(block) = pop(class) {
            let p = block.cast::<Entry<K, V>>();
            // The block's layout `(size_of::<Entry<K, V>>(), 8)` is `Entry<K, V>`'s own: the class
            // fixes the size, and `class_of` admits only alignment 8.
            // SAFETY: a global-allocator block of that layout, owned by nobody else; writing the
            // entry initialises it, and `Box` may then own and free it.
            unsafe {
                p.write(entry);
                return Box::from_raw(p);
            }
        }
    }
    Box::new(entry)
}

/// Moves `entry` out of its box and keeps the block for this thread's next entry, as a recycled
/// one: a write whose CAS lost to another thread's drops the entry it made, and freeing the box
/// sent its block to the allocator just before the retry boxed another (a review of the hot
/// paths, stop 51; under contention only).
#[inline]
pub(crate) fn unbox<K, V>(entry: Box<Entry<K, V>>) -> Entry<K, V> {
    let p = Box::into_raw(entry);
    // SAFETY: `p` came from `Box::into_raw` just above: valid and initialised, and ours alone;
    // the entry is moved out once, after which the block is only memory.
    let entry = unsafe { p.read() };
    let block = p.cast::<u8>();
    match class_of::<K, V>() {
        Some(class) => {
            // SAFETY: the block is a `Box<Entry<K, V>>` allocation, of this class's layout
            // (`boxed`), with nothing left in it; `keep` keeps it, or we free it.
            let kept = CACHE.try_with(|cache| unsafe { cache.classes[class].keep(class, block) });
            if kept != Ok(true) {
                // SAFETY: as above; not kept, so still ours.
                unsafe { dealloc(block, block_layout(class)) };
            }
        }
        // SAFETY: a `Box<Entry<K, V>>` allocation, of `Entry<K, V>`'s layout (not zero-sized:
        // an entry holds its hash), with nothing left in it.
        None => unsafe { dealloc(block, Layout::new::<Entry<K, V>>()) },
    }
    entry
}

/// Frees a run of retired entries (a `reclaim::FreeRun`): drops each entry's key and value and
/// keeps its block for this thread's next entries.
///
/// # Safety
/// Every pointer of `run` came from `Box::into_raw` of a `Box<Entry<K, V>>`, and nothing else
/// uses or frees it.
pub(crate) unsafe fn recycle_run<K, V>(run: Run<'_>) {
    // SAFETY: forwarded from the caller: the entries are ours, and with nothing to drop, their
    // blocks are all that is left of them.
    if !std::mem::needs_drop::<Entry<K, V>>() && unsafe { keep_blocks::<K, V>(run) } {
        return;
    }
    // SAFETY: forwarded from the caller; each entry owns its key and value, dropped once here.
    unsafe { recycle_each(run, |p: *mut Entry<K, V>| std::ptr::drop_in_place(p)) };
}

/// [`recycle_run`] for entries whose key is not theirs to drop: each entry's value is dropped,
/// not its key (which passed to the entry that replaced it, `RawMap::try_replace_value`).
///
/// # Safety
/// As for [`recycle_run`], and each entry's key is owned by another entry.
pub(crate) unsafe fn recycle_value_run<K, V>(run: Run<'_>) {
    // SAFETY: forwarded from the caller: the entries' values have nothing to drop, and their
    // keys are owned elsewhere.
    if !std::mem::needs_drop::<V>() && unsafe { keep_blocks::<K, V>(run) } {
        return;
    }
    // SAFETY: forwarded from the caller; each entry owns its value only, dropped once here.
    unsafe {
        recycle_each(run, |p: *mut Entry<K, V>| {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).value))
        })
    };
}

/// [`recycle_run`] for one entry.
///
/// # Safety
/// As for [`recycle_run`], for `p`.
#[cfg(test)]
unsafe fn recycle<K, V>(p: *mut Entry<K, V>) {
    let retired = [p.cast::<()>()];
    // SAFETY: forwarded from the caller; the entry owns its key and value, dropped once here.
    unsafe {
        recycle_each(&retired[..], |p: *mut Entry<K, V>| {
            std::ptr::drop_in_place(p)
        })
    };
}

/// [`recycle_value_run`] for one entry.
///
/// # Safety
/// As for [`recycle_value_run`], for `p`.
#[cfg(test)]
unsafe fn recycle_value<K, V>(p: *mut Entry<K, V>) {
    let retired = [p.cast::<()>()];
    // SAFETY: forwarded from the caller; the entry owns its value only, dropped once here.
    unsafe {
        recycle_each(&retired[..], |p: *mut Entry<K, V>| {
            std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).value))
        })
    };
}

/// Caches the blocks of a run of entries that own nothing left to drop (or frees those the
/// class has no room for), copying their addresses into the class's buffer as far as it has room:
/// no drop to guard, so no per-entry guard or call (about 4 instructions an entry against 13).
/// `false`, with nothing done, if the entries have no class or this thread's cache is gone (once
/// it is released at the thread's exit, every block goes to the allocator: `grow_buffer`).
///
/// # Safety
/// Every pointer of `run` is a `Box<Entry<K, V>>` allocation owned by the caller alone, with
/// nothing in it left to drop.
#[inline(always)]
unsafe fn keep_blocks<K, V>(run: Run<'_>) -> bool {
    let Some(class) = class_of::<K, V>() else {
        return false;
    };
    CACHE
        .try_with(|cache| {
            let c = &cache.classes[class];
            let mut blocks = run.ptrs();
            loop {
                let (buf, len) = (c.buf.get(), c.len.get());
                let room = c.buf_cap.get() - len;
                let mut kept = 0;
                for block in blocks.by_ref().take(room) {
                    // SAFETY: `kept < room`, so slot `len + 1 + kept <= buf_cap` is inside the
                    // allocated buffer (`room > 0` only once it is); the block is ours to keep.
                    unsafe { buf.add(len + 1 + kept).write(block.cast()) };
                    kept += 1;
                }
                c.len.set(len + kept);
                let Some(block) = blocks.next() else {
                    return;
                };
                // The buffer is full: grow it (or the cap), or free the block.
                // SAFETY: the block is ours, an allocation of this class's layout.
                unsafe {
                    if !c.push_slow(class, block.cast()) {
                        dealloc(block.cast(), block_layout(class));
                    }
                }
            }
        })
        .is_ok()
}

/// Retired entries `recycle_each` can take: a run of a collected batch, or a single pointer.
trait Retirements: Copy {
    fn each<T>(self, free: impl FnMut(*mut T));
}

impl Retirements for Run<'_> {
    #[inline(always)]
    fn each<T>(self, free: impl FnMut(*mut T)) {
        Run::each(self, free);
    }
}

#[cfg(test)]
impl Retirements for &[*mut ()] {
    fn each<T>(self, mut free: impl FnMut(*mut T)) {
        for &p in self {
            free(p.cast());
        }
    }
}

/// Runs `drop_fields` on each entry, then caches or frees its block (also if `drop_fields`
/// panics). This thread's cache is looked up once for all of them.
///
/// # Safety
/// Every pointer came from `Box::into_raw` of a `Box<Entry<K, V>>` and is owned by the caller
/// alone; `drop_fields` drops what the entry owns, once, and nothing else.
#[inline(always)]
unsafe fn recycle_each<K, V>(entries: impl Retirements, drop_fields: impl Fn(*mut Entry<K, V>)) {
    /// Frees the allocation even if dropping the fields panics.
    struct Alloc(*mut u8, Layout);
    impl Drop for Alloc {
        fn drop(&mut self) {
            // SAFETY: a `Box<Entry<K, V>>` allocation of this layout, owned by this `Alloc`
            // alone (see `recycle_run`), its fields already dropped.
            unsafe { dealloc(self.0, self.1) };
        }
    }
    let free_each = |p: *mut Entry<K, V>| {
        let alloc = Alloc(p.cast::<u8>(), Layout::new::<Entry<K, V>>());
        drop_fields(p);
        drop(alloc);
    };
    let Some(class) = class_of::<K, V>() else {
        entries.each(free_each);
        return;
    };
    /// Gives the block back even if dropping the key or the value panics.
    struct Block<'c>(*mut u8, usize, &'c Class);
    impl Drop for Block<'_> {
        #[inline]
        fn drop(&mut self) {
            let Block(block, class, cache) = *self;
            // SAFETY: the block, a `Box<Entry>` allocation of this class's layout, is owned by
            // this `Block` alone (see `recycle_run`); `keep` keeps it, or we free it.
            unsafe {
                if !cache.keep(class, block) {
                    dealloc(block, block_layout(class));
                }
            }
        }
    }
    let cached = CACHE.try_with(|cache| {
        let c = &cache.classes[class];
        entries.each(|p: *mut Entry<K, V>| {
            // The memory, allocated as a `Box<Entry<K, V>>` of layout `(8 * (class + 1), 8)`,
            // passes to `block` once the fields are dropped (or while a panic from them
            // unwinds), which caches or frees it. A `drop_fields` that reaches this cache
            // again (a value holding a map) finds it consistent: `keep` rereads its `Cell`s.
            let block = Block(p.cast::<u8>(), class, c);
            drop_fields(p);
            drop(block);
        });
    });
    if cached.is_err() {
        // The thread's cache is gone (only on a target without native thread-locals, at the
        // thread's exit): none of the entries was touched; free them.
        entries.each(free_each);
    }
}

/// Blocks this thread's cache holds for entries of type `Entry<K, V>` (none for a type it does
/// not serve).
#[cfg(test)]
pub(super) fn cached_blocks<K, V>() -> usize {
    class_of::<K, V>().map_or(0, tests::cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks this thread holds in `class`.
    pub(super) fn cached(class: usize) -> usize {
        CACHE.with(|cache| cache.classes[class].len.get())
    }

    /// Boxes `n` entries of type `Entry<u64, T>` and returns their addresses.
    fn boxes<T: Default>(n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| {
                let entry = Entry {
                    hash: i as u64,
                    key: i as u64,
                    value: T::default(),
                };
                Box::into_raw(boxed(entry)) as usize
            })
            .collect()
    }

    /// Recycles entries made by `boxes::<T>`, as a collected batch would.
    fn recycle_all<T>(blocks: &[usize]) {
        let ptrs: Vec<*mut ()> = blocks.iter().map(|&p| p as *mut ()).collect();
        // SAFETY: each address came from `Box::into_raw` in `boxes::<T>`, once.
        unsafe { crate::reclaim::free_now(&ptrs, recycle_run::<u64, T>) };
    }

    #[test]
    fn a_class_that_ran_dry_grows_by_what_it_missed_when_it_next_overflows() {
        std::thread::spawn(|| {
            let class = class_of::<u64, u64>().unwrap();
            // A fresh thread: all 300 come from malloc, and all 300 are kept when they come
            // back, although the class starts with room for 128.
            let first = boxes::<u64>(300);
            recycle_all::<u64>(&first);
            assert_eq!(cached(class), 300);
            let mut second = boxes::<u64>(300);
            assert_eq!(cached(class), 0);
            let mut first = first;
            first.sort_unstable();
            second.sort_unstable();
            assert_eq!(first, second, "every block of the first wave is reused");
            recycle_all::<u64>(&second);
        })
        .join()
        .unwrap();
    }

    /// Entries with something to drop, recycled as a collected batch: each value dropped once,
    /// each block cached.
    #[test]
    fn a_run_of_entries_with_drops_drops_each_once_and_keeps_each_block() {
        use std::rc::Rc;
        std::thread::spawn(|| {
            let probe = Rc::new(());
            let blocks: Vec<usize> = (0..200)
                .map(|i| {
                    let entry = Entry {
                        hash: i,
                        key: i,
                        value: Rc::clone(&probe),
                    };
                    Box::into_raw(boxed(entry)) as usize
                })
                .collect();
            assert_eq!(Rc::strong_count(&probe), 201);
            recycle_all::<Rc<()>>(&blocks);
            assert_eq!(Rc::strong_count(&probe), 1, "every value dropped once");
            assert_eq!(cached(class_of::<u64, Rc<()>>().unwrap()), 200);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_class_that_never_ran_dry_keeps_its_first_cap() {
        // One thread boxes, another (which mallocs nothing) gets them all back, as a thread
        // that only removes, or collects a big `clear`, does.
        let blocks = std::thread::spawn(|| boxes::<u64>(300)).join().unwrap();
        std::thread::spawn(move || {
            recycle_all::<u64>(&blocks);
            assert_eq!(cached(class_of::<u64, u64>().unwrap()), FIRST_CAP);
        })
        .join()
        .unwrap();
    }

    #[test]
    // 9,192 blocks of the largest class: a twentieth of CI's Miri run, for paths the smaller
    // tests here cover under Miri too; it runs natively.
    #[cfg_attr(miri, ignore = "the cap's arithmetic at full size; runs natively")]
    fn a_class_never_holds_more_than_max_bytes() {
        type Big = [u64; 14]; // a 128-byte entry: the largest class
        std::thread::spawn(|| {
            let class = class_of::<u64, Big>().unwrap();
            let max = MAX_BYTES / block_layout(class).size();
            let blocks = boxes::<Big>(max + 1000);
            recycle_all::<Big>(&blocks);
            assert_eq!(cached(class), max);
        })
        .join()
        .unwrap();
    }

    /// `build.rs` picks the variant by target; a script that silently picked the OS-key one
    /// everywhere would cost every write its state tests again (it did, in this stop's first
    /// version, which read a cfg cargo does not pass on). Linux keeps thread-locals natively.
    #[test]
    fn the_native_variant_is_built_where_thread_locals_are_native() {
        let native = cfg!(lockfree_map_native_tls);
        if cfg!(target_os = "linux") && option_env!("LOCKFREE_MAP_OS_TLS").is_none() {
            assert!(native, "build.rs built the OS-key variant on Linux");
        }
    }

    #[test]
    fn an_unboxed_entry_leaves_its_block_to_the_next_entry() {
        let made = boxed(Entry {
            hash: 1,
            key: 1u64,
            value: String::from("one"),
        });
        let block = std::ptr::addr_of!(*made).cast::<u8>();
        let Entry { hash, key, value } = unbox(made);
        assert_eq!((hash, key, value.as_str()), (1, 1, "one"));
        let again = boxed(Entry {
            hash: 2,
            key: 2u64,
            value: String::from("two"),
        });
        assert_eq!(std::ptr::addr_of!(*again).cast::<u8>(), block);
        // A type no class serves goes back to the allocator (Miri checks the layout).
        let large = boxed(Entry {
            hash: 3,
            key: 3u64,
            value: [3u64; 32],
        });
        assert_eq!(unbox(large).value, [3; 32]);
    }

    #[test]
    fn a_recycled_block_is_reused_by_the_next_entry_of_its_size() {
        let first = Box::into_raw(boxed(Entry {
            hash: 1,
            key: 1u64,
            value: String::from("one"),
        }));
        // SAFETY: `first` came from `Box::into_raw` just above and nothing else owns it.
        unsafe { recycle(first) };
        // Another type of the same layout takes the same block. (Three words, as a `String` is
        // on every target: `u64`s would make the entry larger on 32-bit ones.)
        let second = boxed(Entry {
            hash: 2,
            key: [2u8; 8],
            value: (2usize, 2usize, 2usize),
        });
        assert_eq!(
            std::mem::size_of_val(&*second),
            std::mem::size_of::<Entry<u64, String>>()
        );
        assert_eq!(std::ptr::addr_of!(*second).cast::<u8>(), first.cast::<u8>());
        assert_eq!(
            (second.hash, second.key, second.value),
            (2, [2; 8], (2, 2, 2))
        );
    }

    #[test]
    fn a_panicking_drop_still_returns_the_block() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let p = Box::into_raw(boxed(Entry {
            hash: 0,
            key: 0u64,
            value: Bomb,
        }));
        // SAFETY: `p` came from `Box::into_raw` just above and nothing else owns it.
        let caught = std::panic::catch_unwind(|| unsafe { recycle(p) });
        assert!(caught.is_err());
        // Same layout as the `Bomb` entry (16 bytes): the same class.
        let next = boxed(Entry {
            hash: 0,
            key: 0u64,
            value: (),
        });
        assert_eq!(std::ptr::addr_of!(*next).cast::<u8>(), p.cast::<u8>());
    }

    #[test]
    fn recycle_value_drops_the_value_and_leaves_the_key_to_its_new_owner() {
        use std::rc::Rc;
        fn check<V>(value: V, probe: &Rc<String>) {
            let key = Rc::new(String::from("key"));
            let old = Box::into_raw(boxed(Entry {
                hash: 0,
                key: Rc::clone(&key),
                value,
            }));
            // The key's new owner: a bitwise copy, as `try_replace_value` makes.
            // SAFETY: `old` is valid; the copy becomes the key's only owner below.
            let new_owner = unsafe { std::ptr::read(&(*old).key) };
            // SAFETY: `old` came from `Box::into_raw` above, and its key is owned by `new_owner`.
            unsafe { recycle_value(old) };
            assert_eq!(Rc::strong_count(probe), 1, "the value was dropped");
            assert_eq!(Rc::strong_count(&key), 2, "the key was left alone");
            drop(new_owner);
            assert_eq!(Rc::strong_count(&key), 1);
        }
        let probe = Rc::new(String::from("value"));
        // A small entry (a cached class) and one too big for the cache (freed at once).
        assert!(class_of::<Rc<String>, Rc<String>>().is_some());
        check(Rc::clone(&probe), &probe);
        assert!(class_of::<Rc<String>, (Rc<String>, [u64; 20])>().is_none());
        check((Rc::clone(&probe), [0u64; 20]), &probe);
    }

    #[test]
    fn oversized_entries_bypass_the_cache() {
        /// Aligned to 16 on every target (`u128` is not: 8 on s390x, for one). Only its layout
        /// is asked for.
        #[repr(align(16))]
        #[allow(dead_code)]
        struct Aligned16(u8);
        assert_eq!(class_of::<u64, [u8; 200]>(), None);
        assert_eq!(class_of::<u64, u64>(), Some(2)); // 24 bytes
        assert_eq!(class_of::<u64, [u64; 2]>(), Some(3)); // 32 bytes
        assert_eq!(class_of::<u64, Aligned16>(), None);
        let p = Box::into_raw(boxed(Entry {
            hash: 0,
            key: 0u64,
            value: [7u8; 200],
        }));
        // SAFETY: as above.
        unsafe { recycle(p) };
    }
}
