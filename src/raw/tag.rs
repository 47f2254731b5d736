//! Tag bytes and SWAR matching over a group's tag word.
//!
//! Each group has one `u64` tag word; byte `i` (for `i < GROUP_SLOTS`) is the tag of slot `i`. The
//! eighth byte holds the slots' key bits (`key_bit`, `keys.rs`), and it and any other byte past
//! the slots are masked out of every match. Tags are hints that let one load
//! answer "could the key be in this group?" for all its slots; the slot words are the truth.
//!
//! | tag          | value       | meaning                                               |
//! |--------------|-------------|-------------------------------------------------------|
//! | `EMPTY`      | `0x00`      | the slot was empty when the tag was last written      |
//! | `REDIRECT`   | `0x01`      | an empty slot frozen by a migration                   |
//! | full         | `0x80 \| h7`| holds an entry whose hash has h7                      |
//! | `TOMBSTONE`  | `0xFF`      | a removed entry                                       |
//!
//! A slot vacated in a table with key lines (`slot.rs`) keeps its full tag: it is still its key's.
//!
//! Every transition is a bitwise OR of the new tag into the old (`0x00 → 0x80|h7 → 0xFF`,
//! `0x00 → 0x01`), so tags are written with `fetch_or` on the whole word: idempotent, never lost,
//! and never mixed with byte-sized atomics on the same memory.

use crate::sync::GROUP_SLOTS;

#[cfg(test)]
pub(crate) const EMPTY: u8 = 0x00;
pub(crate) const REDIRECT: u8 = 0x01;
pub(crate) const TOMBSTONE: u8 = 0xFF;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// The high bit of every byte that belongs to a slot.
const SLOT_HI: u64 = if GROUP_SLOTS == 8 {
    HI
} else {
    HI & ((1u64 << (8 * GROUP_SLOTS)) - 1)
};

/// Where a tag's seven bits start in the hash times [`TAG_MIX`]: the top of that product taken
/// as a `usize`, bits 57 to 63 on 64-bit targets and bits 25 to 31 on 32-bit ones (which depend
/// on the hash's low half only). On a 32-bit target the hashers that keep a `usize` of state
/// (FxHasher's kind) return hashes whose upper half is zero, and tags from bits 57 to 63 were
/// all `0x80` for them: no filter at all, every probe comparing every key of its groups (stop
/// 54, a review of other targets).
pub(crate) const TAG_SHIFT: u32 = usize::BITS - 7;

/// The odd constant a hash is multiplied by before its tag bits are taken (2^64 over the golden
/// ratio, as Fibonacci hashing uses). The top bits of a product depend on every bit of the hash,
/// the group index's low bits included, so a hasher whose high bits are zero or alike (an
/// identity hasher over small integers, nohash-hasher's kind) still gets tags that filter, and
/// keys of one group (which share their low bits) still differ in tag. Without it every such
/// key's tag was `0x80` and most lookups left the inline path for the full probe (BENCHMARKS
/// next step 63: 9.6-10.9 ns a hit at 64Ki keys with an identity hasher, 3.6-4.3 with the
/// multiply). A group index still takes the hash's own low bits.
pub(crate) const TAG_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// `TAG_MIX`'s inverse mod 2^64 (Newton's iteration: each step doubles the correct low bits, and
/// an odd number is its own inverse to 3 bits), so that tests can make a hash with a given tag
/// and home ([`hash_for`]).
pub(crate) const TAG_MIX_INVERSE: u64 = {
    let mut inv = TAG_MIX;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(TAG_MIX.wrapping_mul(inv)));
        i += 1;
    }
    inv
};
const _: () = assert!(TAG_MIX.wrapping_mul(TAG_MIX_INVERSE) == 1);

/// The full tag for a hash: `0x80` plus the seven bits at [`TAG_SHIFT`] of the hash times
/// [`TAG_MIX`], kept below `0xFF`.
#[inline]
pub(crate) fn full_tag(hash: u64) -> u8 {
    // The mask is free on 64-bit targets, where the shift leaves seven bits.
    let h7 = ((hash.wrapping_mul(TAG_MIX) >> TAG_SHIFT) & 0x7F) as u8;
    0x80 | if h7 == 0x7F { 0x7E } else { h7 }
}

/// A hash whose tag bits are `tag` (seven bits: [`full_tag`] gives `0x80 | tag`, `0x7F` aside)
/// and whose low [`TAG_SHIFT`] bits are `home`'s, for tests that place keys by hand. The
/// product with [`TAG_MIX`] is chosen first (`tag` above `home * TAG_MIX`'s low bits) and
/// multiplied back by the inverse: the low bits of a product depend only on the low bits of its
/// factors, so the hash keeps `home`'s.
#[cfg(any(test, loom))]
pub fn hash_for(tag: u64, home: u64) -> u64 {
    let low = (1u64 << TAG_SHIFT) - 1;
    let product = (tag << TAG_SHIFT) | (home.wrapping_mul(TAG_MIX) & low);
    product.wrapping_mul(TAG_MIX_INVERSE)
}

/// The tag word with `tag` in the byte of `slot` and zero elsewhere.
#[inline]
pub(crate) fn tag_bits(slot: usize, tag: u8) -> u64 {
    (tag as u64) << (8 * slot)
}

/// The key bit of `slot`: set once the slot's key cell holds its key (`keys.rs`). The key bits
/// live in the tag word's eighth byte, which has no slot and which every match masks out.
#[inline]
pub(crate) fn key_bit(slot: usize) -> u64 {
    const {
        assert!(
            GROUP_SLOTS < 8,
            "the key bits need the tag word's spare byte"
        )
    };
    1 << (56 + slot)
}

/// Whether `slot`'s key bit is set in `word`.
#[inline]
pub(crate) fn has_key(word: u64, slot: usize) -> bool {
    word & key_bit(slot) != 0
}

/// Whether any slot's key bit is set in `word`.
#[inline]
pub(crate) fn any_key(word: u64) -> bool {
    word >> 56 != 0
}

/// Exact per-byte equality: high bit set in each byte of `word` equal to zero.
#[inline]
fn zero_bytes(word: u64) -> u64 {
    !(((word & LOW7).wrapping_add(LOW7)) | word | LOW7)
}

/// Slots whose tag equals `tag`.
#[inline]
pub(crate) fn match_tag(word: u64, tag: u8) -> BitMask {
    BitMask(zero_bytes(word ^ (LO.wrapping_mul(tag as u64))) & SLOT_HI)
}

/// Slots whose tag is `EMPTY` exactly.
#[inline]
pub(crate) fn match_empty(word: u64) -> BitMask {
    BitMask(zero_bytes(word) & SLOT_HI)
}

/// Slots whose tag is full (`0x80 | h7`, not `TOMBSTONE`): those that hold, or held, an entry.
#[inline]
pub(crate) fn match_full(word: u64) -> BitMask {
    BitMask(word & SLOT_HI & !zero_bytes(!word))
}

/// Slots whose tag is not full (`EMPTY` or `REDIRECT`), in slot order.
#[inline]
pub(crate) fn match_not_full(word: u64) -> BitMask {
    BitMask(!word & SLOT_HI)
}

/// Whether any slot's tag is not full: a lookup that meets one stops here.
#[inline]
pub(crate) fn any_not_full(word: u64) -> bool {
    !word & SLOT_HI != 0
}

/// Number of slots tagged `TOMBSTONE`.
#[inline]
pub(crate) fn count_tombstones(word: u64) -> usize {
    match_tag(word, TOMBSTONE).0.count_ones() as usize
}

/// A set of slot indexes within a group, one high bit per byte.
#[derive(Clone, Copy)]
pub(crate) struct BitMask(u64);

impl BitMask {
    /// The set as one bit a slot: bit `i` for slot `i`. (Each byte's high bit moved to its low
    /// bit, then one multiplication gathers the eight low bits into the top byte: byte `i` is
    /// shifted up by `56 - 7i`, and no two shifted bits collide or carry.)
    #[inline]
    pub(crate) fn slot_bits(self) -> u8 {
        (((self.0 >> 7) & LO).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
    }
}

impl Iterator for BitMask {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(tags: &[u8]) -> u64 {
        tags.iter()
            .enumerate()
            .fold(0, |w, (i, &t)| w | tag_bits(i, t))
    }

    #[test]
    fn slot_bits_gathers_one_bit_a_slot() {
        for full in 0u32..1 << GROUP_SLOTS {
            let tags: Vec<u8> = (0..GROUP_SLOTS)
                .map(|i| {
                    if full >> i & 1 == 1 {
                        0x80 | i as u8
                    } else {
                        EMPTY
                    }
                })
                .collect();
            let m = match_full(word(&tags));
            let by_iter = m.fold(0u8, |bits, i| bits | (1 << i));
            assert_eq!(m.slot_bits(), by_iter);
            assert_eq!(u32::from(m.slot_bits()), full);
        }
    }

    #[test]
    fn match_tag_is_exact() {
        let t = full_tag(0x1234_5678_9abc_def0);
        let mut tags = vec![EMPTY, t, REDIRECT, TOMBSTONE, t ^ 1];
        tags.truncate(GROUP_SLOTS);
        let w = word(&tags);
        let found: Vec<usize> = match_tag(w, t).collect();
        let expected: Vec<usize> = (0..tags.len()).filter(|&i| tags[i] == t).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn empty_matching_ignores_unused_bytes() {
        let w = word(&[0x80; GROUP_SLOTS]);
        assert_eq!(match_empty(w).count(), 0);
        assert!(!any_not_full(w));
        let w = w & !0xFF;
        assert_eq!(match_empty(w).collect::<Vec<_>>(), vec![0]);
        assert!(any_not_full(w));
    }

    #[test]
    fn redirect_is_not_full_but_not_empty() {
        let w = word(&[REDIRECT; GROUP_SLOTS]);
        assert!(any_not_full(w));
        assert_eq!(match_empty(w).count(), 0);
    }

    #[test]
    fn full_tags_never_collide_with_specials() {
        for h in [
            0u64,
            u64::MAX,
            1 << 63,
            hash_for(0x7F, 0),
            hash_for(0x7E, 5),
        ] {
            let t = full_tag(h);
            assert!(t & 0x80 != 0 && t != TOMBSTONE);
            assert_eq!(t | TOMBSTONE, TOMBSTONE);
        }
    }

    /// A tag is the top seven bits of the hash times `TAG_MIX`, taken as a `usize`, so that keys
    /// of one group rarely share a tag. A tag from other bits, or a constant one, filters nothing
    /// (every probe would compare every key) and no other test sees it.
    #[test]
    fn full_tags_are_the_top_seven_bits_of_a_usize() {
        assert_eq!(
            TAG_SHIFT,
            if cfg!(target_pointer_width = "64") {
                57
            } else {
                25
            }
        );
        assert_eq!(full_tag(0), 0x80);
        let low = (1u64 << TAG_SHIFT) - 1;
        for home in [0, 1, 0x1234_5678 & low, low] {
            assert_eq!(full_tag(hash_for(0x15, home)), 0x95);
            assert_eq!(full_tag(hash_for(0x2A, home)), 0xAA);
            assert_eq!(hash_for(0x15, home) & low, home, "the home bits are kept");
        }
        let tags: std::collections::HashSet<u8> =
            (0..0x7Fu64).map(|t| full_tag(hash_for(t, 3))).collect();
        assert_eq!(tags.len(), 0x7F, "127 distinct tags");
        // Small integers hashed as themselves (an identity hasher) get tags that spread: 127
        // of them took every tag but a few; without the multiply all were `0x80`.
        let tags: std::collections::HashSet<u8> = (0..1024u64).map(full_tag).collect();
        assert!(
            tags.len() > 100,
            "{} tags for 1,024 small hashes",
            tags.len()
        );
        // On a 32-bit target the upper half of the hash is not read: a hash as wide as a `usize`
        // (FxHasher's kind, whose upper half is zero there) gets every tag too.
        if usize::BITS == 32 {
            assert_eq!(full_tag(0xFFFF_FFFF << 32), 0x80);
            assert_eq!(full_tag((0xFFFF_FFFF << 32) | hash_for(0x15, 9)), 0x95);
        }
    }

    #[test]
    fn match_full_skips_empty_redirect_and_tombstones() {
        let mut tags = vec![
            full_tag(0),
            EMPTY,
            TOMBSTONE,
            REDIRECT,
            full_tag(u64::MAX),
            0x80,
            0xFE,
        ];
        tags.truncate(GROUP_SLOTS);
        let expected: Vec<usize> = (0..tags.len())
            .filter(|&i| tags[i] & 0x80 != 0 && tags[i] != TOMBSTONE)
            .collect();
        assert_eq!(match_full(word(&tags)).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn tombstones_are_counted() {
        let mut tags = vec![TOMBSTONE, EMPTY, TOMBSTONE];
        tags.truncate(GROUP_SLOTS);
        let expected = tags.iter().filter(|&&t| t == TOMBSTONE).count();
        assert_eq!(count_tombstones(word(&tags)), expected);
    }
}
