//! A parallel word-frequency count: rayon workers split a generated corpus, count each chunk
//! locally, and merge their counts into one shared map with `update` (and `update_or_insert` for
//! a word's first sighting), all workers merging into the same hot words at once. The result is
//! checked against a sequential count.
//!
//! Why merge per chunk instead of calling `update` per word: an `update` publishes a new entry
//! (an allocation, and a CAS that every other worker on that word contends for), which costs far
//! more than a local increment. For per-event counting without local batching, store
//! `AtomicU64` values and `fetch_add` through `get`/`get_or_insert_with` instead.
//!
//! `cargo run --release --example word_count`

use std::collections::HashMap as StdHashMap;
use std::time::Instant;

use lockfree_map::HashMap;
use rayon::prelude::*;

/// A deterministic corpus: Zipf-like word choice from a small vocabulary, as natural text has.
fn corpus(lines: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "you",
        "were",
        "their",
        "one",
        "all",
        "we",
        "can",
        "her",
        "has",
        "there",
        "been",
        "if",
        "more",
        "when",
        "will",
        "would",
        "who",
        "so",
        "no",
        "lock-free",
    ];
    let mut state = 0x853C_49E6_748F_EA9Bu64;
    (0..lines)
        .map(|_| {
            (0..12)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Squaring a uniform number skews towards the start of the list.
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    WORDS[((u * u) * WORDS.len() as f64) as usize]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn main() {
    let lines = corpus(400_000);
    let total_words: usize = lines.iter().map(|l| l.split(' ').count()).sum();

    let start = Instant::now();
    let counts: HashMap<String, u64> = HashMap::new();
    lines.par_chunks(4_096).for_each_init(
        || counts.pin(),
        |m, chunk| {
            let mut local: StdHashMap<&str, u64> = StdHashMap::new();
            for word in chunk.iter().flat_map(|line| line.split(' ')) {
                *local.entry(word).or_default() += 1;
            }
            for (word, n) in local {
                // `update` borrows the word: a hit allocates no `String`. Only a first sighting
                // makes one, and if another worker inserted the word meanwhile it adds n to theirs.
                if m.update(word, |count| count + n).is_none() {
                    m.update_or_insert(word.to_string(), |count| count + n, n);
                }
            }
        },
    );
    let parallel = start.elapsed();

    let start = Instant::now();
    let mut expected: StdHashMap<&str, u64> = StdHashMap::new();
    for line in &lines {
        for word in line.split(' ') {
            *expected.entry(word).or_default() += 1;
        }
    }
    let sequential = start.elapsed();

    let m = counts.pin();
    let mut top: Vec<(&String, &u64)> = m.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "{total_words} words, {} distinct; parallel count on {} threads {:.2?}, sequential {:.2?}",
        m.len(),
        rayon::current_num_threads(),
        parallel,
        sequential
    );
    for (word, n) in top.iter().take(5) {
        println!("  {word:>10} {n}");
    }

    assert_eq!(m.len(), expected.len());
    for (word, n) in &expected {
        assert_eq!(m.get(*word), Some(n), "count of {word:?}");
    }
    assert_eq!(m.values().sum::<u64>(), total_words as u64);
    println!("matches the sequential count: ok");
}
