//! A large map's drop frees its entries in address order (`RawMap`'s `Drop`): glibc keeps freed
//! small blocks unmerged until a large request comes, and then merges them in the order they
//! were freed, which in table order is at random (about 600 ms after a map of 4M entries;
//! `BENCHMARKS.md`, table of changes). This binary's allocator records the addresses of the
//! entry blocks that the test's own thread frees while the map drops.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use lockfree_map::HashMap;

/// The values: 40 bytes, so that an entry (key, value, hash) is a 56-byte block, a size nothing
/// else this test frees has.
type Value = [u64; 5];
const ENTRY_BYTES: usize = 56;

/// Entries inserted: past the 65,536 (plus the entry cache's first 128) from which a drop frees
/// in address order with the shipping geometry.
const ENTRIES: usize = 70_000;

struct Recording;

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

/// Room for the drop's frees and any retired blocks a collection frees meanwhile.
const RECORDED: usize = ENTRIES + 4_096;

static FREED: [AtomicUsize; RECORDED] = [const { AtomicUsize::new(0) }; RECORDED];
static COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records, without allocating.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `try_with`: a thread's last frees may come after its thread-locals are gone.
        if layout.size() == ENTRY_BYTES && RECORDING.try_with(Cell::get).unwrap_or(false) {
            let i = COUNT.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = FREED.get(i) {
                slot.store(ptr as usize, Ordering::Relaxed);
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

#[test]
fn a_large_map_frees_its_entries_in_address_order() {
    assert_eq!(
        std::mem::size_of::<(u64, Value, u64)>(),
        ENTRY_BYTES,
        "the entry's size this test recognises"
    );
    let map: HashMap<u64, Value> = HashMap::new();
    {
        let m = map.pin();
        for k in 0..ENTRIES as u64 {
            m.insert(k, [k; 5]);
        }
        // Some removed and replaced too: their blocks are retired, not the drop's to free.
        for k in 0..1_000 {
            m.remove(&k);
            m.insert(k + 1_000, [0; 5]);
        }
    }
    let live = map.len();
    RECORDING.with(|r| r.set(true));
    drop(map);
    RECORDING.with(|r| r.set(false));
    let count = COUNT.load(Ordering::Relaxed);
    // The first 128 go to this thread's entry cache rather than the allocator. The retired
    // blocks may be collected during the drop too (its own frees are what is in order), so
    // only the drop's count is bounded from below.
    assert!(
        count >= live - 128 && count <= RECORDED,
        "{count} entry blocks freed for {live} entries"
    );
    let freed: Vec<usize> = FREED[..count]
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    // The longest ascending run must hold all but a few: the drop's own frees.
    let mut longest = 0;
    let mut run = 0;
    for i in 0..freed.len() {
        run = if i > 0 && freed[i - 1] < freed[i] {
            run + 1
        } else {
            1
        };
        longest = longest.max(run);
    }
    assert!(
        longest >= live - 128,
        "the longest ascending run of freed blocks is {longest} of {count} ({live} entries)"
    );
}
