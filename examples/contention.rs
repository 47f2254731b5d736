//! Runs lockfree-map under multithreaded contention and prints throughput per workload.
//!
//! `cargo run --release --example contention [-- --threads 1,2,4 --ops 2000000]`
//!
//! Workloads (the mixes conc-map-bench uses, u64 keys, one pin per batch of 64 operations):
//! read-heavy 98/1/1 get/insert/remove, exchange 10/40/40/10 get/insert/remove/update,
//! rapid-grow 5/80/5/10 starting empty, and hot-key (every thread updates 8 keys).
//! This is a quick look at our own map; the side-by-side comparison with the peer maps is the
//! benchmark runner's job.

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
    if mix.prefill {
        let m = map.pin();
        for k in 0..key_space / 2 {
            m.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), k);
        }
    }
    // The shared timing (each worker reads its own clock), as the comparison runner uses.
    workloads::timed_threads(threads, |t| {
        let mut rng = Rng(0x1234_5678 + t as u64 * 0x9E37_79B9);
        let mut done = 0;
        while done < ops_per_thread {
            let m = map.pin();
            for _ in 0..64 {
                let r = rng.next();
                let key = match mix.hot_keys {
                    Some(hot) => r % hot,
                    None => (r >> 8) % key_space,
                }
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let dice = (r & 0x7F) as u32 % 100;
                if dice < mix.read {
                    std::hint::black_box(m.get(&key));
                } else if dice < mix.read + mix.insert {
                    m.insert(key, r);
                } else if dice < mix.read + mix.insert + mix.remove {
                    m.remove(&key);
                } else if m.update(&key, |v| v + 1).is_none() {
                    m.get_or_insert(key, 0);
                }
            }
            done += 64;
        }
    })
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
