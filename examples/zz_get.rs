// scratch, not committed
use std::hash::{BuildHasher, Hasher};
#[derive(Clone, Default)]
struct Fixed;
struct FixedHasher(u64);
impl Hasher for FixedHasher {
    fn finish(&self) -> u64 { (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) }
    fn write(&mut self, _: &[u8]) { unreachable!() }
    fn write_u64(&mut self, n: u64) { self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15); }
}
impl BuildHasher for Fixed { type Hasher = FixedHasher; fn build_hasher(&self) -> FixedHasher { FixedHasher(0) } }

#[inline(never)]
fn ours(m: &lockfree_map::MapRef<'_, u64, u64, Fixed>, k: u64) -> u64 { m.get(&k).copied().unwrap_or(0) }
#[inline(never)]
fn pap(m: &papaya::HashMapRef<'_, u64, u64, Fixed, papaya::LocalGuard<'_>>, k: u64) -> u64 { m.get(&k).copied().unwrap_or(0) }

fn main() {
    const N: u64 = 1 << 16;
    let which = std::env::args().nth(1).unwrap_or("ours".into());
    let mut sum = 0;
    if which == "ours" {
        let map: lockfree_map::HashMap<u64, u64, Fixed> = lockfree_map::HashMap::with_hasher(Fixed);
        { let m = map.pin(); for k in 0..N { m.insert(k, k); } }
        let mut m = map.pin();
        for i in 0..4_000_000u64 { sum += ours(&m, (i * 7919) % N); if i % 64 == 0 { m.repin(); } }
    } else {
        let map: papaya::HashMap<u64, u64, Fixed> = papaya::HashMap::with_hasher(Fixed);
        { let m = map.pin(); for k in 0..N { m.insert(k, k); } }
        for c in 0..(4_000_000u64 / 64) { let m = map.pin(); for j in 0..64 { let i = c * 64 + j; sum += pap(&m, (i * 7919) % N); } }
    }
    println!("{sum}");
}
