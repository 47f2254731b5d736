//! Instructions an operation for lockfree-map and its peers on the same single-threaded,
//! cache-resident mixes, counted by callgrind in the measured loop alone:
//!
//! ```text
//! cargo build --release --example peer_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*measured*' \
//!     target/release/examples/peer_instructions MAP MIX
//! ```
//!
//! `MAP` is `lockfree-map`, `papaya`, `scc` or `dashmap`; `MIX` is `exchange` (1M operations of
//! bustle's get/insert/remove/update mix, in sixteenths 12.5/37.5/37.5/12.5 rather than its
//! 10/40/40/10, on 64Ki `u64` keys, 3/4 prefilled), `read-heavy` (98/1/1 in 128ths) or `hot-key`
//! (1M updates spread over 8 of those keys). An optional third argument sets the key space (at
//! least 8; 64Ki unless given), for example the runner's 1Mi with callgrind's cache simulation
//! (`--cache-sim=yes --LL=33554432,16,64`) to count each map's misses an operation at the size
//! where its footprint outgrows the last level. The total "Collected" count divided by 1M is the
//! map's instructions an operation, including the loop's own (about 10). The pins (once per 64
//! operations) and their ends are counted with their batch: seize, papaya's reclamation, frees a
//! thread's retired entries when its guard drops, so a count without the drop left papaya's
//! frees out (until stop 47). The prefill and the map's drop are not counted.
//!
//! Wall time says how fast; this says how much work, exactly and repeatably, on a machine too
//! noisy to time small differences: it shows how much of a gap on a cache-resident mix is
//! instructions (`BENCHMARKS.md`, next steps).

use lockfree_map::MapRef;

#[path = "shared/fixed.rs"]
mod fixed;
use fixed::Fixed;

/// The operations of the mixes, on a handle that may hold a guard for a batch.
trait Ops {
    fn get(&self, k: u64) -> bool;
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64) -> bool;
    fn update(&self, k: u64) -> bool;
}

impl<M: Ops> Ops for &M {
    #[inline]
    fn get(&self, k: u64) -> bool {
        (**self).get(k)
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        (**self).insert(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        (**self).remove(k)
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        (**self).update(k)
    }
}

impl Ops for MapRef<'_, u64, u64, Fixed> {
    #[inline]
    fn get(&self, k: u64) -> bool {
        MapRef::get(self, &k).is_some()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        MapRef::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        MapRef::remove(self, &k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        MapRef::update(self, &k, |v| v + 1).is_some()
    }
}

impl Ops for papaya::HashMapRef<'_, u64, u64, Fixed, papaya::LocalGuard<'_>> {
    #[inline]
    fn get(&self, k: u64) -> bool {
        papaya::HashMapRef::get(self, &k).is_some()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        papaya::HashMapRef::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        papaya::HashMapRef::remove(self, &k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        papaya::HashMapRef::update(self, k, |v| v + 1).is_some()
    }
}

impl Ops for scc::HashMap<u64, u64, Fixed> {
    #[inline]
    fn get(&self, k: u64) -> bool {
        self.read_sync(&k, |_, _| ()).is_some()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        self.upsert_sync(k, v);
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        self.remove_sync(&k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        self.update_sync(&k, |_, v| *v += 1).is_some()
    }
}

impl Ops for dashmap::DashMap<u64, u64, Fixed> {
    #[inline]
    fn get(&self, k: u64) -> bool {
        dashmap::DashMap::get(self, &k).is_some()
    }
    #[inline]
    fn insert(&self, k: u64, v: u64) {
        dashmap::DashMap::insert(self, k, v);
    }
    #[inline]
    fn remove(&self, k: u64) -> bool {
        dashmap::DashMap::remove(self, &k).is_some()
    }
    #[inline]
    fn update(&self, k: u64) -> bool {
        match dashmap::DashMap::get_mut(self, &k) {
            Some(mut v) => {
                *v += 1;
                true
            }
            None => false,
        }
    }
}

/// The key space unless the command line names another.
const KEYS: u64 = 1 << 16;
const OPS: u64 = 1_000_000;
/// Operations between two pins, as in the runner (`benches/workloads`).
const BATCH: u64 = 64;

/// The mixes.
#[derive(Clone, Copy, PartialEq)]
enum Mix {
    Exchange,
    ReadHeavy,
    HotKey,
}

/// One batch, counted (callgrind's `--toggle-collect=*measured*`, which a nested match would
/// toggle off again: the loop is `ops`): a handle `handle` makes (a pin), its `n` operations
/// from the `start`-th, and the handle's drop (an unpin, where seize frees).
#[inline(never)]
fn measured<H: Ops>(
    handle: &mut impl FnMut() -> H,
    mix: Mix,
    keys: u64,
    start: u64,
    n: u64,
) -> u64 {
    let m = handle();
    let hits = ops(&m, mix, keys, start, n);
    drop(m);
    hits
}

/// `n` operations from the `start`-th, on keys and a mix drawn by a xorshift generator, as
/// `examples/hotpath.rs` does.
#[inline(always)]
fn ops(m: &impl Ops, mix: Mix, keys: u64, start: u64, n: u64) -> u64 {
    let mut x = 0x853C_49E6_748F_EA9B ^ start;
    let mut hits = 0;
    for i in start..start + n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % keys;
        match mix {
            Mix::HotKey => hits += u64::from(m.update(k % 8)),
            Mix::Exchange => match x >> 60 {
                0..=1 => hits += u64::from(m.get(k)),
                2..=7 => m.insert(k, i),
                8..=13 => hits += u64::from(m.remove(k)),
                _ => hits += u64::from(m.update(k)),
            },
            // 98 / 1 / 1 in 128ths: 126 gets, one insert, one remove.
            Mix::ReadHeavy => match x >> 57 {
                0 => m.insert(k, i),
                1 => hits += u64::from(m.remove(k)),
                _ => hits += u64::from(m.get(k)),
            },
        }
    }
    hits
}

/// Runs the mix in batches, each on a handle `handle` makes (a pin, for the maps with guards).
fn run<H: Ops>(mix: Mix, keys: u64, mut handle: impl FnMut() -> H) -> u64 {
    let mut hits = 0;
    let mut i = 0;
    while i < OPS {
        hits += measured(&mut handle, mix, keys, i, BATCH);
        i += BATCH;
    }
    hits
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: peer_instructions lockfree-map|papaya|scc|dashmap \
                 exchange|read-heavy|hot-key [KEYS]";
    let (Some(map), Some(mix)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let which = match mix.as_str() {
        "exchange" => Mix::Exchange,
        "read-heavy" => Mix::ReadHeavy,
        "hot-key" => Mix::HotKey,
        _ => {
            eprintln!("unknown mix {mix:?}; {usage}");
            std::process::exit(2);
        }
    };
    let keys = match args.get(2).map(|k| k.parse::<u64>()) {
        None => KEYS,
        Some(Ok(k)) if k >= 8 => k,
        Some(_) => {
            eprintln!("KEYS must be a whole number of at least 8; {usage}");
            std::process::exit(2);
        }
    };
    let cap = keys as usize;
    let prefill = 0..keys * 3 / 4;
    let hits = match map.as_str() {
        "lockfree-map" => {
            let m = lockfree_map::HashMap::with_capacity_and_hasher(cap, Fixed);
            let r = m.pin();
            prefill.for_each(|k| {
                r.insert(k, k);
            });
            drop(r);
            run(which, keys, || m.pin())
        }
        "papaya" => {
            let m = papaya::HashMap::with_capacity_and_hasher(cap, Fixed);
            let r = m.pin();
            prefill.for_each(|k| {
                r.insert(k, k);
            });
            drop(r);
            run(which, keys, || m.pin())
        }
        "scc" => {
            let m = scc::HashMap::with_capacity_and_hasher(cap, Fixed);
            prefill.for_each(|k| {
                m.upsert_sync(k, k);
            });
            run(which, keys, || &m)
        }
        "dashmap" => {
            let m = dashmap::DashMap::with_capacity_and_hasher(cap, Fixed);
            prefill.for_each(|k| {
                m.insert(k, k);
            });
            run(which, keys, || &m)
        }
        _ => {
            eprintln!("unknown map {map:?}; {usage}");
            std::process::exit(2);
        }
    };
    println!("{map} {mix}: {OPS} operations, {hits} hits");
}
