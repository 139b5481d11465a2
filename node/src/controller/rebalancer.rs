//! Preferred-leader rebalancing: leadership goes back to each partition's first replica (the
//! placement spreads those evenly) once that replica is caught up, e.g. after a node returns.
//!
//! openraft 0.9 has no leadership transfer, so the leader asks the preferred replica to
//! campaign. A leader refuses votes for one leader lease after its own election, so the request
//! goes only to groups led here for longer than that; the old leader then grants the newer
//! candidate's vote and steps down, and with the candidate's own vote that is a majority of
//! three (or of two). A group is asked at most once every 15 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_raft::ids::replica_id;
use cairn_raft::network::request_campaign;
use cairn_raft::GroupId;

use crate::controller::state::Replica;
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

/// Transfers started per node per round, so a returning node takes its leadership back
/// gradually rather than in one election storm.
const TRANSFERS_PER_ROUND: usize = 32;
const ROUND_EVERY: Duration = Duration::from_secs(3);
const RETRY_AFTER: Duration = Duration::from_secs(15);

pub async fn run(groups: Arc<LocalGroups>, liveness: Liveness, lease: Duration) {
    let mut tick = tokio::time::interval(ROUND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked: HashMap<GroupId, Instant> = HashMap::new();
    loop {
        tick.tick().await;
        asked.retain(|_, at| at.elapsed() < RETRY_AFTER);
        round(&groups, &liveness, lease, &mut asked).await;
    }
}

async fn round(groups: &LocalGroups, liveness: &Liveness, lease: Duration, asked: &mut HashMap<GroupId, Instant>) {
    let env = groups.env();
    let state = groups.state();
    let leading = groups.roles().leading;
    let preferred: HashMap<GroupId, (Replica, Replica)> = state
        .replicas_on(env.me)
        .filter_map(|(_, _, p)| {
            let first = *p.replicas.first()?;
            let mine = *p.replicas.iter().find(|r| r.node == env.me)?;
            (first.node != env.me).then_some((p.group_id, (first, mine)))
        })
        .collect();
    let mut started = 0;
    for g in groups.all() {
        if started >= TRANSFERS_PER_ROUND {
            break;
        }
        let id = g.group_id();
        let Some((first, mine)) = preferred.get(&id) else { continue };
        // Our lease must have run out, or we would refuse the candidate our vote.
        let led_long_enough = leading.get(&id).is_some_and(|since| since.elapsed() > lease + ROUND_EVERY);
        if asked.contains_key(&id) || !led_long_enough {
            continue;
        }
        let Some((last_index, matched)) = g.replication_view() else { continue };
        if !liveness.is_alive(first.node) || matched.get(&first.node) != Some(&Some(last_index)) {
            continue;
        }
        let Some(addr) = state.nodes.get(&first.node) else { continue };
        asked.insert(id, Instant::now());
        let target = replica_id(first.node, first.incarnation);
        let from = replica_id(mine.node, mine.incarnation);
        match request_campaign(&env.peers, &addr.peer, id, target, from).await {
            Ok(()) => {
                started += 1;
                tracing::info!(group = id, to = first.node, "moving leadership to the preferred replica");
            }
            Err(e) => tracing::debug!(group = id, error = %e, "preferred replica could not campaign"),
        }
    }
}
