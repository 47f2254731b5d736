//! A concurrent string interner: rayon workers tokenise a generated corpus and intern every
//! token in a shared `HashSet<Arc<str>>` through `get_or_insert_with`, so each distinct token is
//! stored once and every occurrence, in every worker, holds that one `Arc`.
//!
//! `cargo run --release --example interner`
//!
//! It prints how many tokens and distinct tokens it saw and how many `Arc`s were made, and checks
//! what interning promises: every occurrence of a token got a pointer to the same string, the
//! one in the set, even when workers met a new token at the same moment and each made an `Arc`
//! for it (one is kept; the others are dropped, and their number is printed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lockfree_map::HashSet;
use rayon::prelude::*;

/// A corpus of `lines` lines, each a few words drawn from a skewed vocabulary (a few words are
/// frequent, most are rare), generated deterministically.
fn corpus(lines: usize) -> Vec<String> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..lines)
        .map(|_| {
            (0..8)
                .map(|_| {
                    // The product of two uniform draws: small ids far more often than large.
                    let id = (next() % 300) * (next() % 300);
                    format!("w{id}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn main() {
    const LINES: usize = 250_000;
    let text = corpus(LINES);

    let interned: HashSet<Arc<str>> = HashSet::new();
    let made = AtomicU64::new(0);

    let start = Instant::now();
    // Each line becomes a list of interned tokens, as a parser's symbol table would hold them.
    let lines: Vec<Vec<Arc<str>>> = text
        .par_iter()
        .map_init(
            || interned.pin(), // one guard per rayon job, not per token
            |set, line| {
                line.split(' ')
                    .map(|word| {
                        // A hit makes nothing: the `&str` is looked up as it is.
                        set.get_or_insert_with(word, |w| {
                            made.fetch_add(1, Ordering::Relaxed);
                            Arc::from(w)
                        })
                        .clone()
                    })
                    .collect()
            },
        )
        .collect();
    let elapsed = start.elapsed();

    let tokens: usize = lines.iter().map(Vec::len).sum();
    let distinct = interned.len();
    let made = made.load(Ordering::Relaxed) as usize;
    println!(
        "{tokens} tokens from {LINES} lines on {} threads in {elapsed:.2?}: {distinct} distinct",
        rayon::current_num_threads(),
    );
    println!(
        "{made} Arcs made ({:.2}% of the tokens), of which {} lost a race (made while another \
         thread interned the same token) and were dropped",
        100.0 * made as f64 / tokens as f64,
        made - distinct
    );

    // The promise: every occurrence of a token is the one string stored in the set.
    let guard = interned.guard();
    for (line, symbols) in text.iter().zip(&lines) {
        for (word, symbol) in line.split(' ').zip(symbols) {
            assert_eq!(&**symbol, word);
            let stored = interned.get(word, &guard).expect("every token is interned");
            assert!(
                Arc::ptr_eq(symbol, stored),
                "token {word} was interned twice"
            );
        }
    }
    assert!(
        made >= distinct,
        "every distinct token was made at least once"
    );
    // Stored once: the set holds exactly the distinct tokens of the text, each once, and every
    // stored `Arc` is held by at least one occurrence (a second copy of a token that no
    // occurrence holds would pass the count below).
    let expected: std::collections::HashSet<&str> =
        text.iter().flat_map(|line| line.split(' ')).collect();
    assert_eq!(
        distinct,
        expected.len(),
        "the set's length is the distinct tokens'"
    );
    let mut stored: Vec<&str> = interned.iter(&guard).map(|a| &**a).collect();
    stored.sort_unstable();
    stored.dedup();
    assert_eq!(
        stored.len(),
        expected.len(),
        "each distinct token stored once"
    );
    assert!(
        interned.iter(&guard).all(|a| Arc::strong_count(a) >= 2),
        "every stored Arc is held by an occurrence"
    );
    // Each stored `Arc` is shared by the set and every occurrence: its count says how often the
    // token occurred, and the counts add up to the tokens.
    let occurrences: usize = interned
        .iter(&guard)
        .map(|a| Arc::strong_count(a) - 1)
        .sum();
    assert_eq!(occurrences, tokens);
    println!("ok: every occurrence of each token holds the one Arc in the set");
}
