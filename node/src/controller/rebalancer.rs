//! Preferred-leader rebalancing: leadership goes back to each partition's first replica (the
//! placement spreads those evenly) once that replica is caught up, e.g. after a node returns.
//!
//! openraft 0.9 has no leadership transfer: the leader asks the preferred replica to campaign.
//! The old leader grants the vote (its own lease does not block it) and steps down, so the
//! preferred replica wins with the old leader's vote and its own, a majority of three.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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

pub async fn run(groups: Arc<LocalGroups>, liveness: Liveness) {
    let mut tick = tokio::time::interval(ROUND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        round(&groups, &liveness).await;
    }
}

async fn round(groups: &LocalGroups, liveness: &Liveness) {
    let env = groups.env();
    let state = groups.state();
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
        let Some((first, mine)) = preferred.get(&g.group_id()) else { continue };
        let Some((last_index, matched)) = g.replication_view() else { continue };
        if !liveness.is_alive(first.node) || matched.get(&first.node) != Some(&Some(last_index)) {
            continue;
        }
        let Some(addr) = state.nodes.get(&first.node) else { continue };
        let target = replica_id(first.node, first.incarnation);
        let from = replica_id(mine.node, mine.incarnation);
        match request_campaign(&env.peers, addr, g.group_id(), target, from).await {
            Ok(()) => {
                started += 1;
                tracing::info!(group = g.group_id(), to = first.node, "moving leadership to the preferred replica");
            }
            Err(e) => tracing::debug!(group = g.group_id(), error = %e, "preferred replica could not campaign"),
        }
    }
}
