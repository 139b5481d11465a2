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
//! monotonic), never a local clock. The table is bounded ([`ProducerLimits`]): at its cap a new
//! producer evicts the one idle the longest, whose next batch then gets UNKNOWN_PRODUCER.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::types::ProducerRef;

/// Accepted batches remembered per producer (Kafka's max in-flight requests per connection).
pub const WINDOW: usize = 5;

/// Bounds of one partition's producer table. They travel in every produce entry (from the
/// leader's configuration), so every replica applies the same ones and reaches the same verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerLimits {
    /// A producer idle for longer than this (by the log's clock) is forgotten; its next batch
    /// gets UNKNOWN_PRODUCER unless it starts over at sequence 0 (Kafka's
    /// `producer.id.expiration.ms`).
    pub expiry_ms: i64,
    /// Producers remembered at most; a new one beyond it evicts the one idle the longest.
    pub max: u32,
}

impl Default for ProducerLimits {
    fn default() -> Self {
        ProducerLimits { expiry_ms: 86_400_000, max: 1_000 }
    }
}

/// One remembered batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqBatch {
    pub first_seq: u32,
    pub last_seq: u32,
    pub base_offset: u64,
    /// The leader's append time of the entry that carried it (a retry's answer reports it).
    pub append_time_ms: i64,
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
    /// Already appended at this base offset, at this leader append time.
    Duplicate {
        base_offset: u64,
        append_time_ms: i64,
    },
    Refuse(Refusal),
}

/// The producer table of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TableRepr", into = "TableRepr")]
pub struct ProducerTable {
    pub producers: BTreeMap<u64, ProducerState>,
    /// Largest leader append time applied so far (the deterministic clock).
    pub clock_ms: i64,
    /// `(last append time, producer id)` of every producer: expiry and eviction take the front.
    idle: BTreeSet<(i64, u64)>,
}

/// The stored form: the index is derived.
#[derive(Clone, Serialize, Deserialize)]
struct TableRepr {
    producers: BTreeMap<u64, ProducerState>,
    clock_ms: i64,
}

impl From<TableRepr> for ProducerTable {
    fn from(r: TableRepr) -> Self {
        ProducerTable::from_parts(r.producers, r.clock_ms)
    }
}

impl From<ProducerTable> for TableRepr {
    fn from(t: ProducerTable) -> Self {
        TableRepr { producers: t.producers, clock_ms: t.clock_ms }
    }
}

fn last_seq(first: u32, count: u32) -> u32 {
    first.wrapping_add(count.saturating_sub(1))
}

impl ProducerTable {
    /// A table of `producers` at clock `clock_ms` (as loaded from storage).
    pub fn from_parts(producers: BTreeMap<u64, ProducerState>, clock_ms: i64) -> ProducerTable {
        let idle = producers.iter().map(|(id, p)| (p.last_append_ms, *id)).collect();
        ProducerTable { producers, clock_ms, idle }
    }

    /// Advances the deterministic clock to an entry's append time.
    pub fn tick(&mut self, append_time_ms: i64) {
        self.clock_ms = self.clock_ms.max(append_time_ms);
    }

    fn live(&self, pid: u64, expiry_ms: i64) -> Option<&ProducerState> {
        self.producers.get(&pid).filter(|p| self.clock_ms - p.last_append_ms <= expiry_ms)
    }

    /// The epoch this partition knows for `pid`, if it remembers the producer.
    pub fn epoch_of(&self, pid: u64) -> Option<u32> {
        self.producers.get(&pid).map(|p| p.epoch)
    }

    /// Judges a batch of `count` records from `p`.
    pub fn check(&self, p: &ProducerRef, count: u32, limits: &ProducerLimits) -> Verdict {
        let Some(state) = self.live(p.producer_id, limits.expiry_ms) else {
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
            return Verdict::Duplicate { base_offset: b.base_offset, append_time_ms: b.append_time_ms };
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

    /// Remembers an accepted batch appended at `base_offset` by an entry appended at
    /// `append_time_ms`. A new producer beyond `limits.max` evicts the one idle the longest;
    /// returns its id.
    pub fn record(
        &mut self,
        p: &ProducerRef,
        count: u32,
        base_offset: u64,
        append_time_ms: i64,
        limits: &ProducerLimits,
    ) -> Option<u64> {
        let now = self.clock_ms;
        let mut evicted = None;
        if !self.producers.contains_key(&p.producer_id) && self.producers.len() >= limits.max.max(1) as usize {
            if let Some(&(_, oldest)) = self.idle.first() {
                self.remove(oldest);
                evicted = Some(oldest);
            }
        }
        let state = self.producers.entry(p.producer_id).or_insert_with(|| ProducerState {
            epoch: p.epoch,
            batches: VecDeque::new(),
            last_append_ms: now,
        });
        self.idle.remove(&(state.last_append_ms, p.producer_id));
        if p.epoch != state.epoch || now - state.last_append_ms > limits.expiry_ms {
            // A new epoch, or a producer seen again after it expired, starts a fresh window.
            state.batches.clear();
        }
        state.epoch = p.epoch;
        state.last_append_ms = now;
        state.batches.push_back(SeqBatch {
            first_seq: p.base_sequence,
            last_seq: last_seq(p.base_sequence, count),
            base_offset,
            append_time_ms,
        });
        while state.batches.len() > WINDOW {
            state.batches.pop_front();
        }
        self.idle.insert((now, p.producer_id));
        evicted
    }

    fn remove(&mut self, pid: u64) {
        if let Some(s) = self.producers.remove(&pid) {
            self.idle.remove(&(s.last_append_ms, pid));
        }
    }

    /// Drops producers idle for longer than `expiry_ms`; returns their ids.
    pub fn expire(&mut self, expiry_ms: i64) -> Vec<u64> {
        let now = self.clock_ms;
        let mut gone = Vec::new();
        while let Some(&(last, pid)) = self.idle.first() {
            if now - last <= expiry_ms {
                break;
            }
            self.remove(pid);
            gone.push(pid);
        }
        gone
    }
}

#[cfg(test)]
#[path = "producers_test.rs"]
mod tests;
