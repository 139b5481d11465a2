//! [`Health`]: whether a replica's storage failed, and whether the failure is damaged data.
//!
//! Set by whoever meets the failure first (a fetch, the scrubber, a replication read); read by
//! the node when it reports stopped replicas. Damaged data is never cured by a restart: the
//! controller rebuilds such a replica from the others. Any other failure (an I/O error, a full
//! disk) is retried by restarting the replica.

use std::sync::{Arc, Mutex};

use super::error::StoreError;

/// Why a replica stopped serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// Damaged or lost data (see [`StoreError::is_corruption`]).
    pub corrupt: bool,
}

/// Shared failure cell of one replica.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<Option<Failure>>>);

impl Health {
    /// Records `e` when it means damaged data; other errors leave the cell alone (openraft
    /// reports them by stopping). Returns whether this call recorded the first failure.
    pub fn record(&self, e: &StoreError) -> bool {
        if e.is_corruption() {
            self.fail(Failure { reason: e.to_string(), corrupt: true })
        } else {
            false
        }
    }

    /// Records `failure` unless one is already recorded (the first cause is the one to report).
    pub fn fail(&self, failure: Failure) -> bool {
        let mut cell = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cell.is_some() {
            return false;
        }
        *cell = Some(failure);
        true
    }

    pub fn get(&self) -> Option<Failure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
