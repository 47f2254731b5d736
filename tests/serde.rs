//! The `serde` feature: round trips through JSON, duplicate keys, bad input.
//! Run with `cargo test --all-features` (or `--features serde`).
#![cfg(feature = "serde")]

use std::collections::BTreeMap;

use lockfree_map::HashMap;

#[test]
fn round_trip_through_json() {
    let map: HashMap<String, Vec<u32>> = (0..500)
        .map(|i| (format!("key {i}"), vec![i, i * 2]))
        .collect();
    let json = serde_json::to_string(&map).unwrap();
    let back: HashMap<String, Vec<u32>> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, map);
    assert_eq!(back.len(), 500);
    assert_eq!(back.get_cloned("key 7"), Some(vec![7, 14]));
    // Sized for the input (a `Value` tells its length; the text above does not), which is no
    // floor: cleared, it is a new map's size.
    let sized: HashMap<String, Vec<u32>> =
        serde_json::from_value(serde_json::to_value(&map).unwrap()).unwrap();
    assert_eq!(sized, map);
    assert!(sized.capacity() >= 500);
    sized.clear(&sized.guard());
    assert_eq!(
        sized.capacity(),
        HashMap::<String, Vec<u32>>::new().capacity()
    );
}

#[test]
fn serializes_like_std_maps() {
    let map: HashMap<u32, &str> = [(1, "one"), (2, "two")].into_iter().collect();
    // Through a Value, so the comparison ignores the (unspecified) order of entries.
    let ours = serde_json::to_value(&map).unwrap();
    let std_map: BTreeMap<u32, &str> = [(1, "one"), (2, "two")].into_iter().collect();
    assert_eq!(ours, serde_json::to_value(std_map).unwrap());
    let empty: HashMap<u8, u8> = HashMap::new();
    assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    let map: HashMap<String, u32> = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
    assert_eq!(map.len(), 1);
    assert_eq!(map.get_cloned("a"), Some(2));
}

/// Malformed input is an error, and one of the wrong shape says what was expected (the
/// visitors' `expecting`, which no test read before the mutation run of stop 46).
#[test]
fn bad_input_is_an_error() {
    let wrong_shape = serde_json::from_str::<HashMap<String, u32>>("[1, 2]").unwrap_err();
    assert!(
        wrong_shape.to_string().contains("expected a map"),
        "{wrong_shape}"
    );
    let wrong_shape = serde_json::from_str::<lockfree_map::HashSet<u32>>("7").unwrap_err();
    assert!(
        wrong_shape.to_string().contains("expected a sequence"),
        "{wrong_shape}"
    );
    assert!(serde_json::from_str::<HashMap<String, u32>>(r#"{"a": "x"}"#).is_err());
    assert!(serde_json::from_str::<HashMap<String, u32>>(r#"{"a": 1"#).is_err());
}

#[test]
fn serializing_during_concurrent_writes_writes_a_well_formed_map() {
    let map: HashMap<u64, u64> = (0..1_000).map(|k| (k, k)).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let m = map.pin();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                m.insert(10_000 + i % 5_000, i);
                m.remove(&(10_000 + (i + 2_500) % 5_000));
                i += 1;
            }
        });
        for _ in 0..20 {
            let json = serde_json::to_string(&map).unwrap();
            let back: std::collections::HashMap<u64, u64> = serde_json::from_str(&json).unwrap();
            // Every stable key is there with its value.
            assert!((0..1_000).all(|k| back.get(&k) == Some(&k)));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn sets_round_trip_as_sequences() {
    use lockfree_map::HashSet;

    let set: HashSet<String> = (0..300).map(|i| format!("value {i}")).collect();
    let json = serde_json::to_string(&set).unwrap();
    // A sequence, as `std`'s sets serialize.
    let as_std: std::collections::HashSet<String> = serde_json::from_str(&json).unwrap();
    assert_eq!(as_std.len(), 300);
    let back: HashSet<String> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, set);
    let sized: HashSet<String> =
        serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
    assert_eq!(sized, set);
    sized.clear(&sized.guard());
    assert_eq!(sized.capacity(), HashSet::<String>::new().capacity());
    assert_eq!(serde_json::to_string(&HashSet::<u8>::new()).unwrap(), "[]");
    // Duplicates collapse; the wrong shape is an error.
    let dup: HashSet<u32> = serde_json::from_str("[1, 1, 2]").unwrap();
    assert_eq!(dup.len(), 2);
    assert!(serde_json::from_str::<HashSet<u32>>(r#"{"a": 1}"#).is_err());
    assert!(serde_json::from_str::<HashSet<u32>>(r#"[1, "x"]"#).is_err());
}
