//! The hash maps every login looks users up in (the token store, the state
//! journal's users and tokens): foldhash, seeded at random per map, instead of
//! std's SipHash, which cost more than the lookups themselves. Their keys are the
//! token file's user names and serials, written by the administrator; a request
//! can look a name up but never adds one.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An empty map with room for `capacity` entries.
pub fn with_capacity<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

/// The longest name or serial kept inline in a [`Name`].
pub const INLINE: usize = 22;

/// A user name or a serial as these maps keep it: inline when it is short (most
/// are), so that a lookup of a user nobody looked up lately compares the name in
/// the table's own slot, not behind one more pointer into cold memory. Hashes and
/// compares as the bytes it holds: maps keyed by it are looked up with
/// `name.as_bytes()`, which needs no UTF-8 check per comparison.
#[derive(Clone, Debug)]
pub enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Name {
    pub fn new(text: &str) -> Name {
        if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Name::Inline { len: text.len() as u8, bytes }
        } else {
            Name::Heap(text.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Heap(text) => text.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // The whole of a &str: always valid UTF-8 (checked again, as no `unsafe` is allowed here).
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Name::Heap(text) => text,
        }
    }
}

impl From<String> for Name {
    fn from(text: String) -> Name {
        if text.len() <= INLINE {
            Name::new(&text)
        } else {
            Name::Heap(text.into_boxed_str())
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the [u8] it borrows as, so that a lookup by bytes finds it.
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_by_its_bytes_inline_or_not() {
        let long = "a-user-name-longer-than-twenty-two-bytes";
        let mut map = with_capacity(4);
        for (i, text) in
            ["", "alice", "ærøskøbing", &"x".repeat(INLINE), &"y".repeat(INLINE + 1), long].iter().enumerate()
        {
            map.insert(Name::new(text), i);
            assert_eq!(map.get(text.as_bytes()), Some(&i), "{text:?}");
            assert_eq!(Name::new(text).as_str(), *text);
            assert_eq!(Name::from(text.to_string()), Name::new(text));
        }
        assert!(matches!(Name::new(&"x".repeat(INLINE)), Name::Inline { .. }));
        assert!(matches!(Name::new(long), Name::Heap(_)));
        assert_eq!(map.get("alic".as_bytes()), None);
        assert_eq!(map.get("alice\0".as_bytes()), None, "the padding is not part of the name");
    }
}
