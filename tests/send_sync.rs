//! `HashMap` is `Send` and `Sync` exactly when that is sound: each type is checked to have the
//! auto traits it should (`assert_send`, `assert_sync`) and to lack those it must not have
//! (`assert_not_impl_any!`, which fails to compile if the type has any of them).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::rc::Rc;
use std::sync::MutexGuard;

use lockfree_map::{Collector, Guard, HashMap, HashSet, MapRef, SetRef};
use static_assertions::assert_not_impl_any;

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

/// A hasher that may not leave its thread.
#[derive(Default)]
struct LocalHasher(std::marker::PhantomData<Rc<()>>);

impl std::hash::BuildHasher for LocalHasher {
    type Hasher = std::collections::hash_map::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        Self::Hasher::default()
    }
}

/// A hasher that may move between threads but not be shared.
#[derive(Default)]
struct CellHasher(std::marker::PhantomData<Cell<u8>>);

impl std::hash::BuildHasher for CellHasher {
    type Hasher = std::collections::hash_map::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        Self::Hasher::default()
    }
}

// What must not be shared or sent (until stop 51 only two such cases were checked, as doctests
// that pass on any compile error; a review of the auto traits listed the rest).
// A map is shared by readers on every thread and may drop an entry on another: `Sync` needs its
// keys and values `Send + Sync` and its hasher `Sync`.
assert_not_impl_any!(HashMap<Cell<u8>, u8>: Sync);
assert_not_impl_any!(HashMap<u8, Cell<u8>>: Sync);
assert_not_impl_any!(HashMap<u8, u8, CellHasher>: Sync);
assert_not_impl_any!(HashMap<u8, Rc<u8>>: Send, Sync);
assert_not_impl_any!(HashMap<Rc<u8>, u8>: Send, Sync);
assert_not_impl_any!(HashMap<u8, u8, LocalHasher>: Send, Sync);
// `Sync` but not `Send` contents: a map would drop them wherever it frees the entry.
assert_not_impl_any!(HashMap<u8, MutexGuard<'static, u8>>: Send, Sync);
assert_not_impl_any!(HashSet<Cell<u8>>: Sync);
assert_not_impl_any!(HashSet<Rc<u8>>: Send, Sync);
assert_not_impl_any!(HashSet<u8, LocalHasher>: Send, Sync);
// A guard pins its own thread: neither it nor a handle holding one leaves it.
assert_not_impl_any!(Guard: Send, Sync);
assert_not_impl_any!(MapRef<'static, u8, u8, RandomState>: Send, Sync);
assert_not_impl_any!(SetRef<'static, u8, RandomState>: Send, Sync);
// Borrowing iterators hold the guard's borrow: they stay on its thread.
assert_not_impl_any!(lockfree_map::Iter<'static, u8, u8>: Send, Sync);
assert_not_impl_any!(lockfree_map::Keys<'static, u8, u8>: Send, Sync);
assert_not_impl_any!(lockfree_map::Values<'static, u8, u8>: Send, Sync);
assert_not_impl_any!(lockfree_map::set::Iter<'static, u8>: Send, Sync);
assert_not_impl_any!(lockfree_map::set::Difference<'static, u8, RandomState>: Send, Sync);
assert_not_impl_any!(lockfree_map::set::Union<'static, u8, RandomState>: Send, Sync);
// The `&mut` iterators move `&K` and `&mut V`, as `std`'s: `K: Sync`, `V: Send`.
assert_not_impl_any!(lockfree_map::IterMut<'static, Cell<u8>, u8>: Send);
assert_not_impl_any!(lockfree_map::IterMut<'static, u8, Rc<u8>>: Send);
assert_not_impl_any!(lockfree_map::ValuesMut<'static, u8, Rc<u8>>: Send);
// The owning iterators own what the map owned.
assert_not_impl_any!(lockfree_map::IntoIter<u8, Rc<u8>>: Send);
assert_not_impl_any!(lockfree_map::IntoKeys<Rc<u8>, u8>: Send);
assert_not_impl_any!(lockfree_map::IntoValues<u8, Rc<u8>>: Send);
assert_not_impl_any!(lockfree_map::set::IntoIter<Rc<u8>>: Send);
#[cfg(feature = "rayon")]
mod parallel {
    use super::*;
    assert_not_impl_any!(lockfree_map::IntoParIter<u8, Rc<u8>>: Send);
    assert_not_impl_any!(lockfree_map::set::IntoParIter<Rc<u8>>: Send);
}

#[test]
fn collectors_are_shared_between_threads() {
    // Every map of a private collector, on any thread, pins it.
    assert_send::<Collector>();
    assert_sync::<Collector>();
}

/// A map of contents that may not leave their thread can be made and dropped on it, but nothing
/// can be inserted, nor looked up: the operations need `Send` keys and values (another thread
/// may free them). What this test checks is that making and dropping one needs no more; the
/// operations' bound is a `compile_fail` doctest in the crate docs. (Until stop 51 this test
/// was named as if such maps worked on one thread.)
#[test]
fn non_send_contents_make_a_map_nothing_can_be_inserted_into() {
    let map: HashMap<u8, Rc<u8>> = HashMap::new();
    assert_eq!(map.len(), 0);
    assert!(map.is_empty());
}
