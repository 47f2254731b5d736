//! A large map's drop frees its entries in address order (`RawMap`'s `Drop`): glibc keeps freed
//! small blocks unmerged until a large request comes, and then merges them in the order they
//! were freed, which in table order is at random (about 600 ms after a map of 4M entries;
//! `BENCHMARKS.md`, table of changes). `into_iter` frees the blocks of the entries it took the
//! same way. This binary's allocator records the addresses of the entry blocks that the test's
//! own thread frees while the map (or the iterator) drops.

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
    /// Whether this thread's allocations of `REFUSED_BYTES` or more fail.
    static REFUSING: Cell<bool> = const { Cell::new(false) };
}

/// The smallest allocation refused while `REFUSING`: the drop's list of addresses is larger
/// (a word an entry), the map's own blocks far smaller, and nothing else is allocated then.
const REFUSED_BYTES: usize = 64 * 1024;

/// Room for the drop's frees and any retired blocks a collection frees meanwhile.
const RECORDED: usize = ENTRIES + 4_096;

static FREED: [AtomicUsize; RECORDED] = [const { AtomicUsize::new(0) }; RECORDED];
static COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, or returns null (an allocation failure,
// which `GlobalAlloc` allows); only records, without allocating.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: a thread's last allocations may come after its thread-locals are gone.
        if layout.size() >= REFUSED_BYTES && REFUSING.try_with(Cell::get).unwrap_or(false) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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

/// A map of `ENTRIES` entries, some removed and replaced (their blocks are retired, not the
/// drop's to free).
fn filled() -> HashMap<u64, Value> {
    let map = HashMap::new();
    {
        let m = map.pin();
        for k in 0..ENTRIES as u64 {
            m.insert(k, [k; 5]);
        }
        for k in 0..1_000 {
            m.remove(&k);
            m.insert(k + 1_000, [0; 5]);
        }
    }
    map
}

/// Drops `map`, with this thread's allocations of `REFUSED_BYTES` or more failing if `refuse`,
/// and returns the addresses of the entry blocks this thread freed meanwhile.
fn drop_recorded(map: HashMap<u64, Value>, refuse: bool) -> Vec<usize> {
    drop_recorded_with(|| drop(map), refuse)
}

/// Runs `free`, recording as [`drop_recorded`] does.
fn drop_recorded_with(free: impl FnOnce(), refuse: bool) -> Vec<usize> {
    COUNT.store(0, Ordering::Relaxed);
    REFUSING.with(|r| r.set(refuse));
    RECORDING.with(|r| r.set(true));
    free();
    RECORDING.with(|r| r.set(false));
    REFUSING.with(|r| r.set(false));
    let count = COUNT.load(Ordering::Relaxed);
    assert!(count <= RECORDED, "{count} entry blocks freed");
    FREED[..count]
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect()
}

/// The length of the longest run of ascending addresses in `freed`.
fn longest_ascending(freed: &[usize]) -> usize {
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
    longest
}

/// One test, so that no other test's thread resets the shared record meanwhile.
#[test]
fn a_large_map_and_its_into_iter_free_entries_in_address_order_or_without_the_list_if_refused() {
    assert_eq!(
        std::mem::size_of::<(u64, Value, u64)>(),
        ENTRY_BYTES,
        "the entry's size this test recognises"
    );
    // The first 128 go to this thread's entry cache rather than the allocator; every other
    // entry is freed once by the drop. Retired blocks a collection frees meanwhile may add to
    // the count, so it is bounded from below only.
    let map = filled();
    let live = map.len();
    let freed = drop_recorded(map, false);
    assert!(
        freed.len() >= live - 128,
        "{} entry blocks freed for {live} entries",
        freed.len()
    );
    // The drop's own frees form one ascending run.
    let longest = longest_ascending(&freed);
    assert!(
        longest >= live - 128,
        "the longest ascending run of freed blocks is {longest} of {} ({live} entries)",
        freed.len()
    );

    // With the list refused, the drop frees in table order instead (at random, by the default
    // hasher), still every entry: the count says none is kept back, and the sanitizers and Miri
    // runs of the drop tests say none is freed twice.
    let map = filled();
    let live = map.len();
    let freed = drop_recorded(map, true);
    assert!(
        freed.len() >= live - 128,
        "{} entry blocks freed for {live} entries with the list refused",
        freed.len()
    );
    assert!(
        longest_ascending(&freed) < live / 2,
        "the list was refused, so the frees are in table order"
    );

    // `into_iter` keeps the blocks of the entries it hands out and frees them in address order
    // when it is dropped; the map's drop then frees the entries not taken, in order too.
    let map = filled();
    let live = map.len();
    let mut it = map.into_iter();
    let taken: Vec<(u64, Value)> = it.by_ref().take(live / 2).collect();
    assert_eq!(taken.len(), live / 2);
    let freed = drop_recorded_with(|| drop(it), false);
    assert!(
        freed.len() >= live - 128,
        "{} entry blocks freed for {live} entries, half of them taken",
        freed.len()
    );
    let longest = longest_ascending(&freed);
    assert!(
        longest >= live / 2 - 128,
        "the longest ascending run of freed blocks is {longest} of {} ({live} entries)",
        freed.len()
    );
}
