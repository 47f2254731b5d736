//! Memory stays bounded under churn: millions of updates, inserts and removes over a small live
//! set, one guard per batch of operations (as a hot loop would hold it), must not let retired
//! entries pile up faster than the epoch collector frees them. Measured with a counting global
//! allocator (this test binary's own).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lockfree_map::HashMap;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak live-heap growth (bytes) while `run` executes.
fn peak_growth(run: impl FnOnce()) -> usize {
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    run();
    PEAK.load(Ordering::SeqCst) - baseline
}

/// The scenarios run in one test, so no other test's allocations blur the measurement.
#[test]
fn churn_keeps_memory_bounded() {
    // One thread updating a few hot keys, 64 operations per guard: every update retires an entry.
    let hot: HashMap<u64, u64> = HashMap::new();
    for k in 0..8 {
        hot.pin().insert(k, 0);
    }
    let peak = peak_growth(|| {
        for _ in 0..(2_000_000 / 64) {
            let m = hot.pin();
            for i in 0..64u64 {
                m.update(&(i % 8), |v| v + 1);
            }
        }
    });
    eprintln!("hot-key updates: peak growth {} KB", peak >> 10);
    assert!(
        peak < 8 << 20,
        "hot-key updates: peak live heap grew by {} KB",
        peak >> 10
    );
    assert_eq!(hot.pin().values().sum::<u64>(), 2_000_000);

    // The same on a private collector, under one guard repinned every 64 updates, as a
    // long-running worker would hold it. A private collector's retirements go to crossbeam one
    // at a time (there is no per-thread batch), and crossbeam collects on a pin (every 128th of
    // a registration), never on a repin: a thread must flush every bag's worth of retirements
    // itself. (The mutation run of stop 45 found no test of it: without those flushes this
    // peaks at 110 MB, against 7 KB with them.)
    let private: HashMap<u64, u64> = HashMap::with_collector(
        0,
        std::collections::hash_map::RandomState::new(),
        lockfree_map::Collector::new(),
    );
    for k in 0..8 {
        private.pin().insert(k, 0);
    }
    let peak = peak_growth(|| {
        let mut guard = private.guard();
        for _ in 0..(2_000_000 / 64) {
            for i in 0..64u64 {
                private.update(&(i % 8), |v| v + 1, &guard);
            }
            guard.repin();
        }
    });
    eprintln!(
        "hot-key updates, private collector: peak growth {} KB",
        peak >> 10
    );
    assert!(
        peak < 8 << 20,
        "hot-key updates, private collector: peak live heap grew by {} KB",
        peak >> 10
    );
    assert_eq!(private.pin().values().sum::<u64>(), 2_000_000);
    drop(private);

    // 2 threads x 1M operations: updates of hot keys plus insert/remove cycles of fresh keys.
    // Returns the map and how far the live heap grew at its peak.
    let churn = || {
        let map: HashMap<u64, u64> = HashMap::new();
        for k in 0..100 {
            map.pin().insert(k, 0);
        }
        let baseline = LIVE.load(Ordering::SeqCst);
        PEAK.store(baseline, Ordering::SeqCst);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..2u64)
                .map(|t| {
                    let map = &map;
                    s.spawn(move || {
                        for batch in 0..(1_000_000 / 64) {
                            let m = map.pin();
                            for i in 0..32u64 {
                                m.update(&(i % 100), |v| v + 1);
                                let fresh = 1_000 + (t << 40) + batch * 64 + i;
                                m.insert(fresh, i);
                                m.remove(&fresh);
                            }
                        }
                    })
                })
                .collect();
            // Joined, not only waited for by the scope: a join waits for the thread's
            // thread-local destructors too (its batch handed on, crossbeam's bag pushed),
            // which the last section below must not see run under its count.
            for thread in threads {
                thread.join().unwrap();
            }
        });
        let peak = PEAK.load(Ordering::SeqCst) - baseline;
        // Each operation retires a 32-byte entry: 2M retirements would be ~64 MB if none were
        // freed before the end. Bounded reclamation keeps the peak to a few bags per thread plus
        // tables.
        eprintln!("peak growth {} KB", peak >> 10);
        (map, peak)
    };
    // Alone on two cores this peaks at 0.7-5.6 MB. The bound is wider than that because a thread
    // descheduled while pinned holds every bag back until it runs again (what epochs cost by
    // design): with another process busy on the second core, one time slice of the other
    // thread's retirements reached 9.6-13 MB here (the 8 MB bound failed so). A collector that
    // never freed, the bug this catches, reaches 64 MB. The stress geometry (two-slot groups,
    // still one 64-byte line each, and a migration every few inserts) makes tables about 4x
    // larger per slot; the bound scales with it.
    //
    // Up to three tries (a review of flaky tests, stop 50): the bound is about twice the peak
    // seen with a busy process on the other core (11.1-11.3 MB), and a thread descheduled for
    // several time slices while pinned (the host stealing time, Miri's build beside the tests)
    // can pass it on correct code; a collector that never frees reaches about 64 MB every try.
    let bound = if option_env!("LOCKFREE_MAP_STRESS_GEOMETRY").is_some() {
        48 << 20
    } else {
        24 << 20
    };
    let mut peaks = Vec::new();
    let map = loop {
        let (map, peak) = churn();
        peaks.push(peak >> 10);
        if peak < bound {
            break map;
        }
        assert!(
            peaks.len() < 3,
            "peak live heap grew by {peaks:?} KB during churn, in three tries"
        );
    };
    assert_eq!(map.len(), 100);
    let total: u64 = map.pin().values().sum();
    assert_eq!(total, 2 * (1_000_000 / 64) * 32);

    // A thread's entry cache (its blocks and their buffers) goes back to the allocator when the
    // thread exits. The thread uses its cache on a map with a private collector, which frees all
    // its garbage when the map drops it, so whatever is left once the thread is joined is what
    // the thread kept. (The mutation run of stop 44 found that no native test saw the cache's
    // `Drop`.)
    let before = LIVE.load(Ordering::SeqCst);
    std::thread::spawn(|| {
        let map: HashMap<u64, u64> = HashMap::with_collector(
            0,
            std::collections::hash_map::RandomState::new(),
            lockfree_map::Collector::new(),
        );
        for round in 0..100u64 {
            let m = map.pin();
            for k in 0..1_000 {
                m.insert(round * 1_000 + k, k);
            }
            for k in 0..1_000 {
                m.remove(&(round * 1_000 + k));
            }
        }
    })
    .join()
    .unwrap();
    let left = LIVE.load(Ordering::SeqCst).saturating_sub(before);
    eprintln!("left by an exited thread: {left} bytes");
    assert!(
        left < 4 << 10,
        "an exited thread left {left} bytes allocated (its entry cache?)"
    );

    // The same for a map used by a thread-local's destructor that runs after the map's own
    // thread-locals have released their memory: since stop 51 those have no destructor, and an
    // owner frees them, after which they take no new buffer (`grow_buffer`, `LocalBatch::push`):
    // the blocks of what the destructor frees go to the allocator. Were they kept, nothing
    // would free them.
    struct UsesMapOnExit;
    impl Drop for UsesMapOnExit {
        fn drop(&mut self) {
            churn_on_a_private_map(0);
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<UsesMapOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    let before = LIVE.load(Ordering::SeqCst);
    std::thread::spawn(|| {
        // First, so that its destructor runs after those the map's use below registers.
        ON_EXIT.with(|on_exit| *on_exit.borrow_mut() = Some(UsesMapOnExit));
        churn_on_a_private_map(1);
    })
    .join()
    .unwrap();
    let left = LIVE.load(Ordering::SeqCst).saturating_sub(before);
    eprintln!("left by a thread that used a map from a late destructor: {left} bytes");
    assert!(
        left < 4 << 10,
        "a thread left {left} bytes allocated (its entry cache, taken again after its release?)"
    );
}

/// Inserts and removes 10,000 keys on a map with a private collector, which frees every entry
/// when it drops, into this thread's entry cache.
fn churn_on_a_private_map(seed: u64) {
    let map: HashMap<u64, u64> = HashMap::with_collector(
        0,
        std::collections::hash_map::RandomState::new(),
        lockfree_map::Collector::new(),
    );
    let m = map.pin();
    for k in 0..10_000 {
        m.insert(k, seed);
    }
    for k in 0..5_000 {
        m.remove(&k);
    }
}
