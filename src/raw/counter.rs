//! A striped length counter.
//!
//! Writers add to the stripe their thread hashes to, so concurrent inserts on different threads
//! touch different cache lines. Reading the length sums every stripe: it is exact when no write
//! runs concurrently, and otherwise some value the length had during the read, give or take the
//! writes in flight. The map reads it only for `len()` and to size a new table.

use crate::sync::{thread_stripe_hint, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

pub(crate) struct Counter {
    stripes: Box<[CachePadded<AtomicUsize>]>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .next_power_of_two();
        let n = n.clamp(1, 64);
        Counter {
            stripes: (0..n)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        }
    }

    #[inline]
    fn stripe(&self) -> &AtomicUsize {
        &self.stripes[thread_stripe_hint() & (self.stripes.len() - 1)]
    }

    /// Counts one more entry.
    #[inline]
    pub(crate) fn increment(&self) {
        // Relaxed: the counter is a statistic; no other memory is published through it. Stripes
        // wrap (a decrement may land on another stripe than its increment); the sum is exact.
        self.stripe().fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one entry fewer.
    #[inline]
    pub(crate) fn decrement(&self) {
        // Relaxed: as in `increment`; wrapping arithmetic keeps the sum right.
        self.stripe().fetch_sub(1, Ordering::Relaxed);
    }

    /// The sum of all stripes, clamped at zero (a concurrent remove may be counted before the
    /// insert it follows).
    pub(crate) fn sum(&self) -> usize {
        // Relaxed: see the module doc for what the sum means under concurrency.
        let total = self
            .stripes
            .iter()
            .fold(0usize, |acc, s| acc.wrapping_add(s.load(Ordering::Relaxed)));
        if (total as isize) < 0 {
            0
        } else {
            total
        }
    }
}
