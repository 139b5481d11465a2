//! The idempotent-producer table of one partition (Kafka KIP-98 semantics), checked when
//! entries are applied so every replica reaches the same verdict.
//!
//! Per producer id: its epoch, the last [`WINDOW`] accepted batches (first/last sequence and
//! base offset) and the leader-assigned time of its last append. Sequences are `u32` and wrap
//! around (`u32::MAX + 1 = 0`).
//!
//! | batch                                           | verdict                               |
//! |-------------------------------------------------|---------------------------------------|
//! | unknown producer, base sequence 0               | accept (new producer)                 |
//! | unknown producer, other sequence                | UNKNOWN_PRODUCER (expired or foreign) |
//! | epoch below the producer's                      | FENCED                                |
//! | epoch above, base sequence 0                    | accept, new epoch, window reset       |
//! | epoch above, other sequence                     | OUT_OF_ORDER_SEQUENCE                 |
//! | same epoch, same sequences as a batch in window | duplicate: success, original offset   |
//! | same epoch, next expected sequence              | accept                                |
//! | same epoch, ahead of the next expected          | OUT_OF_ORDER_SEQUENCE (a gap)         |
//! | same epoch, behind the window                   | DUPLICATE_SEQUENCE (offset no longer known) |
//!
//! Expiry is deterministic: it uses the leader append times carried in the log (kept
//! monotonic), never a local clock.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::types::ProducerRef;

/// Accepted batches remembered per producer (Kafka's max in-flight requests per connection).
pub const WINDOW: usize = 5;

/// A producer idle (by the log's clock) for longer than this is forgotten; its next batch
/// gets UNKNOWN_PRODUCER unless it starts over at sequence 0. One day, as Kafka's
/// `producer.id.expiration.ms`. A constant, not a setting: every replica must agree on it.
pub const PRODUCER_EXPIRY_MS: i64 = 86_400_000;

/// One remembered batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqBatch {
    pub first_seq: u32,
    pub last_seq: u32,
    pub base_offset: u64,
}

/// What the table knows of one producer on this partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub epoch: u32,
    /// Oldest first, at most [`WINDOW`].
    pub batches: VecDeque<SeqBatch>,
    pub last_append_ms: i64,
}

/// Why a batch is refused. Each is definite: nothing was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    Fenced {
        current_epoch: u32,
    },
    OutOfOrder {
        expected: u32,
    },
    UnknownProducer,
    /// An older batch than the remembered window: committed long ago, offset unknown.
    DuplicateOld,
}

/// The verdict on one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it; then call [`ProducerTable::record`].
    Accept,
    /// Already appended at this base offset.
    Duplicate {
        base_offset: u64,
    },
    Refuse(Refusal),
}

/// The producer table of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTable {
    pub producers: BTreeMap<u64, ProducerState>,
    /// Largest leader append time applied so far (the deterministic clock).
    pub clock_ms: i64,
}

fn last_seq(first: u32, count: u32) -> u32 {
    first.wrapping_add(count.saturating_sub(1))
}

impl ProducerTable {
    /// Advances the deterministic clock to an entry's append time.
    pub fn tick(&mut self, append_time_ms: i64) {
        self.clock_ms = self.clock_ms.max(append_time_ms);
    }

    fn live(&self, pid: u64, expiry_ms: i64) -> Option<&ProducerState> {
        self.producers.get(&pid).filter(|p| self.clock_ms - p.last_append_ms <= expiry_ms)
    }

    /// Judges a batch of `count` records from `p`.
    pub fn check(&self, p: &ProducerRef, count: u32, expiry_ms: i64) -> Verdict {
        let Some(state) = self.live(p.producer_id, expiry_ms) else {
            return if p.base_sequence == 0 { Verdict::Accept } else { Verdict::Refuse(Refusal::UnknownProducer) };
        };
        if p.epoch < state.epoch {
            return Verdict::Refuse(Refusal::Fenced { current_epoch: state.epoch });
        }
        if p.epoch > state.epoch {
            return if p.base_sequence == 0 {
                Verdict::Accept
            } else {
                Verdict::Refuse(Refusal::OutOfOrder { expected: 0 })
            };
        }
        let last = last_seq(p.base_sequence, count);
        if let Some(b) = state.batches.iter().find(|b| b.first_seq == p.base_sequence && b.last_seq == last) {
            return Verdict::Duplicate { base_offset: b.base_offset };
        }
        let expected = state.batches.back().map(|b| b.last_seq.wrapping_add(1)).unwrap_or(0);
        if p.base_sequence == expected {
            return Verdict::Accept;
        }
        // Signed distance on the wrapping sequence circle: ahead is a gap, behind is old.
        if (p.base_sequence.wrapping_sub(expected) as i32) > 0 {
            Verdict::Refuse(Refusal::OutOfOrder { expected })
        } else {
            Verdict::Refuse(Refusal::DuplicateOld)
        }
    }

    /// Remembers an accepted batch appended at `base_offset`.
    pub fn record(&mut self, p: &ProducerRef, count: u32, base_offset: u64, expiry_ms: i64) {
        let now = self.clock_ms;
        let state = self.producers.entry(p.producer_id).or_insert_with(|| ProducerState {
            epoch: p.epoch,
            batches: VecDeque::new(),
            last_append_ms: now,
        });
        if p.epoch != state.epoch || now - state.last_append_ms > expiry_ms {
            // A new epoch, or a producer seen again after it expired, starts a fresh window.
            state.batches.clear();
        }
        state.epoch = p.epoch;
        state.last_append_ms = now;
        state.batches.push_back(SeqBatch {
            first_seq: p.base_sequence,
            last_seq: last_seq(p.base_sequence, count),
            base_offset,
        });
        while state.batches.len() > WINDOW {
            state.batches.pop_front();
        }
    }

    /// Drops producers idle for longer than `expiry_ms`; returns their ids.
    pub fn expire(&mut self, expiry_ms: i64) -> Vec<u64> {
        let now = self.clock_ms;
        let gone: Vec<u64> =
            self.producers.iter().filter(|(_, s)| now - s.last_append_ms > expiry_ms).map(|(id, _)| *id).collect();
        for id in &gone {
            self.producers.remove(id);
        }
        gone
    }
}

#[cfg(test)]
#[path = "producers_test.rs"]
mod tests;
