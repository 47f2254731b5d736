//! Shared pieces of the loom models: a deterministic hasher and a tracked value.
//!
//! Build and run only through `scripts/loom.sh` (it sets `--cfg loom --cfg crossbeam_loom`).

#[cfg(not(all(loom, crossbeam_loom)))]
compile_error!(
    "the loom models need RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom\": run scripts/loom.sh"
);

use std::hash::{BuildHasher, Hasher};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;

/// The hash of a `u64` key is the key itself, so a model picks its keys' home groups (the low
/// bits) and tags (the top seven bits of the hash as a `usize`) directly. Random seeds would
/// make loom's executions differ in more than their schedule.
#[derive(Clone, Copy, Default)]
pub struct KeyIsHash;

pub struct KeyIsHashHasher(u64);

impl Hasher for KeyIsHashHasher {
    fn finish(&self) -> u64 {
        // The key's top seven bits as its tag and its low bits as its home, whatever mix the map
        // applies before it takes a tag (`raw/tag.rs`, `TAG_MIX`).
        let shift = usize::BITS - 7;
        lockfree_map::__loom_hash_for(self.0 >> shift, self.0 & ((1 << shift) - 1))
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl BuildHasher for KeyIsHash {
    type Hasher = KeyIsHashHasher;
    fn build_hasher(&self) -> KeyIsHashHasher {
        KeyIsHashHasher(0)
    }
}

pub type Map<V> = lockfree_map::HashMap<u64, V, KeyIsHash>;

pub fn map<V>() -> Map<V> {
    lockfree_map::HashMap::with_hasher(KeyIsHash)
}

/// A value that counts live instances and holds a `loom::sync::Arc`: loom reports "Arc leaked"
/// if any value is never dropped, and the poison check catches a read after drop.
pub struct Tracked {
    pub n: u64,
    live: Arc<AtomicUsize>,
    alive: bool,
}

impl Tracked {
    pub fn new(n: u64, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked {
            n,
            live: live.clone(),
            alive: true,
        }
    }
    pub fn get(&self) -> u64 {
        assert!(self.alive, "read a dropped value");
        self.n
    }
}

/// As a key, a `Tracked` is its number: it hashes and compares as `n`, and can be looked up by
/// `&u64`. Models use it to check that keys too are dropped exactly once.
impl std::hash::Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state)
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Tracked {}

impl std::borrow::Borrow<u64> for Tracked {
    fn borrow(&self) -> &u64 {
        assert!(self.alive, "read a dropped key");
        &self.n
    }
}

/// A clone is a new key of the same number, counted live (an `update` clones the stored key).
impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.get(), &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(self.alive, "value dropped twice");
        self.alive = false;
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs a model with the preemption bound from `LOOM_MAX_PREEMPTIONS` (default 2).
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// Runs a model at a fixed preemption bound, whatever `LOOM_MAX_PREEMPTIONS` says, for models
/// whose search grows too fast with it, and with room for `max_branches` branches (atomic
/// operations and context switches) on one path, where loom's default 1,000 is too few: a
/// lookup that moves a migration chunk adds a few hundred.
pub fn model_bounded<F: Fn() + Sync + Send + 'static>(
    preemptions: usize,
    max_branches: usize,
    f: F,
) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.max_branches = builder.max_branches.max(max_branches);
    builder.check(f);
}
