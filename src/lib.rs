//! A concurrent hash map that is lock-free in every operation, resizing included.
//!
//! (Crate guide: see README.md; fuller docs land with the ecosystem work.)

#![warn(missing_docs)]

mod iter;
mod map;
mod map_ref;
mod raw;
mod reclaim;
mod sync;

pub use iter::{Iter, Keys, Values};
pub use map::{Compute, HashMap, OccupiedError, Operation};
pub use map_ref::MapRef;
pub use reclaim::Guard;
