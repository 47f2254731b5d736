use lockfree_map::HashMap;
#[test]
fn smoke() {
    let m = HashMap::new();
    let g = m.guard();
    for i in 0..100_000u64 { assert_eq!(m.insert(i, i * 2, &g), None); }
    assert_eq!(m.len(), 100_000);
    for i in 0..100_000u64 { assert_eq!(m.get(&i, &g), Some(&(i * 2)), "key {i}"); }
    for i in (0..100_000u64).step_by(2) { assert_eq!(m.remove(&i, &g), Some(&(i * 2))); }
    assert_eq!(m.len(), 50_000);
    for i in 0..100_000u64 { assert_eq!(m.get(&i, &g).is_some(), i % 2 == 1); }
    assert_eq!(m.iter(&g).count(), 50_000);
    for i in 0..100_000u64 { m.remove(&i, &g); }
    assert_eq!(m.len(), 0);
    println!("capacity after emptying: {}", m.capacity());
}
#[test]
fn smoke_mt() {
    let m = HashMap::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = &m;
            s.spawn(move || {
                let g = m.guard();
                for i in 0..50_000u64 { m.insert(t * 1_000_000 + i, i, &g); }
                for i in 0..50_000u64 { assert_eq!(m.get(&(t * 1_000_000 + i), &g), Some(&i)); }
                for i in 0..20_000u64 { m.update(u64::MAX, |v| v + 1, &g).or_else(|| { m.get_or_insert(u64::MAX, 0, &g); None }); let _ = i; }
            });
        }
    });
    assert_eq!(m.len(), 200_001);
}
