//! Decoders for state written before log statistics existed (the applied state and checkpoints
//! of earlier versions): bincode has no optional trailing fields, so a value that does not
//! decode as today's layout is tried as the earlier one, and converted with empty statistics
//! (which only makes the first retention decision after an upgrade count from zero).

use serde::Deserialize;

use super::codec::decode;
use super::error::StoreError;
use super::producers::ProducerTable;
use super::snapshot::Checkpoint;
use super::state_machine::AppliedState;
use crate::types::{CheckpointData, LogId, LogStats, StoredMembership};

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
    meta: Option<bytes::Bytes>,
    producers: ProducerTable,
}

#[derive(Deserialize)]
struct CheckpointV1 {
    log_id: LogId,
    membership: StoredMembership,
    data: CheckpointDataV1,
}

/// Decodes an applied state of this version or of the one before.
pub(crate) fn applied_state(bytes: &[u8]) -> Result<AppliedState, StoreError> {
    match decode::<AppliedState>("applied state", bytes) {
        Ok(s) => Ok(s),
        Err(today) => match decode::<AppliedStateV1>("applied state", bytes) {
            Ok(v1) => Ok(AppliedState {
                last_applied: v1.last_applied,
                membership: v1.membership,
                next_offset: v1.next_offset,
                log_start_offset: v1.log_start_offset,
                retention_point: v1.retention_point,
                entries_since_checkpoint: v1.entries_since_checkpoint,
                bytes_since_checkpoint: v1.bytes_since_checkpoint,
                producer_clock_ms: v1.producer_clock_ms,
                stats: LogStats::default(),
            }),
            Err(_) => Err(today),
        },
    }
}

/// Decodes a checkpoint of this version or of the one before.
pub(crate) fn checkpoint(bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    match decode::<Checkpoint>("checkpoint", bytes) {
        Ok(c) => Ok(c),
        Err(today) => match decode::<CheckpointV1>("checkpoint", bytes) {
            Ok(v1) => Ok(Checkpoint {
                log_id: v1.log_id,
                membership: v1.membership,
                data: CheckpointData {
                    next_offset: v1.data.next_offset,
                    meta: v1.data.meta,
                    producers: v1.data.producers,
                    log_start_offset: 0,
                    stats: LogStats::default(),
                },
            }),
            Err(_) => Err(today),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::encode;

    #[test]
    fn an_applied_state_of_the_previous_version_still_decodes() {
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
        let today = AppliedState { next_offset: 1, stats: LogStats { bytes_total: 3, ..LogStats::default() }, ..s };
        assert_eq!(applied_state(&encode("new", &today).expect("encode")).expect("decodes"), today);
        assert!(applied_state(&[1, 2, 3]).is_err(), "garbage is still an error");
    }
}
