//! A value whose `Drop` panics must not make the map leak the other values retired with it.
//!
//! Retired entries are freed in batches (`src/reclaim.rs`), on whichever thread collects; the
//! panic surfaces there. This file holds one test so that no other test's thread, sharing the
//! global collector, can be the one that collects the panicking value.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockfree_map::HashMap;

/// Counts live instances; the one made with `explode` panics when dropped (after counting).
struct Bomb {
    live: Arc<AtomicUsize>,
    explode: bool,
}

impl Bomb {
    fn new(live: &Arc<AtomicUsize>, explode: bool) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Bomb {
            live: live.clone(),
            explode,
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        if self.explode {
            panic!("a value's Drop panicked");
        }
    }
}

#[test]
fn a_panicking_drop_frees_the_rest_of_its_batch_and_the_map_stays_usable() {
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    {
        let m = map.pin();
        // Fewer than one batch, removed on this thread: they are freed together.
        for k in 0..100u64 {
            m.insert(k, Bomb::new(&live, k == 50));
        }
        for k in 0..100u64 {
            assert!(m.remove(&k).is_some());
        }
    }
    let mut panics = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
        // The panic comes out of whichever flush collects the batch.
        if catch_unwind(AssertUnwindSafe(|| map.guard().flush())).is_err() {
            panics += 1;
        }
        std::thread::yield_now();
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "values leaked after a panicking drop"
    );
    assert_eq!(panics, 1);
    // The map still works, and its later retirements are still freed.
    let m = map.pin();
    m.insert(1, Bomb::new(&live, false));
    assert!(m.remove(&1).is_some());
    assert!(m.is_empty());
    drop(m);
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
        map.guard().flush();
        std::thread::yield_now();
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
}
