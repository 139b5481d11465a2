//! Settings of one partition group.

use std::time::Duration;

use crate::error::GroupError;
use crate::ids::{GroupId, ReplicaId};
use crate::storage::producers::ProducerLimits;
use crate::storage::CheckpointPolicy;

/// Raft timers (docs/architecture.md, "Raft settings"). `heartbeat_ms` is also openraft's AppendEntries timeout, so a
/// payload transfer plus the follower's fsync must fit inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTimings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings { heartbeat_ms: 250, election_timeout_min_ms: 800, election_timeout_max_ms: 1_200 }
    }
}

/// Deliberate breakage for the fault suite's negative controls. All off by default; never
/// enable them outside tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Accept every idempotent producer batch without checking sequences.
    pub no_dedup: bool,
    /// Append conditional batches without checking their condition.
    pub ignore_conditions: bool,
    /// Acknowledge produce requests when proposed, with guessed offsets, before commit.
    pub ack_before_commit: bool,
    /// Serve fetches from the local log beyond the high watermark (uncommitted entries).
    pub fetch_above_hw: bool,
    /// Serve fetched records without verifying checksums (RocksDB's and the entry's own), so
    /// damaged bytes reach the client.
    pub skip_fetch_checksum: bool,
    /// Retention truncates this replica one record past each checkpoint (records the others
    /// keep become unreadable here).
    pub truncate_past_checkpoint: bool,
}

/// Everything a [`super::PartitionGroup`] needs to start.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub group: GroupId,
    pub replica: ReplicaId,
    pub timings: RaftTimings,
    /// Produce requests waiting for the proposer (beyond it: THROTTLED).
    pub proposal_queue_max: usize,
    /// Produce batches gathered into one Raft entry.
    pub entry_batches_max: usize,
    /// Record bytes gathered into one Raft entry (at least one batch always goes).
    pub entry_bytes_max: usize,
    /// Proposed entries awaiting commit at once.
    pub proposals_in_flight_max: usize,
    /// How long a produce waits for its entry to apply before answering "outcome unknown".
    pub produce_timeout: Duration,
    /// Bytes one replication read returns at most.
    pub replication_read_bytes_max: usize,
    pub checkpoint: CheckpointPolicy,
    /// Bounds of the producer table this replica proposes when it leads.
    pub producer_limits: ProducerLimits,
    /// Keys the last-offset-by-key index holds at most (proposed when this replica leads).
    pub key_index_keys_max: u32,
    /// Deadline of a full-snapshot install.
    pub snapshot_timeout: Duration,
    /// Keep the latest value of every record key in the state machine (see
    /// [`crate::storage::StateMachineStore::keep_keyed_state`]).
    pub keyed_state: bool,
    pub faults: Faults,
}

impl GroupConfig {
    pub fn new(group: GroupId, replica: ReplicaId) -> GroupConfig {
        GroupConfig {
            group,
            replica,
            timings: RaftTimings::default(),
            proposal_queue_max: 4096,
            entry_batches_max: 256,
            entry_bytes_max: 4 << 20,
            proposals_in_flight_max: 64,
            produce_timeout: Duration::from_secs(10),
            replication_read_bytes_max: 4 << 20,
            checkpoint: CheckpointPolicy::default(),
            producer_limits: ProducerLimits::default(),
            key_index_keys_max: crate::storage::key_index::KEY_INDEX_KEYS_MAX_DEFAULT,
            snapshot_timeout: Duration::from_secs(30),
            keyed_state: false,
            faults: Faults::default(),
        }
    }

    /// The openraft configuration for these settings, validated.
    ///
    /// # Errors
    /// Timer combinations openraft rejects (e.g. heartbeat ≥ election timeout).
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, GroupError> {
        openraft::Config {
            cluster_name: format!("cairn-group-{}", self.group),
            heartbeat_interval: self.timings.heartbeat_ms,
            election_timeout_min: self.timings.election_timeout_min_ms,
            election_timeout_max: self.timings.election_timeout_max_ms,
            install_snapshot_timeout: self.snapshot_timeout.as_millis() as u64,
            max_payload_entries: 512,
            // Snapshots are retention checkpoints driven by Cairn, never openraft's own policy.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Default::default()
        }
        .validate()
        .map_err(|e| GroupError::InvalidConfig { reason: e.to_string() })
    }
}
