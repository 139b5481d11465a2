//! Conditional appends (optimistic concurrency): a batch appended only if the partition (or a
//! key's last record) is where the writer last saw it. The broker decides at apply time, on
//! every replica alike; a refusal is OFFSET_MISMATCH and nothing is appended.

use cairn_proto::v1::key_offset::State;
use cairn_proto::v1::{KeyOffset, ProduceRequest};

use crate::error::{ClientError, ErrorCode};

/// The condition of a conditional append. Both parts may be set: both must hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// The partition's end offset (the offset the batch's first record would get).
    pub expected_offset: Option<u64>,
    /// The key's last record: `Some(Some(offset))` at that offset, `Some(None)` no record with
    /// the key yet. Every record of the batch must carry the same key.
    pub expected_key_offset: Option<Option<u64>>,
}

impl Condition {
    /// Append only at end offset `offset`.
    pub fn at_offset(offset: u64) -> Condition {
        Condition { expected_offset: Some(offset), expected_key_offset: None }
    }

    /// Append only if the key's last record is at `last` (None: the key has no record yet).
    pub fn key_at(last: Option<u64>) -> Condition {
        Condition { expected_offset: None, expected_key_offset: Some(last) }
    }

    /// Writes the condition into a produce request.
    pub(crate) fn apply_to(&self, req: &mut ProduceRequest) {
        req.expected_offset = self.expected_offset;
        req.expected_key_offset = self.expected_key_offset.map(|k| KeyOffset {
            state: Some(match k {
                Some(offset) => State::Offset(offset),
                None => State::NoRecord(true),
            }),
        });
    }

    /// Whether an OFFSET_MISMATCH answer to this condition is final: the state it reports
    /// has moved past what the condition expects, and offsets only grow, so no later attempt of
    /// the same batch can ever be appended. Not final only for an expectation ahead of the
    /// partition (an offset it has not reached).
    pub fn mismatch_is_final(&self, err: &ClientError) -> bool {
        let Some(m) = err.mismatch() else { return false };
        let offset_final = self.expected_offset.is_some_and(|e| e < m.end_offset);
        let key_final = match (self.expected_key_offset, m.key_offset) {
            (Some(None), Some(KeyState::At(_))) => true,
            (Some(Some(e)), Some(KeyState::At(last))) => e < last,
            // The index forgot the key: no key condition matches until an append with an
            // expected offset indexes it again, which moves the end offset past any
            // expectation made from a read.
            (Some(_), Some(KeyState::Forgotten { .. })) => true,
            _ => false,
        };
        offset_final || key_final
    }
}

/// What a partition knew of a key when it refused a key condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// The key's last record is at this offset.
    At(u64),
    /// No record with the key exists.
    NoRecord,
    /// The partition's bounded key index forgot the key; its last record, if any, is at or
    /// below `upto`. Append with an expected (partition) offset to index it again.
    Forgotten { upto: u64 },
}

impl KeyState {
    pub(crate) fn from_proto(k: &KeyOffset) -> Option<KeyState> {
        Some(match k.state? {
            State::Offset(o) => KeyState::At(o),
            State::NoRecord(_) => KeyState::NoRecord,
            State::ForgottenUpto(upto) => KeyState::Forgotten { upto },
        })
    }

    /// The offset a key condition for the key's next record should expect (None: no record
    /// yet); None for a forgotten key, which no key condition matches.
    pub fn expectation(&self) -> Option<Option<u64>> {
        match self {
            KeyState::At(o) => Some(Some(*o)),
            KeyState::NoRecord => Some(None),
            KeyState::Forgotten { .. } => None,
        }
    }
}

/// An OFFSET_MISMATCH answer: the state the condition was checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The partition's end offset when the batch was applied.
    pub end_offset: u64,
    /// What the partition knew of the key (key conditions only).
    pub key_offset: Option<KeyState>,
}

impl ClientError {
    /// For OFFSET_MISMATCH (a conditional append refused): the state it was checked against.
    pub fn mismatch(&self) -> Option<Mismatch> {
        match self {
            ClientError::Server { code: ErrorCode::OffsetMismatch, high_watermark, key_offset, .. } => {
                Some(Mismatch { end_offset: *high_watermark, key_offset: *key_offset })
            }
            ClientError::RetriesExhausted { last, .. } => last.mismatch(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(end_offset: u64, key_offset: Option<KeyState>) -> ClientError {
        ClientError::Server {
            code: ErrorCode::OffsetMismatch,
            message: "condition failed".into(),
            retriable: false,
            definite: true,
            leader: None,
            log_start_offset: 0,
            high_watermark: end_offset,
            key_offset,
        }
    }

    #[test]
    fn a_mismatch_is_final_once_the_partition_moved_past_the_expectation() {
        let stale = Condition::at_offset(4);
        assert!(stale.mismatch_is_final(&mismatch(5, None)));
        assert!(!Condition::at_offset(9).mismatch_is_final(&mismatch(5, None)), "an offset not reached yet");
        let key = Condition::key_at(Some(3));
        assert!(key.mismatch_is_final(&mismatch(9, Some(KeyState::At(7)))));
        assert!(!key.mismatch_is_final(&mismatch(9, Some(KeyState::NoRecord))), "a future offset");
        assert!(Condition::key_at(None).mismatch_is_final(&mismatch(9, Some(KeyState::At(0)))));
        assert!(key.mismatch_is_final(&mismatch(9, Some(KeyState::Forgotten { upto: 2 }))));
        let other = ClientError::local(ErrorCode::Fenced, "x".into());
        assert!(!key.mismatch_is_final(&other));
    }

    #[test]
    fn a_condition_is_written_into_the_request() {
        let mut req = ProduceRequest::default();
        Condition { expected_offset: Some(2), expected_key_offset: Some(None) }.apply_to(&mut req);
        assert_eq!(req.expected_offset, Some(2));
        assert_eq!(req.expected_key_offset.and_then(|k| k.state), Some(State::NoRecord(true)));
        let mut req = ProduceRequest::default();
        Condition::key_at(Some(8)).apply_to(&mut req);
        assert_eq!(
            (req.expected_offset, req.expected_key_offset.and_then(|k| k.state)),
            (None, Some(State::Offset(8)))
        );
    }
}
