//! Errors of the coordinator layer; the service layer maps them to status codes.

use cairn_raft::error::LeaderHint;
use cairn_raft::GroupError;

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("this node does not coordinate group {group:?}{}", hint_text(hint))]
    NotCoordinator { group: String, hint: Option<LeaderHint> },
    #[error("the coordinator of group {group:?} is loading its state; retry")]
    Loading { group: String },
    #[error("member {member:?} is not in group {group:?} (it left, timed out or was replaced); rejoin")]
    UnknownMember { group: String, member: String },
    #[error("member {member:?} of group {group:?} is at epoch {current}, not {sent}; rejoin")]
    FencedEpoch { group: String, member: String, sent: i32, current: u32 },
    #[error("member {member:?} of group {group:?} may not commit {topic}/{partition}: {why}")]
    StaleEpoch { group: String, member: String, topic: String, partition: u32, why: String },
    #[error("group {group:?} has {members} member(s); {what} needs a group without members")]
    NotEmpty { group: String, members: usize, what: &'static str },
    #[error("there is no consumer group {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} is incarnation {current}, not {requested} (deleted and re-created?)")]
    UnknownTopicId { topic: String, requested: u64, current: u64 },
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition { topic: String, partition: u32, count: u32 },
    #[error("offset {offset} of {topic}/{partition} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange { topic: String, partition: u32, offset: u64, log_start: u64, log_end: u64 },
    #[error("{0}")]
    LimitExceeded(String),
    /// The data directory is below its free-space floor.
    #[error("{0}; group state cannot be written until space is freed")]
    DiskFull(String),
    /// Writing the group's state failed; the outcome is unknown (the coordinator reloads).
    #[error("writing group state: {0}")]
    Write(#[from] GroupError),
}

fn hint_text(hint: &Option<LeaderHint>) -> String {
    match hint {
        Some(h) => format!("; its coordinator is node {} at {}", h.node_id, h.address),
        None => "; its coordinator is not known right now".to_string(),
    }
}
