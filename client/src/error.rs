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
    },
    /// The broker could not be reached or the call failed in transport; the outcome of a
    /// produce is unknown.
    #[error("broker {addr}: {status}")]
    Transport { addr: String, status: tonic::Status },
    #[error("no broker configured")]
    NoBrokers,
    #[error("invalid broker address {0:?}")]
    InvalidBroker(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// Retries ran out of time; `last` is the final attempt's error.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<ClientError> },
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
            ClientError::RetriesExhausted { last, .. } => last.code(),
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
            ClientError::RetriesExhausted { last, .. } => last.is_retriable(),
            _ => false,
        }
    }

    /// Whether the request was certainly not applied (false: unknown outcome).
    pub fn is_definite(&self) -> bool {
        match self {
            ClientError::Server { definite, .. } => *definite,
            ClientError::Transport { .. } => false,
            ClientError::RetriesExhausted { last, .. } => last.is_definite(),
            _ => true,
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
        }
    }

    pub(crate) fn leader_hint(&self) -> Option<&str> {
        match self {
            ClientError::Server { code: ErrorCode::NotLeader, leader: Some((_, addr)), .. } => Some(addr),
            _ => None,
        }
    }
}
