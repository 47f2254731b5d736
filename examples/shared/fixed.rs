//! The fixed hasher of the instruction-count examples (`hotpath.rs`, `peer_instructions.rs`),
//! so that a count does not depend on `RandomState`'s seed.

use std::hash::{BuildHasher, Hasher};

/// A fixed hasher, so the count does not depend on `RandomState`'s seed.
#[derive(Clone, Default)]
pub struct Fixed;

pub struct FixedHasher(u64);

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        // A multiplicative mix: cheap and well spread, like a fast production hasher.
        (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }
    fn write(&mut self, bytes: &[u8]) {
        // `String` keys (the `hot-key-string` mode): FNV-1a over the bytes, then the mix above.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
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
