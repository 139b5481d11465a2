//! Client errors. Every server error carries its stable code, whether a retry may succeed and
//! whether the request was definitely not applied.

pub use cairn_proto::v1::ErrorCode;
use cairn_proto::v1::ErrorDetail;
use prost::Message;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a Cairn error.
    #[error("{message} [{}]", code.as_str_name())]
    Server {
        code: ErrorCode,
        message: String,
        retriable: bool,
        /// True when the request was certainly not applied.
        definite: bool,
        leader: Option<(u64, String)>,
        log_start_offset: u64,
        high_watermark: u64,
        /// For OFFSET_MISMATCH on a key condition: what the partition knew of the key.
        key_offset: Option<crate::condition::KeyState>,
    },
    /// The broker could not be reached or the call failed in transport; the outcome of a
    /// produce is unknown.
    #[error("broker {addr}: {status}")]
    Transport { addr: String, status: tonic::Status },
    #[error("no broker configured")]
    NoBrokers,
    /// No configured broker could be connected to (nothing listening, or no route), for the
    /// client's unreachable grace.
    #[error("no broker reachable (tried {}): {last}", tried.join(", "))]
    Unreachable { tried: Vec<String>, last: Box<ClientError> },
    #[error("invalid broker address {0:?}")]
    InvalidBroker(String),
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// Retries ran out of time; `last` is the final attempt's error.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<ClientError> },
    /// The last attempt of a retried request failed definitely, but an earlier attempt's
    /// outcome is unknown: the request may have been applied.
    #[error("{last} (outcome unknown: an earlier attempt may have been applied: {earlier})")]
    InDoubt { earlier: Box<ClientError>, last: Box<ClientError> },
    /// The client could not learn whether the request was applied (a producer that stopped or
    /// could not resolve a send within its delivery timeout).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
}

impl ClientError {
    pub(crate) fn from_status(addr: &str, status: tonic::Status) -> ClientError {
        match ErrorDetail::decode(status.details()) {
            Ok(d) if d.code != 0 => ClientError::from_detail(d),
            _ => ClientError::Transport { addr: addr.to_string(), status },
        }
    }

    /// The stable server error code, if the server answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            ClientError::RetriesExhausted { last, .. } | ClientError::InDoubt { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Server { retriable, .. } => *retriable,
            ClientError::Transport { status, .. } => !matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::Unimplemented
                    | tonic::Code::PermissionDenied
                    | tonic::Code::Unauthenticated
            ),
            ClientError::RetriesExhausted { last, .. } | ClientError::InDoubt { last, .. } => last.is_retriable(),
            _ => false,
        }
    }

    /// Whether the broker could not be connected to at all (nothing listening, no route): a
    /// transport failure before any answer, unlike a broker that answered with an error or
    /// took too long.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Transport { status, .. } if status.code() == tonic::Code::Unavailable)
    }

    /// Whether the request was certainly not applied (false: unknown outcome).
    pub fn is_definite(&self) -> bool {
        match self {
            ClientError::Server { definite, .. } => *definite,
            ClientError::Transport { .. } | ClientError::InDoubt { .. } | ClientError::OutcomeUnknown(_) => false,
            ClientError::RetriesExhausted { last, .. } => last.is_definite(),
            _ => true,
        }
    }

    /// This error, or [`ClientError::InDoubt`] when an earlier attempt of the same request had
    /// an unknown outcome (`earlier`): a definite answer to a retry does not make the request
    /// definite.
    pub(crate) fn after(self, earlier: Option<&ClientError>) -> ClientError {
        match earlier {
            Some(e) if self.is_definite() => {
                ClientError::InDoubt { earlier: Box::new(e.clone()), last: Box::new(self) }
            }
            _ => self,
        }
    }

    /// For OFFSET_OUT_OF_RANGE: the partition's `(log start, high watermark)` as the answering
    /// replica knew them.
    pub fn offset_bounds(&self) -> Option<(u64, u64)> {
        match self {
            ClientError::Server { code: ErrorCode::OffsetOutOfRange, log_start_offset, high_watermark, .. } => {
                Some((*log_start_offset, *high_watermark))
            }
            ClientError::RetriesExhausted { last, .. } | ClientError::InDoubt { last, .. } => last.offset_bounds(),
            _ => None,
        }
    }

    pub(crate) fn from_detail(d: ErrorDetail) -> ClientError {
        ClientError::Server {
            code: d.code(),
            message: d.message,
            retriable: d.retriable,
            definite: d.definite,
            leader: (d.leader_id != 0 && !d.leader_address.is_empty()).then_some((d.leader_id, d.leader_address)),
            log_start_offset: d.log_start_offset,
            high_watermark: d.high_watermark,
            key_offset: d.key_offset.as_ref().and_then(crate::condition::KeyState::from_proto),
        }
    }

    pub(crate) fn leader_hint(&self) -> Option<&str> {
        match self {
            ClientError::Server {
                code: ErrorCode::NotLeader | ErrorCode::NotCoordinator,
                leader: Some((_, addr)),
                ..
            } => Some(addr),
            _ => None,
        }
    }

    /// A client-side error with a stable code (no server involved).
    pub(crate) fn local(code: ErrorCode, message: String) -> ClientError {
        ClientError::Server {
            code,
            message,
            retriable: false,
            definite: true,
            leader: None,
            log_start_offset: 0,
            high_watermark: 0,
            key_offset: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definite_answer_after_an_unknown_outcome_is_in_doubt() {
        let lost = ClientError::Transport { addr: "a:1".into(), status: tonic::Status::unavailable("reset") };
        let stale = ClientError::local(ErrorCode::UnknownTopic, "unknown topic \"t\"".into());
        assert!(stale.is_definite());
        let e = stale.clone().after(Some(&lost));
        assert!(!e.is_definite(), "{e}");
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
        assert!(e.to_string().contains("outcome unknown"), "{e}");
        assert!(stale.clone().after(None).is_definite());
    }
}
