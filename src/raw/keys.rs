//! Key lines: a copy of each slot's key beside the groups, for integer keys.
//!
//! A write or a lookup that meets its key's slot has to compare the key, and with the key only
//! in the boxed entry that compare waits on a second miss after the group's: the group line, then
//! the entry it points to. For the integer key types (and pairs of 4-byte integers, [`cached`])
//! every slot's key is also kept in a *key line*, one 64-byte line a group (`KeyLine`, one cell
//! a slot) in an array of its own. Its address follows from the group's position alone, so the
//! two lines load side by side, and a hit is answered without touching the entry: an insert that
//! replaces, a remove, `contains_key` and a `get` whose caller does not read the value cost one
//! miss where they cost two. (A caller that reads the value still waits on the entry, after the
//! compare rather than for it.)
//!
//! ## Protocol
//! - A slot's key never changes within a table generation: a slot leaves EMPTY once (invariant 1
//!   of `raw/mod.rs`), by one CAS, and every later state of it holds that key or none. So a cell
//!   only ever holds one key's bits: it is written by the thread whose CAS took the slot out of
//!   EMPTY or COUNTED_EMPTY (an insert of a new key, or a migration placing a copy), and by a
//!   remover that found the key bit unset (`publish_key`), each storing the same bits, and is
//!   valid from then on.
//! - A cell is *valid* once the slot's key bit is set in the group's tag word (the spare eighth
//!   byte, `tag::key_bit`). The writer stores the cell (Relaxed) and then sets the bit with the
//!   same Release `fetch_or` that writes the slot's tag, so it costs no extra read-modify-write.
//!   A reader that sees the bit in its Acquire load of the tag word reads the cell after that
//!   store. A slot whose bit is not set (its writer not there yet, or a copy of a slot that had
//!   none) is compared through its entry, as for any other key type.
//! - A migration copies the source slot's cell, if valid, to the slot where it places the copy
//!   in the successor, and sets the bit with the copy's tag. Helpers that find the copy placed do
//!   not write the cell: its placer did, or it stays without one.
//!
//! Only the types [`cached`] lists use key lines: each byte of one is initialised (no padding),
//! nothing can change one through `&K` (no interior mutability), and their `Eq` sees nothing but
//! their bytes, so a copy made from a cell compares as the stored key would, under `Eq` or any
//! `Equivalent` (which has only the copy's value to go by). A key type of 8 bytes or less
//! without drop glue gets the array ([`has_lines`]) whether or not it uses it, because the table
//! is sized where `K` is not known to be `'static` (`TypeId` needs it); an unused array is
//! allocated zeroed and never touched, so it costs address space and not memory
//! (`sync::zeroed_slice`), a prepared successor's included (`Table::prep`).

use std::any::TypeId;
use std::mem;

use crate::sync::{AtomicU64, ZeroedAtomic, GROUP_SLOTS};

/// The key cells of one group's slots: cell `i` is slot `i`'s key, once its key bit is set.
#[repr(C, align(64))]
pub(crate) struct KeyLine {
    pub(crate) cells: [AtomicU64; GROUP_SLOTS],
}

// SAFETY: a `KeyLine` is nothing but atomic integers, for which all-zero bytes are the value 0.
unsafe impl ZeroedAtomic for KeyLine {
    fn zero() -> Self {
        KeyLine {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Whether a table of `K` keys has an array of key lines (see the module doc for why this is
/// wider than [`cached`]).
#[inline(always)]
pub(crate) const fn has_lines<K>() -> bool {
    mem::size_of::<K>() <= 8 && mem::align_of::<K>() <= 8 && !mem::needs_drop::<K>()
}

/// Whether keys of type `K` are copied into key lines. Folds to a constant for each type.
///
/// The types are the integers, and the pairs `(u32, u32)` and `(i32, i32)` (a grid's
/// coordinates, a memo table's two indices): a copy of one compares as the stored key would (the
/// module doc). A pair of one 4-byte integer type has no padding (asserted below, at compile
/// time), and its `Eq` is its fields'.
///
/// More types would qualify (`char`, the non-zero integers, pairs and arrays of small integers),
/// but each costs the map's operations inlining budget: this body is inlined into every
/// operation at the MIR level before LLVM folds it, and with a thirteenth compare here the
/// operations inlined their helpers differently, for every key type, `String` included
/// (callgrind `hotpath`, stop 42: `hot-key` 257.7 -> 264.5 M instructions; hiding the chain in
/// a function of its own moved the counts too, up for most modes; BENCHMARKS next step 61).
#[inline(always)]
pub(crate) fn cached<K: 'static>() -> bool {
    if !has_lines::<K>() {
        return false;
    }
    let k = TypeId::of::<K>();
    k == TypeId::of::<u64>()
        || k == TypeId::of::<i64>()
        || k == TypeId::of::<usize>()
        || k == TypeId::of::<isize>()
        || k == TypeId::of::<u32>()
        || k == TypeId::of::<i32>()
        || k == TypeId::of::<u16>()
        || k == TypeId::of::<i16>()
        || k == TypeId::of::<u8>()
        || k == TypeId::of::<i8>()
        || k == TypeId::of::<(u32, u32)>()
        || k == TypeId::of::<(i32, i32)>()
}

// The pairs in `cached`'s list have no padding: their size is the sum of their fields' (`bits`
// would read a padding byte uninitialised).
const _: () = assert!(mem::size_of::<(u32, u32)>() == 8 && mem::size_of::<(i32, i32)>() == 8);

/// The bits a cell holds for `key`: its bytes, then zeros.
///
/// # Safety
/// `cached::<K>()`: `K` is an integer or a pair of 4-byte integers (every byte initialised, at
/// most 8 of them).
#[inline(always)]
pub(crate) unsafe fn bits<K>(key: &K) -> u64 {
    let mut bits = 0u64;
    // SAFETY: `K` is an integer or a pair of 4-byte integers, of at most 8 bytes without padding
    // (caller), so its bytes are initialised and fit in `bits`; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (key as *const K).cast::<u8>(),
            (&mut bits as *mut u64).cast::<u8>(),
            mem::size_of::<K>(),
        )
    };
    bits
}

/// The key whose cell holds `bits`.
///
/// # Safety
/// `cached::<K>()`, and `bits` came from [`bits`] (any bit pattern would do for the types it
/// lists; this keeps the promise narrow).
#[inline(always)]
pub(crate) unsafe fn key<K>(bits: u64) -> K {
    // SAFETY: `K` is an integer or a pair of 4-byte integers, of at most 8 bytes and alignment at
    // most 8 (caller), so its first `size_of::<K>()` bytes of `bits` are a valid `K`, read from an
    // 8-aligned address.
    unsafe { std::ptr::read((&bits as *const u64).cast::<K>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_integers_and_their_pairs_are_cached() {
        assert!(cached::<u64>() && cached::<i8>() && cached::<usize>() && cached::<u32>());
        assert!(cached::<(u32, u32)>() && cached::<(i32, i32)>());
        assert!(!cached::<String>() && !cached::<(u8, u16)>() && !cached::<(u32, u16)>());
        assert!(!cached::<u128>() && !cached::<std::cell::Cell<u64>>() && !cached::<char>());
        assert!(!cached::<(u64, u64)>() && !cached::<[u8; 4]>() && !cached::<()>());
        assert!(has_lines::<(u32, u32)>() && !has_lines::<String>() && !has_lines::<u128>());
        // Larger than a cell, though 8-aligned and without drop glue: no lines.
        assert!(!has_lines::<(u64, u64)>() && !has_lines::<[u8; 9]>());
    }

    #[test]
    fn bits_round_trip() {
        fn round_trip<K: Copy + PartialEq + std::fmt::Debug + 'static>(k: K) -> u64 {
            assert!(cached::<K>());
            // SAFETY: `cached::<K>()`, asserted above; the bits come from `bits`.
            let (b, back) = unsafe { (bits(&k), key::<K>(bits(&k))) };
            assert_eq!(back, k);
            assert!(
                b.to_ne_bytes()[std::mem::size_of::<K>()..]
                    .iter()
                    .all(|&x| x == 0),
                "the bytes past the key are zero"
            );
            b
        }
        for k in [0u64, 1, u64::MAX, 0x0123_4567_89AB_CDEF] {
            round_trip(k);
        }
        for k in [i16::MIN, -1, 0, 7, i16::MAX] {
            round_trip(k);
        }
        assert_ne!(round_trip(1u8), round_trip(2u8));
        assert_ne!(round_trip((-1i32, 2i32)), round_trip((2i32, -1i32)));
        assert_ne!(round_trip((u32::MAX, 0u32)), round_trip((0u32, u32::MAX)));
        assert_ne!(round_trip(-1i32), round_trip(i32::MAX));
    }
}
