//! Key encodings of every column family: the one place that knows the byte layout.
//!
//! Every key starts with the 8-byte big-endian group id and integers are big-endian, so byte
//! order is numeric order and one group's keys are one contiguous range.
//!
//! | CF    | key                      | value                                   |
//! |-------|--------------------------|-----------------------------------------|
//! | raft  | g 0x01 / 0x02 / 0x03     | vote / committed / last purged          |
//! | log   | g index                  | versioned entry (full LogId + payload)  |
//! | sm    | g 0x10                   | applied state                           |
//! | sm    | g 0x11 producer_id       | idempotent producer state               |
//! | sm    | g 0x12 index             | checkpoint at that raft index           |
//! | sm    | g 0x13                   | current snapshot pointer                |
//! | sm    | g 0x14                   | metadata state (controller group)       |
//! | sm    | g 0x15 record key        | latest value of that key (keyed groups) |
//! | sm    | g 0x16 index             | summary of the checkpoint at that index |
//! | sm    | g 0x17 record key        | offset of the key's last record         |
//! | idx   | g 0x20 base_offset       | batch location (raft index, ordinal, …) |

use crate::ids::GroupId;

pub const CF_RAFT: &str = "raft";
pub const CF_LOG: &str = "log";
pub const CF_SM: &str = "sm";
pub const CF_IDX: &str = "idx";
pub const ALL_CFS: [&str; 4] = [CF_RAFT, CF_LOG, CF_SM, CF_IDX];

const VOTE: u8 = 0x01;
const COMMITTED: u8 = 0x02;
const LAST_PURGED: u8 = 0x03;
const APPLIED: u8 = 0x10;
const PRODUCER: u8 = 0x11;
const CHECKPOINT: u8 = 0x12;
const SNAPSHOT_PTR: u8 = 0x13;
const META_STATE: u8 = 0x14;
const KEYED: u8 = 0x15;
const CHECKPOINT_SUMMARY: u8 = 0x16;
const KEY_OFFSET: u8 = 0x17;
const BATCH: u8 = 0x20;

fn tagged(group: GroupId, tag: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8] = tag;
    k
}

fn tagged_u64(group: GroupId, tag: u8, n: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8] = tag;
    k[9..].copy_from_slice(&n.to_be_bytes());
    k
}

pub fn vote(group: GroupId) -> [u8; 9] {
    tagged(group, VOTE)
}

pub fn committed(group: GroupId) -> [u8; 9] {
    tagged(group, COMMITTED)
}

pub fn last_purged(group: GroupId) -> [u8; 9] {
    tagged(group, LAST_PURGED)
}

pub fn applied(group: GroupId) -> [u8; 9] {
    tagged(group, APPLIED)
}

pub fn snapshot_pointer(group: GroupId) -> [u8; 9] {
    tagged(group, SNAPSHOT_PTR)
}

/// Idempotent-producer state of producer `pid` in `group`.
pub fn producer(group: GroupId, pid: u64) -> [u8; 17] {
    tagged_u64(group, PRODUCER, pid)
}

/// `[start, end)` of every producer key of `group`.
pub fn producers_range(group: GroupId) -> ([u8; 17], [u8; 9]) {
    (producer(group, 0), tagged(group, PRODUCER + 1))
}

/// Producer id of a producer key.
pub fn producer_id(key: &[u8]) -> Option<u64> {
    tagged_tail(key, PRODUCER)
}

/// The metadata state machine's state (controller group only).
pub fn meta_state(group: GroupId) -> [u8; 9] {
    tagged(group, META_STATE)
}

/// Latest value of record key `key` in a keyed group (see
/// [`super::state_machine::StateMachineStore::keep_keyed_state`]).
pub fn keyed(group: GroupId, key: &[u8]) -> Vec<u8> {
    [tagged(group, KEYED).as_slice(), key].concat()
}

/// `[start, end)` of every keyed-state key of `group`.
pub fn keyed_range(group: GroupId) -> ([u8; 9], [u8; 9]) {
    (tagged(group, KEYED), tagged(group, KEYED + 1))
}

/// The record key of a keyed-state key.
pub fn keyed_record_key(key: &[u8]) -> Option<&[u8]> {
    (key.len() >= 9 && key[8] == KEYED).then(|| &key[9..])
}

/// The offset of the last record with record key `key` (the key index of conditional appends).
pub fn key_offset(group: GroupId, key: &[u8]) -> Vec<u8> {
    [tagged(group, KEY_OFFSET).as_slice(), key].concat()
}

/// `[start, end)` of every key-index key of `group`.
pub fn key_offsets_range(group: GroupId) -> ([u8; 9], [u8; 9]) {
    (tagged(group, KEY_OFFSET), tagged(group, KEY_OFFSET + 1))
}

/// The record key of a key-index key.
pub fn key_offset_record_key(key: &[u8]) -> Option<&[u8]> {
    (key.len() >= 9 && key[8] == KEY_OFFSET).then(|| &key[9..])
}

pub fn checkpoint(group: GroupId, index: u64) -> [u8; 17] {
    tagged_u64(group, CHECKPOINT, index)
}

/// The small summary of the checkpoint at `index` (what retention plans from, without decoding
/// the checkpoint's producer table).
pub fn checkpoint_summary(group: GroupId, index: u64) -> [u8; 17] {
    tagged_u64(group, CHECKPOINT_SUMMARY, index)
}

/// `[start, end)` of checkpoint summaries of `group` with index `< below`.
pub fn checkpoint_summaries_below(group: GroupId, below: u64) -> ([u8; 17], [u8; 17]) {
    (checkpoint_summary(group, 0), checkpoint_summary(group, below))
}

/// Exclusive upper bound of all checkpoint summary keys of `group`.
pub fn checkpoint_summaries_end(group: GroupId) -> [u8; 9] {
    tagged(group, CHECKPOINT_SUMMARY + 1)
}

pub fn batch(group: GroupId, base_offset: u64) -> [u8; 17] {
    tagged_u64(group, BATCH, base_offset)
}

/// Log CF key of the entry at `index`.
pub fn log(group: GroupId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Raft index of a log CF key, `None` if the key has another shape.
pub fn log_index(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    (key.len() == 16).then(|| u64::from_be_bytes(tail))
}

/// Base offset of an idx CF key.
pub fn batch_base_offset(key: &[u8]) -> Option<u64> {
    tagged_tail(key, BATCH)
}

/// Raft index of a checkpoint key.
pub fn checkpoint_index(key: &[u8]) -> Option<u64> {
    tagged_tail(key, CHECKPOINT)
}

fn tagged_tail(key: &[u8], tag: u8) -> Option<u64> {
    if key.len() != 17 || key[8] != tag {
        return None;
    }
    let tail: [u8; 8] = key[9..17].try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// `[start, end)` covering every key of `group` in any CF.
pub fn group_range(group: GroupId) -> (Vec<u8>, Vec<u8>) {
    let start = group.to_be_bytes().to_vec();
    // group + 1 overflows only for u64::MAX; then the end is the 9-byte key just past it.
    let end = match group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => [u64::MAX.to_be_bytes().as_slice(), &[0xff; 32]].concat(),
    };
    (start, end)
}

/// `[start, end)` of the log CF for indexes `from ..` of `group`.
pub fn log_range_from(group: GroupId, from: u64) -> ([u8; 16], Vec<u8>) {
    (log(group, from), group_range(group).1)
}

/// `[start, end)` of checkpoints of `group` with index `< below`.
pub fn checkpoints_below(group: GroupId, below: u64) -> ([u8; 17], [u8; 17]) {
    (checkpoint(group, 0), checkpoint(group, below))
}

/// `[start, end)` of idx keys of `group` with base offset `< below`.
pub fn batches_below(group: GroupId, below: u64) -> ([u8; 17], [u8; 17]) {
    (batch(group, 0), batch(group, below))
}

/// Exclusive upper bound of all idx keys of `group`.
pub fn batches_end(group: GroupId) -> [u8; 9] {
    tagged(group, BATCH + 1)
}

/// Exclusive upper bound of all checkpoint keys of `group`.
pub fn checkpoints_end(group: GroupId) -> [u8; 9] {
    tagged(group, CHECKPOINT + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_group_then_index() {
        let mut keys = [log(2, 0), log(1, u64::MAX), log(1, 256), log(1, 255), log(1, 0), log(0, 7)];
        keys.sort();
        let decoded: Vec<u64> = keys.iter().filter_map(|k| log_index(k)).collect();
        assert_eq!(decoded, vec![7, 0, 255, 256, u64::MAX, 0]);
        assert_eq!(&keys[0][..8], &0u64.to_be_bytes());
        assert_eq!(&keys[5][..8], &2u64.to_be_bytes());
    }

    #[test]
    fn batch_keys_sort_numerically_and_round_trip() {
        let offsets = [0u64, 1, 255, 256, 65_536, u64::MAX - 1];
        let mut keys: Vec<_> = offsets.iter().rev().map(|o| batch(9, *o)).collect();
        keys.sort();
        let back: Vec<u64> = keys.iter().filter_map(|k| batch_base_offset(k)).collect();
        assert_eq!(back, offsets.to_vec());
        assert_eq!(batch_base_offset(&checkpoint(9, 5)), None);
        assert!(batch(9, u64::MAX).as_slice() < batches_end(9).as_slice());
    }

    #[test]
    fn key_offset_keys_stay_inside_their_range_and_round_trip() {
        let (from, to) = key_offsets_range(3);
        for key in [&b""[..], b"a", &[0xff; 64]] {
            let k = key_offset(3, key);
            assert!(k.as_slice() >= from.as_slice() && k.as_slice() < to.as_slice());
            assert_eq!(key_offset_record_key(&k), Some(key));
        }
        assert!(keyed_range(3).1 <= from, "the keyed state's range ends before the key index's");
        assert_eq!(key_offset_record_key(&keyed(3, b"a")), None);
    }

    #[test]
    fn tagged_keys_of_a_group_stay_inside_its_range() {
        for g in [0u64, 1, 41, u64::MAX] {
            let (start, end) = group_range(g);
            let keys: Vec<Vec<u8>> = vec![
                vote(g).to_vec(),
                committed(g).to_vec(),
                last_purged(g).to_vec(),
                applied(g).to_vec(),
                producer(g, u64::MAX).to_vec(),
                snapshot_pointer(g).to_vec(),
                meta_state(g).to_vec(),
                keyed(g, &[0xff; 40]),
                key_offset(g, &[0xff; 40]),
                checkpoint(g, u64::MAX).to_vec(),
                batch(g, u64::MAX).to_vec(),
                log(g, u64::MAX).to_vec(),
                batches_end(g).to_vec(),
            ];
            for k in keys {
                assert!(k.as_slice() >= start.as_slice() && k.as_slice() < end.as_slice(), "group {g}");
            }
        }
    }

    #[test]
    fn checkpoint_and_batch_ranges_do_not_overlap_other_tags() {
        let g = 3;
        assert!(checkpoint(g, u64::MAX).as_slice() < checkpoints_end(g).as_slice());
        assert!(checkpoints_end(g).as_slice() <= snapshot_pointer(g).as_slice());
        assert!(applied(g).as_slice() < checkpoint(g, 0).as_slice());
        assert_eq!(checkpoint_index(&checkpoint(g, 77)), Some(77));
        assert_eq!(log_index(&vote(g)), None);
        let (lo, hi) = keyed_range(g);
        assert!(meta_state(g).as_slice() < lo.as_slice());
        assert!(keyed(g, b"").as_slice() >= lo.as_slice() && keyed(g, &[0xff; 64]).as_slice() < hi.as_slice());
        assert!(hi.as_slice() <= batch(g, 0).as_slice());
        assert_eq!(keyed_record_key(&keyed(g, b"abc")), Some(b"abc".as_slice()));
        assert_eq!(keyed_record_key(&applied(g)), None);
    }
}
