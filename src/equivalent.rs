//! [`Equivalent`]: lookups by a key that is not a `Borrow` of the stored one.
//!
//! `std`'s maps look a key up by any `Q` that the stored key `Borrow`s, which covers `String`
//! keys looked up by `&str`, but not a composite key looked up by a borrowed composite: a
//! `(String, u32)` key cannot lend out a `(&str, u32)`, so with `Borrow` alone a lookup must
//! build an owned key first. hashbrown, papaya, scc and dashmap take any `Q: Equivalent<K>`
//! instead, with a blanket impl for every `Borrow` pair, so what worked with `Borrow` works
//! unchanged. This is the same trait as the `equivalent` crate's, kept here, as scc does, so that
//! the crate depends on crossbeam alone; a type that implements the crate's trait implements
//! this one the same way.

use std::borrow::Borrow;

/// A key type `Q` that a map of `K` keys can be looked up by: `equivalent` says whether `self`
/// equals a stored key.
///
/// Implement it for a borrowed form of a composite key. The contract is `Borrow`'s: a `Q` equal
/// to a `K` must hash as that `K` does (through the map's hasher, so the same `Hash::hash` calls),
/// and `equivalent` must agree with `K`'s `Eq`. A map given a `Q` that breaks it stays memory
/// safe and loses nothing, but may not find keys that are present (as with a `Hash` that breaks
/// `Eq`'s contract).
///
/// ```
/// use lockfree_map::{Equivalent, HashMap};
/// use std::hash::{Hash, Hasher};
///
/// #[derive(PartialEq, Eq, Hash)]
/// struct Route {
///     host: String,
///     port: u16,
/// }
///
/// /// A `Route` looked up without allocating its `String`.
/// struct RouteRef<'a> {
///     host: &'a str,
///     port: u16,
/// }
///
/// // Hashes as `Route`'s derived `Hash` does: its fields in order.
/// impl Hash for RouteRef<'_> {
///     fn hash<H: Hasher>(&self, state: &mut H) {
///         self.host.hash(state);
///         self.port.hash(state);
///     }
/// }
///
/// impl Equivalent<Route> for RouteRef<'_> {
///     fn equivalent(&self, key: &Route) -> bool {
///         self.host == key.host && self.port == key.port
///     }
/// }
///
/// let routes = HashMap::new();
/// let routes = routes.pin();
/// routes.insert(Route { host: "example.org".into(), port: 443 }, "backend-1");
/// assert_eq!(routes.get(&RouteRef { host: "example.org", port: 443 }), Some(&"backend-1"));
/// assert_eq!(routes.get(&RouteRef { host: "example.org", port: 80 }), None);
/// ```
pub trait Equivalent<K: ?Sized> {
    /// Whether `self` equals `key`.
    fn equivalent(&self, key: &K) -> bool;
}

/// Every `Borrow` pair, as `std`'s maps look keys up: `&str` for `String` keys, `&[T]` for
/// `Vec<T>`, and `K` for itself.
impl<Q, K> Equivalent<K> for Q
where
    Q: Eq + ?Sized,
    K: Borrow<Q> + ?Sized,
{
    #[inline]
    fn equivalent(&self, key: &K) -> bool {
        PartialEq::eq(self, key.borrow())
    }
}
