//! Errors a partition group reports to the node's services.

use crate::ids::NodeId;
use crate::storage::StoreError;

/// Why a produce or fetch on a partition group did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// This replica is not the leader. Definite: the request was not appended here.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<LeaderHint> },
    /// The proposal queue is full; nothing was appended.
    #[error("partition is overloaded: {queued} requests queued")]
    Overloaded { queued: usize },
    /// The request was handed to Raft but its outcome is unknown (leadership lost, timeout):
    /// it may or may not be committed. Retriable; an idempotent producer's retry is deduplicated.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// The idempotent producer table refused the batch; nothing was appended.
    #[error("producer batch refused: {0:?}")]
    ProducerRefused(crate::storage::producers::Refusal),
    /// The offset is outside `[log_start, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange { offset: u64, log_start: u64, high_watermark: u64 },
    /// The Raft timers are invalid (rejected before anything starts).
    #[error("invalid raft settings: {reason}")]
    InvalidConfig { reason: String },
    /// The group's Raft instance stopped (shutdown or a storage error).
    #[error("partition replica is stopped: {reason}")]
    Stopped { reason: String },
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// Stored record bytes could not be decoded (corruption or a format bug).
    #[error("corrupt record batch at raft index {raft_index}: {source}")]
    CorruptBatch {
        raft_index: u64,
        #[source]
        source: prost::DecodeError,
    },
}

/// Where the current leader of a group is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    pub node_id: NodeId,
    pub address: String,
}
