//! The metadata-only state machine of one partition group (`sm` and `idx` column families).
//!
//! ```text
//!  apply(entries) ─► one WriteBatch: idx (base offset → raft index), checkpoints, applied state
//!                 └► progress watch (high watermark, log start) for fetch long-polls
//! ```
//!
//! Offsets are assigned here, at apply time, from `next_offset`: every replica applies the same
//! entries in the same order and so assigns the same offsets. Apply writes are not synced: the
//! entries they derive from are already fsynced in the log, and re-applying after a crash is
//! deterministic. Snapshots are retention checkpoints (docs/architecture.md), see [`super::snapshot`].

use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::checkpoints;
use super::codec::{decode, encode};
use super::db::{blocking, Db};
use super::error::StoreError;
use super::key_index::{KeyIndex, KeyOffset};
use super::keys::{self, CF_IDX, CF_SM};
use super::producers::{ProducerState, ProducerTable, Verdict};
use super::snapshot::{self, Checkpoint, SnapshotBuilder};
use crate::ids::GroupId;
use crate::types::{
    ApplyResponse, BatchOutcome, CheckpointData, Command, Condition, ConditionFailed, Entry, LogId, LogStats,
    MetaStateMachine, ProduceEntry, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// A keyed group's state: every record key with its latest value, in key order.
pub type KeyedState = Vec<(Vec<u8>, Vec<u8>)>;

/// The producer table of a group, written only by its state machine's apply.
pub type SharedProducers = Arc<std::sync::RwLock<ProducerTable>>;

/// When apply writes a checkpoint (decided from the log alone, so every replica agrees).
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    pub every_entries: u64,
    pub every_bytes: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy { every_entries: 10_000, every_bytes: 64 << 20 }
    }
}

/// What readers of a partition need to know about the applied state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// One past the last committed offset this replica applied.
    pub high_watermark: u64,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Raft index of the last applied entry.
    pub applied_index: Option<u64>,
    /// Latest checkpoint the log was truncated at (retention or an installed snapshot).
    pub retention_point: Option<LogId>,
    /// Record bytes applied since the last checkpoint.
    pub bytes_since_checkpoint: u64,
    /// Running statistics of the log.
    pub stats: LogStats,
    /// Keys the last-offset-by-key index holds.
    pub key_index_keys: u64,
}

/// Persisted applied state (key `g 0x10`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub next_offset: u64,
    pub log_start_offset: u64,
    /// Latest retention checkpoint applied through `PrefixTruncate` (or installed).
    pub retention_point: Option<LogId>,
    pub entries_since_checkpoint: u64,
    pub bytes_since_checkpoint: u64,
    /// The producer table's deterministic clock (largest leader append time applied).
    pub producer_clock_ms: i64,
    /// Running statistics (sizes and times) that retention decides from.
    pub stats: LogStats,
    /// The key index's forgotten bound (see [`super::key_index`]); its keys are stored one per
    /// key under `g 0x17`.
    pub keys_forgotten_upto: Option<u64>,
}

/// Where the records of one accepted batch live (idx CF value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLocation {
    /// Raft index of the entry carrying the batch.
    pub raft_index: u64,
    /// Position of the batch among the entry's batches.
    pub ordinal: u32,
    pub record_count: u32,
    pub max_timestamp_ms: i64,
    /// Leader append time of the entry, the timestamp of records sent without one.
    pub append_time_ms: i64,
}

/// The state machine of one group.
pub struct StateMachineStore {
    db: Arc<Db>,
    group: GroupId,
    state: AppliedState,
    policy: CheckpointPolicy,
    progress: watch::Sender<Progress>,
    /// Serialises snapshot pointer updates between the builder and install.
    snapshot_lock: Arc<tokio::sync::Mutex<()>>,
    /// Applies `Command::Meta` entries (the controller group only).
    meta: Option<Box<dyn MetaStateMachine>>,
    /// Idempotent producers (persisted per producer under `g 0x11`); shared read-only with the
    /// group, whose leader checks epochs against it before proposing.
    producers: SharedProducers,
    /// Negative control for the fault suite: accept every producer batch unchecked.
    dedup_disabled: bool,
    /// Last offset by key, for conditional appends (persisted per key under `g 0x17`).
    keys: KeyIndex,
    /// Negative control for the fault suite: append conditional batches unchecked.
    conditions_ignored: bool,
    /// Keep the latest value of every record key (see [`StateMachineStore::keep_keyed_state`]).
    keyed: bool,
    /// Negative control for the fault suite (see
    /// [`StateMachineStore::truncate_past_checkpoint_for_fault_injection`]).
    truncate_past_checkpoint: bool,
}

impl StateMachineStore {
    /// Loads the applied state of `group` (empty for a new group).
    ///
    /// # Errors
    /// Read or decode failures of the persisted state.
    pub async fn open(db: Arc<Db>, group: GroupId, policy: CheckpointPolicy) -> Result<StateMachineStore, StoreError> {
        StateMachineStore::open_with_meta(db, group, policy, None).await
    }

    /// Like [`StateMachineStore::open`], for a group whose `Command::Meta` entries `meta`
    /// applies; its persisted state is restored into it.
    ///
    /// # Errors
    /// Read or decode failures of the persisted state.
    pub async fn open_with_meta(
        db: Arc<Db>,
        group: GroupId,
        policy: CheckpointPolicy,
        mut meta: Option<Box<dyn MetaStateMachine>>,
    ) -> Result<StateMachineStore, StoreError> {
        let db2 = db.clone();
        let (state, saved_meta, producers, keys) = blocking(move || {
            let sm = db2.cf(CF_SM)?;
            let state = match db2.rocks().get_pinned_cf(sm, keys::applied(group)).map_err(StoreError::rocks("get"))? {
                Some(v) => super::legacy::applied_state(&v)?,
                None => AppliedState::default(),
            };
            let meta = db2.rocks().get_cf(sm, keys::meta_state(group)).map_err(StoreError::rocks("get"))?;
            let producers = load_producers(&db2, group)?;
            let keys = load_key_offsets(&db2, group)?;
            Ok((state, meta, producers, keys))
        })
        .await?;
        let keys = KeyIndex::from_parts(keys, state.keys_forgotten_upto);
        if let (Some(m), Some(saved)) = (meta.as_mut(), saved_meta) {
            m.restore(&saved).map_err(|message| StoreError::Corrupt { group, message })?;
        }
        let producers = Arc::new(std::sync::RwLock::new(ProducerTable::from_parts(producers, state.producer_clock_ms)));
        let (progress, _) = watch::channel(progress_of(&state, &keys));
        Ok(StateMachineStore {
            db,
            group,
            state,
            policy,
            progress,
            snapshot_lock: Arc::default(),
            meta,
            producers,
            dedup_disabled: false,
            keys,
            conditions_ignored: false,
            keyed: false,
            truncate_past_checkpoint: false,
        })
    }

    /// Negative control for the fault suite: truncations remove one record more than they
    /// should on this replica.
    pub fn truncate_past_checkpoint_for_fault_injection(&mut self) {
        self.truncate_past_checkpoint = true;
    }

    /// Negative control for the fault suite: stop deduplicating producer batches.
    pub fn disable_dedup_for_fault_injection(&mut self) {
        self.dedup_disabled = true;
    }

    /// Negative control for the fault suite: append conditional batches without checking their
    /// condition (racing writers then both succeed against the same expected offset).
    pub fn ignore_conditions_for_fault_injection(&mut self) {
        self.conditions_ignored = true;
    }

    /// Makes this a *keyed* group: apply keeps the latest value of every record key (an empty
    /// value deletes the key), written in the same WriteBatch as the offsets, so any replica
    /// has the current state without replaying the log (the consumer groups' state in
    /// `__consumer_offsets`). Records without a key are not kept.
    pub fn keep_keyed_state(&mut self) {
        self.keyed = true;
    }

    /// The producer table, for reading (the leader's epoch checks).
    pub fn shared_producers(&self) -> SharedProducers {
        self.producers.clone()
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, ProducerTable> {
        self.producers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of the applied progress, updated after every apply.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    async fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<ApplyResponse>, StoreError> {
        let mut state = self.state.clone();
        let mut batch = WriteBatch::default();
        let mut responses = Vec::with_capacity(entries.len());
        // Checkpoints written in this very batch, so a PrefixTruncate naming one is found.
        let mut fresh: Vec<Checkpoint> = Vec::new();
        let mut meta_changed = false;
        // Producers whose persisted entry must be rewritten (or deleted) with this apply.
        let mut dirty: BTreeSet<u64> = BTreeSet::new();
        // Record keys whose key-index entry must be rewritten (or deleted) with this apply.
        let mut dirty_keys: BTreeSet<bytes::Bytes> = BTreeSet::new();
        for entry in &entries {
            let mut payload_bytes = 0u64;
            let mut force_checkpoint = false;
            let resp = match &entry.payload {
                EntryPayload::Blank => ApplyResponse::None,
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    ApplyResponse::None
                }
                EntryPayload::Normal(Command::Produce(p)) => {
                    payload_bytes = p.batches.iter().map(|b| b.records.len() as u64).sum();
                    state.stats.bytes_total += payload_bytes;
                    state.stats.time_ms = state.stats.time_ms.max(p.append_time_ms);
                    let newest = p.batches.iter().filter(|b| b.record_count > 0).map(|b| b.max_timestamp_ms).max();
                    state.stats.max_timestamp_ms = state.stats.max_timestamp_ms.max(newest.unwrap_or(0));
                    self.apply_produce(&mut state, &mut batch, entry.log_id.index, p, &mut dirty, &mut dirty_keys)?
                }
                EntryPayload::Normal(Command::Checkpoint { time_ms }) => {
                    state.stats.time_ms = state.stats.time_ms.max(*time_ms);
                    // Only when records came since the last one: a repeated proposal adds nothing.
                    force_checkpoint = state.bytes_since_checkpoint > 0;
                    ApplyResponse::None
                }
                EntryPayload::Normal(Command::DeleteRecords { before }) => {
                    // Never past the high watermark at this entry, never backwards.
                    let to = (*before).min(state.next_offset);
                    state.log_start_offset = state.log_start_offset.max(to);
                    ApplyResponse::Truncated { log_start_offset: state.log_start_offset }
                }
                EntryPayload::Normal(Command::PrefixTruncate { upto }) => {
                    self.apply_prefix_truncate(&mut state, &mut batch, upto, &fresh)?;
                    ApplyResponse::None
                }
                EntryPayload::Normal(Command::Meta(cmd)) => match self.meta.as_mut() {
                    Some(m) => {
                        meta_changed = true;
                        ApplyResponse::Meta(m.apply(entry.log_id.index, cmd))
                    }
                    None => ApplyResponse::Rejected(format!("group {} has no metadata state machine", self.group)),
                },
            };
            state.last_applied = Some(entry.log_id);
            state.entries_since_checkpoint += 1;
            state.bytes_since_checkpoint += payload_bytes;
            if state.stats.checkpoint_time_ms == 0 {
                // The log's first clock reading: segment ages count from here.
                state.stats.checkpoint_time_ms = state.stats.time_ms;
            }
            if force_checkpoint
                || state.entries_since_checkpoint >= self.policy.every_entries
                || state.bytes_since_checkpoint >= self.policy.every_bytes
            {
                state.stats.checkpoint_time_ms = state.stats.time_ms;
                state.stats.checkpoints += 1;
                let cp = Checkpoint {
                    log_id: entry.log_id,
                    membership: state.membership.clone(),
                    data: CheckpointData {
                        next_offset: state.next_offset,
                        meta: self.meta.as_ref().map(|m| m.save()),
                        producers: self.table().clone(),
                        log_start_offset: state.log_start_offset,
                        stats: state.stats,
                        keys: self.keys.to_repr(),
                    },
                };
                checkpoints::put(&self.db, self.group, &mut batch, &cp)?;
                fresh.push(cp);
                state.entries_since_checkpoint = 0;
                state.bytes_since_checkpoint = 0;
            }
            responses.push(resp);
        }
        {
            let table = self.table();
            state.producer_clock_ms = table.clock_ms;
            for pid in dirty {
                match table.producers.get(&pid) {
                    Some(p) => {
                        batch.put_cf(self.db.cf(CF_SM)?, keys::producer(self.group, pid), encode("producer", p)?)
                    }
                    None => batch.delete_cf(self.db.cf(CF_SM)?, keys::producer(self.group, pid)),
                }
            }
        }
        let sm = self.db.cf(CF_SM)?;
        for key in dirty_keys {
            let at = keys::key_offset(self.group, &key);
            match self.keys.lookup(&key) {
                KeyOffset::At(offset) => batch.put_cf(sm, at, offset.to_be_bytes()),
                KeyOffset::NoRecord | KeyOffset::Forgotten { .. } => batch.delete_cf(sm, at),
            }
        }
        state.keys_forgotten_upto = self.keys.forgotten_upto();
        batch.put_cf(self.db.cf(CF_SM)?, keys::applied(self.group), encode("applied state", &state)?);
        if let (true, Some(m)) = (meta_changed, self.meta.as_ref()) {
            batch.put_cf(self.db.cf(CF_SM)?, keys::meta_state(self.group), m.save());
        }
        let db = self.db.clone();
        blocking(move || {
            // Not synced: the log entries are durable already; a re-apply is deterministic.
            db.write(batch, "apply")
        })
        .await?;
        self.state = state;
        self.progress.send_replace(progress_of(&self.state, &self.keys));
        Ok(responses)
    }

    /// Assigns offsets to a produce entry's batches, deduplicating idempotent producers'.
    /// The producer table is updated in place: a failed apply write stops the group for good,
    /// so it never has to be rolled back.
    fn apply_produce(
        &mut self,
        state: &mut AppliedState,
        batch: &mut WriteBatch,
        raft_index: u64,
        entry: &ProduceEntry,
        dirty: &mut BTreeSet<u64>,
        dirty_keys: &mut BTreeSet<bytes::Bytes>,
    ) -> Result<ApplyResponse, StoreError> {
        let idx_cf = self.db.cf(CF_IDX)?;
        let mut outcomes = Vec::with_capacity(entry.batches.len());
        let limits = &entry.producer_limits;
        let mut table = self.producers.write().unwrap_or_else(|p| p.into_inner());
        table.tick(entry.append_time_ms);
        // Expiry by the log's clock, decided at the same entry on every replica.
        dirty.extend(table.expire(limits.expiry_ms));
        for (ordinal, b) in entry.batches.iter().enumerate() {
            let base_offset = state.next_offset;
            if let Some(p) = b.producer.as_ref().filter(|_| b.record_count > 0) {
                match table.check(p, b.record_count, limits) {
                    Verdict::Accept => {}
                    _ if self.dedup_disabled => {}
                    Verdict::Duplicate { base_offset, append_time_ms } => {
                        outcomes.push(BatchOutcome::Duplicate { base_offset, append_time_ms });
                        continue;
                    }
                    Verdict::Refuse(r) => {
                        outcomes.push(BatchOutcome::Refused(r));
                        continue;
                    }
                }
            }
            // After the producer check: a retried duplicate of an appended conditional batch
            // answers with its offset above, whatever the log holds now. A refusal leaves the
            // producer's sequence numbers unused.
            if let Some(c) = b.condition.as_ref().filter(|_| !self.conditions_ignored) {
                if let Err(failed) = check_condition(c, base_offset, &self.keys) {
                    outcomes.push(BatchOutcome::ConditionFailed(failed));
                    continue;
                }
            }
            if let Some(p) = b.producer.as_ref().filter(|_| b.record_count > 0) {
                let evicted = table.record(p, b.record_count, base_offset, entry.append_time_ms, limits);
                dirty.extend(evicted);
                dirty.insert(p.producer_id);
            }
            if self.keyed {
                keep_keys(&self.db, self.group, batch, &b.records)?;
            }
            for (key, ordinal) in &b.keys {
                let forgotten =
                    self.keys.record(key.clone(), base_offset + u64::from(*ordinal), entry.key_index_keys_max);
                dirty_keys.insert(key.clone());
                dirty_keys.extend(forgotten);
            }
            // An empty batch gets no offset and no idx key (it would collide with the next one).
            if b.record_count > 0 {
                let loc = BatchLocation {
                    raft_index,
                    ordinal: ordinal as u32,
                    record_count: b.record_count,
                    max_timestamp_ms: b.max_timestamp_ms,
                    append_time_ms: entry.append_time_ms,
                };
                batch.put_cf(idx_cf, keys::batch(self.group, base_offset), encode("batch location", &loc)?);
                state.next_offset += u64::from(b.record_count);
            }
            outcomes.push(BatchOutcome::Appended { base_offset });
        }
        Ok(ApplyResponse::Produce(outcomes))
    }

    fn apply_prefix_truncate(
        &self,
        state: &mut AppliedState,
        batch: &mut WriteBatch,
        upto: &LogId,
        fresh: &[Checkpoint],
    ) -> Result<(), StoreError> {
        // A replica whose retention point (or installed snapshot) already covers `upto` ignores it.
        if state.retention_point.is_some_and(|r| r.index >= upto.index) {
            return Ok(());
        }
        let cp = match fresh.iter().find(|c| c.log_id == *upto) {
            Some(c) => Some(c.clone()),
            None => snapshot::read_checkpoint(&self.db, self.group, upto.index)?,
        };
        let Some(cp) = cp.filter(|c| c.log_id == *upto) else {
            // The leader only names checkpoints it applied; every replica wrote the same ones.
            return Err(StoreError::Corrupt {
                group: self.group,
                message: format!("PrefixTruncate names {upto}, which is not a checkpoint here"),
            });
        };
        state.retention_point = Some(*upto);
        // A DeleteRecords may have moved the log start further already; it never goes back.
        state.log_start_offset = state.log_start_offset.max(cp.data.next_offset);
        if self.truncate_past_checkpoint && cp.data.next_offset < state.next_offset {
            // FAULT INJECTION: one record more than retention allows.
            state.log_start_offset = state.log_start_offset.max(cp.data.next_offset + 1);
        }
        // Batches wholly below the checkpoint (it sits on a batch boundary). Older checkpoints
        // stay: the current snapshot may still name one of them; the snapshot builder deletes
        // those below the checkpoint it moves the snapshot pointer to.
        let (from, to) = keys::batches_below(self.group, cp.data.next_offset);
        batch.delete_range_cf(self.db.cf(CF_IDX)?, from, to);
        Ok(())
    }

    /// Removes every key of `group` from every column family (the group was deleted).
    ///
    /// # Errors
    /// RocksDB write errors.
    pub async fn destroy(db: Arc<Db>, group: GroupId) -> Result<(), StoreError> {
        blocking(move || {
            let (start, end) = keys::group_range(group);
            let mut b = WriteBatch::default();
            for cf in keys::ALL_CFS {
                b.delete_range_cf(db.cf(cf)?, &start, &end);
            }
            db.write_durable(b, "destroy group")
        })
        .await
    }
}

/// Writes the latest value of every keyed record of an accepted batch (deletes on an empty value).
fn keep_keys(db: &Db, group: GroupId, batch: &mut WriteBatch, records: &bytes::Bytes) -> Result<(), StoreError> {
    use prost::Message;
    let decoded = cairn_proto::peer::RecordBatch::decode(records.clone()).map_err(|e| StoreError::Corrupt {
        group,
        message: format!("an accepted record batch does not decode: {e}"),
    })?;
    let sm = db.cf(CF_SM)?;
    for r in decoded.records.iter().filter(|r| !r.key.is_empty()) {
        let key = keys::keyed(group, &r.key);
        if r.value.is_empty() {
            batch.delete_cf(sm, key);
        } else {
            batch.put_cf(sm, key, &r.value);
        }
    }
    Ok(())
}

/// The keyed state of `group` (see [`StateMachineStore::keep_keyed_state`]): every record key
/// with its latest value, in key order. Blocking: call it from `spawn_blocking`.
///
/// # Errors
/// RocksDB read errors.
pub fn keyed_state(db: &Db, group: GroupId) -> Result<KeyedState, StoreError> {
    let (from, to) = keys::keyed_range(group);
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_iterate_upper_bound(to.to_vec());
    ro.set_verify_checksums(true);
    let mut it = db.rocks().raw_iterator_cf_opt(db.cf(CF_SM)?, ro);
    it.seek(from);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if let Some(key) = keys::keyed_record_key(k) {
            out.push((key.to_vec(), v.to_vec()));
        }
        it.next();
    }
    it.status().map_err(StoreError::rocks("scan keyed state"))?;
    Ok(out)
}

/// Whether conditional batch `c` may be appended at `end_offset` (the partition's next offset).
fn check_condition(c: &Condition, end_offset: u64, keys: &KeyIndex) -> Result<(), ConditionFailed> {
    let key_offset = c.key.as_ref().map(|k| keys.lookup(&k.key));
    let offset_holds = c.expected_offset.is_none_or(|e| e == end_offset);
    let key_holds = match (c.key.as_ref().map(|k| k.expected), key_offset) {
        (Some(Some(expected)), Some(KeyOffset::At(last))) => expected == last,
        (Some(None), Some(KeyOffset::NoRecord)) => true,
        // A forgotten key matches no expectation: the index cannot confirm one.
        (Some(_), _) => false,
        (None, _) => true,
    };
    if offset_holds && key_holds {
        Ok(())
    } else {
        Err(ConditionFailed { end_offset, key_offset })
    }
}

/// The persisted key index of `group`: every key with the offset of its last record.
fn load_key_offsets(db: &Db, group: GroupId) -> Result<Vec<(bytes::Bytes, u64)>, StoreError> {
    let (from, to) = keys::key_offsets_range(group);
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_iterate_upper_bound(to.to_vec());
    let mut it = db.rocks().raw_iterator_cf_opt(db.cf(CF_SM)?, ro);
    it.seek(from);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let key = keys::key_offset_record_key(k);
        let offset = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
        let (Some(key), Some(offset)) = (key, offset) else {
            return Err(StoreError::Corrupt { group, message: "bad key-index entry".into() });
        };
        out.push((bytes::Bytes::copy_from_slice(key), offset));
        it.next();
    }
    it.status().map_err(StoreError::rocks("scan key index"))?;
    Ok(out)
}

/// Every persisted producer of `group`.
fn load_producers(db: &Db, group: GroupId) -> Result<std::collections::BTreeMap<u64, ProducerState>, StoreError> {
    let (from, to) = keys::producers_range(group);
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_iterate_upper_bound(to.to_vec());
    let mut it = db.rocks().raw_iterator_cf_opt(db.cf(CF_SM)?, ro);
    it.seek(from);
    let mut out = std::collections::BTreeMap::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let pid = keys::producer_id(k).ok_or(StoreError::Corrupt { group, message: "bad producer key".into() })?;
        out.insert(pid, decode::<ProducerState>("producer", v)?);
        it.next();
    }
    it.status().map_err(StoreError::rocks("scan producers"))?;
    Ok(out)
}

fn progress_of(s: &AppliedState, keys: &KeyIndex) -> Progress {
    Progress {
        key_index_keys: keys.len() as u64,
        high_watermark: s.next_offset,
        log_start_offset: s.log_start_offset,
        applied_index: s.last_applied.map(|l| l.index),
        retention_point: s.retention_point,
        bytes_since_checkpoint: s.bytes_since_checkpoint,
        stats: s.stats,
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id);
        let produces = entries.iter().any(|e| matches!(e.payload, EntryPayload::Normal(Command::Produce(_))));
        let started = std::time::Instant::now();
        let applied = self.apply_entries(entries).await;
        if produces {
            self.db.observer().produce_stage(super::ProduceStage::Apply, started.elapsed());
        }
        applied.map_err(|e| match last {
            Some(l) => StorageIOError::apply(l, &e).into(),
            None => StorageIOError::write_state_machine(&e).into(),
        })
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // The builder captures the retention point now; it reads only immutable checkpoints.
        SnapshotBuilder::new(self.db.clone(), self.group, self.state.retention_point, self.snapshot_lock.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<CheckpointData>, StorageError> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<CheckpointData>,
    ) -> Result<(), StorageError> {
        let _guard = self.snapshot_lock.lock().await;
        let signature = Some(meta.signature());
        let Some(at) = meta.last_log_id else {
            return Err(StorageIOError::write_snapshot(
                signature,
                &StoreError::Corrupt { group: self.group, message: "snapshot without a log id".into() },
            )
            .into());
        };
        let state = AppliedState {
            last_applied: Some(at),
            membership: meta.last_membership.clone(),
            next_offset: snapshot.next_offset,
            // Nothing before the checkpoint is stored on this replica (nor readable, after a
            // DeleteRecords that went further).
            log_start_offset: snapshot.next_offset.max(snapshot.log_start_offset),
            retention_point: Some(at),
            entries_since_checkpoint: 0,
            bytes_since_checkpoint: 0,
            producer_clock_ms: snapshot.producers.clock_ms,
            stats: snapshot.stats,
            keys_forgotten_upto: snapshot.keys.forgotten_upto,
        };
        if let (Some(m), Some(saved)) = (self.meta.as_mut(), snapshot.meta.as_ref()) {
            m.restore(saved).map_err(|message| {
                StorageIOError::write_snapshot(signature.clone(), &StoreError::Corrupt { group: self.group, message })
            })?;
        }
        let cp = Checkpoint { log_id: at, membership: meta.last_membership.clone(), data: *snapshot };
        let cp_producers = cp.data.producers.clone();
        let cp_keys = KeyIndex::from_repr(cp.data.keys.clone());
        let (db, group, st) = (self.db.clone(), self.group, state.clone());
        blocking(move || install(&db, group, &st, &cp))
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        *self.producers.write().unwrap_or_else(|p| p.into_inner()) = cp_producers;
        self.keys = cp_keys;
        tracing::info!(
            group = self.group,
            at = %at,
            next_offset = state.next_offset,
            log_start_offset = state.log_start_offset,
            "installed a checkpoint snapshot (this replica was behind the leader's log start)"
        );
        self.state = state;
        self.progress.send_replace(progress_of(&self.state, &self.keys));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let (db, group) = (self.db.clone(), self.group);
        blocking(move || snapshot::current(&db, group))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}

/// Installs checkpoint `cp` as the whole state of a lagging replica, in ONE synced batch: the
/// state, the snapshot pointer, the log deletion up to the checkpoint and last-purged. openraft
/// queues the follower's purge independently; a crash between separate writes could leave
/// purged = C with applied < C.
fn install(db: &Db, group: GroupId, state: &AppliedState, cp: &Checkpoint) -> Result<(), StoreError> {
    let mut b = WriteBatch::default();
    let sm = db.cf(CF_SM)?;
    b.put_cf(sm, keys::applied(group), encode("applied state", state)?);
    checkpoints::put(db, group, &mut b, cp)?;
    checkpoints::delete_below(db, group, &mut b, cp.log_id.index)?;
    b.put_cf(sm, keys::snapshot_pointer(group), encode("snapshot pointer", &cp.log_id)?);
    if let Some(m) = &cp.data.meta {
        b.put_cf(sm, keys::meta_state(group), m);
    }
    let (from, to) = keys::producers_range(group);
    b.delete_range_cf(sm, &from[..], &to[..]);
    for (pid, p) in &cp.data.producers.producers {
        b.put_cf(sm, keys::producer(group, *pid), encode("producer", p)?);
    }
    let (from, to) = keys::key_offsets_range(group);
    b.delete_range_cf(sm, &from[..], &to[..]);
    for (key, offset) in &cp.data.keys.keys {
        b.put_cf(sm, keys::key_offset(group, key), offset.to_be_bytes());
    }
    b.delete_range_cf(db.cf(CF_IDX)?, &keys::batch(group, 0)[..], &keys::batches_end(group)[..]);
    super::log_store::purge_into(db, group, &cp.log_id, &mut b)?;
    db.write_durable(b, "install snapshot")
}
