//! How the raft crate reports what it measures (the storage's fsync rounds, the stages of a
//! produce): a small trait the node implements with its metrics (DESIGN.md section 12), passed
//! in [`super::DbOptions`]. Nothing here reaches a global registry.

use std::time::Duration;

/// Receives the storage layer's measurements. Called on the storage's own threads: keep it
/// cheap and non-blocking (counters, histograms).
pub trait StorageObserver: std::fmt::Debug + Send + Sync + 'static {
    /// One WAL fsync round finished: how long the fsync took, and how many flush requests
    /// (group appends waiting for durability) it completed.
    fn fsync_round(&self, duration: Duration, appends: usize);

    /// One stage of a produce on the leader took `duration` (see [`ProduceStage`]).
    fn produce_stage(&self, stage: ProduceStage, duration: Duration);
}

/// The parts of a produce's time on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceStage {
    /// Waiting in the partition's proposal queue until the proposer took it into an entry.
    Queue,
    /// From handing the entry to Raft until its applied answer: replication, the fsyncs of a
    /// majority, commit and apply.
    Raft,
    /// One apply call of the state machine holding a produce entry (decode, dedup, the write).
    Apply,
}

impl ProduceStage {
    /// The stage's name as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            ProduceStage::Queue => "queue",
            ProduceStage::Raft => "raft",
            ProduceStage::Apply => "apply",
        }
    }
}

/// Measures nothing (tests, tools).
#[derive(Debug, Default)]
pub struct NoObserver;

impl StorageObserver for NoObserver {
    fn fsync_round(&self, _duration: Duration, _appends: usize) {}

    fn produce_stage(&self, _stage: ProduceStage, _duration: Duration) {}
}
