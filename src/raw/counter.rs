//! A striped length counter.
//!
//! Writers add to the stripe their thread hashes to, so concurrent inserts on different threads
//! touch different cache lines. Reading the length sums every stripe, one after another: it is
//! exact when no write runs concurrently, and otherwise off by at most the number of writes that
//! ran during the read (a write to a stripe already read is missed, one to a stripe not yet read
//! is seen), clamped at 0. The map reads it only for `len()` and to size a new table.

use crate::sync::{stripe_count, thread_stripe_hint, AtomicUsize, Ordering};

pub(crate) struct Counter {
    /// The stripes, `STRIDE` words apart, the first after `STRIDE` words of padding and the last
    /// followed by `STRIDE - 1`: no two stripes, and no stripe and another allocation, share a
    /// line or a pair of lines (which some CPUs prefetch together). Spaced by hand rather than
    /// with `CachePadded`, whose 128-byte alignment glibc serves on its slow `posix_memalign`
    /// path: about 500 instructions more for every map made (`hotpath small-maps`).
    words: Box<[AtomicUsize]>,
    /// How many stripes (a power of two).
    stripes: usize,
}

/// Words from one stripe to the next: 128 bytes. One under loom, where lines do not matter and
/// every atomic is an object the model tracks.
const STRIDE: usize = if cfg!(loom) {
    1
} else {
    128 / std::mem::size_of::<AtomicUsize>()
};

impl Counter {
    pub(crate) fn new() -> Self {
        let n = stripe_count();
        Counter {
            words: (0..(n + 1) * STRIDE).map(|_| AtomicUsize::new(0)).collect(),
            stripes: n,
        }
    }

    #[inline]
    fn stripe(&self) -> &AtomicUsize {
        let i = (1 + (thread_stripe_hint() & (self.stripes - 1))) * STRIDE;
        debug_assert!(i < self.words.len());
        // SAFETY: `stripes` is a power of two, so the mask keeps the hint below it and
        // `i <= stripes * STRIDE < (stripes + 1) * STRIDE == words.len()` (`new`). The bounds
        // check it saves sat in every insert and remove.
        unsafe { self.words.get_unchecked(i) }
    }

    /// Counts one more entry.
    #[inline]
    pub(crate) fn increment(&self) {
        // Relaxed: the counter is a statistic; no other memory is published through it. Stripes
        // wrap (a decrement may land on another stripe than its increment); the sum is exact.
        self.stripe().fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the count to `n`, under exclusive access: for an owning iterator, whose map's
    /// entries leave without a `decrement`, before the map drops what is left.
    pub(crate) fn set_exclusive(&mut self, n: usize) {
        for (i, word) in self.words.iter().enumerate() {
            // Relaxed: `&mut self`, so no other thread reads or writes the counter.
            word.store(if i == STRIDE { n } else { 0 }, Ordering::Relaxed);
        }
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
        // A plain loop rather than `skip(STRIDE).step_by(STRIDE)`: the adapter's fold is a
        // function LLVM may leave out of line (it did at stop 47 after an unrelated change, 82
        // instructions a small map's life, callgrind `hotpath small-maps`).
        let mut total = 0usize;
        let mut i = STRIDE;
        while let Some(stripe) = self.words.get(i) {
            // Relaxed: see the module doc for what the sum means under concurrency.
            total = total.wrapping_add(stripe.load(Ordering::Relaxed));
            i += STRIDE;
        }
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
        assert_eq!(counter.stripes, first);
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
        assert_eq!(Counter::new().stripes, first);
    }

    /// A sum read below zero (a remove counted before the insert it follows, on another
    /// stripe) reads as zero, not as a length near `usize::MAX`; and `set_exclusive` leaves
    /// exactly the count it is given, whatever the stripes held.
    #[test]
    fn a_negative_sum_reads_as_zero_and_set_exclusive_sets_the_sum() {
        let mut counter = Counter::new();
        counter.decrement();
        assert_eq!(counter.sum(), 0);
        counter.increment();
        assert_eq!(counter.sum(), 0);
        counter.increment();
        assert_eq!(counter.sum(), 1);
        for n in [0, 1, 7, usize::MAX >> 1] {
            counter.set_exclusive(n);
            assert_eq!(counter.sum(), n);
        }
    }
}
