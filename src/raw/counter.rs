//! A striped length counter.
//!
//! Writers add to the stripe their thread hashes to, so concurrent inserts on different threads
//! touch different cache lines. Reading the length sums every stripe: it is exact when no write
//! runs concurrently, and otherwise some value the length had during the read, give or take the
//! writes in flight. The map reads it only for `len()` and to size a new table.

use crate::sync::{stripe_count, thread_stripe_hint, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

pub(crate) struct Counter {
    stripes: Box<[CachePadded<AtomicUsize>]>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        let n = stripe_count();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The stripe count is asked of the OS once and kept: every counter gets the same power of
    /// two, and one counter sums what every thread added, whichever stripe each landed on.
    #[test]
    fn counters_share_one_stripe_count_and_sum_every_stripe() {
        let first = stripe_count();
        assert!(first.is_power_of_two() && first <= 64, "{first}");
        assert_eq!(stripe_count(), first);
        let counter = Counter::new();
        assert_eq!(counter.stripes.len(), first);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        counter.increment();
                    }
                    for _ in 0..250 {
                        counter.decrement();
                    }
                });
            }
        });
        assert_eq!(counter.sum(), 3_000);
        assert_eq!(Counter::new().stripes.len(), first);
    }
}
