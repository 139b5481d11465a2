//! Checkpoint summaries: one small value beside each checkpoint (`g 0x16 index`), so retention
//! and timestamp lookups read where the checkpoints are and how big and old the log was at each,
//! without decoding their producer tables.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::db::Db;
use super::error::StoreError;
use super::keys::{self, CF_SM};
use super::snapshot::Checkpoint;
use crate::ids::GroupId;
use crate::types::{LogId, LogStats};

/// What retention needs to know about one checkpoint C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    pub log_id: LogId,
    /// Offset of the first record after C: truncating at C removes every offset below it.
    pub next_offset: u64,
    /// Statistics of the log up to and including C.
    pub stats: LogStats,
}

impl CheckpointSummary {
    pub(crate) fn of(cp: &Checkpoint) -> CheckpointSummary {
        CheckpointSummary { log_id: cp.log_id, next_offset: cp.data.next_offset, stats: cp.data.stats }
    }
}

/// Adds checkpoint `cp` and its summary to `batch`.
pub(crate) fn put(db: &Db, group: GroupId, batch: &mut WriteBatch, cp: &Checkpoint) -> Result<(), StoreError> {
    let sm = db.cf(CF_SM)?;
    batch.put_cf(sm, keys::checkpoint(group, cp.log_id.index), encode("checkpoint", cp)?);
    batch.put_cf(
        sm,
        keys::checkpoint_summary(group, cp.log_id.index),
        encode("checkpoint summary", &CheckpointSummary::of(cp))?,
    );
    Ok(())
}

/// Adds the deletion of every checkpoint (and summary) below raft index `below` to `batch`.
pub(crate) fn delete_below(db: &Db, group: GroupId, batch: &mut WriteBatch, below: u64) -> Result<(), StoreError> {
    let sm = db.cf(CF_SM)?;
    let (from, to) = keys::checkpoints_below(group, below);
    batch.delete_range_cf(sm, from, to);
    let (from, to) = keys::checkpoint_summaries_below(group, below);
    batch.delete_range_cf(sm, from, to);
    Ok(())
}

/// Every checkpoint summary of `group`, oldest first. Blocking: call it off the async workers.
///
/// # Errors
/// RocksDB read or decode errors.
pub fn summaries(db: &Db, group: GroupId) -> Result<Vec<CheckpointSummary>, StoreError> {
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_iterate_upper_bound(keys::checkpoint_summaries_end(group).to_vec());
    let mut it = db.rocks().raw_iterator_cf_opt(db.cf(CF_SM)?, ro);
    it.seek(keys::checkpoint_summary(group, 0));
    let mut out = Vec::new();
    while let Some(v) = it.value() {
        out.push(decode::<CheckpointSummary>("checkpoint summary", v)?);
        it.next();
    }
    it.status().map_err(StoreError::rocks("scan checkpoint summaries"))?;
    Ok(out)
}
