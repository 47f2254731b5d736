//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test file uses a different subset.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A value that counts its live instances and poisons itself on drop, so a double drop or a read
/// after free shows up as a failed assertion instead of silent corruption.
pub struct Tracked {
    pub id: u64,
    live: Arc<AtomicUsize>,
    alive: u64,
}

const ALIVE: u64 = 0x0A11_7E5E_A11E_0A11;

impl Tracked {
    pub fn new(id: u64, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked {
            id,
            live: live.clone(),
            alive: ALIVE,
        }
    }

    /// The id, after checking the value has not been dropped.
    pub fn get(&self) -> u64 {
        assert_eq!(self.alive, ALIVE, "read a dropped value");
        self.id
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.get())
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.get(), &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(self.alive, ALIVE, "value dropped twice");
        self.alive = 0;
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl Eq for Tracked {}
impl Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state)
    }
}
/// Equal and hashed as its id, so a `Tracked` key can be looked up by `&u64`.
impl std::borrow::Borrow<u64> for Tracked {
    fn borrow(&self) -> &u64 {
        assert_eq!(self.alive, ALIVE, "read a dropped value");
        &self.id
    }
}

/// Waits (bounded) until the epoch collector has dropped everything retired: deferred drops run
/// when threads pin later, so pin and flush repeatedly.
///
/// The bound is time, not a number of tries: libtest runs the tests of a file in parallel, and
/// another test holding a guard (for a whole grow-and-shrink run, which takes seconds under
/// ThreadSanitizer) keeps the global epoch from advancing meanwhile; a fixed number of tries ran
/// out under TSan before that test let go.
pub fn settle_reclamation(live: &AtomicUsize, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while live.load(Ordering::SeqCst) != expected && std::time::Instant::now() < deadline {
        let map: lockfree_map::HashMap<u8, u8> = lockfree_map::HashMap::new();
        let guard = map.guard();
        guard.flush();
        drop(guard);
        std::thread::yield_now();
    }
    live.load(Ordering::SeqCst)
}

/// Repins (`repin`, which repins one guard and flushes its thread's retirements) until every
/// `Tracked` value is dropped, and fails after 1,000 rounds: a value retired before the first
/// round must be freed once the guard has moved on.
pub fn repin_until_freed(live: &AtomicUsize, mut repin: impl FnMut()) {
    let mut repins = 0;
    while live.load(Ordering::SeqCst) > 0 {
        repin();
        repins += 1;
        assert!(
            repins < 1_000,
            "a value removed before 1,000 repins is still alive"
        );
    }
}

/// Checks that an `ExactSizeIterator` of `n` items says its count exactly at every step, down
/// to `(0, Some(0))` at the end.
pub fn counts_down<I: ExactSizeIterator>(mut iter: I, n: usize) {
    for left in (1..=n).rev() {
        assert_eq!(iter.size_hint(), (left, Some(left)));
        assert_eq!(iter.len(), left);
        assert!(iter.next().is_some());
    }
    assert_eq!(iter.size_hint(), (0, Some(0)));
    assert!(iter.next().is_none());
    assert_eq!(iter.len(), 0);
}

/// A hasher that returns the same hash for every key.
#[derive(Clone, Default)]
pub struct ConstantState;

pub struct ConstantHasher;

impl Hasher for ConstantHasher {
    fn finish(&self) -> u64 {
        0x5555_5555_5555_5555
    }
    fn write(&mut self, _: &[u8]) {}
}

impl BuildHasher for ConstantState {
    type Hasher = ConstantHasher;
    fn build_hasher(&self) -> ConstantHasher {
        ConstantHasher
    }
}

/// A hasher that keeps only a few bits: many keys share each hash.
#[derive(Clone, Default)]
pub struct FewBitsState;

pub struct FewBitsHasher(u64);

impl Hasher for FewBitsHasher {
    fn finish(&self) -> u64 {
        (self.0 % 5).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.wrapping_mul(31).wrapping_add(b as u64);
        }
    }
}

impl BuildHasher for FewBitsState {
    type Hasher = FewBitsHasher;
    fn build_hasher(&self) -> FewBitsHasher {
        FewBitsHasher(0)
    }
}

/// A key whose `Hash` and `Eq` panic while `PANIC` is set and the key is `poisoned`.
pub static PANIC: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug)]
pub struct TouchyKey {
    pub id: u64,
    pub poisoned: bool,
}

impl Hash for TouchyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.poisoned && PANIC.load(Ordering::SeqCst) {
            panic!("Hash panicked on purpose");
        }
        self.id.hash(state)
    }
}

impl PartialEq for TouchyKey {
    fn eq(&self, other: &Self) -> bool {
        if (self.poisoned || other.poisoned) && PANIC.load(Ordering::SeqCst) {
            panic!("Eq panicked on purpose");
        }
        self.id == other.id
    }
}
impl Eq for TouchyKey {}

/// Under Miri, a panic hook that prints the panicking thread's name and the message, and no
/// backtrace, for any panic. std's own hook takes a full backtrace of every panic raised while
/// another unwinds (a double panic: a payload or a value whose `Drop` panics, met by the map's
/// catch-and-go-on paths), whatever `RUST_BACKTRACE` says, and Miri takes seconds to walk and
/// symbolize each. In `a_second_panics_payload_that_panics_on_drop_leaks_nothing_else` they were
/// 24 of its 38 s on Miri's clock, 113 s of wall time against 41 with this hook (stop 57).
/// Single panics lose nothing under Miri, which passes no `RUST_BACKTRACE` to the program unless
/// told to (`-Zmiri-env-forward`). Each test of the files about panics calls it first; natively
/// std's hook stays, backtraces and all.
pub fn no_panic_backtraces_under_miri() {
    #[cfg(miri)]
    {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let thread = std::thread::current();
                eprintln!("thread '{}' {info}", thread.name().unwrap_or("<unnamed>"));
            }))
        });
    }
}

/// Scales a test size down under Miri (by 100, to at least 8); other builds run `n`.
pub fn scaled(n: usize) -> usize {
    if cfg!(miri) {
        (n / 100).max(8)
    } else {
        n
    }
}

/// A test size with a Miri size of its own, for tests whose point (several resizes, an
/// iteration that spans a growth) holds at a size `scaled` would not pick. Miri runs in CI's
/// budget: at 1,000 keys the two iteration tests took 4-5 minutes each there (2026-12-02).
pub fn sized(native: usize, under_miri: usize) -> usize {
    if cfg!(miri) {
        under_miri
    } else {
        native
    }
}

/// Whether a map whose capacity was `before` has grown since, read from its `len()` and
/// `capacity()` now. `capacity()` is the current table's load limit or `len()`, whichever is
/// larger, so a doubling shows a growth only while `len()` stays below twice `before`; past that,
/// more entries than the old table had slots (4/3 of its capacity: a slot holds one entry at
/// most) do. (Until stop 54 several tests compared `capacity()` alone, which passed without a
/// growth whenever `len()` had passed the threshold they compared with.)
pub fn grew(before: usize, len: usize, capacity: usize) -> bool {
    if len < 2 * before {
        capacity >= 2 * before
    } else {
        len > before * 4 / 3
    }
}

/// A key or value that counts its live instances and, made with `explode`, panics when dropped
/// (after counting). Hashed and compared by `id`.
#[derive(Debug)]
pub struct DropBomb {
    pub id: u64,
    live: Arc<AtomicUsize>,
    explode: bool,
}

impl DropBomb {
    pub fn new(id: u64, live: &Arc<AtomicUsize>, explode: bool) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        DropBomb {
            id,
            live: live.clone(),
            explode,
        }
    }
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        if self.explode {
            panic!("a key's or value's Drop panicked on purpose");
        }
    }
}

impl Hash for DropBomb {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl PartialEq for DropBomb {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for DropBomb {}
