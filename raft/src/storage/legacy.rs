//! Decoders for state and log entries written by earlier versions: bincode has no optional
//! trailing fields, so a value that does not decode as today's layout is tried as the earlier
//! ones, and converted.
//!
//! - V1 (before log statistics): the applied state and checkpoints get empty statistics (which
//!   only makes the first retention decision after an upgrade count from zero).
//! - V2 (before conditional appends): the applied state and checkpoints get an empty key index
//!   that has forgotten nothing; log entries (a format byte of their own) get their batches'
//!   keys from the record bytes, so the key index is the same as if they had been written today.

use bytes::Bytes;
use serde::Deserialize;

use super::codec::{decode, decode_checked};
use super::error::StoreError;
use super::key_index::{KeyIndexRepr, KEY_INDEX_KEYS_MAX_DEFAULT};
use super::producers::{ProducerLimits, ProducerTable};
use super::snapshot::Checkpoint;
use super::state_machine::AppliedState;
use crate::types::{
    last_key_ordinals, CheckpointData, Command, Entry, LogId, LogStats, Membership, ProduceBatch, ProduceEntry,
    ProducerRef, StoredMembership,
};

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct AppliedStateV1 {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    next_offset: u64,
    log_start_offset: u64,
    retention_point: Option<LogId>,
    entries_since_checkpoint: u64,
    bytes_since_checkpoint: u64,
    producer_clock_ms: i64,
}

#[derive(Deserialize)]
struct CheckpointDataV1 {
    next_offset: u64,
    meta: Option<Bytes>,
    producers: ProducerTable,
}

#[derive(Deserialize)]
struct CheckpointV1 {
    log_id: LogId,
    membership: StoredMembership,
    data: CheckpointDataV1,
}

#[derive(Deserialize)]
struct CheckpointDataV2 {
    next_offset: u64,
    meta: Option<Bytes>,
    producers: ProducerTable,
    log_start_offset: u64,
    stats: LogStats,
}

#[derive(Deserialize)]
struct CheckpointV2 {
    log_id: LogId,
    membership: StoredMembership,
    data: CheckpointDataV2,
}

fn applied_from(v1: AppliedStateV1, stats: LogStats) -> AppliedState {
    AppliedState {
        last_applied: v1.last_applied,
        membership: v1.membership,
        next_offset: v1.next_offset,
        log_start_offset: v1.log_start_offset,
        retention_point: v1.retention_point,
        entries_since_checkpoint: v1.entries_since_checkpoint,
        bytes_since_checkpoint: v1.bytes_since_checkpoint,
        producer_clock_ms: v1.producer_clock_ms,
        stats,
        keys_forgotten_upto: None,
    }
}

/// Decodes an applied state of this version or of an earlier one.
pub(crate) fn applied_state(bytes: &[u8]) -> Result<AppliedState, StoreError> {
    let today = match decode::<AppliedState>("applied state", bytes) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    // V2 was V1's fields followed by the statistics: bincode encodes that like this pair.
    if let Ok((v1, stats)) = decode::<(AppliedStateV1, LogStats)>("applied state", bytes) {
        return Ok(applied_from(v1, stats));
    }
    match decode::<AppliedStateV1>("applied state", bytes) {
        Ok(v1) => Ok(applied_from(v1, LogStats::default())),
        Err(_) => Err(today),
    }
}

/// Decodes a checkpoint of this version or of an earlier one.
pub(crate) fn checkpoint(bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    let today = match decode::<Checkpoint>("checkpoint", bytes) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    if let Ok(v2) = decode::<CheckpointV2>("checkpoint", bytes) {
        return Ok(Checkpoint {
            log_id: v2.log_id,
            membership: v2.membership,
            data: CheckpointData {
                next_offset: v2.data.next_offset,
                meta: v2.data.meta,
                producers: v2.data.producers,
                log_start_offset: v2.data.log_start_offset,
                stats: v2.data.stats,
                keys: KeyIndexRepr::default(),
            },
        });
    }
    match decode::<CheckpointV1>("checkpoint", bytes) {
        Ok(v1) => Ok(Checkpoint {
            log_id: v1.log_id,
            membership: v1.membership,
            data: CheckpointData {
                next_offset: v1.data.next_offset,
                meta: v1.data.meta,
                producers: v1.data.producers,
                log_start_offset: 0,
                stats: LogStats::default(),
                keys: KeyIndexRepr::default(),
            },
        }),
        Err(_) => Err(today),
    }
}

/// A log entry as written before conditional appends (openraft's `Entry` layout: log id, then
/// the payload enum with the variants in the same order).
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct EntryV2 {
    log_id: LogId,
    payload: PayloadV2,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
enum PayloadV2 {
    Blank,
    Normal(CommandV2),
    Membership(Membership),
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
enum CommandV2 {
    Produce(ProduceEntryV2),
    PrefixTruncate { upto: LogId },
    Meta(Bytes),
    Checkpoint { time_ms: i64 },
    DeleteRecords { before: u64 },
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ProduceEntryV2 {
    append_time_ms: i64,
    batches: Vec<ProduceBatchV2>,
    producer_limits: ProducerLimits,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct ProduceBatchV2 {
    producer: Option<ProducerRef>,
    record_count: u32,
    max_timestamp_ms: i64,
    records: Bytes,
}

impl From<EntryV2> for Entry {
    fn from(e: EntryV2) -> Entry {
        let payload = match e.payload {
            PayloadV2::Blank => openraft::EntryPayload::Blank,
            PayloadV2::Membership(m) => openraft::EntryPayload::Membership(m),
            PayloadV2::Normal(c) => openraft::EntryPayload::Normal(match c {
                CommandV2::Produce(p) => Command::Produce(ProduceEntry {
                    append_time_ms: p.append_time_ms,
                    batches: p.batches.into_iter().map(batch_from).collect(),
                    producer_limits: p.producer_limits,
                    key_index_keys_max: KEY_INDEX_KEYS_MAX_DEFAULT,
                }),
                CommandV2::PrefixTruncate { upto } => Command::PrefixTruncate { upto },
                CommandV2::Meta(m) => Command::Meta(m),
                CommandV2::Checkpoint { time_ms } => Command::Checkpoint { time_ms },
                CommandV2::DeleteRecords { before } => Command::DeleteRecords { before },
            }),
        };
        Entry { log_id: e.log_id, payload }
    }
}

fn batch_from(b: ProduceBatchV2) -> ProduceBatch {
    use prost::Message;
    // Record bytes that do not decode index no key: fetch reports them as damaged anyway.
    let keys = cairn_proto::peer::RecordBatch::decode(b.records.clone())
        .map(|batch| last_key_ordinals(batch.records.iter().map(|r| r.key.as_ref())))
        .unwrap_or_default();
    ProduceBatch {
        producer: b.producer,
        record_count: b.record_count,
        max_timestamp_ms: b.max_timestamp_ms,
        records: b.records,
        condition: None,
        keys,
    }
}

/// Decodes a log entry of this version or of an earlier one. `verify` false skips the checksum
/// (the fault-injection switch `skip-fetch-checksum` only).
pub(crate) fn log_entry(bytes: &[u8], verify: bool) -> Result<Entry, StoreError> {
    decode_checked::<Entry, EntryV2>("log entry", bytes, verify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::encode;

    #[test]
    fn an_applied_state_of_the_previous_versions_still_decodes() {
        let old = AppliedStateV1 {
            last_applied: None,
            membership: StoredMembership::default(),
            next_offset: 42,
            log_start_offset: 7,
            retention_point: None,
            entries_since_checkpoint: 3,
            bytes_since_checkpoint: 9,
            producer_clock_ms: 5,
        };
        let s = applied_state(&encode("old", &old).expect("encode")).expect("decodes");
        assert_eq!((s.next_offset, s.log_start_offset, s.producer_clock_ms), (42, 7, 5));
        assert_eq!(s.stats, LogStats::default());
        let stats = LogStats { bytes_total: 11, ..LogStats::default() };
        let v2 = encode("v2", &(&old, stats)).expect("encode");
        let s2 = applied_state(&v2).expect("a V2 state decodes");
        assert_eq!((s2.next_offset, s2.stats, s2.keys_forgotten_upto), (42, stats, None));
        let today = AppliedState {
            next_offset: 1,
            stats: LogStats { bytes_total: 3, ..LogStats::default() },
            keys_forgotten_upto: Some(4),
            ..s
        };
        assert_eq!(applied_state(&encode("new", &today).expect("encode")).expect("decodes"), today);
        assert!(applied_state(&[1, 2, 3]).is_err(), "garbage is still an error");
    }

    #[test]
    fn a_log_entry_written_before_conditional_appends_decodes_with_its_keys() {
        use prost::Message;
        let records = cairn_proto::peer::RecordBatch {
            records: vec![
                cairn_proto::v1::Record {
                    key: b"a".to_vec().into(),
                    value: b"1".to_vec().into(),
                    ..Default::default()
                },
                cairn_proto::v1::Record {
                    key: b"b".to_vec().into(),
                    value: b"2".to_vec().into(),
                    ..Default::default()
                },
                cairn_proto::v1::Record {
                    key: b"a".to_vec().into(),
                    value: b"3".to_vec().into(),
                    ..Default::default()
                },
            ],
        }
        .encode_to_vec();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(2, 1), 9);
        let old = EntryV2 {
            log_id,
            payload: PayloadV2::Normal(CommandV2::Produce(ProduceEntryV2 {
                append_time_ms: 5,
                batches: vec![ProduceBatchV2 {
                    producer: None,
                    record_count: 3,
                    max_timestamp_ms: 5,
                    records: records.into(),
                }],
                producer_limits: ProducerLimits::default(),
            })),
        };
        // Format 2: checked, the old layout (what encode_checked wrote before).
        let body = bincode::serialize(&old).expect("encode");
        let mut bytes = vec![2u8];
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let e = log_entry(&bytes, true).expect("decodes");
        assert_eq!(e.log_id, log_id);
        let openraft::EntryPayload::Normal(Command::Produce(p)) = e.payload else { panic!("a produce entry") };
        assert_eq!(p.key_index_keys_max, KEY_INDEX_KEYS_MAX_DEFAULT);
        assert_eq!(p.batches[0].keys, vec![(Bytes::from_static(b"b"), 1), (Bytes::from_static(b"a"), 2)]);
        assert_eq!(p.batches[0].condition, None);
        // Today's entries round-trip in today's format.
        let today = crate::storage::codec::encode_checked("log entry", &e_clone(&p, log_id)).expect("encode");
        assert_eq!(log_entry(&today, true).expect("decodes").log_id, log_id);
    }

    fn e_clone(p: &ProduceEntry, log_id: LogId) -> Entry {
        Entry { log_id, payload: openraft::EntryPayload::Normal(Command::Produce(p.clone())) }
    }
}
