//! A fixed, single-threaded operation mix for counting instructions per operation, which unlike
//! wall time is repeatable on a shared, noisy machine:
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/hotpath`
//!
//! (the total "Collected" count, divided by the operations printed). Use it to compare a hot-path
//! change before and after; `BENCHMARKS.md` keeps the figures.

use std::hash::{BuildHasher, Hasher};

use lockfree_map::HashMap;

/// A fixed hasher, so the count does not depend on `RandomState`'s seed.
#[derive(Clone, Default)]
struct Fixed;

struct FixedHasher(u64);

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        // A multiplicative mix: cheap and well spread, like a fast production hasher.
        (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl BuildHasher for Fixed {
    type Hasher = FixedHasher;
    fn build_hasher(&self) -> FixedHasher {
        FixedHasher(0)
    }
}

fn main() {
    const KEYS: u64 = 100_000;
    const GETS: u64 = 1_000_000;
    const WRITES: u64 = 200_000;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    for k in 0..KEYS {
        m.insert(k, k);
    }
    let mut found = 0u64;
    for i in 0..GETS {
        let k = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * KEYS);
        found += m.get(&k).is_some() as u64;
        if i % 64 == 0 {
            m.repin();
        }
    }
    for i in 0..WRITES {
        let k = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * KEYS);
        if i % 2 == 0 {
            m.insert(k, i);
        } else {
            m.remove(&k);
        }
    }
    println!(
        "{} inserts (prefill), {GETS} gets ({found} hits), {WRITES} inserts/removes; len {}",
        KEYS,
        m.len()
    );
}
