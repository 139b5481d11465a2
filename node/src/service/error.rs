//! Service-layer errors and their ONE mapping to `tonic::Status` with a structured
//! `cairn.v1.ErrorDetail` (stable code, retriable, definite, leader hint).

use cairn_proto::v1::{ErrorCode, ErrorDetail};
use cairn_raft::GroupError;
use prost::Message;

use crate::coordinator::CoordError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition { topic: String, partition: u32, count: u32 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("a record (index {index} in its batch) is {size} bytes, over the limit of {max} bytes")]
    RecordTooLarge { index: usize, size: usize, max: usize },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("{0}")]
    InvalidReplication(String),
    #[error("{0}")]
    NotEnoughLiveNodes(String),
    #[error("group {group} is starting on this node")]
    Starting { group: u64 },
    #[error("this node is starting: it is checking with its peers whether it may use its new data directory")]
    Joining,
    /// The request names another incarnation of the topic than this node has.
    #[error("{}", unknown_topic_id_text(topic, *requested, *current))]
    UnknownTopicId { topic: String, requested: u64, current: Option<u64> },
    /// The topic was deleted while the request was in flight: it was appended to the deleted
    /// incarnation, whose records are gone with it.
    #[error(
        "topic {topic:?} (id {topic_id}) was deleted while the request was in flight; its records are deleted with it"
    )]
    DeletedInFlight { topic: String, topic_id: u64 },
    #[error("producer fenced: a newer instance of this producer has epoch {current_epoch}")]
    ProducerFenced { current_epoch: u32 },
    /// The producer identity was not issued by the controller (as far as this node knows).
    #[error("{0}")]
    ProducerNotIssued(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// A named producer's new epoch is committed, but not every live node confirmed it in time.
    #[error("producer {producer_id} got epoch {epoch}, but nodes {nodes:?} did not confirm the fence within {wait_ms} ms; retry InitProducer")]
    FenceNotConfirmed { producer_id: u64, epoch: u32, nodes: Vec<u64>, wait_ms: u64 },
    /// This node has not learned the cluster metadata yet (a replaced node whose controller
    /// replica is still catching up): it cannot answer for the cluster.
    #[error("this node has not learned the cluster metadata yet; ask another node")]
    NoMetadata,
    /// The data directory is below its free-space floor: writes are refused, reads served.
    #[error("{0}; writes are refused until space is freed")]
    DiskFull(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Coordinator(CoordError),
}

impl From<CoordError> for ServiceError {
    /// A failed append is a group error like any other; the rest are the coordinator's own.
    fn from(e: CoordError) -> ServiceError {
        match e {
            CoordError::Write(g) => ServiceError::Group(g),
            other => ServiceError::Coordinator(other),
        }
    }
}

struct Shape {
    code: Code,
    error: ErrorCode,
    retriable: bool,
    definite: bool,
}

fn shape(e: &ServiceError) -> Shape {
    let s = |code, error, retriable, definite| Shape { code, error, retriable, definite };
    match e {
        ServiceError::UnknownTopic(_) => s(Code::NotFound, ErrorCode::UnknownTopic, false, true),
        ServiceError::UnknownPartition { .. } => s(Code::NotFound, ErrorCode::UnknownPartition, false, true),
        ServiceError::InvalidArgument(_) => s(Code::InvalidArgument, ErrorCode::InvalidArgument, false, true),
        ServiceError::RecordTooLarge { .. } => s(Code::InvalidArgument, ErrorCode::RecordTooLarge, false, true),
        ServiceError::TopicExists(_) => s(Code::AlreadyExists, ErrorCode::TopicAlreadyExists, false, true),
        ServiceError::InvalidReplication(_) => {
            s(Code::InvalidArgument, ErrorCode::InvalidReplicationFactor, false, true)
        }
        ServiceError::NotEnoughLiveNodes(_) => {
            s(Code::FailedPrecondition, ErrorCode::InvalidReplicationFactor, true, true)
        }
        ServiceError::Starting { .. } | ServiceError::Joining | ServiceError::NoMetadata => {
            s(Code::Unavailable, ErrorCode::Unavailable, true, true)
        }
        ServiceError::UnknownTopicId { .. } => s(Code::NotFound, ErrorCode::UnknownTopicId, true, true),
        ServiceError::DeletedInFlight { .. } => s(Code::NotFound, ErrorCode::UnknownTopicId, false, false),
        ServiceError::ProducerFenced { .. } => s(Code::FailedPrecondition, ErrorCode::Fenced, false, true),
        ServiceError::ProducerNotIssued(_) => s(Code::FailedPrecondition, ErrorCode::UnknownProducerEpoch, true, true),
        ServiceError::LimitExceeded(_) => s(Code::ResourceExhausted, ErrorCode::LimitExceeded, false, true),
        // The epoch is issued (the command committed); only the confirmation is missing.
        ServiceError::FenceNotConfirmed { .. } => s(Code::Unavailable, ErrorCode::Timeout, true, false),
        ServiceError::DiskFull(_) => s(Code::ResourceExhausted, ErrorCode::StorageFull, true, true),
        ServiceError::Internal(_) => s(Code::Internal, ErrorCode::Internal, false, true),
        ServiceError::Coordinator(c) => match c {
            CoordError::NotCoordinator { .. } => s(Code::Unavailable, ErrorCode::NotCoordinator, true, true),
            CoordError::Loading { .. } => s(Code::Unavailable, ErrorCode::CoordinatorLoadInProgress, true, true),
            CoordError::UnknownMember { .. } => s(Code::FailedPrecondition, ErrorCode::UnknownMemberId, false, true),
            CoordError::FencedEpoch { .. } => s(Code::FailedPrecondition, ErrorCode::FencedMemberEpoch, false, true),
            CoordError::StaleEpoch { .. } => s(Code::FailedPrecondition, ErrorCode::StaleMemberEpoch, false, true),
            CoordError::NotEmpty { .. } => s(Code::FailedPrecondition, ErrorCode::GroupNotEmpty, false, true),
            CoordError::NotFound(_) => s(Code::NotFound, ErrorCode::GroupNotFound, false, true),
            CoordError::Invalid(_) => s(Code::InvalidArgument, ErrorCode::InvalidArgument, false, true),
            CoordError::UnknownTopic(_) => s(Code::NotFound, ErrorCode::UnknownTopic, false, true),
            CoordError::UnknownTopicId { .. } => s(Code::NotFound, ErrorCode::UnknownTopicId, true, true),
            CoordError::UnknownPartition { .. } => s(Code::NotFound, ErrorCode::UnknownPartition, false, true),
            CoordError::OffsetOutOfRange { .. } => s(Code::OutOfRange, ErrorCode::OffsetOutOfRange, false, true),
            CoordError::LimitExceeded(_) => s(Code::ResourceExhausted, ErrorCode::LimitExceeded, false, true),
            CoordError::DiskFull(_) => s(Code::ResourceExhausted, ErrorCode::StorageFull, true, true),
            CoordError::Write(_) => s(Code::Unavailable, ErrorCode::Timeout, true, false),
        },
        ServiceError::Group(g) => match g {
            GroupError::NotLeader { leader: Some(_) } => s(Code::Unavailable, ErrorCode::NotLeader, true, true),
            GroupError::NotLeader { leader: None } => s(Code::Unavailable, ErrorCode::LeaderNotAvailable, true, true),
            // Appended here, then leadership moved: another replica may still commit it.
            GroupError::LeadershipLost { .. } => s(Code::Unavailable, ErrorCode::NotLeader, true, false),
            GroupError::Overloaded { .. } => s(Code::ResourceExhausted, ErrorCode::Throttled, true, true),
            GroupError::OutcomeUnknown { .. } => s(Code::Unavailable, ErrorCode::Timeout, true, false),
            GroupError::OffsetOutOfRange { .. } => s(Code::OutOfRange, ErrorCode::OffsetOutOfRange, false, true),
            GroupError::Fenced { .. } => s(Code::FailedPrecondition, ErrorCode::Fenced, false, true),
            // Retriable for a client that still has earlier batches in doubt
            // (docs/architecture.md, "Idempotent producer").
            GroupError::OutOfOrderSequence { .. } => {
                s(Code::FailedPrecondition, ErrorCode::OutOfOrderSequence, true, true)
            }
            GroupError::UnknownProducer => s(Code::FailedPrecondition, ErrorCode::UnknownProducer, false, true),
            // Not a failure: the batch committed long ago; only its offset is unknown.
            GroupError::DuplicateSequence => s(Code::AlreadyExists, ErrorCode::DuplicateSequence, false, false),
            // Retriable elsewhere: another replica serves reads, the leader takes produce.
            GroupError::Stopped { .. } | GroupError::Damaged { .. } => {
                s(Code::Unavailable, ErrorCode::ReplicaStopped, true, true)
            }
            GroupError::InvalidConfig { .. } => s(Code::Internal, ErrorCode::Internal, false, true),
            GroupError::MembershipChange { .. } => s(Code::Unavailable, ErrorCode::Unavailable, true, true),
            GroupError::Storage(_) | GroupError::CorruptBatch { .. } => {
                s(Code::Internal, ErrorCode::Internal, false, true)
            }
        },
    }
}

impl ServiceError {
    /// The gRPC code and structured detail of this error: the one mapping every answer uses
    /// (unary calls as a `Status`, produce streams as an in-band `ErrorDetail`).
    pub fn detail(&self) -> (Code, ErrorDetail) {
        let sh = shape(self);
        let mut detail = ErrorDetail {
            code: sh.error as i32,
            retriable: sh.retriable,
            definite: sh.definite,
            message: self.to_string(),
            ..ErrorDetail::default()
        };
        match self {
            ServiceError::Group(
                GroupError::NotLeader { leader: Some(l) } | GroupError::LeadershipLost { leader: Some(l) },
            ) => {
                detail.leader_id = l.node_id;
                detail.leader_address = l.address.clone();
            }
            ServiceError::Group(GroupError::OffsetOutOfRange { log_start, high_watermark, .. }) => {
                detail.log_start_offset = *log_start;
                detail.high_watermark = *high_watermark;
            }
            ServiceError::Coordinator(CoordError::NotCoordinator { hint: Some(l), .. }) => {
                detail.leader_id = l.node_id;
                detail.leader_address = l.address.clone();
            }
            ServiceError::Coordinator(CoordError::OffsetOutOfRange { log_start, log_end, .. }) => {
                detail.log_start_offset = *log_start;
                detail.high_watermark = *log_end;
            }
            ServiceError::Internal(_)
            | ServiceError::Group(GroupError::Storage(_) | GroupError::CorruptBatch { .. }) => {
                tracing::error!(error = %self, "internal error served to a client");
            }
            _ => {}
        }
        (sh.code, detail)
    }
}

fn unknown_topic_id_text(topic: &str, requested: u64, current: Option<u64>) -> String {
    match current {
        Some(c) => format!(
            "topic {topic:?} here is incarnation {c}, not the requested {requested} (deleted and re-created, or this node lags)"
        ),
        None => format!("this node does not know topic {topic:?} (incarnation {requested}) yet, or it was deleted"),
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let (code, detail) = e.detail();
        Status::with_details(code, detail.message.clone(), detail.encode_to_vec().into())
    }
}

#[cfg(test)]
mod tests {
    use cairn_raft::error::LeaderHint;

    use super::*;

    fn detail(s: &Status) -> ErrorDetail {
        ErrorDetail::decode(s.details()).expect("detail decodes")
    }

    #[test]
    fn not_leader_carries_the_leader_address() {
        let s: Status = ServiceError::Group(GroupError::NotLeader {
            leader: Some(LeaderHint { node_id: 2, address: "127.0.0.1:7702".into() }),
        })
        .into();
        let d = detail(&s);
        assert_eq!(d.code(), ErrorCode::NotLeader);
        assert!(d.retriable && d.definite);
        assert_eq!((d.leader_id, d.leader_address.as_str()), (2, "127.0.0.1:7702"));
    }

    #[test]
    fn unknown_outcome_is_retriable_but_not_definite() {
        let s: Status = ServiceError::Group(GroupError::OutcomeUnknown { reason: "timeout".into() }).into();
        let d = detail(&s);
        assert_eq!(d.code(), ErrorCode::Timeout);
        assert!(d.retriable && !d.definite);
    }

    #[test]
    fn not_coordinator_names_the_coordinator_and_fencing_is_definite() {
        let hint = Some(LeaderHint { node_id: 3, address: "127.0.0.1:7703".into() });
        let d = detail(&ServiceError::from(CoordError::NotCoordinator { group: "g".into(), hint }).into());
        assert_eq!(d.code(), ErrorCode::NotCoordinator);
        assert!(d.retriable && d.definite);
        assert_eq!((d.leader_id, d.leader_address.as_str()), (3, "127.0.0.1:7703"));
        let fenced = CoordError::FencedEpoch { group: "g".into(), member: "m".into(), sent: 3, current: 5 };
        let d = detail(&ServiceError::from(fenced).into());
        assert_eq!(d.code(), ErrorCode::FencedMemberEpoch);
        assert!(!d.retriable && d.definite);
        let lost = CoordError::Write(GroupError::OutcomeUnknown { reason: "x".into() });
        assert!(!detail(&ServiceError::from(lost).into()).definite);
    }

    #[test]
    fn out_of_range_reports_bounds() {
        let s: Status =
            ServiceError::Group(GroupError::OffsetOutOfRange { offset: 99, log_start: 3, high_watermark: 10 }).into();
        assert_eq!(s.code(), Code::OutOfRange);
        let d = detail(&s);
        assert_eq!((d.log_start_offset, d.high_watermark), (3, 10));
        assert!(!d.retriable);
    }
}
