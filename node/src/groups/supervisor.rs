//! Restarts local replicas that stopped (or failed to start) for a reason other than damaged
//! data: an I/O error, a full disk, a transient failure. openraft stops a group for good on any
//! storage error; without this a replica would stay stopped until the node restarts.
//!
//! ```text
//!  every second, per stopped replica:
//!    damaged data ─► nothing here: the controller rebuilds it (a new incarnation)
//!    otherwise    ─► restart after a backoff: 1 s, 2 s, 4 s ... 60 s (reset after 5 quiet minutes,
//!                     and when free space returns to a disk that filled: RocksDB has recovered)
//! ```
//!
//! A restart reopens the replica from what it fsynced, as a node restart would; only the local
//! replica is affected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_raft::GroupId;

use super::LocalGroups;

const EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A replica that ran this long since its last restart starts again from the shortest backoff.
const RESET_AFTER: Duration = Duration::from_secs(300);

#[derive(Clone, Copy)]
struct Attempts {
    count: u32,
    last: Instant,
}

impl Attempts {
    fn delay(&self) -> Duration {
        Duration::from_secs(1u64 << self.count.min(6)).min(BACKOFF_MAX)
    }
}

/// Runs until aborted.
pub async fn run(groups: Arc<LocalGroups>) {
    let mut attempts: HashMap<GroupId, Attempts> = HashMap::new();
    let mut seen_since: HashMap<GroupId, Instant> = HashMap::new();
    let mut space_returns = groups.env().disk.space_returns();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        super::retained::sweep(&groups).await;
        let now = Instant::now();
        attempts.retain(|_, a| now - a.last < RESET_AFTER);
        let returns = groups.env().disk.space_returns();
        if returns != space_returns {
            space_returns = returns;
            attempts.values_mut().for_each(|a| a.count = 0);
        }
        let stopped = groups.stopped_replicas();
        seen_since.retain(|g, _| stopped.iter().any(|s| s.group == *g));
        for s in stopped.into_iter().filter(|s| !s.failure.corrupt) {
            let since = *seen_since.entry(s.group).or_insert(now);
            let a = attempts.get(&s.group).copied();
            let due = match a {
                None => now - since >= EVERY,
                Some(a) => now - a.last >= a.delay(),
            };
            if !due {
                continue;
            }
            let count = a.map_or(0, |a| a.count + 1);
            attempts.insert(s.group, Attempts { count, last: now });
            restart(&groups, s.group, s.replica, &s.failure.reason, count).await;
        }
    }
}

async fn restart(groups: &LocalGroups, group: GroupId, replica: cairn_raft::ReplicaId, why: &str, attempt: u32) {
    let state = groups.state();
    let me = groups.env().me;
    let Some((_, _, p)) = state.replicas_on(me).find(|(_, _, p)| p.group_id == group) else { return };
    let placed = p.replicas.iter().any(|r| cairn_raft::ids::replica_id(r.node, r.incarnation) == replica);
    if !placed {
        return; // the reconciler replaces or removes it
    }
    tracing::warn!(group, attempt, reason = why, "restarting a stopped replica");
    groups.take_out(group).await;
    groups.clear_failed_start(group);
    groups.start_replica(&state, group, replica, p).await;
}
