//! A value whose `Drop` panics must not make the map leak the other values retired with it.
//!
//! Retired entries are freed in batches (`src/reclaim.rs`), on whichever thread collects; the
//! panic surfaces there. This file holds one test on the global collector so that no other
//! test's thread, sharing that collector, can be the one that collects the panicking value; the
//! others use private collectors, or run in a child process of their own (under Miri, which
//! cannot spawn one, `scripts/miri.sh` runs this file's tests one at a time).

use std::collections::hash_map::RandomState;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::DropBomb as Bomb;
use lockfree_map::{Collector, HashMap};

#[test]
fn a_panicking_drop_frees_the_rest_of_its_batch_and_the_map_stays_usable() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map = HashMap::new();
    {
        let m = map.pin();
        // Fewer than one batch, removed on this thread: they are freed together.
        for k in 0..100u64 {
            m.insert(k, Bomb::new(k, &live, k == 50));
        }
        for k in 0..100u64 {
            assert!(m.remove(&k).is_some());
        }
    }
    // The panic comes out of whichever flush collects the batch.
    assert_eq!(flush_until_freed(&live, || map.guard().flush()), 1);
    // The map still works, and its later retirements are still freed.
    still_works(&map, &live);
    assert_eq!(flush_until_freed(&live, || map.guard().flush()), 0);
}

/// Flushes through `flush` until every value `live` counts is dropped (a minute at most), checks
/// that none is left, and returns how many of the flushes panicked.
fn flush_until_freed(live: &AtomicUsize, flush: impl Fn()) -> usize {
    let mut panics = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
        if catch_unwind(AssertUnwindSafe(&flush)).is_err() {
            panics += 1;
        }
        std::thread::yield_now();
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "values leaked after a panicking drop"
    );
    panics
}

/// After a panicking drop, `map` still takes a value and removes it.
fn still_works(map: &HashMap<u64, Bomb>, live: &Arc<AtomicUsize>) {
    let m = map.pin();
    m.insert(1, Bomb::new(1, live, false));
    assert!(m.remove(&1).is_some());
    assert!(m.is_empty());
}

/// A map on a private collector, with `n` values inserted and removed on this thread (the value
/// of key `bomb` panics when dropped), none of them collected yet: every guard is gone.
fn private_map_with_removed(live: &Arc<AtomicUsize>, n: u64, bomb: u64) -> HashMap<u64, Bomb> {
    let map = HashMap::with_collector(0, RandomState::new(), Collector::new());
    let m = map.pin();
    for k in 0..n {
        m.insert(k, Bomb::new(k, live, k == bomb));
    }
    for k in 0..n {
        assert!(m.remove(&k).is_some());
    }
    drop(m);
    map
}

/// A private collector retires each entry as a closure of its own, up to 64 in one of
/// crossbeam's bags, which calls them in a loop with no guard against unwinding: the panic of
/// the bomb, early in its bag, used to leak the rest of the bag.
#[test]
fn a_panicking_drop_under_a_private_collector_frees_the_rest_of_its_bag() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map = private_map_with_removed(&live, 100, 5);
    // The panic comes out of whichever pin or flush collects the bag, once crossbeam has run
    // the rest of it.
    assert_eq!(flush_until_freed(&live, || map.guard().flush()), 1);
    still_works(&map, &live);
    drop(map);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the last drop freed the rest"
    );
}

/// The last drop of a private collector (here the map's, with every guard gone) runs every
/// retirement left: crossbeam drops its queue's bags in a loop with no guard against unwinding,
/// so the bomb's panic used to leak the rest of its bag and every bag after it. Now they are all
/// freed, and then the panic comes out of the map's drop.
#[test]
fn a_private_collectors_last_drop_frees_everything_despite_a_panicking_drop() {
    common::no_panic_backtraces_under_miri();
    let live = Arc::new(AtomicUsize::new(0));
    let map = private_map_with_removed(&live, 200, 5);
    assert_eq!(
        live.load(Ordering::SeqCst),
        200,
        "nothing was collected yet"
    );
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(map)));
    assert!(dropped.is_err(), "the value's panic is resumed");
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "values leaked after a panicking drop"
    );
}

/// Set in the child process of
/// [`a_panicking_drop_met_by_an_exiting_thread_does_not_abort_the_process`].
const CHILD: &str = "LOCKFREE_MAP_TEST_EXITING_THREADS_CHILD";

/// A thread that exits with retirements in its batch hands them to crossbeam from a thread-local's
/// destructor, and the pin and flush there collect: they may run another thread's retired value
/// whose `Drop` panics. A panic out of a thread-local's destructor aborts the process, so it must
/// be caught there. Run in a child process, which an abort kills without taking the test
/// harness with it.
#[test]
fn a_panicking_drop_met_by_an_exiting_thread_does_not_abort_the_process() {
    common::no_panic_backtraces_under_miri();
    const NAME: &str = "a_panicking_drop_met_by_an_exiting_thread_does_not_abort_the_process";
    if std::env::var_os(CHILD).is_some() {
        exiting_threads_meet_panicking_drops(10);
        return;
    }
    passes_in_a_child(NAME, CHILD);
}

/// Runs the test `name` alone in a child process of this test binary, with `marker` set in its
/// environment (so that it runs its case rather than spawn another), and asserts that it passed:
/// an abort there kills the child, not the test harness.
fn passes_in_a_child(name: &str, marker: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(marker, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each round retires a value whose `Drop` panics and hands it to crossbeam under a guard that
/// stays pinned while a second thread pins, writes and so leaves one retirement in its batch:
/// that pin's collection cannot move the epoch far enough to free the value. The guard then
/// goes, and the thread exits; its thread-local's destructor hands its batch on and flushes, and
/// that flush's collection frees the value (or, should it not, a later thread's does).
fn exiting_threads_meet_panicking_drops(rounds: u64) {
    use std::sync::mpsc::channel;
    let bombs = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, Bomb> = HashMap::new();
    let leave_one_retirement = |key: u64| {
        let m = map.pin();
        m.insert(key, Bomb::new(key, &others, false));
        assert!(m.remove(&key).is_some());
    };
    for round in 0..rounds {
        let guard = map.guard();
        map.insert(round, Bomb::new(round, &bombs, true), &guard);
        assert!(map.remove(&round, &guard).is_some());
        // Hands this thread's batch, with the value, to crossbeam; the guard stays pinned.
        guard.flush();
        let (wrote, has_written) = channel();
        let (exit, may_exit) = channel::<()>();
        std::thread::scope(|s| {
            let leave_one_retirement = &leave_one_retirement;
            let thread = s.spawn(move || {
                leave_one_retirement(round + 1_000);
                wrote.send(()).unwrap();
                let _ = may_exit.recv();
            });
            has_written.recv().unwrap();
            drop(guard);
            drop(exit);
            let _ = thread.join();
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut key = u64::MAX;
        while bombs.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
            let _ = std::thread::scope(|s| s.spawn(|| leave_one_retirement(key)).join());
            key -= 1;
        }
        assert_eq!(
            bombs.load(Ordering::SeqCst),
            0,
            "round {round}: the value was never collected"
        );
    }
}

/// Set in the child process of [`two_panicking_drops_freed_together_do_not_abort_the_process`].
const TWO_BOMBS_CHILD: &str = "LOCKFREE_MAP_TEST_TWO_BOMBS_CHILD";

/// Two values whose `Drop` panics, freed together: the rest of a batch (or of a map's run of
/// its own entries) is freed while the first panic unwinds, and a second panic while unwinding
/// aborts the process. Until stop 49 it did, in a collected batch of the global collector and
/// in a map's drop alike (found by a review); now the second is caught and dropped, the first
/// comes out of the call, and every other value is dropped. In a child process, which an abort
/// kills without taking the test harness with it.
#[test]
fn two_panicking_drops_freed_together_do_not_abort_the_process() {
    common::no_panic_backtraces_under_miri();
    const NAME: &str = "two_panicking_drops_freed_together_do_not_abort_the_process";
    // Miri cannot spawn the child: there the test runs in the test binary's process, one test
    // at a time (`scripts/miri.sh`), and an abort fails the whole run.
    if std::env::var_os(TWO_BOMBS_CHILD).is_none() && !cfg!(miri) {
        passes_in_a_child(NAME, TWO_BOMBS_CHILD);
        return;
    }
    let live = Arc::new(AtomicUsize::new(0));
    // Retired on this thread, fewer than a batch: collected as one batch of the global
    // collector (this child runs no other test to share it).
    let map = HashMap::new();
    {
        let m = map.pin();
        for k in 0..100u64 {
            m.insert(k, Bomb::new(k, &live, k == 20 || k == 60));
        }
        for k in 0..100u64 {
            assert!(m.remove(&k).is_some());
        }
    }
    assert_eq!(flush_until_freed(&live, || map.guard().flush()), 1);
    still_works(&map, &live);
    assert_eq!(flush_until_freed(&live, || map.guard().flush()), 0);
    // A map's own entries, dropped with it: two bombs in one run of its drop.
    let map: HashMap<u64, Bomb> = HashMap::with_collector(0, RandomState::new(), Collector::new());
    {
        let m = map.pin();
        for k in 0..40u64 {
            m.insert(k, Bomb::new(k, &live, k == 3 || k == 30));
        }
    }
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(map)));
    assert!(dropped.is_err(), "the first panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
}

/// Set in the child process of [`a_map_used_while_unwinding_does_not_abort_the_process`].
const UNWINDING_CHILD: &str = "LOCKFREE_MAP_TEST_UNWINDING_CHILD";

/// A map used from a `Drop` that runs while another panic unwinds (a registration handle that
/// removes itself, say), whose pin or flush collects a value whose own `Drop` panics: a private
/// collector holds that panic and resumes it after the call, and a second panic out of a
/// destructor during unwinding aborts the process. Until stop 51 every pin, flush and tick of
/// retirements resumed it regardless (only the collector's last release checked); now, while
/// the thread unwinds, the held panic is dropped and the first goes on. In a child process, which
/// an abort kills without taking the test harness with it (under Miri, in the process).
#[test]
fn a_map_used_while_unwinding_does_not_abort_the_process() {
    common::no_panic_backtraces_under_miri();
    const NAME: &str = "a_map_used_while_unwinding_does_not_abort_the_process";
    if std::env::var_os(UNWINDING_CHILD).is_none() && !cfg!(miri) {
        passes_in_a_child(NAME, UNWINDING_CHILD);
        return;
    }
    let live = Arc::new(AtomicUsize::new(0));
    let map = private_map_with_removed(&live, 20, 5);
    /// Uses the map from its `Drop` until every removed value is freed.
    struct OnUnwind<'a>(&'a HashMap<u64, Bomb>, &'a AtomicUsize);
    impl Drop for OnUnwind<'_> {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.1.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
                // A pin (a new registration's first pin collects) and a flush, each of which
                // may be the one that meets the bomb.
                let _ = self.0.pin().get(&0);
                self.0.guard().flush();
            }
        }
    }
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _on_unwind = OnUnwind(&map, &live);
        panic!("an unrelated panic");
    }));
    let payload = unwound.expect_err("the unrelated panic comes out");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"an unrelated panic"),
        "the first panic goes on, not the one the collection met"
    );
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
    still_works(&map, &live);
}

/// Set in the child process of [`a_second_panics_payload_that_panics_on_drop_leaks_nothing_else`].
const PAYLOAD_CHILD: &str = "LOCKFREE_MAP_TEST_PAYLOAD_CHILD";

/// A panic whose payload panics again when dropped: nobody may drop it but its catcher.
struct PanickyPayload;

impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("a panic's payload panicked when dropped");
    }
}

/// A value counted in `live`, whose `Drop` panics with a [`PanickyPayload`] if it is a bomb.
struct PayloadBomb(Arc<AtomicUsize>, bool);

impl PayloadBomb {
    fn new(live: &Arc<AtomicUsize>, bomb: bool) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        PayloadBomb(live.clone(), bomb)
    }
}

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        if self.1 {
            std::panic::panic_any(PanickyPayload);
        }
    }
}

/// Runs `f`, and leaks the payload of a panic out of it (dropping it would panic): whether it
/// panicked.
fn panicked(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(payload) => {
            std::mem::forget(payload);
            true
        }
    }
}

/// Two panics met in one collection (or one run of a map's drop): the first is passed on, the
/// second dropped; a second payload whose own `Drop` panics is leaked, not let out into
/// crossbeam's loop or the map's drop, where it left the rest of the bag or run behind. Until
/// stop 51 the private collector's hold dropped it plainly (29 of 40 values leaked), and so did
/// a map's drop for a second run's panic (the process aborted): found by a review of thread and
/// process edges. In a child process, as the other tests that could abort.
#[test]
fn a_second_panics_payload_that_panics_on_drop_leaks_nothing_else() {
    common::no_panic_backtraces_under_miri();
    const NAME: &str = "a_second_panics_payload_that_panics_on_drop_leaks_nothing_else";
    if std::env::var_os(PAYLOAD_CHILD).is_none() && !cfg!(miri) {
        passes_in_a_child(NAME, PAYLOAD_CHILD);
        return;
    }
    let live = Arc::new(AtomicUsize::new(0));
    let value = |k: u64| PayloadBomb::new(&live, k == 5 || k == 6);
    // Retired on a private collector: one closure each, up to 64 in a bag, so both in one.
    let map: HashMap<u64, PayloadBomb> =
        HashMap::with_collector(0, RandomState::new(), Collector::new());
    {
        let m = map.pin();
        for k in 0..40u64 {
            m.insert(k, value(k));
        }
        for k in 0..40u64 {
            assert!(m.remove(&k).is_some());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut panics = 0;
    while live.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
        panics += usize::from(panicked(|| map.guard().flush()));
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
    assert_eq!(panics, 1, "one panic passed on, the other dropped");
    // A map's own entries, freed with it in runs of 64 (each run passes on its first panic and
    // drops the rest): ten bombs among 640 entries land in more than one run.
    {
        let m = map.pin();
        for k in 0..640u64 {
            m.insert(k, PayloadBomb::new(&live, k % 64 == 5));
        }
    }
    assert_eq!(live.load(Ordering::SeqCst), 640);
    assert!(panicked(move || drop(map)), "the first panic is passed on");
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
}

/// Set in the child process of [`a_held_panic_met_after_its_thread_local_is_gone_aborts_nothing`].
const LATE_CHILD: &str = "LOCKFREE_MAP_TEST_LATE_CHILD";

/// A private collector's collection run from a thread-local's destructor after the thread-local
/// that holds its panics is gone: the panic's payload cannot be held, and is dropped where it
/// was caught. Until stop 51 it was dropped plainly, so a payload whose own `Drop` panics
/// unwound out of the destructor, and the process aborted (found by a review of the stop's
/// diff); now it is leaked. In a child process, which an abort kills without taking the test
/// harness with it (not under Miri, which cannot spawn it).
#[test]
#[cfg_attr(miri, ignore = "needs a child process")]
fn a_held_panic_met_after_its_thread_local_is_gone_aborts_nothing() {
    common::no_panic_backtraces_under_miri();
    const NAME: &str = "a_held_panic_met_after_its_thread_local_is_gone_aborts_nothing";
    if std::env::var_os(LATE_CHILD).is_none() {
        passes_in_a_child(NAME, LATE_CHILD);
        return;
    }
    /// Removes payload bombs from a private map in its `Drop`, and collects them.
    struct CollectsOnExit(Arc<AtomicUsize>);
    impl Drop for CollectsOnExit {
        fn drop(&mut self) {
            let live = &self.0;
            let map: HashMap<u64, PayloadBomb> =
                HashMap::with_collector(0, RandomState::new(), Collector::new());
            {
                let m = map.pin();
                for k in 0..8u64 {
                    m.insert(k, PayloadBomb::new(live, true));
                }
                for k in 0..8u64 {
                    assert!(m.remove(&k).is_some());
                }
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while live.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
                map.guard().flush();
            }
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<CollectsOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    let live = Arc::new(AtomicUsize::new(0));
    let thread_live = live.clone();
    std::thread::spawn(move || {
        // First, so that its destructor runs after that of the thread-local that holds
        // panics, which the held panic below brings into use.
        ON_EXIT.with(|on_exit| *on_exit.borrow_mut() = Some(CollectsOnExit(thread_live.clone())));
        let map = private_map_with_removed(&Arc::new(AtomicUsize::new(0)), 4, 1);
        let resumed = catch_unwind(AssertUnwindSafe(|| drop(map)));
        assert!(resumed.is_err(), "a held panic, resumed");
    })
    .join()
    .expect("the thread");
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
}
