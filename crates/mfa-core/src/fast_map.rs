//! The hash maps every login looks users up in (the token store, the state
//! journal's users and tokens): foldhash, seeded at random per map, instead of
//! std's SipHash, which cost more than the lookups themselves. Their keys are the
//! token file's user names and serials, written by the administrator; a request
//! can look a name up but never adds one.

use std::collections::HashMap;

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An empty map with room for `capacity` entries.
pub fn with_capacity<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}
