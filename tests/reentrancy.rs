//! User code that calls back into the map: closures, `Hash`, `Eq` and `Drop` may read and write
//! the map they run inside (or another), with the guard they were given or a new one. The map
//! takes no lock, so nothing can deadlock; these tests check that nothing is lost, duplicated or
//! dropped twice either, when the call back grows the map in the middle of the outer operation
//! (its located slot then belongs to a table being emptied), or when a value's `Drop`, run by a
//! collection inside the map's own reclamation code, writes to the map.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use common::settle_reclamation;
use lockfree_map::{Compute, HashMap, MapRef, Operation};

fn fib(m: &MapRef<'_, u64, u64, RandomState>, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    *m.get_or_insert_with(n, || fib(m, n - 1) + fib(m, n - 2))
}

fn fib_ref(m: &MapRef<'_, String, u64, RandomState>, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    *m.get_or_insert_with_ref(&*n.to_string(), str::to_string, || {
        fib_ref(m, n - 1) + fib_ref(m, n - 2)
    })
}

/// The memoised recursion a cache is made for: `make` fills the map with the smaller inputs
/// (growing it through several tables) before its own key is inserted. With a map that held a
/// lock while `make` ran this deadlocks (dashmap's shard lock); here every value is stored once
/// and right, also with two threads recursing through one map at once.
#[test]
fn a_memoised_recursion_fills_the_map_from_inside_its_own_make() {
    const N: u64 = 90;
    let mut expected = vec![0u64, 1];
    for n in 2..=N {
        expected.push(expected[n as usize - 1] + expected[n as usize - 2]);
    }

    let map: HashMap<u64, u64> = HashMap::new();
    let first_capacity = map.capacity();
    assert_eq!(fib(&map.pin(), N), expected[N as usize]);
    assert!(
        common::grew(first_capacity, map.len(), map.capacity()),
        "no growth during the recursion: {} entries, first capacity {first_capacity}",
        map.len()
    );
    let m = map.pin();
    assert_eq!(m.len(), N as usize - 1);
    for n in 2..=N {
        assert_eq!(m.get(&n), Some(&expected[n as usize]), "fib({n})");
    }
    drop(m);

    let map: HashMap<u64, u64> = HashMap::new();
    std::thread::scope(|s| {
        let results: Vec<_> = (0..2).map(|_| s.spawn(|| fib(&map.pin(), N))).collect();
        for r in results {
            assert_eq!(r.join().unwrap(), expected[N as usize]);
        }
    });
    assert_eq!(map.len(), N as usize - 1);

    let map: HashMap<String, u64> = HashMap::new();
    assert_eq!(fib_ref(&map.pin(), N), expected[N as usize]);
    let m = map.pin();
    assert_eq!(m.len(), N as usize - 1);
    for n in 2..=N {
        assert_eq!(m.get(&*n.to_string()), Some(&expected[n as usize]));
    }
}

/// Inserts `added` keys after 0 (enough to grow the map several times, so that the entry of key
/// 0 moves to a new table), the first time it is called.
fn grow_once(m: &MapRef<'_, u64, u64, RandomState>, runs: &Cell<u32>, added: u64) {
    if runs.replace(runs.get() + 1) == 0 {
        let before = m.capacity();
        for k in 1..=added {
            m.insert(k, k);
        }
        assert!(
            common::grew(before, m.len(), m.capacity()),
            "no growth inside the closure: {} entries, capacity before {before}",
            m.len()
        );
    }
}

/// Every closure that decides on a key's entry, whose first run grows the map (so the entry it
/// read moves to a new table before the decision lands): the decision is stored once, on the
/// moved entry, without running the closure again (it ran twice before stop 52: the failed
/// CAS on the moved slot looked like another write), and every key the closure inserted is
/// there once.
#[test]
fn a_closure_that_grows_the_map_runs_once_and_its_decision_lands() {
    let added = common::sized(2_000, 100) as u64;
    let all_keys = |m: &MapRef<'_, u64, u64, RandomState>| {
        let mut keys: Vec<u64> = m.keys().copied().collect();
        keys.sort_unstable();
        keys
    };
    let check = |m: &MapRef<'_, u64, u64, RandomState>, runs: &Cell<u32>, zero: Option<u64>| {
        assert_eq!(runs.get(), 1, "the closure ran again");
        assert_eq!(m.get(&0), zero.as_ref());
        let mut expected: Vec<u64> = (1..=added).collect();
        if zero.is_some() {
            expected.insert(0, 0);
        }
        assert_eq!(all_keys(m), expected, "each key once");
        assert_eq!(m.len(), expected.len());
    };
    let fresh = || {
        let map: HashMap<u64, u64> = HashMap::new();
        map.pin().insert(0, 10);
        map
    };

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let stored = m.update(&0, |v| {
        grow_once(&m, &runs, added);
        v + 1
    });
    assert_eq!(stored, Some(&11));
    check(&m, &runs, Some(11));
    drop(m);

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let result: Compute<'_, u64, u64, ()> = m.compute(0, |current| {
        grow_once(&m, &runs, added);
        Operation::Insert(current.map_or(0, |(_, v)| v + 2))
    });
    assert_eq!(
        result,
        Compute::Updated {
            old: (&0, &10),
            new: (&0, &12)
        }
    );
    check(&m, &runs, Some(12));
    drop(m);

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let result: Compute<'_, u64, u64, ()> = m.compute(0, |_| {
        grow_once(&m, &runs, added);
        Operation::Remove
    });
    assert_eq!(result, Compute::Removed(&0, &10));
    check(&m, &runs, None);
    drop(m);

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let stored = m.update_or_insert_with(
        0,
        |v| {
            grow_once(&m, &runs, added);
            v + 3
        },
        || unreachable!("the key is present"),
    );
    assert_eq!(stored, &13);
    check(&m, &runs, Some(13));
    drop(m);

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let replaced = m.replace_if(
        &0,
        |_, v| {
            grow_once(&m, &runs, added);
            *v == 10
        },
        14,
    );
    assert_eq!(replaced, Ok(&10));
    check(&m, &runs, Some(14));
    drop(m);

    let (map, runs) = (fresh(), Cell::new(0));
    let m = map.pin();
    let removed = m.remove_if(&0, |_, v| {
        grow_once(&m, &runs, added);
        *v == 10
    });
    assert_eq!(removed, Some((&0, &10)));
    check(&m, &runs, None);
    drop(m);
}

/// Decisions made on an absent key whose insert a growth (run by the closure itself) makes
/// fail: `compute`'s `Insert` and `update_or_insert_with`'s made value are kept for the key,
/// still absent, without running the closure again; and `update_or_insert_with`, whose `make`
/// inserts the key itself, updates what `make` stored (its `update` running once, the moved
/// entry keeping the updated value) and drops `make`'s value, unused, once.
#[test]
fn decisions_on_an_absent_key_survive_a_growth() {
    let added = common::sized(2_000, 100) as u64;
    // Each part in a block of its own: a guard left alive would hold crossbeam's epoch (and
    // so every other test's reclamation) until the test ends.
    {
        let map: HashMap<u64, u64> = HashMap::new();
        let m = map.pin();
        let runs = Cell::new(0);
        let result: Compute<'_, u64, u64, ()> = m.compute(0, |current| {
            assert!(current.is_none(), "the key appeared");
            grow_once(&m, &runs, added);
            Operation::Insert(5)
        });
        assert_eq!((result, runs.get()), (Compute::Inserted(&0, &5), 1));
        assert_eq!(m.len() as u64, added + 1);
    }
    {
        let map: HashMap<u64, u64> = HashMap::new();
        let m = map.pin();
        let runs = Cell::new(0);
        let stored = m.update_or_insert_with(
            0,
            |_| unreachable!("the key stays absent"),
            || {
                grow_once(&m, &runs, added);
                6
            },
        );
        // (`make` is `FnOnce`: what this checks is that its value is stored.)
        assert_eq!((stored, runs.get()), (&6, 1));
        assert_eq!(m.len() as u64, added + 1);
    }

    // `make` inserts the key (and grows the map), so the made value loses to it; `update` then
    // grows the map again on its first run, moving the entry it read.
    let live = Arc::new(AtomicUsize::new(0));
    let map: HashMap<u64, common::Tracked> = HashMap::new();
    let m = map.pin();
    let (makes, updates) = (Cell::new(0), Cell::new(0));
    let grow = |from: u64| {
        for k in from..from + added {
            m.insert(k, common::Tracked::new(k, &live));
        }
    };
    let stored = m
        .update_or_insert_with(
            0,
            |v| {
                if updates.replace(updates.get() + 1) == 0 {
                    grow(1_000_000);
                }
                common::Tracked::new(v.get() + 1, &live)
            },
            || {
                makes.set(makes.get() + 1);
                grow(1);
                m.insert(0, common::Tracked::new(1, &live));
                common::Tracked::new(50, &live)
            },
        )
        .get();
    assert_eq!((stored, makes.get(), updates.get()), (2, 1, 1));
    assert_eq!(m.len() as u64, 2 * added + 1);
    drop(m);
    // Alive: what the map holds; `make`'s 50 and the replaced 1 are gone.
    let held = map.len();
    assert_eq!(settle_reclamation(&live, held), held);
}

/// A closure that writes the key it is deciding on makes its own decision stale: the `update`
/// (or `compute`) runs it again on what the closure stored, and stores the second result.
#[test]
fn a_closure_that_writes_its_own_key_runs_again_on_what_it_wrote() {
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    m.insert(1, 1);
    let runs = Cell::new(0);
    let stored = m.update(&1, |v| {
        if runs.replace(runs.get() + 1) == 0 {
            m.insert(1, 100);
        }
        v + 1
    });
    assert_eq!((stored, runs.get()), (Some(&101), 2));

    // A compute whose first run removes its key sees it absent the second time.
    let runs = Cell::new(0);
    let result: Compute<'_, u64, u64, ()> = m.compute(1, |current| {
        if runs.replace(runs.get() + 1) == 0 {
            assert_eq!(m.remove(&1), Some(&101));
        }
        match current {
            Some((_, v)) => Operation::Insert(v + 1),
            None => Operation::Insert(7),
        }
    });
    assert_eq!(runs.get(), 2);
    assert_eq!(result, Compute::Inserted(&1, &7));
    assert_eq!(m.get(&1), Some(&7));
    assert_eq!(m.len(), 1);

    // `get_or_insert_with`'s `make` inserting its own key: the value `make` stored wins (the
    // key is present when the outer insert tries), and `make`'s result is dropped.
    let got = m.get_or_insert_with(2, || {
        m.insert(2, 20);
        21
    });
    assert_eq!(got, &20);
    assert_eq!(m.len(), 2);

    // `retain`'s predicate replacing the entry it rejects: the removal finds a different entry
    // for the key and asks about it anew, and the new one, kept, stays. (Stop 56's mutation run:
    // with that second verdict inverted, `retain` removed the entry it was told to keep, and no
    // test saw it.)
    let asked = RefCell::new(Vec::new());
    m.retain(|&k, &v| {
        asked.borrow_mut().push((k, v));
        if (k, v) == (2, 20) {
            m.insert(2, 200);
            return false;
        }
        true
    });
    let asked = asked.into_inner();
    assert_eq!(
        asked.iter().filter(|&&kv| kv == (2, 200)).count(),
        1,
        "the replacing entry judged once: {asked:?}"
    );
    assert_eq!(m.get(&2), Some(&200), "the entry kept was removed");
    assert_eq!(m.get(&1), Some(&7));
    assert_eq!(m.len(), 2);
}

/// `retain` and iteration whose closures insert (growing the map) and remove: every key present
/// throughout is visited once, the predicate's verdicts stand, and what the closures inserted
/// is there. Each grows the map for certain: the iteration's inserts, and then `retain`'s, leave
/// more entries than the table has slots (until stop 53 `retain`'s inserted one key a call and
/// never grew it: a review of what the test sizes reach).
#[test]
fn retain_and_iteration_whose_closures_write_to_the_map() {
    let n = common::sized(1_000, 64) as u64;
    const ECHO: u64 = 1 << 40;
    let map: HashMap<u64, u64> = HashMap::new();
    let m = map.pin();
    for k in 0..n {
        m.insert(k, k);
    }
    let mut visited = Vec::new();
    let before = m.capacity();
    for (&k, &v) in m.iter() {
        assert!(
            k < ECHO,
            "a key inserted during the iteration was yielded: {k}"
        );
        assert_eq!(k, v);
        visited.push(k);
        m.insert(k + ECHO, k);
    }
    visited.sort_unstable();
    assert_eq!(visited, (0..n).collect::<Vec<_>>());
    assert_eq!(m.len() as u64, 2 * n);
    assert!(
        common::grew(before, m.len(), m.capacity()),
        "the iteration's inserts did not grow the map"
    );

    let asked = RefCell::new(Vec::new());
    let before = m.capacity();
    m.retain(|&k, _| {
        if k >= ECHO {
            return true;
        }
        asked.borrow_mut().push(k);
        // Three inserts and up to two removals a call (this echo, and the key itself if odd):
        // more entries in the end than the table had slots when `retain` began.
        for echo in 2..5 {
            m.insert(k + echo * ECHO, k);
        }
        if k % 3 == 0 {
            m.remove(&(k + ECHO));
        }
        k % 2 == 0
    });
    let mut asked = asked.into_inner();
    asked.sort_unstable();
    assert_eq!(
        asked,
        (0..n).collect::<Vec<_>>(),
        "each original key asked once"
    );
    for k in 0..n {
        assert_eq!(m.contains_key(&k), k % 2 == 0, "key {k}");
        assert_eq!(m.contains_key(&(k + ECHO)), k % 3 != 0, "echo {k}");
        for echo in 2..5 {
            assert_eq!(m.get(&(k + echo * ECHO)), Some(&k), "echo {echo} of {k}");
        }
    }
    let expected = n.div_ceil(2) + (n - n.div_ceil(3)) + 3 * n;
    assert_eq!(m.len() as u64, expected);
    assert!(
        common::grew(before, m.len(), m.capacity()),
        "retain's inserts did not grow the map"
    );
    assert_eq!(m.iter().count() as u64, expected);
}

thread_local! {
    /// The map a `Reentrant` key's `Hash` and `Eq` write to (each test thread its own).
    static TARGET: RefCell<Option<Arc<HashMap<Reentrant, u64>>>> = const { RefCell::new(None) };
    /// Set while a `Reentrant` call back runs, so that the keys it inserts do not call back.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// Keys the call backs inserted so far (the next one's number).
    static ECHOES: Cell<u64> = const { Cell::new(0) };
    /// The call backs stop when `ECHOES` reaches this, so the map's size stays bounded: each
    /// phase of the test gives them a budget of their own.
    static ECHO_LIMIT: Cell<u64> = const { Cell::new(0) };
    /// How many keys a `Hash` call back inserts (an `Eq` call back three times as many).
    static PER_CALL: Cell<u64> = const { Cell::new(1) };
    /// A key whose `Eq`, when it finds the key equal, also makes the map `reserve` room for one
    /// more growth: the whole table moves (a reserve waits for its own resize) between the
    /// probe that found the entry and the operation's CAS, which then fails on the moved slot.
    static RESERVE_AT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Keys at and above this are the ones the call backs insert.
const ECHO_BASE: u64 = 1 << 32;

/// A key whose `Hash` and `Eq` insert new keys into the map they are used with (a few each
/// call, enough over a run to grow it several times), and whose `Eq` is not an integer's, so a
/// lookup compares through the stored entries: an `Eq` call lands between a probe's match and
/// its CAS.
#[derive(Debug, Clone)]
struct Reentrant(u64);

impl Reentrant {
    fn call_back(per_call: u64) {
        if INSIDE.get() {
            return;
        }
        let Some(map) = TARGET.with(|t| t.borrow().clone()) else {
            return;
        };
        INSIDE.set(true);
        let m = map.pin();
        for _ in 0..per_call {
            let n = ECHOES.get();
            if n >= ECHO_LIMIT.get() {
                break;
            }
            ECHOES.set(n + 1);
            assert_eq!(m.insert(Reentrant(ECHO_BASE + n), n), None);
        }
        INSIDE.set(false);
    }
}

impl Hash for Reentrant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Reentrant::call_back(PER_CALL.get());
        self.0.hash(state);
    }
}

impl PartialEq for Reentrant {
    fn eq(&self, other: &Self) -> bool {
        Reentrant::call_back(3 * PER_CALL.get());
        if self.0 == other.0 && RESERVE_AT.get() == Some(self.0) && !INSIDE.get() {
            RESERVE_AT.set(None);
            let map = TARGET.with(|t| t.borrow().clone()).expect("a target map");
            INSIDE.set(true);
            let m = map.pin();
            let before = m.capacity();
            m.reserve(before - m.len() + 1);
            assert!(m.capacity() > before, "the reserve did not grow the map");
            INSIDE.set(false);
        }
        self.0 == other.0
    }
}

/// Runs `op` on key `k` with its `Eq` reserving room (so moving every entry) when it finds the
/// key, and checks that it did.
fn with_reserve_at<T>(k: u64, op: impl FnOnce() -> T) -> T {
    RESERVE_AT.set(Some(k));
    let out = op();
    assert_eq!(RESERVE_AT.get(), None, "key {k}: its Eq never found it");
    out
}
impl Eq for Reentrant {}

/// Inserts, replacements, updates and removals of keys whose `Hash` and `Eq` insert other keys
/// into the same map (growing it between an operation's probe and its CAS): afterwards each
/// key, the caller's and the call backs', is there once with its last value. Each phase gives
/// the call backs a budget of its own and checks that they used it, so every kind of operation
/// meets them; the updates' closure runs once a key (the entries the growths move keep the
/// values made from them).
#[test]
fn keys_whose_hash_and_eq_write_to_the_map_are_stored_once() {
    let n = common::sized(600, 40) as u64;
    let map = Arc::new(HashMap::new());
    TARGET.with(|t| *t.borrow_mut() = Some(map.clone()));
    ECHOES.set(0);
    // A phase of `ops` operations, whose call backs insert more keys than the table has room
    // for when it starts (every operation hashes its key at least once): the map grows during
    // each phase, between its operations' probes and CASes.
    let phase = |name: &str, ops: u64, run: &mut dyn FnMut()| {
        let (echoes, capacity) = (ECHOES.get(), map.capacity());
        let budget = capacity.saturating_sub(map.len()) as u64 + n / 2;
        ECHO_LIMIT.set(echoes + budget);
        PER_CALL.set(budget.div_ceil(ops));
        run();
        let added = ECHOES.get() - echoes;
        assert_eq!(
            added, budget,
            "{name}: the call backs did not use their budget"
        );
        assert!(
            common::grew(capacity, map.len(), map.capacity()),
            "{name}: no growth from the call backs"
        );
    };
    {
        let m = map.pin();
        phase("inserts", n, &mut || {
            for k in 0..n {
                assert_eq!(m.insert(Reentrant(k), k), None);
            }
        });
        phase("replacements", n, &mut || {
            for k in 0..n {
                // Present: a probe that compares, then replaces.
                assert_eq!(m.insert(Reentrant(k), k + 1), Some(&k));
            }
        });
        let runs = Cell::new(0);
        phase("updates", n, &mut || {
            for k in 0..n {
                let stored = m.update(&Reentrant(k), |v| {
                    runs.set(runs.get() + 1);
                    v * 10
                });
                assert_eq!(stored, Some(&((k + 1) * 10)));
            }
        });
        assert_eq!(runs.get(), n, "an update's closure ran again");
        phase("removals", n.div_ceil(4), &mut || {
            for k in (0..n).filter(|k| k % 4 == 0) {
                assert_eq!(m.remove(&Reentrant(k)), Some(&((k + 1) * 10)));
            }
        });
    }
    TARGET.with(|t| *t.borrow_mut() = None);
    let echoes = ECHOES.get();

    let m = map.pin();
    let mut keys: Vec<u64> = m.keys().map(|k| k.0).collect();
    keys.sort_unstable();
    let mut expected: Vec<u64> = (0..n).filter(|k| k % 4 != 0).collect();
    expected.extend((0..echoes).map(|e| ECHO_BASE + e));
    assert_eq!(keys, expected, "each key once");
    assert_eq!(m.len(), expected.len());
    for k in (0..n).filter(|k| k % 4 != 0) {
        assert_eq!(m.get(&Reentrant(k)), Some(&((k + 1) * 10)), "key {k}");
    }
    for e in 0..echoes {
        assert_eq!(m.get(&Reentrant(ECHO_BASE + e)), Some(&e));
    }
}

/// Whether a call back's growth moved the very entry an operation had read is left to chance in
/// the test above. Here it is certain: each key's `Eq`, on finding the key, makes the map
/// reserve a growth, which moves every entry between the probe and the operation's CAS, so the
/// CAS fails on the moved slot. An insert still replaces the value once, an update's closure
/// runs once (its result stays good for the moved entry, the same one), and a removal takes the
/// key once. On stop 51's rule, which ran a closure again after any failed CAS, the updates ran
/// 6 times for 3, every time.
///
/// Under Miri the map is small, since a growth walks every slot and Miri pays dearly for each:
/// run on the test above's map (13 resizes between 896 and 1,792 slots, capacity 672 and 1,344),
/// they took 290 s of that test's 313 under Miri. Natively it holds 600 keys, so that each
/// growth's move takes many chunks and the moved entry can sit in any of them.
#[test]
fn operations_whose_eq_moves_every_entry_decide_once() {
    let n = common::sized(600, 12) as u64;
    let map = Arc::new(HashMap::new());
    TARGET.with(|t| *t.borrow_mut() = Some(map.clone()));
    // No call back budget: only the reserves write.
    ECHOES.set(0);
    ECHO_LIMIT.set(0);
    let moved = [1, 5, 9];
    {
        let m = map.pin();
        for k in 0..n {
            assert_eq!(m.insert(Reentrant(k), k), None);
        }
        let runs = Cell::new(0);
        for &k in &moved {
            with_reserve_at(k, || {
                assert_eq!(m.insert(Reentrant(k), 7), Some(&k));
            });
            // The room back, so that the map does not double six times.
            m.shrink_to_fit();
            with_reserve_at(k, || {
                let stored = m.update(&Reentrant(k), |v| {
                    runs.set(runs.get() + 1);
                    v + 1
                });
                assert_eq!(stored, Some(&8));
            });
            m.shrink_to_fit();
        }
        assert_eq!(
            runs.get(),
            3,
            "an update's closure ran again on a moved entry"
        );
        with_reserve_at(moved[1], || {
            assert_eq!(m.remove(&Reentrant(moved[1])), Some(&8));
        });
    }
    TARGET.with(|t| *t.borrow_mut() = None);
    assert_eq!(ECHOES.get(), 0);

    let m = map.pin();
    let mut keys: Vec<u64> = m.keys().map(|k| k.0).collect();
    keys.sort_unstable();
    let expected: Vec<u64> = (0..n).filter(|&k| k != moved[1]).collect();
    assert_eq!(keys, expected, "each key once");
    assert_eq!(m.len(), expected.len());
    for &k in &expected {
        let value = if moved.contains(&k) { 8 } else { k };
        assert_eq!(m.get(&Reentrant(k)), Some(&value), "key {k}");
    }
}

/// A value whose `Drop` writes into the map that held it (through a `Weak`, so the map can
/// drop) and into a second map.
struct Echo {
    key: u64,
    home: Weak<HashMap<u64, Echo>>,
    log: Arc<HashMap<u64, u64>>,
    live: Arc<AtomicUsize>,
}

/// Keys of the values that `Echo`'s `Drop` inserts (those carry no `home`, so they write
/// nothing when they go).
const DROP_ECHO: u64 = 1 << 40;

impl Echo {
    fn new(
        key: u64,
        home: Weak<HashMap<u64, Echo>>,
        log: &Arc<HashMap<u64, u64>>,
        live: &Arc<AtomicUsize>,
    ) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Echo {
            key,
            home,
            log: log.clone(),
            live: live.clone(),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            // Run from a collection: inside a pin, a flush, or the entry cache's recycling of
            // this very value's block. Writes here retire entries of their own (a replaced
            // echo) and take blocks from the cache the collection is filling.
            let m = home.pin();
            let key = DROP_ECHO + self.key % 64;
            m.insert(key, Echo::new(key, Weak::new(), &self.log, &self.live));
            m.remove(&(DROP_ECHO + (self.key + 32) % 64));
        }
        self.log.pin().update_or_insert(self.key, |n| n + 1, 1);
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Values whose `Drop` inserts into and removes from the very map they were removed from, run
/// whenever the epoch collects them (in the middle of later operations' pins, of batch flushes
/// and of the entry cache's recycling): every value is dropped exactly once, the map stays
/// consistent, and the map drops with nothing left alive. On crossbeam's global collector and
/// on a private one (whose collections run inside this map's own pins, nested in them).
#[test]
fn values_whose_drop_writes_to_their_own_map_are_dropped_once() {
    drops_write_to_their_own_map(HashMap::new());
    drops_write_to_their_own_map(HashMap::with_collector(
        0,
        RandomState::new(),
        lockfree_map::Collector::new(),
    ));
}

fn drops_write_to_their_own_map(map: HashMap<u64, Echo>) {
    let keys = common::sized(256, 16) as u64;
    let rounds = common::sized(40, 4) as u64;
    let live = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(HashMap::new());
    let map = Arc::new(map);
    let mut made = 0u64;
    for _ in 0..rounds {
        let m = map.pin();
        for k in 0..keys {
            m.insert(k, Echo::new(k, Arc::downgrade(&map), &log, &live));
            made += 1;
            if k % 8 == 0 {
                m.remove(&k);
            }
        }
        drop(m);
        map.guard().flush();
    }
    // Until some value has been collected while the map lives (another test's guard on the
    // global collector can hold its epoch back for a while).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !log.pin().keys().any(|&k| k >= DROP_ECHO) {
        assert!(
            std::time::Instant::now() < deadline,
            "no drop wrote to its map"
        );
        map.guard().flush();
        std::thread::yield_now();
    }
    {
        let m = map.pin();
        let held = m.keys().filter(|&&k| k < DROP_ECHO).count() as u64;
        assert_eq!(held, keys - keys.div_ceil(8));
        for k in 0..keys {
            assert_eq!(
                m.get(&k).map(|e| e.key),
                (k % 8 != 0).then_some(k),
                "key {k}"
            );
        }
        for (&k, e) in m.iter() {
            assert!(e.home.upgrade().is_none() || k < DROP_ECHO);
        }
    }
    // Another test's thread may be collecting one of these values right now, holding the map
    // through its `Weak` for the moment: the last reference drops the map.
    drop(map);
    assert_eq!(settle_reclamation(&live, 0), 0, "values left alive");
    // Every value the loop made was dropped once (the log counts drops by key; the echoes, made
    // by drops, are logged under their own keys, and `live` says every one of them went too).
    let l = log.pin();
    for k in 0..keys {
        assert_eq!(l.get(&k), Some(&rounds), "drops of key {k}'s values");
    }
    let logged: u64 = l
        .iter()
        .filter(|(&k, _)| k < DROP_ECHO)
        .map(|(_, &n)| n)
        .sum();
    assert_eq!(logged, made);
}
