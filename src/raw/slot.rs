//! Entries, and the encoding of a slot word.
//!
//! An entry is an immutable heap node `Entry { key, value, hash }`, aligned to 8 so that a slot
//! word holds its address plus three low state bits. An update publishes a new entry with one CAS
//! and retires the old one; readers get `&V` tied to their guard. A value update keeps the stored
//! key: cloned into the new entry, or for a few `std` key types handed on by a bitwise copy, the
//! old entry then retired without it (`RawMap::try_replace_value`). Storing the hash means
//! migration and tag repair never call the user's `Hash`.
//!
//! ## Slot word
//!
//! | bits                 | meaning                                                         |
//! |----------------------|-----------------------------------------------------------------|
//! | `0`                  | EMPTY                                                           |
//! | `p`                  | LIVE: the entry at address `p`                                  |
//! | `TOMB`               | a removed entry (sentinel, no pointer)                          |
//! | `VACATED`            | a removed entry whose slot keeps its key cell (integer keys)     |
//! | `COUNTED_EMPTY`      | EMPTY, passed by a lazily sized migration's count                |
//! | `COUNTED_VACATED`    | VACATED, passed by a lazily sized migration's count              |
//! | `… \| FROZEN`        | takes no more writes in this table                              |
//! | `… \| FROZEN\|MOVED` | final: the slot's content (if any) is authoritative in `next`   |
//! | `COPIED(i)`          | final: the slot's entry was copied to slot `i` of `next`        |
//!
//! Sentinels have the `SENTINEL` bit set and a payload above the three state bits; they are never
//! dereferenced (they are small integers in the null page). `COPIED(i)` is `FROZEN | MOVED` with
//! `i + 1` above the state bits and `SENTINEL` clear: a moved entry's word no longer holds its
//! address, which nobody may dereference once the slot is MOVED (the copy may since have been
//! replaced in `next` and freed), but where its copy went, for iterators that follow a move.
//! Until stop 33 that index lived in a register of the migration, 8 bytes a source slot, which
//! every move wrote (a freshly mapped page every 512 moves): `hotpath grow` ran about 4 % faster
//! without its stores (`BENCHMARKS.md`, table of changes).
//!
//! ## State machine of one slot within one table generation
//!
//! A slot never returns to EMPTY, and once FROZEN it never takes a write again.
//!
//! In a table with key lines (integer keys, `keys.rs`) a removal leaves `VACATED` instead of
//! `TOMB`, and keeps the slot's tag and key cell: the slot still belongs to its key, and an
//! insert of that same key takes it back (`VACATED → LIVE`). Nothing else can: the slot's key
//! never changes within a table, so a key keeps one slot, found by its cell, whatever it goes
//! through (ARCHITECTURE.md, "Removed slots keep their key").
//!
//! | from            | to                   | by                                            |
//! |-----------------|----------------------|-----------------------------------------------|
//! | EMPTY           | LIVE(p)              | insert of a new key (CAS)                     |
//! | EMPTY           | LIVE(p)              | a migration placing the copy of `p` (CAS)     |
//! | EMPTY           | FROZEN\|MOVED        | a migration or a writer passing to `next` (CAS): "REDIRECT" |
//! | LIVE(p)         | LIVE(q)              | update (CAS), `p` retired                     |
//! | LIVE(p)         | TOMB                 | remove (CAS), `p` retired                     |
//! | LIVE(p)         | VACATED              | remove, in a table with key lines (CAS)       |
//! | VACATED         | LIVE(q)              | insert of the slot's own key (CAS)            |
//! | EMPTY           | COUNTED_EMPTY        | a migration counting its source (CAS)         |
//! | VACATED         | COUNTED_VACATED      | a migration counting its source (CAS)         |
//! | COUNTED_EMPTY   | LIVE(p)              | insert of a new key registered with the count (CAS) |
//! | COUNTED_EMPTY   | FROZEN\|MOVED        | as from EMPTY: "REDIRECT" (CAS)               |
//! | COUNTED_VACATED | LIVE(q)              | insert of the slot's own key registered with the count (CAS) |
//! | any unfrozen x  | x \| FROZEN          | migration freezes it (`fetch_or`)             |
//! | x \| FROZEN     | x \| FROZEN \| MOVED | after the move, if x is not LIVE (store)      |
//! | LIVE(p) \| FROZEN | COPIED(i)          | after `p`'s copy landed at `i` in `next` (store) |
//!
//! The two COUNTED states are free slots, as EMPTY and VACATED are, that an entry may enter only
//! by a writer that first registered with the count (`Migration::register_late`): the count
//! marks each free slot it passes with a CAS, so an insert that did not see the migration either
//! lands before the mark (and is counted) or fails on it (and then, reloading the slot with
//! Acquire, sees the migration: the failed CAS itself is Relaxed). See
//! "Sizing" in `migrate.rs`. A counted slot keeps its tag byte (EMPTY, or the vacated key's).

use std::mem;

pub(crate) const FROZEN: usize = 0b0001;
pub(crate) const MOVED: usize = 0b0010;
const SENTINEL: usize = 0b0100;
pub(crate) const STATE_BITS: usize = 0b111;

pub(crate) const EMPTY: usize = 0;
pub(crate) const TOMB: usize = SENTINEL;
/// A removed entry whose slot keeps its key (see the module docs).
pub(crate) const VACATED: usize = SENTINEL | (1 << 3);
/// The bit a lazily sized migration's count sets in the free slots it passes (payload bit 1).
const COUNTED: usize = 2 << 3;
/// An EMPTY slot passed by the count (see the module docs).
pub(crate) const COUNTED_EMPTY: usize = SENTINEL | COUNTED;
/// A VACATED slot passed by the count (see the module docs).
pub(crate) const COUNTED_VACATED: usize = VACATED | COUNTED;
pub(crate) const REDIRECT: usize = FROZEN | MOVED;

/// The final word of a slot whose entry was copied to slot `index` of `next` (`COPIED(index)` in
/// the module docs): distinct from REDIRECT (payload 0) and from every moved sentinel (no
/// `SENTINEL` bit).
#[inline]
pub(crate) const fn copied(index: usize) -> usize {
    ((index + 1) << 3) | FROZEN | MOVED
}

/// An entry. `align(8)` leaves the three low bits of its address free for the slot state. (It
/// was `align(16)` with a spare fourth bit: that made an `Entry<u64, u64>` 32 bytes instead of
/// 24, a 48-byte malloc chunk instead of 32, and one entry in three fewer per megabyte of cache.)
///
/// The hash comes last so that what a lookup that hits reads, the key and the value, is at the
/// front: glibc's blocks are 16-aligned, so a 24-byte `Entry<u64, u64>` starting at line offset
/// 48 straddles two lines, and with this order only the hash (which moves read, and lookups of
/// plain keys do not: [`Entry::matches`]) is on the second.
#[repr(C, align(8))]
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) hash: u64,
}

const _: () = assert!(mem::align_of::<Entry<(), ()>>() > STATE_BITS);

impl<K, V> Entry<K, V> {
    /// A boxed entry, on a block from this thread's entry cache when it has one (`pool.rs`).
    #[inline]
    pub(crate) fn boxed(hash: u64, key: K, value: V) -> Box<Self> {
        super::pool::boxed(Entry { hash, key, value })
    }

    /// Whether a lookup compares the stored hash before the key. Only for keys with drop glue
    /// (`String`, `Vec`, `Arc`, `Box`...), whose `eq` would follow a pointer to a cold line on a
    /// false tag match; a plain key compares as cheaply as its hash, and skipping the hash keeps a
    /// hit on the entry's front (see the field order).
    const FILTER_BY_HASH: bool = mem::needs_drop::<K>();

    /// Whether this entry holds the key that `eq` recognises, whose hash is `hash`.
    #[inline(always)]
    pub(crate) fn matches(&self, hash: u64, eq: impl FnOnce(&K) -> bool) -> bool {
        (!Self::FILTER_BY_HASH || self.hash == hash) && eq(&self.key)
    }

    /// The address of the entry at `p`'s hash, for a prefetch hint; never dereferenced here.
    #[inline(always)]
    pub(crate) fn hash_addr(p: *const Self) -> *const u8 {
        p.cast::<u8>().wrapping_add(mem::offset_of!(Self, hash))
    }

    /// Bytes from the entry's start to the end of its value: what a visit by iteration reads.
    pub(crate) const FRONT: usize = mem::offset_of!(Self, hash);

    /// Boxes an entry and returns its address as a slot word.
    pub(crate) fn into_word(self: Box<Self>) -> usize {
        Box::into_raw(self) as usize
    }
}

/// A slot word, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Word(pub(crate) usize);

impl Word {
    #[inline]
    pub(crate) fn is_empty(self) -> bool {
        self.0 == EMPTY
    }
    #[inline]
    pub(crate) fn is_frozen(self) -> bool {
        self.0 & FROZEN != 0
    }
    #[inline]
    pub(crate) fn is_moved(self) -> bool {
        self.0 & MOVED != 0
    }
    #[inline]
    pub(crate) fn is_sentinel(self) -> bool {
        self.0 & SENTINEL != 0
    }
    /// Whether this is a vacated slot, counted, frozen or not.
    #[inline]
    pub(crate) fn is_vacated(self) -> bool {
        self.0 & !(FROZEN | MOVED | COUNTED) == VACATED
    }
    /// Whether this is a free slot that a count passed (`COUNTED_EMPTY` or `COUNTED_VACATED`),
    /// frozen or not: one that exists only in a migrating table.
    #[inline]
    pub(crate) fn is_counted(self) -> bool {
        // Payload bit 0 is VACATED's: clear, both COUNTED states read as COUNTED_EMPTY.
        self.0 & !(FROZEN | MOVED | (VACATED & !SENTINEL)) == COUNTED_EMPTY
    }
    /// The entry address, if the word holds one (LIVE, possibly frozen, not moved).
    #[inline]
    pub(crate) fn entry_ptr<K, V>(self) -> Option<*mut Entry<K, V>> {
        if self.0 & (SENTINEL | MOVED) != 0 {
            return None;
        }
        let p = self.0 & !STATE_BITS;
        (p != 0).then_some(p as *mut Entry<K, V>)
    }
    /// Where in `next` the slot's entry was copied, if this is `COPIED(index)`.
    #[inline]
    pub(crate) fn copied_to(self) -> Option<usize> {
        if self.0 & (SENTINEL | MOVED) != MOVED {
            return None;
        }
        (self.0 >> 3).checked_sub(1)
    }
    /// [`Word::entry_ptr`]'s address, or `otherwise` where it has none: written to compile to a
    /// conditional move rather than a branch, for prefetch hints over slots whose fullness is
    /// random (a branch on it mispredicts).
    ///
    /// Only an aim: a word below the first page (EMPTY and every sentinel) aims at `otherwise`;
    /// any other word at its address bits, which for a frozen entry is the entry (as wanted) and
    /// for a `COPIED(i)` word (only during a migration) an address that is no entry's, a wasted
    /// hint. One comparison where the exact decode took three tests (about 3 instructions a
    /// slot hinted, 5 an entry of an iteration: a review, stop 51).
    #[inline]
    pub(crate) fn entry_addr_or(self, otherwise: usize) -> usize {
        let p = self.0 & !STATE_BITS;
        if p < 4096 {
            otherwise
        } else {
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words that hold no entry and are no copy's.
    const ENTRYLESS: [usize; 6] = [
        EMPTY,
        TOMB,
        VACATED,
        COUNTED_EMPTY,
        COUNTED_VACATED,
        REDIRECT,
    ];

    #[test]
    fn sentinels_decode() {
        assert_eq!(Word(TOMB).entry_ptr::<u8, u8>(), None);
        assert_eq!(Word(VACATED).entry_ptr::<u8, u8>(), None);
        assert!(Word(VACATED).is_vacated() && Word(VACATED | FROZEN | MOVED).is_vacated());
        assert!(!Word(TOMB).is_vacated());
        assert!(!Word(EMPTY).is_vacated() && !Word(REDIRECT).is_vacated());
        assert!(Word(REDIRECT).is_moved() && Word(REDIRECT).entry_ptr::<u8, u8>().is_none());
        for w in [COUNTED_EMPTY, COUNTED_VACATED] {
            assert!(Word(w).is_counted() && Word(w | FROZEN | MOVED).is_counted());
            assert_eq!(Word(w).entry_ptr::<u8, u8>(), None);
            assert!(!Word(w).is_empty() && !Word(w).is_frozen());
        }
        assert!(Word(COUNTED_VACATED).is_vacated() && !Word(COUNTED_EMPTY).is_vacated());
        for w in [EMPTY, TOMB, VACATED, REDIRECT] {
            assert!(!Word(w).is_counted(), "{w:#x}");
        }
    }

    #[test]
    fn copied_words_decode() {
        for i in [0, 1, 7, 8, 1 << 20, usize::MAX >> 4] {
            let w = Word(copied(i));
            assert_eq!(w.copied_to(), Some(i));
            assert!(w.is_frozen() && w.is_moved() && !w.is_sentinel() && !w.is_empty());
            assert!(!w.is_vacated() && !w.is_counted());
            assert_eq!(w.entry_ptr::<u8, u8>(), None);
        }
        for w in ENTRYLESS {
            assert_eq!(Word(w).copied_to(), None, "{w:#x}");
            assert_eq!(Word(w | FROZEN | MOVED).copied_to(), None, "{w:#x}");
        }
        // A live or frozen entry word is not a copy's.
        assert_eq!(Word(0x1000).copied_to(), None);
        assert_eq!(Word(0x1000 | FROZEN).copied_to(), None);
    }

    /// The prefetch address is the entry's where `entry_ptr` has one, and the fallback for every
    /// word without an entry but a copy's past the first page (only during a migration: a
    /// wasted hint, since stop 51). (Only a hint: a wrong one costs time and changes no outcome,
    /// so no other test notices; the mutation run of stop 45.)
    #[test]
    fn prefetch_addresses_are_entries_only() {
        for w in [0x1000, 0x1000 | FROZEN, 0xfff8] {
            assert_eq!(Word(w).entry_addr_or(5), w & !STATE_BITS, "{w:#x}");
        }
        for w in ENTRYLESS {
            assert_eq!(Word(w).entry_addr_or(5), 5, "{w:#x}");
            assert_eq!(Word(w | FROZEN).entry_addr_or(5), 5, "{w:#x}");
            assert_eq!(Word(w | FROZEN | MOVED).entry_addr_or(5), 5, "{w:#x}");
        }
        for i in [0, 1, 7, 500] {
            assert_eq!(Word(copied(i)).entry_addr_or(5), 5, "copied({i})");
        }
    }

    #[test]
    fn entry_words_keep_their_address() {
        let w = Box::new(Entry {
            hash: 1,
            key: 2u8,
            value: 3u8,
        })
        .into_word();
        let p = Word(w | FROZEN).entry_ptr::<u8, u8>().unwrap();
        assert_eq!(p as usize, w);
        // SAFETY: `w` came from `Box::into_raw` just above and nothing else owns it.
        drop(unsafe { Box::from_raw(p) });
    }
}
