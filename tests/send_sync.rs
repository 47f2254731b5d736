//! `HashMap` is `Send` and `Sync` exactly when that is sound.

use std::cell::Cell;
use std::rc::Rc;

use lockfree_map::{HashMap, HashSet};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn send_and_sync_for_thread_safe_contents() {
    assert_send::<HashMap<u64, String>>();
    assert_sync::<HashMap<u64, String>>();
    assert_send::<HashMap<String, Vec<u8>>>();
    assert_sync::<HashMap<String, std::sync::Arc<u8>>>();
    // A `Cell` value may move between threads but not be shared: the map is `Send`, not `Sync`.
    assert_send::<HashMap<u64, Cell<u8>>>();
    // A set is a map of `()` values: the same rules for its values.
    assert_send::<HashSet<String>>();
    assert_sync::<HashSet<std::sync::Arc<str>>>();
    assert_send::<HashSet<Cell<u8>>>();
    assert_send::<lockfree_map::set::IntoIter<String>>();
    // The owning iterators own what the map owned.
    assert_send::<lockfree_map::IntoKeys<String, Cell<u8>>>();
    assert_send::<lockfree_map::IntoValues<String, Vec<u8>>>();
    assert_sync::<lockfree_map::IntoValues<String, Vec<u8>>>();
    // The `&mut` iterators, as `std`'s: moving one moves `&K` and `&mut V` (a `Cell` value may
    // be sent, not shared).
    assert_send::<lockfree_map::IterMut<'static, String, Cell<u8>>>();
    assert_sync::<lockfree_map::IterMut<'static, String, Vec<u8>>>();
    assert_send::<lockfree_map::ValuesMut<'static, u64, Cell<u8>>>();
    // The owning parallel iterators own what the map owned, as `IntoIter` does.
    #[cfg(feature = "rayon")]
    {
        assert_send::<lockfree_map::IntoParIter<String, Cell<u8>>>();
        assert_send::<lockfree_map::set::IntoParIter<String>>();
    }
}

/// Compile-time checks that the map is not `Send`/`Sync` with unsafe contents live in the crate
/// docs as `compile_fail` doctests; this one only checks such maps still work on one thread.
#[test]
fn non_send_contents_work_on_one_thread() {
    let map: HashMap<u8, Rc<u8>> = HashMap::new();
    let _ = map.len();
}
