//! Fixed, single-threaded operation mixes for counting instructions per operation, which unlike
//! wall time is repeatable on a shared, noisy machine:
//!
//! ```text
//! cargo build --release --example hotpath
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/hotpath [MODE]
//! ```
//!
//! (the total "Collected" count, divided by the operations printed). Modes: `mixed` (100k-entry
//! prefill, 1M gets, 200k inserts and removes; with no mode, as CI runs it, `mixed` and then a
//! check of its hits and length against `std`'s `HashMap`, which a count must leave out),
//! `exchange` (1M operations of the exchange mix, bustle's 10/40/40/10 get/insert/remove/update
//! in sixteenths: 12.5/37.5/37.5/12.5, on 64Ki keys 3/4 prefilled), `exchange-1m` (4M
//! operations of the same mix on 1Mi keys, for wall time), `hot-key` (1M updates spread over 8
//! keys), `hot-key-string` (the same with `String` keys), `exchange-string` (the exchange mix on
//! 64Ki `String` keys made as the runner makes them), `small-maps` (100,000 maps made, given 16
//! keys and dropped), `small-maps-100` (the same with 100 keys, so every map grows), `grow` (1M
//! inserts of distinct keys into an empty map, through every resize), `churn-full` (500,000
//! inserts of ever-new keys, each followed by the removal of the oldest, in a table of 16Ki groups
//! kept 98 % of its capacity full: the removals' dead slots fill the table), `churn-latency`
//! (700,000 `u64` keys, then 5M inserts of new keys each followed by the removal of the oldest,
//! timing every operation, in a process that has freed a 64 MiB block as a long-running one has:
//! the slowest operations are those that size, move or free a rebuild's tables), `churn-latency-string` (the
//! same with `String` keys, whose removals leave tombstones), `empty` (1Mi keys
//! inserted, then all removed, timing each removal), `empty-refill` (the first 830,000 removed,
//! just past the shrink's start, then as many new keys inserted), `lookups` (700,000 inserts stopping early in a growth, then
//! 4M lookups, for wall time), `lookups-2t` (the same lookups shared by two threads), `into-iter`
//! (1M entries visited by `iter`, then taken out by the owning `into_iter`, then 1M dropped with
//! their map, for wall time), `values` (41 passes of `values().fold` over 1M entries, for wall
//! time), `drop-large` (three rounds: 4M `u64` entries inserted, the map dropped, then one
//! 16 KiB allocation, timing the drop and that allocation, which pays for glibc's merge of the
//! blocks the drop freed; set `DROP_KEYS` for another size, `DROP_STRING` for `String` keys). Use it to compare a hot-path change before and after; `BENCHMARKS.md` keeps the figures.

use lockfree_map::{HashMap, MapRef};

#[path = "shared/fixed.rs"]
mod fixed;
use fixed::Fixed;

fn main() {
    match std::env::args().nth(1).as_deref().unwrap_or("check") {
        // The default (what CI runs): `mixed`, then its answers checked against `std`'s map,
        // outside what a named mode counts.
        "check" => {
            let answers = mixed();
            assert_eq!(
                answers,
                mixed_in_std(),
                "mixed: lockfree-map against std's HashMap"
            );
            println!("mixed: hits and length agree with std's HashMap");
        }
        "mixed" => {
            mixed();
        }
        "exchange" => writes(false, 1 << 16, 1_000_000),
        "exchange-1m" => writes(false, 1 << 20, 4_000_000),
        "exchange-4t" => writes_4t(),
        "hot-key" => writes(true, 1 << 16, 1_000_000),
        "hot-key-string" => hot_strings(),
        "exchange-string" => exchange_strings(),
        "small-maps" => small_maps(16),
        "small-maps-100" => small_maps(100),
        "cache-owned" => cache_strings(false),
        "cache-ref" => cache_strings(true),
        "grow" => grow(),
        "churn-full" => churn_full(),
        "churn-latency" => churn_latency(false),
        "churn-latency-string" => churn_latency(true),
        "empty" => empty(None),
        "empty-refill" => empty(Some(830_000)),
        "lookups" => lookups(1),
        "lookups-2t" => lookups(2),
        "into-iter" => into_iter(),
        "values" => values(),
        "drop-large" => drop_large(),
        other => {
            eprintln!(
                "unknown mode {other:?}: check, mixed, exchange, exchange-1m, exchange-4t, exchange-string, hot-key, hot-key-string, cache-owned, cache-ref, small-maps, small-maps-100, grow, churn-full, churn-latency, churn-latency-string, empty, empty-refill, lookups, lookups-2t, into-iter, values or drop-large"
            );
            std::process::exit(2);
        }
    }
}

/// 1M updates spread over 8 `String` keys: the cost a key type that allocates adds to a write.
fn hot_strings() {
    const OPS: u64 = 1_000_000;
    let map: HashMap<String, u64, Fixed> = HashMap::with_hasher(Fixed);
    let keys: Vec<String> = (0..8).map(|k| format!("hot-key-{k:08}")).collect();
    let mut m = map.pin();
    for k in &keys {
        m.insert(k.clone(), 0);
    }
    for i in 0..OPS {
        m.update(keys[(i % 8) as usize].as_str(), |v| v + 1);
        if i % 64 == 0 {
            m.repin();
        }
    }
    println!(
        "8 inserts (prefill), {OPS} hot-key updates of String keys; len {}",
        m.len()
    );
}

/// The exchange mix on 64Ki `String` keys (made as the runner makes them), 3/4 prefilled: what
/// a key type without key lines pays, tombstones and their cleanup rebuilds included.
fn exchange_strings() {
    const KEYS: u64 = 1 << 16;
    const OPS: u64 = 1_000_000;
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("key-{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let map: HashMap<String, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    for (i, k) in keys.iter().enumerate().take(keys.len() * 3 / 4) {
        m.insert(k.clone(), i as u64);
    }
    let mut x = 0x853C_49E6_748F_EA9Bu64;
    for i in 0..OPS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = &keys[(x % KEYS) as usize];
        match x >> 60 {
            0..=1 => {
                m.get(k.as_str());
            }
            2..=7 => {
                m.insert(k.clone(), i);
            }
            8..=13 => {
                m.remove(k.as_str());
            }
            _ => {
                m.update(k.as_str(), |v| v + 1);
            }
        }
        if i % 64 == 0 {
            m.repin();
        }
    }
    println!(
        "{} inserts (prefill), {OPS} exchange operations on String keys; len {}",
        KEYS * 3 / 4,
        m.len()
    );
}

/// 100,000 small maps, each made, given `keys` keys and dropped: the whole life of a map made
/// per request or per task.
fn small_maps(keys: u64) {
    const MAPS: u64 = 100_000;
    let mut total = 0;
    for m in 0..MAPS {
        let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
        let r = map.pin();
        for k in 0..keys {
            r.insert(k, m);
        }
        total += r.len();
    }
    println!("{MAPS} maps of {keys} entries made and dropped; {total} entries in all");
}

/// A memoising cache with `String` keys: 1M `get_or_insert_with` calls by `&str` over 1,000
/// keys (all but the first 1,000 hits), making the owned key for every call (`cache-owned`) or
/// only to insert it (`cache-ref`, `get_or_insert_with_ref`).
fn cache_strings(by_ref: bool) {
    const OPS: u64 = 1_000_000;
    let map: HashMap<String, u64, Fixed> = HashMap::with_hasher(Fixed);
    let words: Vec<String> = (0..1_000).map(|k| format!("cached-word-{k:06}")).collect();
    let mut m = map.pin();
    let mut sum = 0u64;
    for i in 0..OPS {
        let word = words[(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % 1_000].as_str();
        let make = || word.len() as u64;
        sum += if by_ref {
            *m.get_or_insert_with_ref(word, str::to_owned, make)
        } else {
            *m.get_or_insert_with(word.to_owned(), make)
        };
        if i % 64 == 0 {
            m.repin();
        }
    }
    println!(
        "{OPS} cache lookups of String keys by &str; len {}, sum {sum}",
        m.len()
    );
}

/// 1M inserts of distinct keys into a map that starts empty: through every resize.
fn grow() {
    const KEYS: u64 = 1_000_000;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    let start = std::time::Instant::now();
    for k in 0..KEYS {
        m.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k);
        if k % 64 == 0 {
            m.repin();
        }
    }
    // The inserts alone: dropping the map (a million frees at random addresses) takes about as
    // long again, and the runner's clock excludes it too.
    let took = start.elapsed();
    println!(
        "{KEYS} inserts into an empty map; len {}; {:.1} ns an insert",
        m.len(),
        took.as_nanos() as f64 / KEYS as f64
    );
}

/// A cache's steady state: as many keys inserted as removed, so the table is rebuilt again and
/// again (tombstones, or vacated slots no new key can take), and each operation's time shows what
/// a rebuild's sizing, moves and the freeing of the old table cost the operation that does them.
fn churn_latency(strings: bool) {
    const LIVE: u64 = 700_000;
    const PAIRS: u64 = 5_000_000;
    // A long-running process has freed large blocks: glibc then serves tables below its raised
    // mmap threshold from reused heap memory, which `calloc` must zero.
    std::hint::black_box(vec![1u8; 64 << 20]);
    let spread = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let string = |i: u64| format!("key-{:016x}", spread(i));
    let words: HashMap<String, u64> = HashMap::new();
    let ints: HashMap<u64, u64> = HashMap::new();
    let keys: Vec<String> = if strings {
        (0..LIVE + PAIRS).map(string).collect()
    } else {
        Vec::new()
    };
    {
        let (w, n) = (words.pin(), ints.pin());
        for i in 0..LIVE {
            if strings {
                w.insert(keys[i as usize].clone(), i);
            } else {
                n.insert(spread(i), i);
            }
        }
    }
    let mut took: Vec<u32> = Vec::with_capacity(2 * PAIRS as usize);
    let start = std::time::Instant::now();
    let (mut w, mut n) = (words.pin(), ints.pin());
    for i in 0..PAIRS {
        let t0 = std::time::Instant::now();
        if strings {
            w.insert(keys[(LIVE + i) as usize].clone(), i);
        } else {
            n.insert(spread(LIVE + i), i);
        }
        let t1 = std::time::Instant::now();
        if strings {
            w.remove(&keys[i as usize]);
        } else {
            n.remove(&spread(i));
        }
        let t2 = std::time::Instant::now();
        took.push((t1 - t0).as_nanos().min(u32::MAX as u128) as u32);
        took.push((t2 - t1).as_nanos().min(u32::MAX as u128) as u32);
        if i % 64 == 63 {
            w.repin();
            n.repin();
        }
    }
    let elapsed = start.elapsed();
    let over = took.iter().filter(|&&t| t > 500_000).count();
    took.sort_unstable();
    let q = |f: f64| took[((took.len() - 1) as f64 * f) as usize];
    println!(
        "{} operations ({} keys live), {:.1} ns each; p50 {} p99 {} p99.9 {} p99.99 {} max {} ns; {over} over 0.5 ms",
        took.len(),
        LIVE,
        elapsed.as_nanos() as f64 / took.len() as f64,
        q(0.5),
        q(0.99),
        q(0.999),
        q(0.9999),
        took[took.len() - 1]
    );
}

/// A sliding window of ever-new keys just under a table's maximum load: the shape of a cache
/// that evicts its oldest entry for each new one. Every removal leaves a slot no new key can take
/// (a vacated slot keeps its key), so the table must be rebuilt before its empty slots run out.
fn churn_full() {
    const PAIRS: u64 = 500_000;
    // 16Ki groups of 7 slots, 3/4 of them: the table `with_capacity` makes for this many.
    const CAPACITY: usize = (1 << 14) * 7 * 3 / 4;
    let window = (CAPACITY - CAPACITY / 50) as u64;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_capacity_and_hasher(CAPACITY, Fixed);
    let mut m = map.pin();
    let key = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for k in 0..window {
        m.insert(key(k), k);
    }
    let start = std::time::Instant::now();
    let mut worst = std::time::Duration::ZERO;
    for k in window..window + PAIRS {
        let t = std::time::Instant::now();
        m.insert(key(k), k);
        m.remove(&key(k - window));
        worst = worst.max(t.elapsed());
        if k % 64 == 0 {
            m.repin();
        }
    }
    let took = start.elapsed();
    println!(
        "{PAIRS} new keys through a window of {window}; len {}, capacity {}; {:.1} ns a pair, the slowest {:.1} us",
        m.len(),
        m.capacity(),
        took.as_nanos() as f64 / PAIRS as f64,
        worst.as_secs_f64() * 1e6
    );
}

/// 1Mi keys inserted, then removed one by one (all of them, or the first `refill`, followed by as
/// many inserts of new keys), timing each operation: the slowest says whether a shrink stops
/// one operation (until stop 29 the removal that found the table 1/8 full moved all of it).
fn empty(refill: Option<u64>) {
    const KEYS: u64 = 1 << 20;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    let key = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for k in 0..KEYS {
        m.insert(key(k), k);
    }
    let slowest = |ops: &mut dyn FnMut(u64), range: std::ops::Range<u64>| {
        let (n, start) = (range.end - range.start, std::time::Instant::now());
        let mut worst = (std::time::Duration::ZERO, 0);
        for k in range {
            let t = std::time::Instant::now();
            ops(k);
            worst = worst.max((t.elapsed(), k));
        }
        (start.elapsed().as_nanos() as f64 / n as f64, worst)
    };
    let removed = refill.unwrap_or(KEYS);
    let (mean, (worst, at)) = slowest(
        &mut |k| {
            m.remove(&key(k));
            if k % 64 == 0 {
                m.repin();
            }
        },
        0..removed,
    );
    println!(
        "{removed} of {KEYS} keys removed: {mean:.1} ns a removal, the slowest {:.1} us (removal {at}); capacity {}",
        worst.as_secs_f64() * 1e6,
        m.capacity()
    );
    if refill.is_some() {
        let (mean, (worst, at)) = slowest(
            &mut |k| {
                m.insert(key(k), k);
                if k % 64 == 0 {
                    m.repin();
                }
            },
            KEYS..KEYS + removed,
        );
        println!(
            "{removed} new keys inserted: {mean:.1} ns an insert, the slowest {:.1} us (insert {}); capacity {}",
            worst.as_secs_f64() * 1e6,
            at - KEYS,
            m.capacity()
        );
    }
}

/// The exchange mix, or (`hot`) updates of 8 keys, on a 3/4-prefilled key space of `keys` keys.
fn writes(hot: bool, keys: u64, ops: u64) {
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    for k in 0..keys * 3 / 4 {
        m.insert(k, k);
    }
    let mut x = 0x853C_49E6_748F_EA9Bu64;
    for i in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % keys;
        if hot {
            m.update(&(k % 8), |v| v + 1);
        } else {
            exchange_op(&m, x, k, i);
        }
        if i % 64 == 0 {
            m.repin();
        }
    }
    let mode = if hot {
        "hot-key updates"
    } else {
        "exchange operations"
    };
    println!(
        "{} inserts (prefill), {ops} {mode}; len {}",
        keys * 3 / 4,
        m.len()
    );
}

/// One operation of the exchange mix, chosen by the top four bits of the random `x`: 12.5 /
/// 37.5 / 37.5 / 12.5 get / insert / remove / update, bustle's 10 / 40 / 40 / 10 in sixteenths.
fn exchange_op(m: &MapRef<'_, u64, u64, Fixed>, x: u64, k: u64, i: u64) {
    match x >> 60 {
        0..=1 => {
            m.get(&k);
        }
        2..=7 => {
            m.insert(k, i);
        }
        8..=13 => {
            m.remove(&k);
        }
        _ => {
            m.update(&k, |v| v + 1);
        }
    }
}

/// `exchange` on four threads sharing one map (64Ki keys, 500,000 operations each). Meant for
/// valgrind's cache simulation (`cachegrind --cache-sim=yes`): valgrind runs one thread at a time,
/// so a thread descheduled while pinned holds the epoch back, as with more threads than cores,
/// and garbage comes back in waves through the entry cache.
fn writes_4t() {
    const KEYS: u64 = 1 << 16;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    {
        let m = map.pin();
        for k in 0..KEYS * 3 / 4 {
            m.insert(k, k);
        }
    }
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let map = &map;
            s.spawn(move || {
                let mut m = map.pin();
                let mut x = 0x853C_49E6_748F_EA9Bu64 ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in 0..500_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    exchange_op(&m, x, x % KEYS, i);
                    if i % 64 == 0 {
                        m.repin();
                    }
                }
            });
        }
    });
    println!(
        "4 threads x 500000 exchange operations; len {}",
        map.pin().len()
    );
}

/// 700,000 inserts, then 4M lookups spread over 1Mi keys (two thirds hit). The table grows at
/// 688,128 entries (3/4 of 128Ki groups of 7 slots), so the inserts stop early in that
/// migration: the lookups show what an unfinished migration costs, and whether they finish it.
/// Prints the time of each phase (wall time: run it a few times, the machine is noisy). With no
/// writer claiming chunks, the lookups take the migration over after 64 of them (ARCHITECTURE.md),
/// so this measures lookups through a pending migration, their share of moving it included.
fn lookups(threads: u64) {
    const KEYS: u64 = 700_000;
    const SPACE: u64 = 1 << 20;
    const GETS: u64 = 4_000_000;
    let start = std::time::Instant::now();
    let map = filled(KEYS);
    let filled = start.elapsed();
    // `threads` readers share the lookups (each its own sequence): with two, whether readers
    // that take over the migration hold each other back.
    let found: u64 = std::thread::scope(|s| {
        let readers: Vec<_> = (0..threads)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    let mut m = map.pin();
                    let mut found = 0u64;
                    let mut x = 0x853C_49E6_748F_EA9Bu64 ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    for i in 0..GETS / threads {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        found += m.get(&(x % SPACE)).is_some() as u64;
                        if i % 64 == 0 {
                            m.repin();
                        }
                    }
                    found
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).sum()
    });
    let looked = start.elapsed() - filled;
    println!(
        "{KEYS} inserts in {filled:.0?}, {GETS} lookups ({found} hits) by {threads} thread(s) in \
         {looked:.0?} ({:.1} ns each, wall); len {}",
        looked.as_nanos() as f64 / GETS as f64,
        map.len()
    );
}

/// 1M entries visited by the borrowing iterator, then taken out by the owning one (which also
/// frees each entry): the time of each pass, per entry.
fn into_iter() {
    const KEYS: u64 = 1_000_000;
    let map = filled(KEYS);
    let start = std::time::Instant::now();
    let sum: u64 = map.pin().iter().map(|(_, v)| *v).sum();
    let borrowed = start.elapsed();
    let start = std::time::Instant::now();
    let (n, owned_sum) = map
        .into_iter()
        .fold((0u64, 0u64), |(n, s), (_, v)| (n + 1, s + v));
    let owned = start.elapsed();
    assert_eq!((n, owned_sum), (KEYS, sum));
    let map = filled(KEYS);
    let start = std::time::Instant::now();
    drop(map);
    let dropped = start.elapsed();
    println!(
        "{KEYS} entries: iter {:.1} ns an entry, into_iter {:.1} ns an entry (entries freed as \
         taken), drop {:.1} ns an entry",
        borrowed.as_nanos() as f64 / KEYS as f64,
        owned.as_nanos() as f64 / KEYS as f64,
        dropped.as_nanos() as f64 / KEYS as f64
    );
}

/// 41 passes of `values().fold` over 1M entries: the fastest and the median pass, for wall time
/// (the runner's iteration workload, without the other maps).
fn values() {
    const KEYS: u64 = 1_000_000;
    const PASSES: usize = 41;
    let map = filled(KEYS);
    let mut ns: Vec<f64> = (0..PASSES)
        .map(|_| {
            let m = map.pin();
            let start = std::time::Instant::now();
            let (n, sum) = m.values().fold((0u64, 0u64), |(n, s), v| (n + 1, s ^ *v));
            let t = start.elapsed();
            assert_eq!(n, KEYS);
            std::hint::black_box(sum);
            t.as_nanos() as f64 / KEYS as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!(
        "{KEYS} entries, {PASSES} passes of values().fold: fastest {:.2} ns an entry, median {:.2}",
        ns[0],
        ns[PASSES / 2]
    );
}

/// A map holding keys `0..keys` (each its own value), inserted in order, repinning every 64.
fn filled(keys: u64) -> HashMap<u64, u64, Fixed> {
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    for k in 0..keys {
        m.insert(k, k);
        if k % 64 == 0 {
            m.repin();
        }
    }
    drop(m);
    map
}

const MIXED_KEYS: u64 = 100_000;
const MIXED_GETS: u64 = 1_000_000;
const MIXED_WRITES: u64 = 200_000;

/// `mixed`'s hits and final length; [`mixed_in_std`] gives what they must be.
fn mixed() -> (u64, usize) {
    const KEYS: u64 = MIXED_KEYS;
    const GETS: u64 = MIXED_GETS;
    const WRITES: u64 = MIXED_WRITES;
    let map: HashMap<u64, u64, Fixed> = HashMap::with_hasher(Fixed);
    let mut m = map.pin();
    for k in 0..KEYS {
        m.insert(k, k);
    }
    let mut found = 0u64;
    for i in 0..GETS {
        let k = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * KEYS);
        found += m.get(&k).is_some() as u64;
        if i % 64 == 0 {
            m.repin();
        }
    }
    for i in 0..WRITES {
        let k = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * KEYS);
        if i % 2 == 0 {
            m.insert(k, i);
        } else {
            m.remove(&k);
        }
    }
    println!(
        "{} inserts (prefill), {GETS} gets ({found} hits), {WRITES} inserts/removes; len {}",
        KEYS,
        m.len()
    );
    (found, m.len())
}

/// [`mixed`]'s operations on `std`'s `HashMap`: its hits and final length.
fn mixed_in_std() -> (u64, usize) {
    let mut map = std::collections::HashMap::new();
    for k in 0..MIXED_KEYS {
        map.insert(k, k);
    }
    let found = (0..MIXED_GETS)
        .filter(|i| map.contains_key(&(i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * MIXED_KEYS))))
        .count() as u64;
    for i in 0..MIXED_WRITES {
        let k = i.wrapping_mul(0x2545_F491_4F6C_DD1D) % (2 * MIXED_KEYS);
        if i % 2 == 0 {
            map.insert(k, i);
        } else {
            map.remove(&k);
        }
    }
    (found, map.len())
}

/// A large map's drop, and what it leaves the allocator: three rounds of `DROP_KEYS` entries
/// (4Mi unless set; `String` keys if `DROP_STRING` is set) inserted, the map dropped, then one
/// 16 KiB allocation, each timed. With glibc that allocation merges every small block freed
/// since the last merge (`malloc_consolidate`), in the order they were freed (`BENCHMARKS.md`,
/// next step 33). Wall time.
fn drop_large() {
    let n: u64 = std::env::var("DROP_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 22);
    let strings = std::env::var_os("DROP_STRING").is_some();
    for round in 0..3u64 {
        let keys = round * n..(round + 1) * n;
        let map = if strings {
            let map: HashMap<String, u64> = HashMap::new();
            let m = map.pin();
            for k in keys {
                m.insert(format!("key-{k}"), k);
            }
            drop(m);
            Err(map)
        } else {
            let map: HashMap<u64, u64> = HashMap::new();
            let m = map.pin();
            for k in keys {
                m.insert(k, k);
            }
            drop(m);
            Ok(map)
        };
        let start = std::time::Instant::now();
        drop(map);
        let dropped = start.elapsed();
        let start = std::time::Instant::now();
        drop(std::hint::black_box(Vec::<u8>::with_capacity(16 * 1024)));
        let next = start.elapsed();
        println!(
            "round {round}: {n} entries, drop {:.1} ms, next 16 KiB allocation {:.3} ms",
            dropped.as_secs_f64() * 1e3,
            next.as_secs_f64() * 1e3
        );
    }
}
