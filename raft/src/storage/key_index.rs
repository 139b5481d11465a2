//! The offset of the last record of every record key of a partition: what a per-key conditional
//! append (`expected_key_offset`, optimistic concurrency for event sourcing) is checked against
//! at apply time, so every replica reaches the same verdict.
//!
//! Bounded by a key count that travels in every produce entry (like the producer table's
//! bounds): at the bound, the key whose last record is the oldest is forgotten, and
//! `forgotten_upto` keeps the largest offset any forgotten key's last record had. A key the index
//! does not hold is then "no record yet" only while nothing was ever forgotten; afterwards it is
//! "unknown, at or below `forgotten_upto`", which no key condition matches (a partition-wide
//! `expected_offset` re-establishes such a key). The index never answers a wrong "no record yet".
//!
//! Memory: each key is held once (the two maps share its bytes) plus about 170 bytes of map
//! entries and headers, so 10,000 keys of 32 bytes cost about 2 MiB per partition replica.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The default bound (`limits.key_index_keys_per_partition_max`), also applied to entries
/// written before the bound travelled in the log.
pub const KEY_INDEX_KEYS_MAX_DEFAULT: u32 = 10_000;

/// Map overhead per key beyond its bytes (hash entry, tree entry, shared buffer header),
/// measured roughly; used for the reported memory figure only.
const OVERHEAD_PER_KEY_BYTES: usize = 170;

/// What the index knows of one key's last record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyOffset {
    /// The last record with the key is at this offset.
    At(u64),
    /// No record with the key was ever appended to the partition.
    NoRecord,
    /// The index forgot the key (its bound): its last record, if any, is at or below `upto`.
    Forgotten { upto: u64 },
}

/// Last offset by key of one partition (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyIndex {
    last: HashMap<Bytes, u64>,
    /// The same keys by their last offset, oldest first: eviction takes the front. Offsets are
    /// unique (one record each), so this is a bijection with `last`.
    by_offset: BTreeMap<u64, Bytes>,
    forgotten_upto: Option<u64>,
    key_bytes: usize,
}

/// The stored form (checkpoints): keys by offset, oldest first, and the forgotten bound.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyIndexRepr {
    pub keys: Vec<(Bytes, u64)>,
    pub forgotten_upto: Option<u64>,
}

impl KeyIndex {
    /// An index of `keys` (key, last offset) with forgotten bound `forgotten_upto`.
    pub fn from_parts(keys: impl IntoIterator<Item = (Bytes, u64)>, forgotten_upto: Option<u64>) -> KeyIndex {
        let mut index = KeyIndex { forgotten_upto, ..KeyIndex::default() };
        for (key, offset) in keys {
            index.insert(key, offset);
        }
        index
    }

    /// The stored form.
    pub fn to_repr(&self) -> KeyIndexRepr {
        KeyIndexRepr {
            keys: self.by_offset.iter().map(|(o, k)| (k.clone(), *o)).collect(),
            forgotten_upto: self.forgotten_upto,
        }
    }

    /// Rebuilds an index from its stored form.
    pub fn from_repr(repr: KeyIndexRepr) -> KeyIndex {
        KeyIndex::from_parts(repr.keys, repr.forgotten_upto)
    }

    /// What the index knows of `key`.
    pub fn lookup(&self, key: &[u8]) -> KeyOffset {
        match (self.last.get(key), self.forgotten_upto) {
            (Some(&offset), _) => KeyOffset::At(offset),
            (None, None) => KeyOffset::NoRecord,
            (None, Some(upto)) => KeyOffset::Forgotten { upto },
        }
    }

    /// Records that the last record of `key` is now at `offset` (larger than any offset the
    /// index holds), then forgets the oldest keys beyond `max`. Returns the forgotten keys.
    pub fn record(&mut self, key: Bytes, offset: u64, max: u32) -> Vec<Bytes> {
        if let Some(old) = self.last.get(&key).copied() {
            self.by_offset.remove(&old);
            self.last.insert(key.clone(), offset);
            self.by_offset.insert(offset, key);
        } else {
            self.insert(key, offset);
        }
        let mut forgotten = Vec::new();
        while self.last.len() > max as usize {
            let Some((offset, key)) = self.by_offset.pop_first() else { break };
            self.last.remove(&key);
            self.key_bytes -= key.len();
            self.forgotten_upto = self.forgotten_upto.max(Some(offset));
            forgotten.push(key);
        }
        forgotten
    }

    fn insert(&mut self, key: Bytes, offset: u64) {
        self.key_bytes += key.len();
        self.last.insert(key.clone(), offset);
        self.by_offset.insert(offset, key);
    }

    /// The largest offset of a forgotten key's last record, if any key was ever forgotten.
    pub fn forgotten_upto(&self) -> Option<u64> {
        self.forgotten_upto
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Approximate heap bytes held (the key bytes plus a per-key overhead).
    pub fn memory_bytes(&self) -> usize {
        self.key_bytes + self.last.len() * OVERHEAD_PER_KEY_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_key_never_written_has_no_record_and_a_written_one_its_last_offset() {
        let mut i = KeyIndex::default();
        assert_eq!(i.lookup(b"a"), KeyOffset::NoRecord);
        i.record(k("a"), 3, 10);
        i.record(k("b"), 4, 10);
        i.record(k("a"), 7, 10);
        assert_eq!(i.lookup(b"a"), KeyOffset::At(7));
        assert_eq!(i.lookup(b"b"), KeyOffset::At(4));
        assert_eq!(i.lookup(b"c"), KeyOffset::NoRecord);
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn at_the_bound_the_oldest_key_is_forgotten_and_never_reported_as_absent() {
        let mut i = KeyIndex::default();
        assert!(i.record(k("a"), 1, 2).is_empty());
        assert!(i.record(k("b"), 2, 2).is_empty());
        // a is rewritten: b is now the oldest.
        assert!(i.record(k("a"), 3, 2).is_empty());
        assert_eq!(i.record(k("c"), 4, 2), vec![k("b")]);
        assert_eq!(i.lookup(b"b"), KeyOffset::Forgotten { upto: 2 });
        // A key never written is no longer provably absent either.
        assert_eq!(i.lookup(b"zzz"), KeyOffset::Forgotten { upto: 2 });
        assert_eq!(i.lookup(b"a"), KeyOffset::At(3));
        // Writing a forgotten key indexes it again.
        assert_eq!(i.record(k("b"), 5, 2), vec![k("a")]);
        assert_eq!(i.lookup(b"b"), KeyOffset::At(5));
        assert_eq!(i.forgotten_upto(), Some(3));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn a_bound_of_zero_forgets_every_key_at_once() {
        let mut i = KeyIndex::default();
        assert_eq!(i.record(k("a"), 9, 0), vec![k("a")]);
        assert_eq!(i.lookup(b"a"), KeyOffset::Forgotten { upto: 9 });
        assert!(i.is_empty());
        assert_eq!(i.memory_bytes(), 0);
    }

    #[test]
    fn the_stored_form_round_trips() {
        let mut i = KeyIndex::default();
        for (n, key) in ["x", "y", "z", "x"].into_iter().enumerate() {
            i.record(k(key), n as u64, 2);
        }
        let back = KeyIndex::from_repr(i.to_repr());
        assert_eq!(back, i);
        assert_eq!(back.to_repr().keys, vec![(k("z"), 2), (k("x"), 3)]);
        assert_eq!(back.memory_bytes(), 2 + 2 * OVERHEAD_PER_KEY_BYTES);
    }
}
