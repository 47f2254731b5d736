//! A parallel memoisation cache: rayon workers compute an expensive function through
//! `get_or_insert_with`, so each distinct input is computed once and every later request is a
//! lock-free read.
//!
//! `cargo run --release --example memo_cache`
//!
//! It prints the hit rate and checks that each key's value was published once: every request
//! for a key got the same value, even when workers missed the same key at the same moment and
//! each computed it (the closure runs at most once per call; one result wins, the others are
//! dropped, and the number of such lost races is printed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use lockfree_map::HashMap;
use rayon::prelude::*;

/// Something worth caching: the number of steps of the Collatz sequence from `n`, computed
/// slowly on purpose (a stand-in for a parse, a query, a render).
fn expensive(n: u64) -> u32 {
    let mut steps = 0;
    // Repeated (behind `black_box`, so it is not folded away) to cost tens of microseconds.
    for _ in 0..50 {
        let mut x = std::hint::black_box(n.max(1));
        steps = 0;
        while x != 1 {
            x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
            steps += 1;
        }
    }
    steps
}

fn main() {
    const REQUESTS: u64 = 2_000_000;
    const DISTINCT: u64 = 5_000;

    // The cached value: the result, and which computation made it (to check publication).
    let cache: HashMap<u64, (u32, u64)> = HashMap::new();
    let computations = AtomicU64::new(0);
    // For each key, the computation whose value the first request saw; every later request must
    // see the same one.
    let first_seen: Vec<AtomicU64> = (0..DISTINCT).map(|_| AtomicU64::new(0)).collect();

    let start = Instant::now();
    // Requests skewed towards some keys, as real caches see.
    (0..REQUESTS).into_par_iter().for_each_init(
        || cache.pin(), // one guard per rayon job, not per request
        |m, i| {
            let key = (i.wrapping_mul(i) ^ (i >> 3)) % DISTINCT;
            let &(steps, made_by) = m.get_or_insert_with(key, || {
                let id = computations.fetch_add(1, Ordering::Relaxed) + 1;
                (expensive(key), id)
            });
            std::hint::black_box(steps);
            let seen = &first_seen[key as usize];
            if let Err(earlier) =
                seen.compare_exchange(0, made_by, Ordering::AcqRel, Ordering::Acquire)
            {
                assert_eq!(
                    earlier, made_by,
                    "two requests for key {key} saw different values"
                );
            }
        },
    );
    let elapsed = start.elapsed();

    let computations = computations.load(Ordering::Relaxed);
    let distinct = cache.len() as u64;
    let hits = REQUESTS - computations;
    println!(
        "{REQUESTS} requests on {} threads in {elapsed:.2?}: {distinct} distinct keys",
        rayon::current_num_threads(),
    );
    println!(
        "hit rate {:.3}% ({hits} hits); {computations} computations, of which {} lost a race \
         (computed while another thread computed the same key) and were dropped",
        100.0 * hits as f64 / REQUESTS as f64,
        computations - distinct
    );

    // Each distinct input computed once, but for lost races: a call computes only after it
    // missed, and keys are never removed, so a race is lost only by a call that missed before
    // the key's value was published, at most one a worker a key. A cache that computed on
    // every call and kept the first result would pass the checks below, not this one.
    let workers = rayon::current_num_threads() as u64;
    assert!(
        (DISTINCT..=DISTINCT * workers).contains(&computations),
        "{computations} computations for {DISTINCT} keys on {workers} workers"
    );
    // Every request saw the value that was published, and the published values are right.
    let m = cache.pin();
    assert_eq!(distinct, DISTINCT);
    for key in 0..DISTINCT {
        let &(steps, made_by) = m.get(&key).unwrap();
        assert_eq!(steps, expensive(key));
        assert_eq!(first_seen[key as usize].load(Ordering::Acquire), made_by);
    }
    let start = Instant::now();
    (0..REQUESTS).into_par_iter().for_each(|i| {
        std::hint::black_box(expensive((i.wrapping_mul(i) ^ (i >> 3)) % DISTINCT));
    });
    println!(
        "without the cache the same requests take {:.2?}",
        start.elapsed()
    );
    println!("each key's value was published once and every request saw it: ok");
}
