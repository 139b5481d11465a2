//! Errors a partition group reports to the node's services.

use crate::ids::NodeId;
use crate::storage::StoreError;

/// Why a produce or fetch on a partition group did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// This replica is not the leader. Definite: the request was not appended here.
    #[error("this replica is not the partition's leader{}", hint_text(leader))]
    NotLeader { leader: Option<LeaderHint> },
    /// The request was appended here, then this replica stopped leading before it committed:
    /// another replica may still commit it, so the outcome is unknown. Retriable at the leader.
    #[error("leadership changed before the request committed (outcome unknown){}", hint_text(leader))]
    LeadershipLost { leader: Option<LeaderHint> },
    /// The proposal queue is full; nothing was appended.
    #[error("partition is overloaded: {queued} requests queued")]
    Overloaded { queued: usize },
    /// The request was handed to Raft but its outcome is unknown (leadership lost, timeout):
    /// it may or may not be committed. Retriable; an idempotent producer's retry is deduplicated.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// The producer's epoch is older than the one this partition has seen: a newer instance
    /// took over. Definite.
    #[error("producer fenced: this partition has seen its epoch {current_epoch}")]
    Fenced { current_epoch: u32 },
    /// The batch's sequence does not follow the producer's last one here (a gap: an earlier
    /// batch is missing). Definite; retriable for a producer resending earlier batches.
    #[error("out-of-order sequence: this partition expects sequence {expected} next")]
    OutOfOrderSequence { expected: u32 },
    /// The partition has no state for the producer (expired or evicted) and the batch does not
    /// start at sequence 0. Definite.
    #[error("unknown producer: this partition has no state for it (expired or evicted)")]
    UnknownProducer,
    /// A retry of a batch older than the remembered window: appended long ago, offset no longer
    /// known.
    #[error("duplicate of a batch older than the remembered window: appended earlier, offset no longer known")]
    DuplicateSequence,
    /// A conditional append's condition did not hold when it was applied: nothing appended.
    /// Definite, not retriable as is (read the state again, then decide).
    #[error("{}", condition_text(.0))]
    ConditionFailed(crate::types::ConditionFailed),
    /// The offset is outside `[log_start, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange { offset: u64, log_start: u64, high_watermark: u64 },
    /// A membership change could not be made now (another one in progress, a voter that is not
    /// a learner yet).
    #[error("membership change refused: {reason}")]
    MembershipChange { reason: String },
    /// The Raft timers are invalid (rejected before anything starts).
    #[error("invalid raft settings: {reason}")]
    InvalidConfig { reason: String },
    /// The group's Raft instance stopped (shutdown or a storage error).
    #[error("partition replica is stopped: {reason}")]
    Stopped { reason: String },
    /// The replica's stored data is damaged (found while starting it): only rebuilding it
    /// from the other replicas repairs it.
    #[error("partition replica's data is damaged: {reason}")]
    Damaged { reason: String },
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

impl std::fmt::Display for LeaderHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} at {}", self.node_id, self.address)
    }
}

fn hint_text(leader: &Option<LeaderHint>) -> String {
    match leader {
        Some(l) => format!("; the leader is {l}"),
        None => "; no leader is known".to_string(),
    }
}

fn condition_text(f: &crate::types::ConditionFailed) -> String {
    use crate::storage::key_index::KeyOffset;
    let key = match f.key_offset {
        None => String::new(),
        Some(KeyOffset::At(o)) => format!("; the key's last record is at offset {o}"),
        Some(KeyOffset::NoRecord) => "; the key has no record yet".to_string(),
        Some(KeyOffset::Forgotten { upto }) => format!(
            "; the partition's key index no longer holds the key (its last record, if any, is at or below \
             offset {upto}): append with the partition's expected offset instead"
        ),
    };
    format!("condition failed: the partition's end offset is {}{key}", f.end_offset)
}

impl GroupError {
    /// Whether the error means damaged stored data (see [`StoreError::is_corruption`]).
    pub fn is_damage(&self) -> bool {
        match self {
            GroupError::Damaged { .. } | GroupError::CorruptBatch { .. } => true,
            GroupError::Storage(s) => s.is_corruption(),
            _ => false,
        }
    }
}

impl From<crate::storage::producers::Refusal> for GroupError {
    fn from(r: crate::storage::producers::Refusal) -> GroupError {
        use crate::storage::producers::Refusal;
        match r {
            Refusal::Fenced { current_epoch } => GroupError::Fenced { current_epoch },
            Refusal::OutOfOrder { expected } => GroupError::OutOfOrderSequence { expected },
            Refusal::UnknownProducer => GroupError::UnknownProducer,
            Refusal::DuplicateOld => GroupError::DuplicateSequence,
        }
    }
}
