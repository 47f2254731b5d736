//! Workloads and map adapters shared by the criterion suite (`benches/contention.rs`) and the
//! comparison runner (`examples/compare.rs`), so both measure exactly the same thing.
//!
//! Every map gets std's `RandomState` (one seeded instance per map), keys come from a
//! pre-generated table (so `String` keys cost one clone per insert for every map alike), and maps
//! with guards pin once per batch of [`BATCH`] operations, as their authors recommend.
#![allow(dead_code)] // The runner and the criterion suite each use a different subset.

use std::collections::hash_map::RandomState;
use std::hash::Hash;
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

/// Operations between two pins, for the maps that pin.
pub const BATCH: usize = 64;

/// A key type the workloads can generate.
pub trait BenchKey: Hash + Eq + Ord + Clone + Send + Sync + 'static {
    const TYPE: &'static str;
    fn make(i: u64) -> Self;
}

impl BenchKey for u64 {
    const TYPE: &'static str = "u64";
    fn make(i: u64) -> Self {
        // Spread sequential indexes over the whole range, like random keys.
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl BenchKey for String {
    const TYPE: &'static str = "String";
    fn make(i: u64) -> Self {
        format!("key-{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// The operations a workload performs, on a handle that may hold a guard for a batch.
pub trait Ops<K> {
    fn get(&self, key: &K) -> bool;
    fn insert(&self, key: K, value: u64);
    fn remove(&self, key: &K) -> bool;
    /// Adds one to the value, if the key is present.
    fn update(&self, key: &K) -> bool;
}

/// A map under test.
pub trait BenchMap<K: BenchKey>: Send + Sync + Sized {
    const NAME: &'static str;
    type Handle<'a>: Ops<K>
    where
        Self: 'a;
    fn with_capacity(capacity: usize) -> Self;
    /// A handle for one batch of operations (pins, for maps with guards).
    fn handle(&self) -> Self::Handle<'_>;
    /// Visits every entry, reading each value; returns how many entries it visited (the runner
    /// computes rates from this count, so an iterator that stops early cannot look fast).
    fn iterate(&self) -> usize;
    /// Hands on what this thread has retired to the map's reclamation scheme, so that memory
    /// that is only waiting to be freed (old tables, removed entries) can go before a memory
    /// reading: for the maps with deferred reclamation. The runner calls it, with crossbeam's
    /// epoch settled beside it, until the live bytes stop falling.
    fn settle(&self) {}
}

/// What an iteration saw: the entries visited and a checksum of their values, which is kept
/// alive through `black_box` so that the values are really read.
#[derive(Default, Clone, Copy)]
pub struct Visit {
    entries: usize,
    checksum: u64,
}

impl Visit {
    #[inline]
    pub fn visit(self, value: u64) -> Self {
        Visit {
            entries: self.entries + 1,
            checksum: self.checksum ^ value,
        }
    }

    pub fn count(self) -> usize {
        std::hint::black_box(self.checksum);
        self.entries
    }
}

// ---- lockfree-map -------------------------------------------------------------------------

pub type Ours<K> = lockfree_map::HashMap<K, u64, RandomState>;

impl<K: BenchKey> Ops<K> for lockfree_map::MapRef<'_, K, u64, RandomState> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        lockfree_map::MapRef::get(self, key).is_some()
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        lockfree_map::MapRef::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        lockfree_map::MapRef::remove(self, key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        lockfree_map::MapRef::update(self, key, |v| v + 1).is_some()
    }
}

impl<K: BenchKey> BenchMap<K> for Ours<K> {
    const NAME: &'static str = "lockfree-map";
    type Handle<'a> = lockfree_map::MapRef<'a, K, u64, RandomState>;
    fn with_capacity(capacity: usize) -> Self {
        lockfree_map::HashMap::with_capacity_and_hasher(capacity, RandomState::new())
    }
    fn handle(&self) -> Self::Handle<'_> {
        self.pin()
    }
    fn iterate(&self) -> usize {
        self.pin()
            .iter()
            .fold(Visit::default(), |n, (_, v)| n.visit(*v))
            .count()
    }
    fn settle(&self) {
        // This thread's batch of retirements is handed to crossbeam (the runner settles the
        // epoch itself).
        self.guard().flush();
    }
}

// ---- papaya -------------------------------------------------------------------------------

pub type Papaya<K> = papaya::HashMap<K, u64, RandomState>;

impl<'a, K: BenchKey> Ops<K>
    for papaya::HashMapRef<'a, K, u64, RandomState, papaya::LocalGuard<'a>>
{
    #[inline]
    fn get(&self, key: &K) -> bool {
        papaya::HashMapRef::get(self, key).is_some()
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        papaya::HashMapRef::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        papaya::HashMapRef::remove(self, key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        papaya::HashMapRef::update(self, key.clone(), |v| v + 1).is_some()
    }
}

impl<K: BenchKey> BenchMap<K> for Papaya<K> {
    const NAME: &'static str = "papaya";
    type Handle<'a> = papaya::HashMapRef<'a, K, u64, RandomState, papaya::LocalGuard<'a>>;
    fn with_capacity(capacity: usize) -> Self {
        papaya::HashMap::with_capacity_and_hasher(capacity, RandomState::new())
    }
    fn handle(&self) -> Self::Handle<'_> {
        self.pin()
    }
    fn iterate(&self) -> usize {
        self.pin()
            .iter()
            .fold(Visit::default(), |n, (_, v)| n.visit(*v))
            .count()
    }
    fn settle(&self) {
        use papaya::Guard;
        // seize frees a thread's retirements in batches (its retired tables wait for 32 or so
        // to gather); a flush hands the batch on, and dropping the guard then frees what no
        // other thread holds.
        let guard = self.guard();
        guard.flush();
        drop(guard);
    }
}

// ---- scc ----------------------------------------------------------------------------------

pub type Scc<K> = scc::HashMap<K, u64, RandomState>;

impl<K: BenchKey> Ops<K> for &Scc<K> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        self.read_sync(key, |_, _| ()).is_some()
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        self.upsert_sync(key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        self.remove_sync(key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        self.update_sync(key, |_, v| *v += 1).is_some()
    }
}

impl<K: BenchKey> BenchMap<K> for Scc<K> {
    const NAME: &'static str = "scc";
    type Handle<'a> = &'a Scc<K>;
    fn with_capacity(capacity: usize) -> Self {
        scc::HashMap::with_capacity_and_hasher(capacity, RandomState::new())
    }
    fn handle(&self) -> Self::Handle<'_> {
        self
    }
    fn iterate(&self) -> usize {
        let mut n = Visit::default();
        self.iter_sync(|_, v| {
            n = n.visit(*v);
            true
        });
        n.count()
    }
    fn settle(&self) {
        // sdd, scc's reclamation: a guard that asks the epoch to move on.
        let guard = scc::Guard::new();
        guard.accelerate();
        drop(guard);
    }
}

// ---- dashmap ------------------------------------------------------------------------------

pub type Dash<K> = dashmap::DashMap<K, u64, RandomState>;

impl<K: BenchKey> Ops<K> for &Dash<K> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        dashmap::DashMap::get(self, key).is_some()
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        dashmap::DashMap::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        dashmap::DashMap::remove(self, key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        match self.get_mut(key) {
            Some(mut v) => {
                *v += 1;
                true
            }
            None => false,
        }
    }
}

impl<K: BenchKey> BenchMap<K> for Dash<K> {
    const NAME: &'static str = "dashmap";
    type Handle<'a> = &'a Dash<K>;
    fn with_capacity(capacity: usize) -> Self {
        dashmap::DashMap::with_capacity_and_hasher(capacity, RandomState::new())
    }
    fn handle(&self) -> Self::Handle<'_> {
        self
    }
    fn iterate(&self) -> usize {
        self.iter()
            .fold(Visit::default(), |n, e| n.visit(*e.value()))
            .count()
    }
}

// ---- flurry -------------------------------------------------------------------------------

pub type Flurry<K> = flurry::HashMap<K, u64, RandomState>;

impl<K: BenchKey> Ops<K> for flurry::HashMapRef<'_, K, u64, RandomState> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        flurry::HashMapRef::get(self, key).is_some()
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        flurry::HashMapRef::insert(self, key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        flurry::HashMapRef::remove(self, key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        self.compute_if_present(key, |_, v| Some(v + 1)).is_some()
    }
}

impl<K: BenchKey> BenchMap<K> for Flurry<K> {
    const NAME: &'static str = "flurry";
    type Handle<'a> = flurry::HashMapRef<'a, K, u64, RandomState>;
    fn with_capacity(capacity: usize) -> Self {
        flurry::HashMap::with_capacity_and_hasher(capacity, RandomState::new())
    }
    fn handle(&self) -> Self::Handle<'_> {
        self.pin()
    }
    fn iterate(&self) -> usize {
        self.pin()
            .iter()
            .fold(Visit::default(), |n, (_, v)| n.visit(*v))
            .count()
    }
    fn settle(&self) {
        // seize 0.3, as papaya's: hand the batch on, then drop the guard.
        let guard = self.guard();
        guard.flush();
        drop(guard);
    }
}

// ---- RwLock<std HashMap> ------------------------------------------------------------------

pub struct StdRwLock<K>(RwLock<std::collections::HashMap<K, u64, RandomState>>);

impl<K: BenchKey> Ops<K> for &StdRwLock<K> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        self.0.read().unwrap().contains_key(key)
    }
    #[inline]
    fn insert(&self, key: K, value: u64) {
        self.0.write().unwrap().insert(key, value);
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        self.0.write().unwrap().remove(key).is_some()
    }
    #[inline]
    fn update(&self, key: &K) -> bool {
        self.0
            .write()
            .unwrap()
            .get_mut(key)
            .map(|v| *v += 1)
            .is_some()
    }
}

impl<K: BenchKey> BenchMap<K> for StdRwLock<K> {
    const NAME: &'static str = "RwLock<HashMap>";
    type Handle<'a> = &'a StdRwLock<K>;
    fn with_capacity(capacity: usize) -> Self {
        StdRwLock(RwLock::new(
            std::collections::HashMap::with_capacity_and_hasher(capacity, RandomState::new()),
        ))
    }
    fn handle(&self) -> Self::Handle<'_> {
        self
    }
    fn iterate(&self) -> usize {
        self.0
            .read()
            .unwrap()
            .values()
            .fold(Visit::default(), |n, v| n.visit(*v))
            .count()
    }
}

// ---- hashbrown, unsynchronised: the limit for read-only runs -----------------------------

/// Plain `hashbrown`, shared read-only (`&HashMap` is `Sync`): no synchronisation at all. Only
/// meaningful for the read-only workload; its writes are not thread-safe and are refused.
pub struct Unsync<K>(hashbrown::HashMap<K, u64, RandomState>);

impl<K: BenchKey> Ops<K> for &Unsync<K> {
    #[inline]
    fn get(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }
    fn insert(&self, _: K, _: u64) {
        unreachable!("hashbrown (unsync) takes part in read-only runs only")
    }
    fn remove(&self, _: &K) -> bool {
        unreachable!("hashbrown (unsync) takes part in read-only runs only")
    }
    fn update(&self, _: &K) -> bool {
        unreachable!("hashbrown (unsync) takes part in read-only runs only")
    }
}

impl<K: BenchKey> Unsync<K> {
    pub fn filled(keys: &[K]) -> Self {
        let mut map = hashbrown::HashMap::with_capacity_and_hasher(keys.len(), RandomState::new());
        for (i, k) in keys.iter().enumerate() {
            map.insert(k.clone(), i as u64);
        }
        Unsync(map)
    }
}

impl<K: BenchKey> BenchMap<K> for Unsync<K> {
    const NAME: &'static str = "hashbrown (unsync)";
    type Handle<'a> = &'a Unsync<K>;
    fn with_capacity(capacity: usize) -> Self {
        Unsync(hashbrown::HashMap::with_capacity_and_hasher(
            capacity,
            RandomState::new(),
        ))
    }
    fn handle(&self) -> Self::Handle<'_> {
        self
    }
    fn iterate(&self) -> usize {
        self.0
            .values()
            .fold(Visit::default(), |n, v| n.visit(*v))
            .count()
    }
}

// ---- workloads ----------------------------------------------------------------------------

/// An operation mix, in percent, as in bustle / conc-map-bench.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub read: u8,
    pub insert: u8,
    pub remove: u8,
    pub update: u8,
    /// Fraction of the key space inserted before the clock starts.
    pub prefill: f64,
    /// If set, every operation picks one of this many keys.
    pub hot_keys: Option<usize>,
}

pub const READ_HEAVY: Workload = Workload {
    name: "read-heavy",
    read: 98,
    insert: 1,
    remove: 1,
    update: 0,
    prefill: 0.75,
    hot_keys: None,
};
pub const EXCHANGE: Workload = Workload {
    name: "exchange",
    read: 10,
    insert: 40,
    remove: 40,
    update: 10,
    prefill: 0.75,
    hot_keys: None,
};
pub const RAPID_GROW: Workload = Workload {
    name: "rapid-grow",
    read: 5,
    insert: 80,
    remove: 5,
    update: 10,
    prefill: 0.0,
    hot_keys: None,
};
pub const HOT_KEY: Workload = Workload {
    name: "hot-key",
    read: 50,
    insert: 0,
    remove: 0,
    update: 50,
    prefill: 1.0,
    hot_keys: Some(8),
};
pub const READ_ONLY: Workload = Workload {
    name: "read-only",
    read: 100,
    insert: 0,
    remove: 0,
    update: 0,
    prefill: 1.0,
    hot_keys: None,
};

pub const MIXES: [Workload; 5] = [READ_HEAVY, EXCHANGE, RAPID_GROW, HOT_KEY, READ_ONLY];

/// A small, fast generator (xorshift*), so key choice stays off the profile.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The default thread counts for `cores` cores: 1, 2 and 4 always (more threads than cores is a
/// case users meet too), then every power of two up to the core count, and the core count itself
/// where it is not one (12, 48 or 96 cores end on 12, 48 or 96).
pub fn thread_counts(cores: usize) -> Vec<usize> {
    let mut t = vec![1, 2, 4];
    let mut n = 8;
    while n <= cores {
        t.push(n);
        n *= 2;
    }
    if !t.contains(&cores) {
        t.push(cores);
        t.sort_unstable();
    }
    t
}

/// The keys of a key space, generated once per run.
pub fn keys<K: BenchKey>(n: usize) -> Vec<K> {
    (0..n as u64).map(K::make).collect()
}

/// Runs `work(t)` on each of `threads` threads, released together by a barrier, and returns
/// the wall time from the first thread's start to the last thread's end.
///
/// Each worker reads the clock itself. The caller's thread must not: with more threads than
/// cores it can be descheduled right after the barrier while the workers run, and a start read
/// late makes a run look nearly instant (the quick runs' `RwLock<HashMap>` iteration cell once
/// read 1.5 million M entries/s that way).
pub fn timed_threads<F: Fn(usize) + Sync>(threads: usize, work: F) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(t);
                    (start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    last - first
}

/// Runs `ops_per_thread` operations of `mix` on each of `threads` threads against `map`
/// (already prefilled), returning the wall time from a common start to the last thread's end.
pub fn run_ops<K: BenchKey, M: BenchMap<K>>(
    map: &M,
    keys: &[K],
    mix: Workload,
    threads: usize,
    ops_per_thread: u64,
) -> Duration {
    let span = mix.hot_keys.unwrap_or(keys.len()) as u64;
    timed_threads(threads, |t| {
        let mut rng = Rng::new(0x1234_5678_9ABC_DEF1 ^ ((t as u64 + 1) * 0x9E37_79B9));
        let mut done = 0;
        while done < ops_per_thread {
            let h = map.handle();
            let n = (ops_per_thread - done).min(BATCH as u64);
            for _ in 0..n {
                let r = rng.next();
                let key = &keys[((r >> 16) % span) as usize];
                let dice = (r & 0xFFFF) % 100;
                let dice = dice as u8;
                if dice < mix.read {
                    std::hint::black_box(h.get(key));
                } else if dice < mix.read + mix.insert {
                    h.insert(key.clone(), r);
                } else if dice < mix.read + mix.insert + mix.remove {
                    std::hint::black_box(h.remove(key));
                } else {
                    std::hint::black_box(h.update(key));
                }
            }
            done += n;
        }
    })
}

/// Builds a map for `mix` over `keys` and prefills it (outside the clock).
pub fn prepare<K: BenchKey, M: BenchMap<K>>(keys: &[K], mix: Workload) -> M {
    let map = M::with_capacity(0);
    let fill = (keys.len() as f64 * mix.prefill) as usize;
    let mut i = 0;
    while i < fill {
        let h = map.handle();
        for k in &keys[i..(i + BATCH).min(fill)] {
            h.insert(k.clone(), 0);
        }
        i += BATCH;
    }
    map
}

/// Iteration throughput: every thread iterates the whole (prefilled) map `rounds` times;
/// returns the wall time and the entries visited, summed over threads and rounds.
pub fn run_iteration<K: BenchKey, M: BenchMap<K>>(
    map: &M,
    threads: usize,
    rounds: usize,
) -> (Duration, usize) {
    let visited = std::sync::atomic::AtomicUsize::new(0);
    let elapsed = timed_threads(threads, |_| {
        let n: usize = (0..rounds).map(|_| map.iterate()).sum();
        visited.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    });
    (elapsed, visited.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thread_counts_reach_the_core_count() {
        use super::thread_counts;
        assert_eq!(thread_counts(1), [1, 2, 4]);
        assert_eq!(thread_counts(2), [1, 2, 4]);
        assert_eq!(thread_counts(3), [1, 2, 3, 4]);
        assert_eq!(thread_counts(16), [1, 2, 4, 8, 16]);
        assert_eq!(thread_counts(12), [1, 2, 4, 8, 12]);
        assert_eq!(thread_counts(96), [1, 2, 4, 8, 16, 32, 64, 96]);
        assert_eq!(thread_counts(128), [1, 2, 4, 8, 16, 32, 64, 128]);
    }
}
