//! criterion benchmarks under multithreaded contention: every workload (bustle's mixes as used
//! by conc-map-bench, plus hot-key, read-only and iteration), u64 and String keys, 1, 2 and 4
//! threads (and up to the core count where there are more), for lockfree-map and its peers with
//! the same hasher; and the cost of a small map's whole life (`small-map`: made, 16 inserts,
//! dropped; `small-map-100`: 100 inserts, which make every map grow).
//! `cargo bench --bench contention [-- FILTER]`.
//!
//! A criterion "iteration" here is one operation; `iter_custom` spreads the requested count over
//! the threads and times the whole parallel run, so the reported time per iteration is the
//! inverse of aggregate throughput.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod workloads;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use workloads::*;

const KEY_SPACE: usize = 1 << 16;

fn thread_counts() -> Vec<usize> {
    workloads::thread_counts(std::thread::available_parallelism().map_or(2, |n| n.get()))
}

fn bench_map<K: BenchKey, M: BenchMap<K>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    keys: &[K],
    mix: Workload,
    threads: usize,
) {
    // A fresh map for every timed run, prefilled (or not, for rapid-grow) outside the clock and
    // dropped outside it, as the runner does. One map for all of a benchmark's runs (until stop
    // 47) was full after rapid-grow's warm-up, so that every sample timed overwrites only, and
    // let the other mixes drift from their prefill towards half full. Criterion still sizes a
    // sample by its own clock (millions of operations over 64Ki keys), so in its rapid-grow
    // the growths come in the first hundred thousand or so operations of a sample, and the rest
    // mostly overwrite: the runner (`examples/compare.rs`, 1Mi keys, a fixed count of
    // operations) is the reference for growth.
    group.bench_with_input(BenchmarkId::new(M::NAME, threads), &threads, |b, &t| {
        b.iter_custom(|iters| {
            let map: M = prepare(keys, mix);
            let took = run_ops(&map, keys, mix, t, iters.div_ceil(t as u64));
            drop(map);
            took
        })
    });
}

fn mixes<K: BenchKey>(c: &mut Criterion) {
    let keys: Vec<K> = workloads::keys(KEY_SPACE);
    for mix in MIXES {
        let mut group = c.benchmark_group(format!("{}/{}", mix.name, K::TYPE));
        group.throughput(Throughput::Elements(1));
        for t in thread_counts() {
            bench_map::<K, Ours<K>>(&mut group, &keys, mix, t);
            bench_map::<K, Papaya<K>>(&mut group, &keys, mix, t);
            bench_map::<K, Scc<K>>(&mut group, &keys, mix, t);
            bench_map::<K, Dash<K>>(&mut group, &keys, mix, t);
            bench_map::<K, Flurry<K>>(&mut group, &keys, mix, t);
            bench_map::<K, StdRwLock<K>>(&mut group, &keys, mix, t);
            if mix.name == READ_ONLY.name {
                let unsync = Unsync::filled(&keys);
                group.bench_with_input(BenchmarkId::new("hashbrown (unsync)", t), &t, |b, &t| {
                    b.iter_custom(|iters| run_ops(&unsync, &keys, mix, t, iters.div_ceil(t as u64)))
                });
            }
        }
        group.finish();
    }
}

/// Calls `$one::<M>($group, $keys)` for every map of the comparison (`u64` keys).
macro_rules! every_map {
    ($one:ident, $group:expr, $keys:expr) => {{
        $one::<Ours<u64>>($group, $keys);
        $one::<Papaya<u64>>($group, $keys);
        $one::<Scc<u64>>($group, $keys);
        $one::<Dash<u64>>($group, $keys);
        $one::<Flurry<u64>>($group, $keys);
        $one::<StdRwLock<u64>>($group, $keys);
    }};
}

fn iteration(c: &mut Criterion) {
    let keys: Vec<u64> = workloads::keys(KEY_SPACE);
    let mut group = c.benchmark_group("iteration/u64");
    group.throughput(Throughput::Elements(KEY_SPACE as u64));
    fn one<M: BenchMap<u64>>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        keys: &[u64],
    ) {
        let map: M = prepare(keys, READ_ONLY);
        group.bench_function(M::NAME, |b| b.iter(|| map.iterate()));
    }
    every_map!(one, &mut group, &keys);
    group.finish();
}

/// Small maps made, given `n` keys and dropped, one after another on one thread: what a program
/// that makes a map per request or per task pays for each (until stop 26 our `HashMap::new`
/// asked the OS for the core count every time, about 47 µs). `small-map` (16 keys) fits a new
/// map's first table; `small-map-100` (100 keys) grows out of it, twice for ours (4 -> 16 -> 32
/// groups) and five times for hashbrown's.
fn small_maps(c: &mut Criterion) {
    small_map_life(c, "small-map/u64", 16);
    small_map_life(c, "small-map-100/u64", 100);
}

fn small_map_life(c: &mut Criterion, name: &str, n: usize) {
    let keys: Vec<u64> = workloads::keys(n);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    fn one<M: BenchMap<u64>>(
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        keys: &[u64],
    ) {
        group.bench_function(M::NAME, |b| {
            b.iter(|| {
                let map = M::with_capacity(0);
                {
                    let h = map.handle();
                    for &k in keys {
                        h.insert(k, k);
                    }
                }
                // Dropped inside the timed loop: the map's drop is part of its cost.
                map
            })
        });
    }
    every_map!(one, &mut group, &keys);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = mixes::<u64>, mixes::<String>, iteration, small_maps
}
criterion_main!(benches);
