//! A shared configuration store: one writer thread reloads settings every millisecond while
//! reader threads look them up continuously, never blocking and never seeing a torn setting.
//!
//! `cargo run --release --example config_store`
//!
//! Each reload writes a whole `Config` (four words, stored by value in the map's entry) per
//! service under its name; readers get either the old or the new one, each internally
//! consistent. It prints the reads done during the reloads and checks that every reader read
//! during them, that every read saw a consistent config, and that versions never went
//! backwards. (Until stop 50 the map held an `Arc<Config>`, one word, whose config was built
//! before it was published, so no tearing of the map's value could show; and a reader that
//! first ran after the reloads passed having read nothing.)

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lockfree_map::HashMap;

/// One service's settings; `checksum` ties the fields together, so a torn read would show.
#[derive(Debug)]
struct Config {
    version: u64,
    timeout_ms: u64,
    retries: u64,
    checksum: u64,
}

impl Config {
    fn new(version: u64, service: u64) -> Self {
        let (timeout_ms, retries) = (100 + version % 900, service + version % 5);
        Config {
            version,
            timeout_ms,
            retries,
            checksum: version ^ timeout_ms.rotate_left(17) ^ retries.rotate_left(41),
        }
    }

    fn consistent(&self) -> bool {
        self.checksum
            == self.version ^ self.timeout_ms.rotate_left(17) ^ self.retries.rotate_left(41)
    }
}

fn main() {
    const SERVICES: u64 = 64;
    const READERS: usize = 3;
    let run_for = Duration::from_millis(700);

    let store: HashMap<String, Config> = HashMap::new();
    let names: Vec<String> = (0..SERVICES).map(|s| format!("service-{s}")).collect();
    for (s, name) in names.iter().enumerate() {
        store.pin().insert(name.clone(), Config::new(0, s as u64));
    }

    let done = AtomicBool::new(false);
    // Readers that have read a first batch: the reloads go on until every reader has, so that a
    // reader the scheduler starts late still reads during them.
    let started = AtomicUsize::new(0);
    let reloads = AtomicU64::new(0);
    let start = Instant::now();
    let reads: Vec<u64> = std::thread::scope(|s| {
        // The writer: a reload replaces every service's config with the next version.
        s.spawn(|| {
            let mut version = 0;
            while start.elapsed() < run_for || started.load(Ordering::Acquire) < READERS {
                version += 1;
                let m = store.pin();
                for (s, name) in names.iter().enumerate() {
                    m.insert(name.clone(), Config::new(version, s as u64));
                }
                drop(m);
                reloads.store(version, Ordering::Release);
                std::thread::sleep(Duration::from_millis(1));
            }
            done.store(true, Ordering::Release);
        });
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (store, names, done, started) = (&store, &names, &done, &started);
                s.spawn(move || {
                    let mut last_seen = vec![0u64; names.len()];
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let m = store.pin();
                        for _ in 0..256 {
                            let s = (reads as usize * 7 + r) % names.len();
                            // Lookup by &str: no allocation on the read path.
                            let config = m.get(names[s].as_str()).expect("a service vanished");
                            assert!(config.consistent(), "torn config: {config:?}");
                            assert!(config.version >= last_seen[s], "a version went backwards");
                            last_seen[s] = config.version;
                            reads += 1;
                        }
                        if reads == 256 {
                            started.fetch_add(1, Ordering::Release);
                        }
                    }
                    reads
                })
            })
            .collect();
        readers.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let total: u64 = reads.iter().sum();
    println!(
        "{} reloads of {SERVICES} services in {:.2?}; {READERS} readers did {total} reads ({:.1} M/s)",
        reloads.load(Ordering::Acquire),
        start.elapsed(),
        total as f64 / start.elapsed().as_secs_f64() / 1e6
    );
    assert!(
        reads.iter().all(|&r| r > 0),
        "every reader read during the reloads: {reads:?}"
    );
    let m = store.pin();
    let latest = reloads.load(Ordering::Acquire);
    assert!(names
        .iter()
        .all(|n| m.get(n.as_str()).unwrap().version == latest));
    println!("every read was consistent and versions only moved forward: ok");
}
