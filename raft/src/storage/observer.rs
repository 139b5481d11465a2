//! How the storage layer reports what it measures: a small trait the node implements with its
//! metrics (DESIGN.md section 12), passed in [`super::DbOptions`]. Storage never reaches a
//! global registry.

use std::time::Duration;

/// Receives the storage layer's measurements. Called on the storage's own threads: keep it
/// cheap and non-blocking (counters, histograms).
pub trait StorageObserver: std::fmt::Debug + Send + Sync + 'static {
    /// One WAL fsync round finished: how long the fsync took, and how many flush requests
    /// (group appends waiting for durability) it completed.
    fn fsync_round(&self, duration: Duration, appends: usize);
}

/// Measures nothing (tests, tools).
#[derive(Debug, Default)]
pub struct NoObserver;

impl StorageObserver for NoObserver {
    fn fsync_round(&self, _duration: Duration, _appends: usize) {}
}
