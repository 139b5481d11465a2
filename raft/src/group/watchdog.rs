//! Breaks repeated split votes: openraft 0.9 draws each group's election timeout once, so two
//! survivors can keep colliding. When a group has had no leader for more than
//! 2 × `election_timeout_max`, trigger an election after a random delay.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::ids::ReplicaId;
use crate::types::Raft;

pub(crate) async fn run(raft: Raft, me: ReplicaId, election_timeout_max: Duration) {
    let mut metrics = raft.metrics();
    let mut leaderless_since: Option<Instant> = None;
    loop {
        let (has_leader, voter, stopped) = {
            let m = metrics.borrow();
            (
                m.current_leader.is_some(),
                m.membership_config.membership().get_joint_config().iter().any(|c| c.contains(&me)),
                m.running_state.is_err(),
            )
        };
        if stopped {
            // A stopped group never serves again; make it loud (the node keeps serving the others).
            let reason = metrics.borrow().running_state.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
            tracing::error!(replica = me, %reason, "raft group stopped");
            return;
        }
        if has_leader || !voter {
            leaderless_since = None;
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        }
        let since = *leaderless_since.get_or_insert_with(Instant::now);
        if since.elapsed() > 2 * election_timeout_max {
            let jitter = rand::rng().random_range(0..election_timeout_max.as_millis().max(1) as u64);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
            if metrics.borrow().current_leader.is_none() {
                tracing::info!(replica = me, "no leader for a while; triggering an election");
                if raft.trigger().elect().await.is_err() {
                    return;
                }
            }
            leaderless_since = Some(Instant::now());
        }
        // Re-check at least every election timeout even when metrics stay quiet.
        if let Ok(Err(_)) = tokio::time::timeout(election_timeout_max, metrics.changed()).await {
            return; // Raft shut down
        }
    }
}
