//! The Raft type configuration and the commands a partition group replicates.
//!
//! A log entry's payload is a [`Command`]. Record bytes travel inside it exactly as the client
//! sent them (the protobuf encoding of `cairn.peer.v1.RecordBatch`): written once in the log
//! column family, never copied into the state machine.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::ReplicaId;

openraft::declare_raft_types!(
    /// Openraft type configuration of every Cairn group.
    pub TypeConfig:
        D = Command,
        R = ApplyResponse,
        NodeId = ReplicaId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = CheckpointData,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type LogId = openraft::LogId<ReplicaId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<ReplicaId, openraft::BasicNode>;
pub type Membership = openraft::Membership<ReplicaId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<ReplicaId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<ReplicaId>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Vote = openraft::Vote<ReplicaId>;

/// What a normal log entry of a partition group carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// One or more produce batches gathered by the leader's proposer into one entry.
    Produce(ProduceEntry),
    /// Retention: records up to and including checkpoint `upto` may go. Applying it moves the
    /// log start offset to the first offset after that checkpoint.
    PrefixTruncate { upto: LogId },
    /// A command for the group's metadata state machine (the controller's cluster metadata),
    /// encoded by its owner. Applied only by groups that have one.
    Meta(Bytes),
    /// Retention granularity: applying it writes a checkpoint at this entry (when anything was
    /// applied since the last one). Proposed by the leader when the records since the last
    /// checkpoint reach the topic's segment size or age, so every replica checkpoints at the
    /// same entries whatever its own configuration. `time_ms` is the leader's clock.
    Checkpoint { time_ms: i64 },
    /// Kafka's DeleteRecords: the log start moves to `before` (at most the high watermark at
    /// this entry); the bytes go with the next truncation at a checkpoint at or below it.
    DeleteRecords { before: u64 },
}

/// Produce batches of one Raft entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceEntry {
    /// Leader's wall clock when it proposed the entry (ms since the Unix epoch). Deterministic for
    /// every replica because it is part of the log.
    pub append_time_ms: i64,
    pub batches: Vec<ProduceBatch>,
    /// Bounds of the producer table, from the proposing leader's configuration: in the log, so
    /// every replica expires and evicts producers alike.
    pub producer_limits: crate::storage::producers::ProducerLimits,
    /// Keys the partition's last-offset-by-key index holds at most (the proposing leader's
    /// configuration, in the log for the same reason).
    pub key_index_keys_max: u32,
}

/// One client batch as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceBatch {
    /// Idempotent producer identity, when the client uses one.
    pub producer: Option<ProducerRef>,
    pub record_count: u32,
    /// Largest record timestamp (records with no timestamp count as the append time).
    pub max_timestamp_ms: i64,
    /// Protobuf encoding of `cairn.peer.v1.RecordBatch`, exactly as accepted.
    pub records: Bytes,
    /// Appended only if this holds when the entry is applied (a conditional append).
    pub condition: Option<Condition>,
    /// Every distinct non-empty record key of the batch with the ordinal of its last record
    /// (extracted once by the leader, so apply indexes keys without decoding records).
    pub keys: Vec<(Bytes, u32)>,
}

/// The condition of a conditional append, checked at apply time against the state before the
/// batch (batches earlier in the same entry included): optimistic concurrency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The partition's next offset (its end offset) must be exactly this.
    pub expected_offset: Option<u64>,
    /// The last record with `key` must be at this offset (or there must be none).
    pub key: Option<KeyCondition>,
}

/// A per-key condition: every record of the batch has `key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCondition {
    pub key: Bytes,
    /// The offset of the key's last record; None: no record with the key may exist yet.
    pub expected: Option<u64>,
}

/// Why a conditional append was refused (nothing appended): the state it was checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionFailed {
    /// The partition's next offset when the batch was applied.
    pub end_offset: u64,
    /// What the key index knew of the condition's key (key conditions only).
    pub key_offset: Option<crate::storage::key_index::KeyOffset>,
}

/// Every distinct non-empty key among `keys` (one per record, in record order) with the
/// ordinal of its last record, in order of those last records.
pub fn last_key_ordinals<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<(Bytes, u32)> {
    // Linear in the batch: a batch may hold many thousands of records.
    let mut last: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    for (ordinal, key) in keys.into_iter().enumerate() {
        if !key.is_empty() {
            last.insert(key, ordinal as u32);
        }
    }
    let mut out: Vec<(Bytes, u32)> = last.into_iter().map(|(k, o)| (Bytes::copy_from_slice(k), o)).collect();
    out.sort_unstable_by_key(|(_, o)| *o);
    out
}

/// Identity of an idempotent producer's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerRef {
    pub producer_id: u64,
    pub epoch: u32,
    pub base_sequence: u32,
}

/// Result of applying one entry. Exactly one per entry, blank and membership entries included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum ApplyResponse {
    /// Blank, membership and retention entries.
    #[default]
    None,
    /// One outcome per batch of a produce entry, in batch order.
    Produce(Vec<BatchOutcome>),
    /// The metadata state machine's answer, encoded by its owner.
    Meta(Bytes),
    /// A `DeleteRecords` entry: the log start after it.
    Truncated { log_start_offset: u64 },
    /// The entry was not applicable to this group (e.g. a metadata command sent to a
    /// partition); deterministic on every replica.
    Rejected(String),
}

impl ApplyResponse {
    /// What kind of answer this is, for a message about one that was not expected.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyResponse::None => "none",
            ApplyResponse::Produce(_) => "produce",
            ApplyResponse::Meta(_) => "metadata",
            ApplyResponse::Truncated { .. } => "truncated",
            ApplyResponse::Rejected(_) => "rejected",
        }
    }
}

/// Outcome of one produce batch at apply time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchOutcome {
    /// Records were given offsets `base_offset ..= base_offset + count - 1`.
    Appended { base_offset: u64 },
    /// An idempotent producer's retry of a batch already appended at `base_offset` by an entry
    /// with leader append time `append_time_ms`.
    Duplicate { base_offset: u64, append_time_ms: i64 },
    /// Refused by the producer table; nothing appended.
    Refused(crate::storage::producers::Refusal),
    /// A conditional append whose condition did not hold; nothing appended.
    ConditionFailed(ConditionFailed),
}

/// Snapshot payload: an immutable retention checkpoint, never record data (docs/architecture.md, "Snapshots are retention checkpoints").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointData {
    /// Offset the first record after the checkpoint gets.
    pub next_offset: u64,
    /// The metadata state machine's state at the checkpoint, for groups that have one.
    pub meta: Option<Bytes>,
    /// The idempotent-producer table at the checkpoint.
    pub producers: crate::storage::producers::ProducerTable,
    /// First offset readable at the checkpoint (beyond `next_offset`'s start after a
    /// `DeleteRecords`): a replica installing it serves nothing below.
    pub log_start_offset: u64,
    /// Log statistics at the checkpoint.
    pub stats: LogStats,
    /// The last-offset-by-key index at the checkpoint.
    pub keys: crate::storage::key_index::KeyIndexRepr,
}

/// Running statistics of a partition's log, kept by apply and saved in every checkpoint: what
/// retention and timestamp lookups decide from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    /// Record bytes of every produce entry applied so far (counted from the first entry this
    /// replica applied, or from the checkpoint it installed: only differences are meaningful).
    pub bytes_total: u64,
    /// Largest record timestamp applied so far (0 when nothing was).
    pub max_timestamp_ms: i64,
    /// Leader clock of the last entry that carried one (produce or checkpoint).
    pub time_ms: i64,
    /// `time_ms` at the last checkpoint (or at the first entry): the current segment's age.
    pub checkpoint_time_ms: i64,
    /// Checkpoints written so far (changes whenever one is).
    pub checkpoints: u64,
}

/// A deterministic state machine for a group's `Command::Meta` entries (the controller's
/// cluster metadata). Its owner defines the encoding of commands, answers and state.
pub trait MetaStateMachine: Send + Sync + 'static {
    /// Applies one command at raft `index`; the answer goes back to the proposer. Must depend
    /// only on the current state, `index` and `command`.
    fn apply(&mut self, index: u64, command: &[u8]) -> Bytes;
    /// The whole state, persisted with every apply that changed it and carried in checkpoints.
    fn save(&self) -> Bytes;
    /// Replaces the state with a saved one.
    ///
    /// # Errors
    /// A state this owner cannot decode.
    fn restore(&mut self, state: &[u8]) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_named_once_with_its_last_record_in_record_order() {
        let keys: [&[u8]; 6] = [b"a", b"", b"b", b"a", b"c", b"b"];
        let got = last_key_ordinals(keys);
        let want = [(&b"a"[..], 3), (b"c", 4), (b"b", 5)];
        assert_eq!(got.iter().map(|(k, o)| (&k[..], *o)).collect::<Vec<_>>(), want);
        assert!(last_key_ordinals([&b""[..]; 3]).is_empty());
    }
}
