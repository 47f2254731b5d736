//! A table made large up front costs address space, not memory, until entries arrive: a
//! `with_capacity` sized for the worst case must not make the process resident for all of it.
//! Its own test binary, so no other test allocates while the resident size is read.

/// This process's resident set, in KiB (Linux's `/proc/self/status`).
#[cfg(target_os = "linux")]
fn resident_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB")
}

#[cfg(target_os = "linux")]
#[test]
fn a_large_capacity_is_not_resident_until_used() {
    const CAPACITY: usize = 8 << 20;
    let before = resident_kib();
    let map: lockfree_map::HashMap<u64, u64> = lockfree_map::HashMap::with_capacity(CAPACITY);
    let grown = resident_kib().saturating_sub(before);
    // The table for 8Mi entries is 128 MiB of groups; std's `alloc_zeroed` at the groups' 64-byte
    // alignment wrote all of it (the bug this guards against). A few pages are the header's.
    assert!(
        grown < 8 * 1024,
        "with_capacity({CAPACITY}) made {grown} KiB resident"
    );
    assert!(map.capacity() >= CAPACITY);
    // The lazily mapped table works like any other: the entries land, spread over it.
    let m = map.pin();
    for k in 0..10_000u64 {
        m.insert(k, k * 2);
    }
    assert_eq!(m.len(), 10_000);
    assert!((0..10_000u64).all(|k| m.get(&k) == Some(&(k * 2))));
    assert_eq!(m.get(&10_000), None);
}
