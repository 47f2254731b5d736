//! A per-thread cache of entry blocks.
//!
//! Every write boxes a new entry, and every replacement or removal retires the old one; the
//! epoch collector frees retired entries a bag (64) at a time, on whichever thread collects.
//! glibc's per-thread cache keeps 7 blocks of a size, so most of a bag fell through to its
//! slower bins, and malloc plus free were a fifth of an exchange workload's instructions and a
//! third of a hot-key one's (callgrind, `BENCHMARKS.md`). Here each thread keeps up to
//! [`CAP`] freed blocks per size class and hands them to its next entries.
//!
//! A block is a plain allocation of the global allocator with layout `(size, 16)`. Entries of
//! every type with that layout share a class: a `Box<Entry<K, V>>` built on a block frees it
//! correctly (same layout), so an entry that leaves the map by any other path (dropped with the
//! map, returned to a caller) needs nothing special. Entries aligned beyond 16 or larger than
//! the largest class bypass the cache.
//!
//! Only the owning thread touches its cache: no atomics, no sharing, no ABA. A block that
//! arrives when the class is full, or after the thread's cache was destroyed (a destructor run by
//! another thread-local's teardown), goes straight back to the allocator. A thread's cached
//! blocks are freed when it exits. Under loom the cache is off (`sync::ENTRY_CACHE`): model
//! threads share one OS thread, and the cache would only add state to explore.

use std::alloc::{dealloc, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

use super::slot::Entry;
use crate::sync::ENTRY_CACHE;

/// Size classes: blocks of 16, 32, ..., 16 * `CLASSES` bytes.
const CLASSES: usize = 8;
/// Blocks a thread keeps per class: two epoch bags' worth, so a whole collected bag is reused.
const CAP: usize = 128;
const ALIGN: usize = 16;

/// The class of `Entry<K, V>`, if it has one. Folds to a constant for each type.
#[inline(always)]
const fn class_of<K, V>() -> Option<usize> {
    let size = std::mem::size_of::<Entry<K, V>>();
    let align = std::mem::align_of::<Entry<K, V>>();
    if ENTRY_CACHE && align == ALIGN && size <= ALIGN * CLASSES {
        // `Entry` is 16-aligned and holds a `u64`, so `size` is a non-zero multiple of 16.
        Some(size / ALIGN - 1)
    } else {
        None
    }
}

struct Cache {
    classes: [Vec<NonNull<u8>>; CLASSES],
}

impl Drop for Cache {
    fn drop(&mut self) {
        for (class, blocks) in self.classes.iter_mut().enumerate() {
            let layout = block_layout(class);
            for block in blocks.drain(..) {
                // SAFETY: every cached block came from the global allocator with this class's
                // layout (see `recycle`), and the cache owns it exclusively.
                unsafe { dealloc(block.as_ptr(), layout) };
            }
        }
    }
}

fn block_layout(class: usize) -> Layout {
    // A multiple of 16 up to 128 with alignment 16 is always a valid layout.
    Layout::from_size_align((class + 1) * ALIGN, ALIGN).expect("a valid block layout")
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            classes: [const { Vec::new() }; CLASSES],
        })
    };
}

/// Boxes `entry`, on a cached block when this thread has one.
#[inline]
pub(crate) fn boxed<K, V>(entry: Entry<K, V>) -> Box<Entry<K, V>> {
    if let Some(class) = class_of::<K, V>() {
        let block = CACHE
            .try_with(|c| c.try_borrow_mut().ok()?.classes[class].pop())
            .ok()
            .flatten();
        if let Some(block) = block {
            let p = block.as_ptr().cast::<Entry<K, V>>();
            // SAFETY: the block was allocated by the global allocator with layout
            // `(size_of::<Entry<K, V>>(), 16)`, which is `Layout::new::<Entry<K, V>>()` (the class
            // fixes the size, and `class_of` admits only alignment 16), and nothing else owns it.
            // Writing the entry initialises it; `Box` may then own and free it.
            unsafe {
                p.write(entry);
                return Box::from_raw(p);
            }
        }
    }
    Box::new(entry)
}

/// Drops a retired entry's key and value and keeps its block for this thread's next entries.
///
/// # Safety
/// `p` came from `Box::into_raw` of a `Box<Entry<K, V>>`, and nothing else uses or frees it.
pub(crate) unsafe fn recycle<K, V>(p: *mut Entry<K, V>) {
    let Some(class) = class_of::<K, V>() else {
        // SAFETY: forwarded from the caller: we own the box.
        drop(unsafe { Box::from_raw(p) });
        return;
    };
    /// Gives the block back even if dropping the key or the value panics.
    struct Block(NonNull<u8>, usize);
    impl Drop for Block {
        fn drop(&mut self) {
            let Block(block, class) = *self;
            let kept = CACHE
                .try_with(|c| {
                    let Ok(mut cache) = c.try_borrow_mut() else {
                        return false;
                    };
                    let blocks = &mut cache.classes[class];
                    if blocks.len() == CAP {
                        return false;
                    }
                    if blocks.capacity() == 0 {
                        blocks.reserve_exact(CAP);
                    }
                    blocks.push(block);
                    true
                })
                .unwrap_or(false);
            if !kept {
                // SAFETY: the block was allocated with this class's layout (see `recycle`) and
                // is owned by this `Block` alone.
                unsafe { dealloc(block.as_ptr(), block_layout(class)) };
            }
        }
    }
    // SAFETY: `Box::into_raw` never returns null.
    let block = Block(unsafe { NonNull::new_unchecked(p.cast::<u8>()) }, class);
    // SAFETY: we own the entry (caller's contract); its key and value are dropped once, here.
    // The memory, allocated as a `Box<Entry<K, V>>` of layout `(16 * (class + 1), 16)`, then
    // passes to `block`, which caches or frees it.
    unsafe { std::ptr::drop_in_place(p) };
    drop(block);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_block_is_reused_by_the_next_entry_of_its_size() {
        let first = Box::into_raw(boxed(Entry {
            hash: 1,
            key: 1u64,
            value: String::from("one"),
        }));
        // SAFETY: `first` came from `Box::into_raw` just above and nothing else owns it.
        unsafe { recycle(first) };
        // Another type of the same layout takes the same block.
        let second = boxed(Entry {
            hash: 2,
            key: [2u8; 8],
            value: (2u64, 2u64, 2u64),
        });
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
    fn oversized_entries_bypass_the_cache() {
        assert_eq!(class_of::<u64, [u8; 200]>(), None);
        assert_eq!(class_of::<u64, u64>(), Some(1));
        let p = Box::into_raw(boxed(Entry {
            hash: 0,
            key: 0u64,
            value: [7u8; 200],
        }));
        // SAFETY: as above.
        unsafe { recycle(p) };
    }
}
