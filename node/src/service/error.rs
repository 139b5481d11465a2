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
    /// A record fails the topic's schema validation: nothing of the batch is appended.
    #[error("a record (index {index} in its batch) is refused by the topic's schema validation: {why}")]
    InvalidRecord { index: usize, why: String },
    /// The schema registry could not answer a validation (no leader in time): retriable.
    #[error("the topic's schema validation could not reach the schema registry: {0}")]
    RegistryUnavailable(String),
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
    /// The principal is so far over its byte-rate quota that the request is not served.
    #[error("{0}")]
    OverQuota(String),
    /// No valid credentials on a call that needs them.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// An ACL check refused the call.
    #[error("principal {principal:?} may not {operation} {resource}")]
    Denied { principal: String, operation: &'static str, resource: String },
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
        ServiceError::InvalidRecord { .. } => s(Code::InvalidArgument, ErrorCode::InvalidRecord, false, true),
        ServiceError::RegistryUnavailable(_) => s(Code::Unavailable, ErrorCode::Unavailable, true, true),
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
        ServiceError::OverQuota(_) => s(Code::ResourceExhausted, ErrorCode::Throttled, true, true),
        ServiceError::Unauthenticated(_) => s(Code::Unauthenticated, ErrorCode::Unauthenticated, false, true),
        ServiceError::Denied { .. } => s(Code::PermissionDenied, ErrorCode::AuthorizationFailed, false, true),
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
            GroupError::ConditionFailed(_) => s(Code::FailedPrecondition, ErrorCode::OffsetMismatch, false, true),
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
    /// The stable error code's name (`NOT_LEADER`, ...), a bounded metrics label.
    pub fn code_name(&self) -> &'static str {
        shape(self).error.as_str_name()
    }

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
            ServiceError::Group(GroupError::ConditionFailed(f)) => {
                detail.high_watermark = f.end_offset;
                detail.key_offset = f.key_offset.map(key_offset_detail);
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

/// What a partition knew of a key, as the error detail carries it.
fn key_offset_detail(k: cairn_raft::storage::key_index::KeyOffset) -> cairn_proto::v1::KeyOffset {
    use cairn_proto::v1::key_offset::State;
    use cairn_raft::storage::key_index::KeyOffset;
    let state = match k {
        KeyOffset::At(offset) => State::Offset(offset),
        KeyOffset::NoRecord => State::NoRecord(true),
        KeyOffset::Forgotten { upto } => State::ForgottenUpto(upto),
    };
    cairn_proto::v1::KeyOffset { state: Some(state) }
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
    fn a_failed_condition_reports_the_end_offset_and_the_key() {
        use cairn_proto::v1::key_offset;
        use cairn_raft::storage::key_index::KeyOffset;
        use cairn_raft::types::ConditionFailed;
        let failed = ConditionFailed { end_offset: 12, key_offset: Some(KeyOffset::At(7)) };
        let s: Status = ServiceError::Group(GroupError::ConditionFailed(failed)).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let d = detail(&s);
        assert_eq!(d.code(), ErrorCode::OffsetMismatch);
        assert!(d.definite && !d.retriable);
        assert_eq!(d.high_watermark, 12);
        assert_eq!(d.key_offset.and_then(|k| k.state), Some(key_offset::State::Offset(7)));
        assert!(s.message().contains("end offset is 12") && s.message().contains("at offset 7"), "{}", s.message());
        let forgotten = ConditionFailed { end_offset: 3, key_offset: Some(KeyOffset::Forgotten { upto: 2 }) };
        let d = detail(&ServiceError::Group(GroupError::ConditionFailed(forgotten)).into());
        assert_eq!(d.key_offset.and_then(|k| k.state), Some(key_offset::State::ForgottenUpto(2)));
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

    /// Every error a client can get, with its stable code and what its text must say; and no
    /// text shows Rust debug formatting (`Some(`, `{ `, `::`, `None`).
    #[test]
    fn every_error_code_has_its_code_and_a_text_written_for_people() {
        use cairn_raft::storage::StoreError;
        let hint = || Some(LeaderHint { node_id: 2, address: "127.0.0.1:7702".into() });
        let group = |e: GroupError| ServiceError::Group(e);
        let coord = |e: CoordError| ServiceError::from(e);
        let cases: Vec<(ServiceError, ErrorCode, &str)> = vec![
            (ServiceError::UnknownTopic("t".into()), ErrorCode::UnknownTopic, "unknown topic \"t\""),
            (
                ServiceError::UnknownPartition { topic: "t".into(), partition: 9, count: 2 },
                ErrorCode::UnknownPartition,
                "has no partition 9 (it has 2)",
            ),
            (ServiceError::InvalidArgument("bad x".into()), ErrorCode::InvalidArgument, "invalid argument: bad x"),
            (
                ServiceError::RecordTooLarge { index: 1, size: 10, max: 5 },
                ErrorCode::RecordTooLarge,
                "index 1 in its batch) is 10 bytes, over the limit of 5",
            ),
            (
                ServiceError::InvalidRecord { index: 2, why: "no schema id".into() },
                ErrorCode::InvalidRecord,
                "index 2 in its batch) is refused by the topic's schema validation: no schema id",
            ),
            (ServiceError::TopicExists("t".into()), ErrorCode::TopicAlreadyExists, "already exists"),
            (ServiceError::InvalidReplication("rf 4 > 3".into()), ErrorCode::InvalidReplicationFactor, "rf 4 > 3"),
            (ServiceError::NotEnoughLiveNodes("2 live".into()), ErrorCode::InvalidReplicationFactor, "2 live"),
            (ServiceError::Starting { group: 7 }, ErrorCode::Unavailable, "group 7 is starting"),
            (ServiceError::Joining, ErrorCode::Unavailable, "this node is starting"),
            (ServiceError::NoMetadata, ErrorCode::Unavailable, "not learned the cluster metadata"),
            (
                ServiceError::UnknownTopicId { topic: "t".into(), requested: 3, current: Some(4) },
                ErrorCode::UnknownTopicId,
                "incarnation 4, not the requested 3",
            ),
            (
                ServiceError::UnknownTopicId { topic: "t".into(), requested: 3, current: None },
                ErrorCode::UnknownTopicId,
                "does not know topic",
            ),
            (
                ServiceError::DeletedInFlight { topic: "t".into(), topic_id: 3 },
                ErrorCode::UnknownTopicId,
                "was deleted while the request was in flight",
            ),
            (ServiceError::ProducerFenced { current_epoch: 4 }, ErrorCode::Fenced, "has epoch 4"),
            (ServiceError::ProducerNotIssued("not issued".into()), ErrorCode::UnknownProducerEpoch, "not issued"),
            (ServiceError::LimitExceeded("too many".into()), ErrorCode::LimitExceeded, "too many"),
            (
                ServiceError::FenceNotConfirmed { producer_id: 1, epoch: 2, nodes: vec![3], wait_ms: 10 },
                ErrorCode::Timeout,
                "did not confirm the fence",
            ),
            (ServiceError::DiskFull("node 1 has 5 bytes free".into()), ErrorCode::StorageFull, "writes are refused"),
            (ServiceError::Internal("bug".into()), ErrorCode::Internal, "internal error: bug"),
            (group(GroupError::NotLeader { leader: hint() }), ErrorCode::NotLeader, "node 2 at 127.0.0.1:7702"),
            (
                group(GroupError::NotLeader { leader: None }),
                ErrorCode::LeaderNotAvailable,
                "not the partition's leader",
            ),
            (group(GroupError::LeadershipLost { leader: hint() }), ErrorCode::NotLeader, "outcome unknown"),
            (group(GroupError::Overloaded { queued: 9 }), ErrorCode::Throttled, "9 requests queued"),
            (group(GroupError::OutcomeUnknown { reason: "timed out".into() }), ErrorCode::Timeout, "timed out"),
            (group(GroupError::Fenced { current_epoch: 3 }), ErrorCode::Fenced, "epoch 3"),
            (
                group(GroupError::OutOfOrderSequence { expected: 1 }),
                ErrorCode::OutOfOrderSequence,
                "expects sequence 1 next",
            ),
            (group(GroupError::UnknownProducer), ErrorCode::UnknownProducer, "no state for it"),
            (group(GroupError::DuplicateSequence), ErrorCode::DuplicateSequence, "appended earlier"),
            (
                group(GroupError::OffsetOutOfRange { offset: 9, log_start: 1, high_watermark: 5 }),
                ErrorCode::OffsetOutOfRange,
                "offset 9 is out of range [1, 5]",
            ),
            (
                group(GroupError::MembershipChange { reason: "busy".into() }),
                ErrorCode::Unavailable,
                "membership change refused: busy",
            ),
            (group(GroupError::InvalidConfig { reason: "x".into() }), ErrorCode::Internal, "invalid raft settings"),
            (group(GroupError::Stopped { reason: "disk".into() }), ErrorCode::ReplicaStopped, "stopped: disk"),
            (group(GroupError::Damaged { reason: "crc".into() }), ErrorCode::ReplicaStopped, "damaged: crc"),
            (
                group(GroupError::Storage(StoreError::Checksum { what: "a block", stored: 1, computed: 2 })),
                ErrorCode::Internal,
                "checksum mismatch in a block",
            ),
            (
                coord(CoordError::NotCoordinator { group: "g".into(), hint: hint() }),
                ErrorCode::NotCoordinator,
                "its coordinator is node 2 at 127.0.0.1:7702",
            ),
            (
                coord(CoordError::NotCoordinator { group: "g".into(), hint: None }),
                ErrorCode::NotCoordinator,
                "not known right now",
            ),
            (coord(CoordError::Loading { group: "g".into() }), ErrorCode::CoordinatorLoadInProgress, "loading"),
            (
                coord(CoordError::UnknownMember { group: "g".into(), member: "m".into() }),
                ErrorCode::UnknownMemberId,
                "rejoin",
            ),
            (
                coord(CoordError::FencedEpoch { group: "g".into(), member: "m".into(), sent: 1, current: 2 }),
                ErrorCode::FencedMemberEpoch,
                "at epoch 2, not 1",
            ),
            (
                coord(CoordError::StaleEpoch {
                    group: "g".into(),
                    member: "m".into(),
                    topic: "t".into(),
                    partition: 0,
                    why: "it does not own it".into(),
                }),
                ErrorCode::StaleMemberEpoch,
                "may not commit t/0: it does not own it",
            ),
            (
                coord(CoordError::NotEmpty { group: "g".into(), members: 2, what: "deleting it" }),
                ErrorCode::GroupNotEmpty,
                "has 2 member(s)",
            ),
            (coord(CoordError::NotFound("g".into())), ErrorCode::GroupNotFound, "no consumer group"),
            (coord(CoordError::Invalid("bad regex".into())), ErrorCode::InvalidArgument, "bad regex"),
            (coord(CoordError::UnknownTopic("t".into())), ErrorCode::UnknownTopic, "unknown topic"),
            (
                coord(CoordError::UnknownTopicId { topic: "t".into(), requested: 1, current: 2 }),
                ErrorCode::UnknownTopicId,
                "incarnation 2, not 1",
            ),
            (
                coord(CoordError::UnknownPartition { topic: "t".into(), partition: 5, count: 2 }),
                ErrorCode::UnknownPartition,
                "no partition 5 (it has 2)",
            ),
            (
                coord(CoordError::OffsetOutOfRange {
                    topic: "t".into(),
                    partition: 0,
                    offset: 9,
                    log_start: 1,
                    log_end: 5,
                }),
                ErrorCode::OffsetOutOfRange,
                "outside [1, 5]",
            ),
            (coord(CoordError::LimitExceeded("too many groups".into())), ErrorCode::LimitExceeded, "too many groups"),
            (coord(CoordError::DiskFull("5 bytes free".into())), ErrorCode::StorageFull, "cannot be written"),
        ];
        for (e, code, text) in cases {
            let s: Status = e.into();
            let d = detail(&s);
            assert_eq!(d.code(), code, "{}", s.message());
            assert_eq!(d.message, s.message());
            assert!(s.message().contains(text), "{code:?}: {:?} does not say {text:?}", s.message());
            for debug in ["Some(", "None", "{ ", "::"] {
                assert!(!s.message().contains(debug), "{code:?}: {:?} shows debug formatting", s.message());
            }
        }
    }
}
