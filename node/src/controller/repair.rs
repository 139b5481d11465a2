//! Repair of stopped replicas: the controller leader rebuilds a replica that stopped on damaged
//! data (at once) or that stays stopped for another reason despite its node's restarts (after
//! `[storage] repair_stopped_after_ms`).
//!
//! ```text
//!  nodes report stopped replicas in their pings (reason, damaged or not)
//!    ─► controller leader: eligible? the partition has a leader elsewhere and its voters are
//!       the placed replicas (no other repair under way)? under the rate limit?
//!    ─► RepairReplica: the replica gets a new incarnation on the same node
//!    ─► that node deletes the stopped replica's data and starts the new, empty one
//!    ─► the group's leader adds it as a learner, it catches up (log, or checkpoint snapshot +
//!       log), then the voter set becomes the metadata's and the old incarnation's vote is gone
//! ```
//!
//! The new incarnation lives on the same node, in the same key space, so the damaged data is
//! deleted when it starts; safety rests on the other replicas, which the readiness check
//! requires to have a leader and a full voter set before anything is rebuilt.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_raft::ids::{node_of, replica_id};
use cairn_raft::{GroupId, NodeId, ReplicaId};

use super::state::{ClusterState, MetaAnswer, MetaCommand, Partition};
use super::Controller;
use crate::config::StorageSection;
use crate::describe;
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

const EVERY: Duration = Duration::from_secs(2);

/// Repairs this node proposed as controller leader (a counter for the metrics endpoint).
pub static REPAIRS_STARTED: AtomicU64 = AtomicU64::new(0);

impl ClusterState {
    /// Gives `replica` of group `group` a new incarnation on its node.
    pub(crate) fn repair_replica(&mut self, group: GroupId, replica: ReplicaId) -> MetaAnswer {
        let next = self.next_incarnation;
        let Some(p) = self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()).find(|p| p.group_id == group)
        else {
            return MetaAnswer::NotFound;
        };
        if p.replicas.len() < 2 {
            return MetaAnswer::Invalid(format!(
                "group {group} has a single replica: there is no other copy to rebuild it from"
            ));
        }
        let node = node_of(replica);
        let Some(r) = p.replicas.iter_mut().find(|r| r.node == node) else {
            return MetaAnswer::Invalid(format!("group {group} has no replica on node {node}"));
        };
        if replica_id(r.node, r.incarnation) != replica {
            return MetaAnswer::AlreadyExists; // repaired already: another incarnation is placed
        }
        r.incarnation = next;
        self.next_incarnation += 1;
        MetaAnswer::Repaired { replica: replica_id(node, next) }
    }

    /// The partition of group `group`, with its topic and index.
    pub fn partition_of_group(&self, group: GroupId) -> Option<(&str, u32, &Partition)> {
        self.topics.iter().find_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .find(|(_, p)| p.group_id == group)
                .map(|(i, p)| (name.as_str(), i as u32, p))
        })
    }
}

/// Whether the replica of `p` on `node` may be rebuilt now: the group has a leader on another
/// node, and its voters are exactly the placed replicas (no repair or replacement under way).
///
/// # Errors
/// Why not, for the operator or the log.
pub async fn ready(groups: &Arc<LocalGroups>, liveness: &Liveness, p: &Partition, node: NodeId) -> Result<(), String> {
    let views = describe::gather(groups, liveness, vec![p.group_id]).await;
    let Some(v) = views.merged.get(&p.group_id).filter(|v| v.is_leader) else {
        return Err("the partition has no leader: the other replicas cannot rebuild it now".into());
    };
    if v.leader_node_id == node {
        return Err(format!("node {node} leads the partition; it is serving").to_string());
    }
    let placed: BTreeSet<ReplicaId> = p.replicas.iter().map(|r| replica_id(r.node, r.incarnation)).collect();
    let voters: BTreeSet<ReplicaId> = v.voter_replica_ids.iter().copied().collect();
    if voters != placed {
        return Err("another replica of the partition is still being rebuilt or replaced".into());
    }
    Ok(())
}

/// Runs until aborted; acts only while this node leads the controller.
pub async fn run(controller: Arc<Controller>, groups: Arc<LocalGroups>, liveness: Liveness, settings: StorageSection) {
    let after = Duration::from_millis(settings.repair_stopped_after_ms);
    let per_minute = settings.repairs_per_minute_max.max(1) as usize;
    let mut first_seen: HashMap<ReplicaId, Instant> = HashMap::new();
    let mut recent: VecDeque<Instant> = VecDeque::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !controller.is_leader() {
            first_seen.clear();
            continue;
        }
        let now = Instant::now();
        while recent.front().is_some_and(|t| now - *t > Duration::from_secs(60)) {
            recent.pop_front();
        }
        let me = groups.env().me;
        let mut stopped: Vec<(NodeId, GroupId, ReplicaId, String, bool)> = groups
            .stopped_replicas()
            .into_iter()
            .map(|s| (me, s.group, s.replica, s.failure.reason, s.failure.corrupt))
            .collect();
        for (node, list) in liveness.stopped_replicas() {
            stopped.extend(list.into_iter().map(|s| (node, s.group_id, s.replica_id, s.reason, s.corrupt)));
        }
        first_seen.retain(|r, _| stopped.iter().any(|s| s.2 == *r));
        let state = controller.state();
        for (node, group, replica, reason, corrupt) in stopped {
            let since = *first_seen.entry(replica).or_insert(now);
            if !corrupt && now - since < after {
                continue;
            }
            let Some((topic, partition, p)) = state.partition_of_group(group) else { continue };
            if !p.replicas.iter().any(|r| replica_id(r.node, r.incarnation) == replica) {
                continue; // already repaired; the node has not applied it yet
            }
            if recent.len() >= per_minute {
                tracing::warn!(topic, partition, node, "replica repair deferred: repairs_per_minute_max reached");
                break;
            }
            if let Err(why) = ready(&groups, &liveness, p, node).await {
                tracing::info!(topic, partition, node, why, "replica repair waits");
                continue;
            }
            match controller.propose(&MetaCommand::RepairReplica { group, replica }).await {
                Ok(MetaAnswer::Repaired { replica: new }) => {
                    recent.push_back(now);
                    REPAIRS_STARTED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        topic,
                        partition,
                        node,
                        reason,
                        corrupt,
                        old = format_args!("{replica:#x}"),
                        new = format_args!("{new:#x}"),
                        "repairing a stopped replica: a new incarnation rebuilds it from the others"
                    );
                }
                Ok(MetaAnswer::AlreadyExists) => {}
                Ok(other) => tracing::error!(topic, partition, node, answer = ?other, "replica repair refused"),
                Err(e) => tracing::warn!(topic, partition, node, error = %e, "replica repair failed; will retry"),
            }
        }
    }
}
