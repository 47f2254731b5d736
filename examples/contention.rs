//! Runs lockfree-map under multithreaded contention and prints throughput per workload.
//!
//! `cargo run --release --example contention [-- --threads 1,2,4 --ops 2000000]`
//!
//! Workloads (the mixes conc-map-bench uses, u64 keys, one pin per batch of 64 operations):
//! read-heavy 98/1/1 get/insert/remove, exchange 10/40/40/10 get/insert/remove/update,
//! rapid-grow 5/80/5/10 starting empty, and hot-key (every thread updates 8 keys).
//! This is a quick look at our own map; the side-by-side comparison with the peer maps is the
//! benchmark runner's job. Each run checks the map afterwards: its length against the inserts
//! and removals that succeeded, and in the hot-key mix the sum of the values against the
//! updates. (Until stop 50 it checked nothing, and its dice, `(r & 0x7F) % 100`, made 0..27
//! twice as likely as the rest: the exchange mix ran about 16/45/31/8.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use lockfree_map::HashMap;

#[derive(Clone, Copy)]
struct Mix {
    name: &'static str,
    read: u32,
    insert: u32,
    remove: u32,
    prefill: bool,
    hot_keys: Option<u64>,
}

const MIXES: &[Mix] = &[
    Mix {
        name: "read-heavy",
        read: 98,
        insert: 1,
        remove: 1,
        prefill: true,
        hot_keys: None,
    },
    Mix {
        name: "exchange",
        read: 10,
        insert: 40,
        remove: 40,
        prefill: true,
        hot_keys: None,
    },
    Mix {
        name: "rapid-grow",
        read: 5,
        insert: 80,
        remove: 5,
        prefill: false,
        hot_keys: None,
    },
    Mix {
        name: "hot-key",
        read: 50,
        insert: 0,
        remove: 0,
        prefill: true,
        hot_keys: Some(8),
    },
];

/// A small, fast generator (xorshift*), so key generation stays off the profile.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn run(mix: Mix, threads: usize, ops_per_thread: u64, key_space: u64) -> Duration {
    let map: HashMap<u64, u64> = HashMap::new();
    let prefill = if mix.prefill { key_space / 2 } else { 0 };
    {
        let m = map.pin();
        for k in 0..prefill {
            m.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k);
        }
    }
    let sum_before: u64 = map.pin().values().sum();
    // Keys added and taken away, and updates made, by all threads: what the map must show after.
    let (added, updated) = (AtomicI64::new(0), AtomicI64::new(0));
    // The shared timing (each worker reads its own clock), as the comparison runner uses.
    let elapsed = workloads::timed_threads(threads, |t| {
        let mut rng = Rng(0x1234_5678 + t as u64 * 0x9E37_79B9);
        let (mut add, mut update) = (0i64, 0i64);
        let mut done = 0;
        while done < ops_per_thread {
            let m = map.pin();
            for _ in 0..64 {
                let r = rng.next();
                // The dice from the low 16 bits, the key from the rest, as the runner's mixes.
                let key = match mix.hot_keys {
                    Some(hot) => (r >> 16) % hot,
                    None => (r >> 16) % key_space,
                }
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let dice = (r & 0xFFFF) as u32 % 100;
                if dice < mix.read {
                    std::hint::black_box(m.get(&key));
                } else if dice < mix.read + mix.insert {
                    add += i64::from(m.insert(key, r).is_none());
                } else if dice < mix.read + mix.insert + mix.remove {
                    add -= i64::from(m.remove(&key).is_some());
                } else if m.update(&key, |v| v + 1).is_some() {
                    update += 1;
                } else {
                    add += i64::from(m.try_insert(key, 0).is_ok());
                }
            }
            done += 64;
        }
        added.fetch_add(add, Ordering::Relaxed);
        updated.fetch_add(update, Ordering::Relaxed);
    });
    let added = added.load(Ordering::Relaxed);
    assert_eq!(
        map.len() as i64,
        prefill as i64 + added,
        "{}: the length against the inserts and removals that succeeded",
        mix.name
    );
    if mix.hot_keys.is_some() {
        // No inserts or removals: every write was an update of a prefilled key, adding one.
        assert_eq!(added, 0, "{}: a hot key went missing", mix.name);
        let sum_after: u64 = map.pin().values().sum();
        assert_eq!(
            sum_after - sum_before,
            updated.load(Ordering::Relaxed) as u64,
            "{}: the values against the updates made",
            mix.name
        );
    }
    elapsed
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads: Vec<usize> = arg("--threads").map_or_else(
        || {
            [1, 2, 4]
                .into_iter()
                .chain((cores > 4).then_some(cores))
                .collect()
        },
        |s| {
            s.split(',')
                .map(|t| t.parse().expect("--threads 1,2,4"))
                .collect()
        },
    );
    let total_ops: u64 = arg("--ops").map_or(2_000_000, |s| s.parse().expect("--ops N"));
    let key_space = 1 << 16;
    println!("lockfree-map under contention: {total_ops} operations per run, {cores} cores");
    println!("{:<12} {:>8} {:>12}", "workload", "threads", "Mops/s");
    for &mix in MIXES {
        for &t in &threads {
            let per_thread = total_ops / t as u64;
            let elapsed = run(mix, t, per_thread, key_space);
            let mops = (per_thread * t as u64) as f64 / elapsed.as_secs_f64() / 1e6;
            println!("{:<12} {:>8} {:>12.1}", mix.name, t, mops);
        }
    }
}
