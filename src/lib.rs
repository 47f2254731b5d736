//! A concurrent hash map that is lock-free in every operation, resizing included.
//!
//! [`HashMap`] can be shared between threads (`&HashMap` is all a thread needs) and read and
//! written by all of them at once. No operation takes a lock or waits for another thread: a
//! thread stopped in the middle of any operation, even halfway through moving entries to a larger
//! table, never keeps the others from finishing theirs. (What the map calls may lock: the
//! allocator's slow path, your `Hash`, `Eq`, closures and `Drop`s, and rayon's fork-join in the
//! parallel iterators; the README's "What lock-free covers".) Single-key operations are linearizable:
//! each takes effect at one instant between its call and its return.
//!
//! ```
//! use lockfree_map::HashMap;
//!
//! let map = HashMap::new();
//! std::thread::scope(|s| {
//!     for t in 0..4u64 {
//!         let map = &map;
//!         s.spawn(move || {
//!             let m = map.pin(); // one guard for many operations
//!             for i in 0..1000 {
//!                 m.insert(t * 1000 + i, i);
//!             }
//!         });
//!     }
//! });
//! assert_eq!(map.len(), 4000);
//! assert_eq!(map.pin().get(&3999), Some(&999));
//! ```
//!
//! # Guards, and what a returned reference is tied to
//!
//! Removed and replaced entries are not freed at once: another thread may be reading them. They
//! are freed by epoch-based reclamation ([crossbeam-epoch]) once every thread that could have seen
//! them has moved on. A thread announces "I may be reading" by holding a [`Guard`]:
//!
//! - [`HashMap::pin`] returns a [`MapRef`], a handle that holds one guard for any number of
//!   operations; its methods need no guard argument, and the references they return live as long
//!   as the handle.
//! - The methods on [`HashMap`] itself take an explicit `&Guard` (from [`HashMap::guard`]) and
//!   return references that live as long as that guard, so several maps can share one guard.
//! - [`HashMap::get_cloned`] pins internally and returns an owned value: no guard in sight.
//!
//! A reference returned by `get`, `insert` (the old value) or `remove` (the removed value) stays
//! valid while its guard lives, even after the entry leaves the map. Pinning costs a few
//! nanoseconds; a `MapRef` pays it once. Holding a guard for a long time (say, across a blocking
//! call) delays the freeing of everything retired meanwhile, in every map of its collector:
//! memory grows until the guard is dropped. Guards are `!Send`: pin inside the thread (or task
//! poll) that uses the map.
//!
//! Through `&mut HashMap` no guard is needed: no other thread, and no reference the map handed
//! out, can exist while it lives, so [`get_mut`](HashMap::get_mut),
//! [`iter_mut`](HashMap::iter_mut) and [`values_mut`](HashMap::values_mut) lend values out as
//! `&mut V` and change them in place, as `std`'s do (between the phases of a parallel job, say),
//! and [`remove_owned`](HashMap::remove_owned) hands a removed value back by value.
//!
//! # Collectors
//!
//! By default all maps retire to crossbeam's global collector, so one guard serves every map.
//! [`HashMap::with_collector`] with [`Collector::new`] gives a map (or a few maps, sharing clones
//! of it) a private collector: everything the map retired is freed by the time the map and the
//! last guard pinned on it are gone, and other maps' readers never delay it; each
//! [`guard`](HashMap::guard) then costs a registration, so pin once per batch. A guard passed to a
//! map of another collector makes the call panic (it could not protect that map's entries).
//!
//! # Consistency of `len` and iteration
//!
//! [`len`](HashMap::len) sums a striped counter: exact when no write is in flight, otherwise off
//! from every length the map had during the call by at most the number of writes that ran
//! during it (the stripes are read one after another), and never below 0. Iterators never block
//! writers; a key present from the call to `iter` to the end is yielded exactly once, even
//! across resizes, and no key is ever yielded twice (see [`Iter`] for the exact guarantee).
//!
//! # Capacity
//!
//! A table holds at most 2^56 groups of seven slots on a 64-bit target, 2^24 on a 32-bit one
//! (the most one allocation may take): [`capacity`](HashMap::capacity) up to 88,080,384 entries
//! there. An insert that would grow the largest table panics (`lockfree-map: capacity
//! overflow`) before the growth starts, as a panicking `Eq` would mid-probe: the map stays
//! usable. Rebuilds and shrinks are never sized past the largest table. On a 32-bit target the
//! address space runs out first: a growth holds the old table and the new one at once (for keys
//! of 8 bytes or less without drop glue, each with an array of key lines as large as its
//! groups: 2 GiB for the largest table), so a map there reaches some tens of millions of
//! entries, and a growth past that fails to allocate, which aborts the process, as any failed
//! allocation in Rust does.
//!
//! # Targets
//!
//! Any target with `std` and 64-bit atomics (the build stops with a message on one without).
//! The tests run on x86-64 and, natively, on 32-bit x86; Miri interprets the unsafe core on
//! big-endian s390x as well (ARCHITECTURE.md, "Other targets").
//!
//! # Closures
//!
//! [`update`](HashMap::update), [`compute`](HashMap::compute),
//! [`update_or_insert_with`](HashMap::update_or_insert_with), [`remove_if`](HashMap::remove_if)
//! and [`replace_if`](HashMap::replace_if) apply a closure atomically per key. Under contention the
//! closure may run more than once, each time on the then current value; only the result of the
//! last run is published. [`get_or_insert_with`](HashMap::get_or_insert_with) runs its closure at
//! most once per call; calls racing on an absent key may each run theirs, but only one value is
//! published and all of them return it (for a closure that must run once per key, store a
//! `OnceLock` and initialise it after the insert);
//! [`get_or_try_insert_with`](HashMap::get_or_try_insert_with) is its form for a closure that
//! can fail, whose failure inserts nothing. A closure, `Hash` or `Eq` that panics leaves the map
//! usable, and a single-key operation undone; a bulk operation (`retain`, `extend`, `collect`,
//! `clone`) keeps what it did before the panic, as `std`'s do. A key's or value's `Drop` that
//! panics frees the other entries freed with it first (a second such panic, in another entry, is
//! caught and dropped, where `std`'s collections abort; a key and a value of one entry that both
//! panic still abort, as in `std`); the first panic then comes out of the call
//! that freed it: a removed entry's, out of whichever pin, flush or write collects it, on any
//! thread of the map's collector (in the batch a thread hands on as it exits, it is dropped
//! after its message is printed); a map's own entries', out of the map's drop. Some of those
//! calls abort on it: crossbeam's own thread-exit code pins and may collect, a private
//! collector whose last handle is dropped inside a thread-local's destructor resumes its panic
//! there, and on crossbeam's global collector the pin may be another crate's (rayon's idle
//! workers abort on a panic there). Give a map whose values' `Drop` may panic a private
//! [`Collector`], and drop it (and its guards) outside thread-locals.
//!
//! # Sets
//!
//! [`HashSet`] is a `HashMap<T, ()>` with `std`'s set vocabulary and the same guarantees. Its
//! lookups hand back the stored value ([`HashSet::get`], [`HashSet::get_or_insert_with`]), so
//! a set of `Arc<str>` is an interner that threads share:
//!
//! ```
//! use std::sync::Arc;
//!
//! let symbols: lockfree_map::HashSet<Arc<str>> = lockfree_map::HashSet::new();
//! let s = symbols.pin();
//! let a = s.get_or_insert_with("x", |v| Arc::from(v)).clone();
//! let b = s.get_or_insert_with("x", |v| Arc::from(v)).clone(); // a hit: nothing made
//! assert!(Arc::ptr_eq(&a, &b));
//! ```
//!
//! # Choosing a hasher
//!
//! The default [`RandomState`](std::collections::hash_map::RandomState) is randomly seeded, so
//! an attacker cannot choose keys that collide. A faster hasher can be chosen with
//! [`HashMap::with_hasher`]; the map stays correct whatever the hasher does (even one that returns
//! a constant), but its speed depends on hashes whose low bits spread (they pick the home group).
//! The tags compared within a group are seven bits of the hash times an odd constant, which
//! depend on every bit of a `usize`'s worth of hash, so an identity hasher over small integers
//! gets tags that filter too.
//!
//! Keys whose `Eq` disagrees with their `Hash` (or with itself) are a logic error, as in std,
//! but cause no undefined behaviour, hang or leak: lookups of such keys may miss, or find any
//! entry their `Eq` accepts, and every value is still dropped exactly once.
//!
//! Lookups take any `&Q` where `Q: Hash + Equivalent<K>`: every type the key `Borrow`s (`&str`
//! for `String` keys), and borrowed forms of composite keys that implement [`Equivalent`] (a
//! `(&str, u16)`-like view of a `(String, u16)` key), which must hash as the key does.
//!
//! # Thread safety of the contents
//!
//! The map is `Send` when its keys, values and hasher are `Send`, and `Sync` when its keys and
//! values are both `Send` and `Sync` and its hasher is `Sync` (a removed entry may be dropped on
//! another thread, and readers on every thread share the entries):
//!
//! ```compile_fail,E0277
//! fn assert_sync<T: Sync>() {}
//! assert_sync::<lockfree_map::HashMap<u8, std::cell::Cell<u8>>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>() {}
//! assert_send::<lockfree_map::HashMap<u8, std::rc::Rc<u8>>>();
//! ```
//!
//! A map of contents that are not `Send` can be made, but its operations need `Send` keys and
//! values (whichever thread frees an entry drops them), so nothing gets in
//! (`tests/send_sync.rs` checks the rest of the public types):
//!
//! ```compile_fail,E0599
//! let map: lockfree_map::HashMap<u8, std::rc::Rc<u8>> = lockfree_map::HashMap::new();
//! map.pin().insert(1, std::rc::Rc::new(1));
//! ```
//!
//! The map is invariant in its key and value types, where `std`'s is covariant: any `&HashMap`
//! can insert, so a view of a map of `&'static str` keys as one of shorter-lived keys would let
//! a key that dies early in where every other reader takes its keys to live forever. The same
//! function with the same lifetime on both sides compiles; with a shorter one it does not:
//!
//! ```
//! fn view<'a>(map: &'a lockfree_map::HashMap<&'static str, u8>) -> &'a lockfree_map::HashMap<&'static str, u8> {
//!     map
//! }
//! ```
//!
//! ```compile_fail
//! fn shorten<'a>(map: &'a lockfree_map::HashMap<&'static str, u8>) -> &'a lockfree_map::HashMap<&'a str, u8> {
//!     map // error: lifetime may not live long enough (no error code to name)
//! }
//! ```
//!
//! [crossbeam-epoch]: https://docs.rs/crossbeam-epoch

#![warn(missing_docs)]

// Tag words and key cells are 64-bit words, each changed by one atomic instruction. Without
// this the build stops at `sync.rs`'s import of `AtomicU64`, with nothing to say why.
#[cfg(not(all(target_has_atomic = "64", target_has_atomic = "ptr")))]
compile_error!(
    "lockfree-map needs 64-bit atomics (`AtomicU64`), which this target does not have: its tag \
     words and key cells are 64-bit words, each changed by one atomic instruction"
);

mod equivalent;
mod iter;
mod map;
mod map_ref;
#[cfg(feature = "rayon")]
mod par;
mod raw;
mod reclaim;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod set;
mod sync;

pub use equivalent::Equivalent;
pub use iter::{IntoIter, IntoKeys, IntoValues, Iter, IterMut, Keys, Values, ValuesMut};
pub use map::{Compute, HashMap, OccupiedError, Operation};
pub use map_ref::MapRef;
#[cfg(feature = "rayon")]
pub use par::{IntoParIter, ParIter, ParIterMut, ParKeys, ParValues, ParValuesMut};
pub use reclaim::{Collector, Guard};
pub use set::{HashSet, SetRef};

/// For the loom models (`loom-tests/`), which place keys by their home group and tag: a hash
/// with the given tag and home bits (see `raw/tag.rs`). Not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub use raw::tag::hash_for as __loom_hash_for;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
