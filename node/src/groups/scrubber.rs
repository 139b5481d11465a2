//! Reads every local replica's stored log in the background, at a bounded rate, so damaged
//! data is found (and the replica repaired) before a reader or the replication path meets it.
//! Every read verifies RocksDB's block and blob checksums and each entry's own checksum; a
//! mismatch stops the replica like a damaged fetch does (see `PartitionGroup::scrub`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_raft::{GroupError, GroupId};

use super::LocalGroups;
use crate::metrics::ScrubMetrics;

/// Bytes read per step; the pause after each step keeps the configured rate.
const STEP_BYTES: usize = 1 << 20;
/// Pause between full passes over every replica.
const PASS_PAUSE: Duration = Duration::from_secs(10);

/// Runs until aborted; `bytes_per_second` 0 does nothing. Each pass that went over every
/// replica is reported to `metrics` with the moment it began.
pub async fn run(groups: Arc<LocalGroups>, bytes_per_second: u64, metrics: ScrubMetrics) {
    if bytes_per_second == 0 {
        tracing::info!("storage scrubber is off ([storage] scrub_bytes_per_second = 0)");
        return;
    }
    let step_pause = Duration::from_secs_f64(STEP_BYTES as f64 / bytes_per_second as f64);
    let mut cursors: HashMap<GroupId, u64> = HashMap::new();
    loop {
        let started = std::time::SystemTime::now();
        let all = groups.all();
        // A replica skipped for another reason than having stopped (on damage found, now or
        // earlier) leaves the pass incomplete: it is not reported.
        let mut every_replica_read = true;
        cursors.retain(|g, _| all.iter().any(|p| p.group_id() == *g));
        for g in all {
            let id = g.group_id();
            loop {
                let from = cursors.get(&id).copied().unwrap_or(0);
                match g.scrub(from, STEP_BYTES).await {
                    Ok(Some(next)) => {
                        cursors.insert(id, next);
                        tokio::time::sleep(step_pause).await;
                    }
                    Ok(None) => {
                        cursors.remove(&id); // this replica is verified; start over next pass
                        break;
                    }
                    Err(e) => {
                        every_replica_read &= matches!(e, GroupError::Stopped { .. } | GroupError::Damaged { .. });
                        tracing::debug!(group = id, error = %e, "scrubber skips a replica");
                        cursors.remove(&id);
                        break;
                    }
                }
            }
        }
        if every_replica_read {
            metrics.pass_completed(started);
        }
        tokio::time::sleep(PASS_PAUSE).await;
    }
}
