//! Snapshots as retention checkpoints (docs/architecture.md, "Snapshots are retention checkpoints").
//!
//! A snapshot never holds record data and is never the current state: it is an immutable
//! checkpoint C `{LogId, membership at C, next_offset at C}` written at apply time. The current
//! snapshot pointer only moves forward, is persisted (synced) before openraft learns of it, and
//! with no retention yet the builder returns a snapshot without a log id, which openraft ignores.

use std::sync::Arc;

use openraft::{RaftSnapshotBuilder, StorageIOError};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::db::{blocking, Db};
use super::error::StoreError;
use super::keys::{self, CF_SM};
use crate::ids::GroupId;
use crate::types::{CheckpointData, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// An immutable checkpoint, the state right after applying entry `log_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub log_id: LogId,
    pub membership: StoredMembership,
    pub data: CheckpointData,
}

impl Checkpoint {
    fn into_snapshot(self, group: GroupId) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                last_log_id: Some(self.log_id),
                last_membership: self.membership,
                snapshot_id: format!("g{group}-t{}-i{}", self.log_id.leader_id.term, self.log_id.index),
            },
            snapshot: Box::new(self.data),
        }
    }
}

pub(crate) fn read_checkpoint(db: &Db, group: GroupId, index: u64) -> Result<Option<Checkpoint>, StoreError> {
    match db.rocks().get_pinned_cf(db.cf(CF_SM)?, keys::checkpoint(group, index)).map_err(StoreError::rocks("get"))? {
        Some(v) => Ok(Some(super::legacy::checkpoint(&v)?)),
        None => Ok(None),
    }
}

fn read_pointer(db: &Db, group: GroupId) -> Result<Option<LogId>, StoreError> {
    match db.rocks().get_pinned_cf(db.cf(CF_SM)?, keys::snapshot_pointer(group)).map_err(StoreError::rocks("get"))? {
        Some(v) => Ok(Some(decode("snapshot pointer", &v)?)),
        None => Ok(None),
    }
}

/// The current snapshot: the checkpoint the pointer names.
pub(crate) fn current(db: &Db, group: GroupId) -> Result<Option<Snapshot>, StoreError> {
    let Some(at) = read_pointer(db, group)? else {
        return Ok(None);
    };
    match read_checkpoint(db, group, at.index)? {
        Some(cp) if cp.log_id == at => Ok(Some(cp.into_snapshot(group))),
        _ => Err(StoreError::Corrupt { group, message: format!("snapshot pointer {at} names no checkpoint") }),
    }
}

/// Builds the snapshot for the retention point captured when it was created.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    group: GroupId,
    point: Option<LogId>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl SnapshotBuilder {
    pub(crate) fn new(db: Arc<Db>, group: GroupId, point: Option<LogId>, lock: Arc<tokio::sync::Mutex<()>>) -> Self {
        SnapshotBuilder { db, group, point, lock }
    }
}

fn no_retention_yet(group: GroupId) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
            snapshot_id: format!("g{group}-none"),
        },
        snapshot: Box::default(),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Always Ok when it can read: a builder error stops the group, and openraft also calls
        // the builder at start-up when logs were purged and no snapshot exists.
        let Some(point) = self.point else {
            let (db, group) = (self.db.clone(), self.group);
            let existing =
                blocking(move || current(&db, group)).await.map_err(|e| StorageIOError::read_snapshot(None, &e))?;
            return Ok(existing.unwrap_or_else(|| no_retention_yet(self.group)));
        };
        let _guard = self.lock.lock().await;
        let (db, group) = (self.db.clone(), self.group);
        blocking(move || {
            if let Some(cur) = read_pointer(&db, group)? {
                if cur >= point {
                    // Never move the pointer backwards (an install may have overtaken us).
                    return current(&db, group)?
                        .ok_or(StoreError::Corrupt { group, message: "pointer vanished".into() });
                }
            }
            let cp = read_checkpoint(&db, group, point.index)?
                .filter(|c| c.log_id == point)
                .ok_or(StoreError::Corrupt { group, message: format!("retention point {point} has no checkpoint") })?;
            let mut b = WriteBatch::default();
            b.put_cf(db.cf(CF_SM)?, keys::snapshot_pointer(group), encode("snapshot pointer", &point)?);
            // Nothing names the older checkpoints any more: the pointer only moves forward and
            // retention has passed them.
            super::checkpoints::delete_below(&db, group, &mut b, point.index)?;
            db.write_durable(b, "snapshot pointer")?;
            Ok(cp.into_snapshot(group))
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }
}
