//! The comparison runner: lockfree-map side by side with papaya, scc, dashmap, flurry and
//! `RwLock<std::collections::HashMap>` (and unsynchronised hashbrown as the read-only limit),
//! same workloads, same hasher, one run.
//!
//! ```text
//! cargo run --release --example compare              # quick: about a minute on 2 cores
//! cargo run --release --example compare -- --full    # 1M-key space, 2M operations a run, ~10 min
//!     [--threads 1,2,4] [--out DIR] [--only PART,...]
//! cargo run --release --example compare -- --help
//! ```
//!
//! Prints, per workload, key type and thread count, every map's throughput (Mops/s) and
//! lockfree-map's ratio to the best peer; then bytes per entry at 1M `u64` entries (a counting
//! global allocator), insert latency percentiles while each map grows from empty through
//! many resizes, the latency of lookups made meanwhile by another thread, and the latency of
//! inserts and removals in a steady churn (a sliding window of live keys). Writes the throughput as `compare.csv` and `compare.svg` in `--out`
//! (default `target/compare`). `--only` runs a part: workloads (`read-heavy`, `exchange`,
//! `rapid-grow`, `hot-key`, `read-only`, `iteration`), key types (`u64`, `String`; with workloads,
//! both filters apply), `memory`, `latency`, `churn`; for example `--only hot-key,u64` or `--only memory`.

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use workloads::*;

/// Counts live heap bytes, to measure memory per entry.
///
/// The count is striped over cache-line-padded counters, one per thread (round robin), and
/// summed when read: a single shared counter is one more contended atomic on every allocation
/// and free, which taxed the maps that allocate per operation (boxed entries, `String` keys)
/// in every multithreaded cell, not only in the memory measurement.
struct Counting;

const STRIPES: usize = 64;

#[repr(align(128))]
struct Stripe(AtomicIsize);

static LIVE: [Stripe; STRIPES] = [const { Stripe(AtomicIsize::new(0)) }; STRIPES];
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: usable from the allocator at any time,
    // thread teardown included.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's counter.
fn stripe() -> &'static AtomicIsize {
    let i = STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        s.get()
    });
    &LIVE[i].0
}

/// Live heap bytes: the sum of the stripes (a block freed by another thread than allocated
/// it moves bytes between stripes, never out of the sum).
fn live_bytes() -> usize {
    // SeqCst loads: read after the measured work, on the measuring thread (the others joined).
    LIVE.iter()
        .map(|s| s.0.load(Ordering::SeqCst))
        .sum::<isize>()
        .max(0) as usize
}

// SAFETY: forwards to the system allocator unchanged; only adds bookkeeping (of the blocks that
// were really allocated: a failed call counts nothing).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            stripe().fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            stripe().fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        stripe().fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            stripe().fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Config {
    full: bool,
    threads: Vec<usize>,
    key_space: usize,
    ops: u64,
    repeats: usize,
    out: std::path::PathBuf,
    /// `--only`: the parts to run (workload names, `u64`, `String`, `iteration`, `memory`,
    /// `latency`, `churn`); empty runs everything.
    only: Vec<String>,
}

/// What `--only` can name: the throughput workloads, the key types, the other sections.
const WORKLOAD_PARTS: [&str; 6] = [
    "read-heavy",
    "exchange",
    "rapid-grow",
    "hot-key",
    "read-only",
    "iteration",
];
const KEY_PARTS: [&str; 2] = ["u64", "String"];
const SECTION_PARTS: [&str; 3] = ["memory", "latency", "churn"];

impl Config {
    /// Whether `--only` selects `part` (a workload, key type or section name).
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == part)
    }

    /// Whether `--only` selects the throughput cells of `workload` with `key` keys: a filter on
    /// workloads and one on key types apply together.
    fn runs_cell(&self, workload: &str, key: &str) -> bool {
        let named = |names: &[&str]| self.only.iter().any(|o| names.contains(&o.as_str()));
        (!named(&WORKLOAD_PARTS) || self.runs(workload))
            && (!named(&KEY_PARTS) || self.runs(key))
            && (named(&WORKLOAD_PARTS) || named(&KEY_PARTS) || self.only.is_empty())
    }
}

struct Row {
    workload: String,
    key: &'static str,
    threads: usize,
    /// (map, Mops/s): each map's median over the repeats.
    results: Vec<(&'static str, f64)>,
    /// Each map's slowest and fastest repeat, in `results`' order: the run's own noise.
    spread: Vec<Spread>,
}

/// The slowest and the fastest repeat of one map in one cell.
type Spread = (f64, f64);

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// One run of one map on one workload, in Mops/s.
fn once<K: BenchKey, M: BenchMap<K>>(
    cfg: &Config,
    keys: &[K],
    mix: Workload,
    threads: usize,
) -> f64 {
    let per_thread = cfg.ops / threads as u64;
    let map: M = prepare(keys, mix);
    let t = run_ops(&map, keys, mix, threads, per_thread);
    (per_thread * threads as u64) as f64 / t.as_secs_f64() / 1e6
}

/// One iteration run of one map, in million entries visited per second.
fn once_iter<K: BenchKey, M: BenchMap<K>>(cfg: &Config, keys: &[K], threads: usize) -> f64 {
    let rounds = if cfg.full { 20 } else { 5 };
    let map: M = prepare(keys, READ_ONLY);
    let (t, visited) = run_iteration(&map, threads, rounds);
    let expected = threads * rounds * keys.len();
    // No writer runs during iteration, so every iteration must see every entry: a map that
    // does not is wrong, not slow (until stop 50 this only printed a warning).
    assert_eq!(
        visited,
        expected,
        "{} iteration visited {visited} entries, expected {expected}",
        M::NAME
    );
    visited as f64 / t.as_secs_f64() / 1e6
}

type Runner<K> = fn(&Config, &[K], Workload, usize) -> f64;

/// Runs every map `repeats` times, interleaved (map A, B, C, A, B, C, ...) so that the machine's
/// noise spreads over all maps alike, and keeps each map's median, and its slowest and fastest
/// repeat.
fn compare<K: BenchKey>(
    cfg: &Config,
    keys: &[K],
    mix: Workload,
    threads: usize,
    maps: &[(&'static str, Runner<K>)],
) -> (Vec<(&'static str, f64)>, Vec<Spread>) {
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); maps.len()];
    for _ in 0..cfg.repeats {
        for (i, (_, run)) in maps.iter().enumerate() {
            runs[i].push(run(cfg, keys, mix, threads));
        }
    }
    let spread = runs
        .iter()
        .map(|r| {
            let min = r.iter().copied().fold(f64::INFINITY, f64::min);
            (min, r.iter().copied().fold(0.0, f64::max))
        })
        .collect();
    let medians = maps
        .iter()
        .zip(runs)
        .map(|((name, _), r)| (*name, median(r)))
        .collect();
    (medians, spread)
}

fn peers<K: BenchKey>() -> Vec<(&'static str, Runner<K>)> {
    vec![
        ("lockfree-map", once::<K, Ours<K>>),
        ("papaya", once::<K, Papaya<K>>),
        ("scc", once::<K, Scc<K>>),
        ("dashmap", once::<K, Dash<K>>),
        ("flurry", once::<K, Flurry<K>>),
        ("RwLock<HashMap>", once::<K, StdRwLock<K>>),
    ]
}

fn unsync_once<K: BenchKey>(cfg: &Config, keys: &[K], mix: Workload, threads: usize) -> f64 {
    let per_thread = cfg.ops / threads as u64;
    let map = Unsync::filled(keys);
    let d = run_ops(&map, keys, mix, threads, per_thread);
    (per_thread * threads as u64) as f64 / d.as_secs_f64() / 1e6
}

fn workload_rows<K: BenchKey>(cfg: &Config, mixes: &[Workload], rows: &mut Vec<Row>) {
    let keys: Vec<K> = workloads::keys(cfg.key_space);
    for &mix in mixes {
        if !cfg.runs_cell(mix.name, K::TYPE) {
            continue;
        }
        for &t in &cfg.threads {
            let mut maps = peers::<K>();
            if mix.name == READ_ONLY.name {
                maps.push(("hashbrown (unsync)", unsync_once::<K>));
            }
            let (results, spread) = compare(cfg, &keys, mix, t, &maps);
            print_row(mix.name, K::TYPE, t, &results);
            rows.push(Row {
                workload: mix.name.to_string(),
                key: K::TYPE,
                threads: t,
                results,
                spread,
            });
        }
    }
}

fn iteration_rows<K: BenchKey>(cfg: &Config, rows: &mut Vec<Row>) {
    if !cfg.runs_cell("iteration", K::TYPE) {
        return;
    }
    let keys: Vec<K> = workloads::keys(cfg.key_space);
    let maps: Vec<(&'static str, Runner<K>)> = vec![
        ("lockfree-map", |c, k, _, t| {
            once_iter::<K, Ours<K>>(c, k, t)
        }),
        ("papaya", |c, k, _, t| once_iter::<K, Papaya<K>>(c, k, t)),
        ("scc", |c, k, _, t| once_iter::<K, Scc<K>>(c, k, t)),
        ("dashmap", |c, k, _, t| once_iter::<K, Dash<K>>(c, k, t)),
        ("flurry", |c, k, _, t| once_iter::<K, Flurry<K>>(c, k, t)),
        ("RwLock<HashMap>", |c, k, _, t| {
            once_iter::<K, StdRwLock<K>>(c, k, t)
        }),
    ];
    for &t in &cfg.threads {
        let (results, spread) = compare(cfg, &keys, READ_ONLY, t, &maps);
        print_row("iteration", K::TYPE, t, &results);
        rows.push(Row {
            workload: "iteration".into(),
            key: K::TYPE,
            threads: t,
            results,
            spread,
        });
    }
}

/// Ours divided by the best peer (unsynchronised hashbrown is a limit, not a peer).
fn ratio(results: &[(&str, f64)]) -> f64 {
    let ours = results[0].1;
    let best = results[1..]
        .iter()
        .filter(|(name, _)| !name.starts_with("hashbrown"))
        .map(|r| r.1)
        .fold(0.0, f64::max);
    ours / best
}

fn print_header() {
    println!(
        "{:<11} {:<6} {:>3} {:>13} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}  {:>9}",
        "workload",
        "key",
        "thr",
        "lockfree-map",
        "papaya",
        "scc",
        "dashmap",
        "flurry",
        "RwLock",
        "hashbrown",
        "vs best"
    );
}

fn print_row(workload: &str, key: &str, threads: usize, results: &[(&str, f64)]) {
    let unsync = results
        .get(6)
        .map_or("-".to_string(), |r| format!("{:.1}", r.1));
    println!(
        "{:<11} {:<6} {:>3} {:>13.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>10}  {:>8.2}x",
        workload,
        key,
        threads,
        results[0].1,
        results[1].1,
        results[2].1,
        results[3].1,
        results[4].1,
        results[5].1,
        unsync,
        ratio(results)
    );
}

/// Live heap bytes per entry after inserting `n` u64 entries, the garbage of every map's
/// deferred reclamation freed first.
fn bytes_per_entry<M: BenchMap<u64>>(n: usize) -> f64 {
    let keys: Vec<u64> = workloads::keys(n);
    let before = settled(|| {});
    let map = M::with_capacity(0);
    for chunk in keys.chunks(BATCH) {
        let h = map.handle();
        for k in chunk {
            h.insert(*k, *k);
        }
    }
    // Let retired tables be freed before measuring. Until stop 47 only crossbeam's epoch was
    // settled here, and papaya's (and flurry's) old tables, still waiting in seize's batch,
    // were counted as theirs.
    let after = settled(|| map.settle());
    std::hint::black_box(&map);
    drop(map);
    after.saturating_sub(before) as f64 / n as f64
}

/// The live bytes once they stop falling, with `settle` (a map's) and crossbeam's epoch (ours)
/// given every chance to free what they hold.
fn settled(settle: impl Fn()) -> usize {
    let probe = lockfree_map::HashMap::<u8, u8>::new();
    let mut last = usize::MAX;
    for _ in 0..50 {
        for _ in 0..512 {
            settle();
            probe.guard().flush();
        }
        let now = live_bytes();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Per-insert latency while `threads` threads fill an empty map with distinct keys (the map
/// resizes many times): p50, p99, p99.9, max in nanoseconds.
fn insert_latency<M: BenchMap<u64>>(threads: usize, per_thread: usize) -> [f64; 4] {
    let map = M::with_capacity(0);
    let mut all = on_threads(threads, |t| {
        let mut lat = Vec::with_capacity(per_thread);
        for i in 0..per_thread as u64 {
            let k = u64::make(i * threads as u64 + t as u64);
            let start = Instant::now();
            map.handle().insert(k, i);
            lat.push(start.elapsed().as_nanos() as u64);
        }
        lat
    });
    let ([p50, p99, p999], max) = quantiles(&mut all, [0.50, 0.99, 0.999]);
    [p50, p99, p999, max]
}

/// Runs `work(t)` on threads `t` in `0..threads` and concatenates what they return.
fn on_threads(threads: usize, work: impl Fn(usize) -> Vec<u64> + Sync) -> Vec<u64> {
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The quantiles `ps` of `all` (sorted here, not empty) and its maximum.
fn quantiles<const N: usize>(all: &mut [u64], ps: [f64; N]) -> ([f64; N], f64) {
    all.sort_unstable();
    let at = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64;
    (ps.map(at), all[all.len() - 1] as f64)
}

/// Per-lookup latency of one thread reading keys that another thread has inserted, while that
/// thread fills an empty map with `keys` distinct keys (so the map resizes many times, and the
/// reader meets every resize in progress): p50, p99, p99.9, max in nanoseconds, and the number
/// of lookups timed.
///
/// The reader makes at most one lookup per insert (it waits for the count to move), so the
/// lookups spread over the map's sizes alike for every map. A reader free to run weights each
/// size by how long that map's writer spent there: in the stop-15 and stop-16 full runs
/// papaya's median came out at 81 and 60 ns (lookups in a map still small enough for the
/// cache; 5.0-5.8 million of them, against 1.4-2.0 million for ours at 281-340 ns), while a
/// `/tmp`-only probe that split the lookups by tenths of the growth found the two level in
/// every tenth.
///
/// Every lookup asks for a key whose insert has returned, so every map must find it: a miss
/// fails the run.
fn lookup_latency<M: BenchMap<u64>>(keys: usize) -> ([f64; 4], usize) {
    let map = M::with_capacity(0);
    let inserted = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let reader_started = AtomicBool::new(false);
    let mut all: Vec<u64> = std::thread::scope(|s| {
        s.spawn(|| {
            // The writer starts once the reader runs: on 2 busy cores a reader thread started
            // late once timed no lookup at all (`RwLock<HashMap>`, whose writer finishes first).
            while !reader_started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            for i in 0..keys {
                map.handle().insert(u64::make(i as u64), i as u64);
                // Release: a reader that sees `i + 1` finds key `i` inserted.
                inserted.store(i + 1, Ordering::Release);
            }
            done.store(true, Ordering::Release);
        });
        let reader = s.spawn(|| {
            let mut lat = Vec::with_capacity(keys * 4);
            reader_started.store(true, Ordering::Release);
            // xorshift64: a cheap, fixed sequence of positions among the keys inserted so far.
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            let mut last = 0;
            while !done.load(Ordering::Acquire) {
                let n = inserted.load(Ordering::Acquire);
                if n == last {
                    std::hint::spin_loop();
                    continue;
                }
                last = n;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = u64::make(x % n as u64);
                let start = Instant::now();
                let found = map.handle().get(&k);
                lat.push(start.elapsed().as_nanos() as u64);
                assert!(found, "{}: an inserted key was not found", M::NAME);
            }
            lat
        });
        reader.join().unwrap()
    });
    if all.is_empty() {
        // The reader was descheduled for the writer's whole run: nothing to report.
        eprintln!("{}: no lookup was timed", M::NAME);
        return ([f64::NAN; 4], 0);
    }
    let ([p50, p99, p999], max) = quantiles(&mut all, [0.50, 0.99, 0.999]);
    ([p50, p99, p999, max], all.len())
}

/// Per-operation latency in a cache's steady state: `live` keys stay in the map while `threads`
/// threads each insert a new key and then remove their oldest, `pairs` times, so removals leave
/// tombstones or vacated slots and the maps that keep them must clean up or rebuild, again and
/// again. Every insert and removal is timed, with the handle (the pin, for maps that pin) taken
/// inside the clock, so freeing retired memory at a pin counts too: p50, p99, p99.9, p99.99, max
/// in nanoseconds, and how many operations took over 0.5 ms.
///
/// Every removal asks for a key its thread inserted and has not removed: a miss fails the run.
fn churn_latency<M: BenchMap<u64>>(threads: usize, live: usize, pairs: usize) -> ([f64; 5], usize) {
    let map = M::with_capacity(0);
    // Thread `t` owns the key indexes `i` with `i % threads == t`; the window of each thread
    // holds `live / threads` of them.
    let live = live - live % threads;
    for i in 0..live as u64 {
        map.handle().insert(u64::make(i), i);
    }
    let start = std::sync::Barrier::new(threads);
    let mut all = on_threads(threads, |t| {
        let (n, t) = (threads as u64, t as u64);
        let mut lat = Vec::with_capacity(2 * pairs);
        let ns = |t0: Instant| t0.elapsed().as_nanos() as u64;
        start.wait();
        for j in 0..pairs as u64 {
            let new = live as u64 + j * n + t;
            let t0 = Instant::now();
            map.handle().insert(u64::make(new), j);
            lat.push(ns(t0));
            let t0 = Instant::now();
            let found = map.handle().remove(&u64::make(j * n + t));
            lat.push(ns(t0));
            assert!(found, "{}: the oldest live key was not found", M::NAME);
        }
        lat
    });
    let slow = all.iter().filter(|&&t| t > 500_000).count();
    let ([p50, p99, p999, p9999], max) = quantiles(&mut all, [0.50, 0.99, 0.999, 0.9999]);
    ([p50, p99, p999, p9999, max], slow)
}

fn write_csv(cfg: &Config, rows: &[Row]) -> std::io::Result<()> {
    let mut csv =
        String::from("workload,key,threads,map,mops,ratio_to_best_peer,mops_min,mops_max\n");
    for r in rows {
        for ((map, mops), (min, max)) in r.results.iter().zip(&r.spread) {
            let rel = mops / (r.results[0].1 / ratio(&r.results));
            writeln!(
                csv,
                "{},{},{},{},{:.3},{:.3},{:.3},{:.3}",
                r.workload, r.key, r.threads, map, mops, rel, min, max
            )
            .unwrap();
        }
    }
    std::fs::write(cfg.out.join("compare.csv"), csv)
}

/// How far the repeats of one cell lay apart in this run (fastest over slowest), for lockfree-map
/// and for all maps: the noise against which this run's ratios are to be read.
fn print_spread(rows: &[Row]) {
    let cells = |ours_only: bool| -> Vec<(f64, String)> {
        let mut v: Vec<(f64, String)> = rows
            .iter()
            .flat_map(|r| {
                let n = if ours_only { 1 } else { r.spread.len() };
                r.results
                    .iter()
                    .zip(&r.spread)
                    .take(n)
                    .map(move |((map, _), (min, max))| {
                        let at = format!("{} {} {} thr, {map}", r.workload, r.key, r.threads);
                        (max / min, at)
                    })
            })
            .filter(|(x, _)| x.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        v
    };
    for (who, v) in [("lockfree-map", cells(true)), ("all maps", cells(false))] {
        if let Some(worst) = v.last() {
            println!(
                "spread between repeats (fastest / slowest), {who}: median {:.2}x, worst {:.2}x ({})",
                v[v.len() / 2].0,
                worst.0,
                worst.1
            );
        }
    }
}

/// Escapes text for XML (map names such as `RwLock<HashMap>`).
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel per workload and key type, grouped bars per thread count, one colour per map.
fn write_svg(cfg: &Config, rows: &[Row]) -> std::io::Result<()> {
    const COLORS: [&str; 7] = [
        "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f",
    ];
    const NAMES: [&str; 7] = [
        "lockfree-map",
        "papaya",
        "scc",
        "dashmap",
        "flurry",
        "RwLock<HashMap>",
        "hashbrown (unsync)",
    ];
    let mut panels: Vec<(String, &str)> = Vec::new();
    for r in rows {
        if !panels.iter().any(|(w, k)| *w == r.workload && *k == r.key) {
            panels.push((r.workload.clone(), r.key));
        }
    }
    let (pw, ph, cols) = (420.0, 220.0, 2usize);
    let height = 60.0 + ph * panels.len().div_ceil(cols) as f64;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{height}' font-family='sans-serif' font-size='11'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <text x='10' y='20' font-size='14'>Throughput, Mops/s (higher is better)</text>\n",
        pw * cols as f64 + 20.0
    );
    for (i, name) in NAMES.iter().enumerate() {
        let x = 10.0 + i as f64 * 120.0;
        writeln!(
            svg,
            "<rect x='{x}' y='30' width='10' height='10' fill='{}'/><text x='{}' y='39'>{}</text>",
            COLORS[i],
            x + 14.0,
            xml(name)
        )
        .unwrap();
    }
    for (p, (workload, key)) in panels.iter().enumerate() {
        let (ox, oy) = (10.0 + (p % cols) as f64 * pw, 55.0 + (p / cols) as f64 * ph);
        let prow: Vec<&Row> = rows
            .iter()
            .filter(|r| &r.workload == workload && r.key == *key)
            .collect();
        let max = prow
            .iter()
            .flat_map(|r| r.results.iter().map(|x| x.1))
            .fold(0.0, f64::max)
            .max(1e-9);
        writeln!(
            svg,
            "<text x='{ox}' y='{}' font-size='12'>{workload} ({key})</text>",
            oy + 12.0
        )
        .unwrap();
        let (chart_h, base) = (150.0, oy + 175.0);
        let group_w = (pw - 40.0) / prow.len() as f64;
        for (g, r) in prow.iter().enumerate() {
            let gx = ox + 30.0 + g as f64 * group_w;
            let bw = (group_w - 10.0) / NAMES.len() as f64;
            for (map, mops) in &r.results {
                let i = NAMES.iter().position(|n| n == map).unwrap();
                let h = chart_h * mops / max;
                writeln!(svg, "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='{}'><title>{}: {mops:.1}</title></rect>",
                    gx + i as f64 * bw, base - h, bw, h, COLORS[i], xml(map)).unwrap();
            }
            writeln!(
                svg,
                "<text x='{:.1}' y='{}'>{} thr</text>",
                gx + group_w / 2.0 - 15.0,
                base + 14.0,
                r.threads
            )
            .unwrap();
        }
        writeln!(svg, "<text x='{ox}' y='{}'>{max:.0}</text><line x1='{}' y1='{}' x2='{}' y2='{base}' stroke='#999'/>",
            base - chart_h + 4.0, ox + 28.0, base - chart_h, ox + 28.0).unwrap();
    }
    svg.push_str("</svg>\n");
    std::fs::write(cfg.out.join("compare.svg"), svg)
}

/// `[(name, f::<Map>(args)), ...]` for every peer map over `u64` keys, in the table's order:
/// the memory and latency sections measure each map with the same function.
macro_rules! u64_maps {
    ($f:ident($($arg:expr),*)) => {
        [
            ("lockfree-map", $f::<Ours<u64>>($($arg),*)),
            ("papaya", $f::<Papaya<u64>>($($arg),*)),
            ("scc", $f::<Scc<u64>>($($arg),*)),
            ("dashmap", $f::<Dash<u64>>($($arg),*)),
            ("flurry", $f::<Flurry<u64>>($($arg),*)),
            ("RwLock<HashMap>", $f::<StdRwLock<u64>>($($arg),*)),
        ]
    };
}

const USAGE: &str =
    "usage: compare [--full] [--keys N] [--repeats N] [--threads N,N,...] [--out DIR] [--only PART,...]
  --full       1Mi-key space and 2M operations a run (default: quick, 64Ki keys, 500k)
  --keys       the key space instead (at least 16), to compare at the size of your own maps
  --repeats    runs of every map per cell, interleaved, whose median is shown (default 3; more
               for a noisy machine)
  --threads    thread counts (default 1,2,4, then the powers of two up to the core count and
               the core count itself)
  --out        where compare.csv and compare.svg go (default target/compare)
  --only       workloads (read-heavy, exchange, rapid-grow, hot-key, read-only, iteration),
               key types (u64, String), memory, latency, churn";

/// Exits with `msg` and the usage text: a mistyped flag must not silently run another mode.
fn usage_error(msg: &str) -> ! {
    eprintln!("compare: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--full" => i += 1,
            "--threads" | "--out" | "--only" | "--keys" | "--repeats" if i + 1 < args.len() => {
                i += 2
            }
            "--threads" | "--out" | "--only" | "--keys" | "--repeats" => {
                usage_error(&format!("{} needs a value", args[i]))
            }
            // `cargo bench` passes `--bench` to every bench target; the runner is an example,
            // but accept it for anyone who wires it up as one.
            "--bench" => i += 1,
            other => usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let full = args.iter().any(|a| a == "--full");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = arg("--threads").map_or_else(
        || workloads::thread_counts(cores),
        |s| {
            s.split(',')
                .map(|t| match t.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => usage_error(&format!("--threads: {t:?} is not a thread count")),
                })
                .collect()
        },
    );
    let cfg = Config {
        full,
        threads,
        key_space: arg("--keys").map_or(if full { 1 << 20 } else { 1 << 16 }, |s| {
            match s.parse::<usize>() {
                // The hot-key mix draws from 8 keys of the space.
                Ok(n) if n >= 16 => n,
                _ => usage_error(&format!("--keys: {s:?} is not a key count of 16 or more")),
            }
        }),
        ops: if full { 2_000_000 } else { 500_000 },
        repeats: arg("--repeats").map_or(3, |s| match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => usage_error(&format!("--repeats: {s:?} is not a positive count")),
        }),
        out: arg("--out").map_or_else(|| "target/compare".into(), Into::into),
        only: arg("--only").map_or_else(Vec::new, |s| s.split(',').map(str::to_string).collect()),
    };
    let parts = [&WORKLOAD_PARTS[..], &KEY_PARTS, &SECTION_PARTS].concat();
    if let Some(bad) = cfg.only.iter().find(|o| !parts.contains(&o.as_str())) {
        usage_error(&format!(
            "--only: unknown part {bad:?}; parts: {}",
            parts.join(", ")
        ));
    }
    std::fs::create_dir_all(&cfg.out)?;
    let started = Instant::now();
    println!(
        "lockfree-map comparison, {} mode: {} cores, key space {}, {} operations per run, median of {}",
        if full { "full" } else { "quick" },
        cores,
        cfg.key_space,
        cfg.ops,
        cfg.repeats
    );
    println!(
        "hasher: std RandomState for every map; maps with guards pin once per {BATCH} operations"
    );
    println!("maps run interleaved within each repeat; medians shown");
    println!("\nThroughput, Mops/s (iteration: million entries/s); 'vs best' = lockfree-map / best peer\n");
    print_header();
    let mut rows = Vec::new();
    workload_rows::<u64>(&cfg, &MIXES, &mut rows);
    let string_mixes: &[Workload] = if full {
        &MIXES
    } else {
        &[READ_HEAVY, EXCHANGE]
    };
    workload_rows::<String>(&cfg, string_mixes, &mut rows);
    iteration_rows::<u64>(&cfg, &mut rows);
    print_spread(&rows);
    // Written now, so that the throughput of a long run survives a failure in a later section.
    write_csv(&cfg, &rows)?;
    write_svg(&cfg, &rows)?;

    let n = 1_000_000;
    if cfg.runs("memory") {
        println!("\nMemory: live heap bytes per entry at {n} u64 entries (counting allocator)");
        let mem = u64_maps!(bytes_per_entry(n));
        for (name, b) in mem {
            println!("  {name:<16} {b:>7.1}");
        }
    }

    let (lt, per) = (2, if full { 1_000_000 } else { 250_000 });
    if cfg.runs("latency") {
        println!(
            "\nInsert latency while growing from empty ({lt} threads x {per} distinct keys), ns"
        );
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>10}",
            "map", "p50", "p99", "p99.9", "max"
        );
        let lat = u64_maps!(insert_latency(lt, per));
        for (name, [p50, p99, p999, max]) in lat {
            println!("  {name:<16} {p50:>8.0} {p99:>8.0} {p999:>8.0} {max:>10.0}");
        }

        let keys = lt * per;
        println!(
            "\nLookup latency while another thread grows the map from empty ({keys} distinct keys), ns"
        );
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>10} {:>10}",
            "map", "p50", "p99", "p99.9", "max", "lookups"
        );
        let lat = u64_maps!(lookup_latency(keys));
        for (name, ([p50, p99, p999, max], n)) in lat {
            println!("  {name:<16} {p50:>8.0} {p99:>8.0} {p999:>8.0} {max:>10.0} {n:>10}");
        }
    }

    if cfg.runs("churn") {
        // About two thirds of the key space live: the load a cache holds between two of its
        // table's growths.
        let live = cfg.key_space / 3 * 2;
        let pairs = if full { 2_500_000 } else { 250_000 };
        println!(
            "\nLatency under churn ({live} keys live; {lt} threads x {pairs} inserts of a new key, \
             each followed by the removal of its thread's oldest), ns"
        );
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            "map", "p50", "p99", "p99.9", "p99.99", "max", ">0.5 ms"
        );
        let lat = u64_maps!(churn_latency(lt, live, pairs));
        for (name, ([p50, p99, p999, p9999, max], slow)) in lat {
            println!(
                "  {name:<16} {p50:>8.0} {p99:>8.0} {p999:>8.0} {p9999:>8.0} {max:>10.0} {slow:>9}"
            );
        }
    }

    println!(
        "\nWrote {0}/compare.csv and {0}/compare.svg in {1:.0} s",
        cfg.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
