//! serde support (feature `serde`): a map serializes as a map and deserializes from one.
//!
//! Serializing takes a snapshot of the entries first (under one guard), so the length announced
//! to the format always matches the entries written, even while other threads write (formats
//! such as bincode rely on that). Under concurrent writes the snapshot has iteration's guarantee:
//! every key present throughout is in it, exactly once.
//!
//! A [`HashSet`] serializes as a sequence and deserializes from one, as `std`'s does.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::map::{HashMap, BULK_REPIN};
use crate::reclaim::Collector;
use crate::set::HashSet;

impl<K, V, S> Serialize for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static + Serialize,
    V: Send + 'static + Serialize,
    S: BuildHasher,
{
    /// ```
    /// let map: lockfree_map::HashMap<String, u32> = [("a".to_string(), 1)].into_iter().collect();
    /// assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"a":1}"#);
    /// ```
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let guard = self.guard();
        let entries: Vec<(&K, &V)> = self.iter(&guard).collect();
        let mut out = serializer.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

impl<'de, K, V, S> Deserialize<'de> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static + Deserialize<'de>,
    V: Send + 'static + Deserialize<'de>,
    S: BuildHasher + Default,
{
    /// Duplicate keys keep the last value, as `std::collections::HashMap` does.
    ///
    /// ```
    /// let map: lockfree_map::HashMap<String, u32> =
    ///     serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
    /// assert_eq!(map.get_cloned("b"), Some(2));
    /// ```
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// `fn() -> Map`: the visitor owns no map, so it is `Send`, `Sync` and variance-neutral whatever
/// the map's types are.
type Makes<K, V, S> = PhantomData<fn() -> HashMap<K, V, S>>;

struct MapVisitor<K, V, S>(Makes<K, V, S>);

impl<'de, K, V, S> Visitor<'de> for MapVisitor<K, V, S>
where
    K: Hash + Eq + Send + 'static + Deserialize<'de>,
    V: Send + 'static + Deserialize<'de>,
    S: BuildHasher + Default,
{
    type Value = HashMap<K, V, S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        // The hint comes from the input: cap it, so a hostile length cannot allocate a huge table.
        let capacity = access.size_hint().unwrap_or(0).min(1 << 16);
        let map = HashMap::presized(capacity, 0, S::default(), Collector::global());
        {
            let mut guard = map.guard();
            let mut pairs = 0;
            while let Some((k, v)) = access.next_entry()? {
                // A duplicate key's replaced value is freed as the input goes on (`BULK_REPIN`).
                pairs += 1;
                if pairs % BULK_REPIN == 0 {
                    guard.repin();
                }
                map.insert(k, v, &guard);
            }
        }
        Ok(map)
    }
}

impl<T, S> Serialize for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static + Serialize,
    S: BuildHasher,
{
    /// ```
    /// let set: lockfree_map::HashSet<u32> = [7].into_iter().collect();
    /// assert_eq!(serde_json::to_string(&set).unwrap(), "[7]");
    /// ```
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        // A snapshot first, as for the map: the announced length matches what is written.
        let guard = self.guard();
        let values: Vec<&T> = self.iter(&guard).collect();
        let mut out = serializer.serialize_seq(Some(values.len()))?;
        for v in values {
            out.serialize_element(v)?;
        }
        out.end()
    }
}

impl<'de, T, S> Deserialize<'de> for HashSet<T, S>
where
    T: Hash + Eq + Send + 'static + Deserialize<'de>,
    S: BuildHasher + Default,
{
    /// Duplicate values keep the first, as `std::collections::HashSet` does.
    ///
    /// ```
    /// let set: lockfree_map::HashSet<String> = serde_json::from_str(r#"["a","b","a"]"#).unwrap();
    /// assert_eq!(set.len(), 2);
    /// ```
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SetVisitor(PhantomData))
    }
}

struct SetVisitor<T, S>(PhantomData<fn() -> HashSet<T, S>>);

impl<'de, T, S> Visitor<'de> for SetVisitor<T, S>
where
    T: Hash + Eq + Send + 'static + Deserialize<'de>,
    S: BuildHasher + Default,
{
    type Value = HashSet<T, S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        // The hint comes from the input: capped, as for the map.
        let capacity = access.size_hint().unwrap_or(0).min(1 << 16);
        let set = HashSet::presized(capacity, S::default());
        {
            // Pinned anew as the map's visitor is (`BULK_REPIN`): a slow input must not hold
            // back the freeing of what every map of the collector retires meanwhile.
            let mut s = set.pin();
            let mut values = 0;
            while let Some(value) = access.next_element()? {
                values += 1;
                if values % BULK_REPIN == 0 {
                    s.repin();
                }
                s.insert(value);
            }
        }
        Ok(set)
    }
}
