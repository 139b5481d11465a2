//! The records a coordinator writes to its `__consumer_offsets` partition, and their encoding.
//! The partition keeps the latest value per key (a keyed group), so the keys are the state's
//! address: one record per group (members, epochs, assignments) and one per committed offset.
//!
//! ```text
//!  key   = [kind][u16 len][group id bytes] (+ [topic id u64][partition u32] for offsets), big-endian
//!  value = JSON (readable with `cairn consume __consumer_offsets --json`); empty = deleted
//! ```

use serde::{Deserialize, Serialize};

use super::group::GroupState;

const GROUP: u8 = 1;
const OFFSET: u8 = 2;

/// What a record is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    Group { group: String },
    Offset { group: String, topic_id: u64, partition: u32 },
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    /// The topic's name when committed (display only; the key holds the incarnation).
    pub topic: String,
    pub offset: u64,
    pub metadata: String,
    pub commit_time_ms: i64,
}

fn with_group(kind: u8, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + group.len() + 12);
    k.push(kind);
    k.extend_from_slice(&(group.len() as u16).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k
}

impl RecordKey {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RecordKey::Group { group } => with_group(GROUP, group),
            RecordKey::Offset { group, topic_id, partition } => {
                let mut k = with_group(OFFSET, group);
                k.extend_from_slice(&topic_id.to_be_bytes());
                k.extend_from_slice(&partition.to_be_bytes());
                k
            }
        }
    }

    /// Parses a key; `None` for bytes that are not one.
    pub fn decode(b: &[u8]) -> Option<RecordKey> {
        let (&kind, rest) = b.split_first()?;
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let group = String::from_utf8(rest.get(2..2 + len)?.to_vec()).ok()?;
        let tail = rest.get(2 + len..)?;
        match kind {
            GROUP if tail.is_empty() => Some(RecordKey::Group { group }),
            OFFSET if tail.len() == 12 => Some(RecordKey::Offset {
                group,
                topic_id: u64::from_be_bytes(tail[..8].try_into().ok()?),
                partition: u32::from_be_bytes(tail[8..].try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// Encodes a group's state.
pub fn group_value(g: &GroupState) -> Vec<u8> {
    serde_json::to_vec(g).unwrap_or_default()
}

/// Encodes an offset.
pub fn offset_value(o: &OffsetValue) -> Vec<u8> {
    serde_json::to_vec(o).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_garbage_is_refused() {
        for k in [
            RecordKey::Group { group: "billing".into() },
            RecordKey::Group { group: String::new() },
            RecordKey::Offset { group: "g/with/slashes".into(), topic_id: u64::MAX, partition: 7 },
        ] {
            assert_eq!(RecordKey::decode(&k.encode()), Some(k));
        }
        assert_eq!(RecordKey::decode(b""), None);
        assert_eq!(RecordKey::decode(&[1, 0, 9, b'x']), None);
        let mut long = RecordKey::Group { group: "g".into() }.encode();
        long.push(0);
        assert_eq!(RecordKey::decode(&long), None, "trailing bytes");
    }

    #[test]
    fn values_round_trip() {
        let o = OffsetValue { topic: "t".into(), offset: 42, metadata: "m".into(), commit_time_ms: 5 };
        assert_eq!(serde_json::from_slice::<OffsetValue>(&offset_value(&o)).ok(), Some(o));
        let g = GroupState { epoch: 3, ..GroupState::default() };
        assert_eq!(serde_json::from_slice::<GroupState>(&group_value(&g)).ok(), Some(g));
    }
}
