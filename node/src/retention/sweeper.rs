//! The retention sweeper: every `[retention] check_interval_ms`, for each local replica of a
//! topic partition (internal topics keep their records):
//!
//! ```text
//!  every replica:  truncated at C, not yet freed ─► snapshot at C, then purge the log up to C
//!  leader only:    segment full or old ─► propose Checkpoint
//!                  newest checkpoint whose records may all go ─► propose PrefixTruncate{C}
//! ```
//!
//! Everything it proposes goes through the partition's Raft log, so every replica moves its
//! log start at the same entry; a leader change in between only repeats a proposal, which
//! applies as a no-op.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_raft::group::retention::{self, RetentionPolicy};
use cairn_raft::group::PartitionGroup;
use cairn_raft::storage::checkpoints::CheckpointSummary;
use cairn_raft::types::LogId;
use cairn_raft::{GroupError, GroupId};

use crate::config::RetentionSection;
use crate::groups::LocalGroups;
use crate::topic::is_internal;

/// How long one proposal may take before the sweep moves on (it is retried next time).
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A replica's checkpoint summaries, re-read only when a checkpoint was written or truncated.
struct Cached {
    key: (Option<LogId>, u64),
    summaries: Vec<CheckpointSummary>,
}

/// Runs until aborted.
pub async fn run(groups: Arc<LocalGroups>, defaults: RetentionSection) {
    let mut tick = tokio::time::interval(Duration::from_millis(defaults.check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cache: HashMap<GroupId, Cached> = HashMap::new();
    loop {
        tick.tick().await;
        let state = groups.state();
        let mut seen = HashSet::new();
        for (name, topic) in state.topics.iter().filter(|(name, _)| !is_internal(name)) {
            let policy = super::policy(&topic.retention, &defaults);
            for (i, p) in topic.partitions.iter().enumerate() {
                let Some(g) = groups.get(p.group_id) else { continue };
                seen.insert(p.group_id);
                if let Err(e) = step(&g, &policy, &mut cache).await {
                    tracing::debug!(topic = %name, partition = i, error = %e, "retention step skipped");
                }
            }
        }
        cache.retain(|g, _| seen.contains(g));
    }
}

/// One replica's turn.
async fn step(
    g: &PartitionGroup,
    policy: &RetentionPolicy,
    cache: &mut HashMap<GroupId, Cached>,
) -> Result<(), GroupError> {
    g.advance_purge().await?;
    if !g.is_leader() {
        return Ok(());
    }
    if retention::wants_checkpoint(&g.progress(), policy, now_ms()) {
        g.propose_checkpoint(now_ms(), PROPOSAL_TIMEOUT).await?;
    }
    if policy.retention_ms.is_none() && policy.retention_bytes.is_none() && g.progress().log_start_offset == 0 {
        return Ok(()); // nothing can be allowed: keep idle partitions free of reads
    }
    let p = g.progress();
    let key = (p.retention_point, p.stats.checkpoints);
    let fresh = cache.get(&g.group_id()).is_some_and(|c| c.key == key);
    if !fresh {
        let summaries = g.checkpoint_summaries().await?;
        cache.insert(g.group_id(), Cached { key, summaries });
    }
    let summaries = cache.get(&g.group_id()).map(|c| c.summaries.as_slice()).unwrap_or_default();
    if let Some(upto) = retention::truncation_point(&p, summaries, policy, now_ms()) {
        tracing::debug!(group = g.group_id(), %upto, "retention truncates");
        g.propose_truncation(upto, PROPOSAL_TIMEOUT).await?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
