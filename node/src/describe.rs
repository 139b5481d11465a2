//! Partition state across the cluster: each node knows only its own replicas, so describing a
//! topic asks every live node for the groups it hosts and merges the answers (the leader's
//! report wins; among leader claims, the highest term). Each placed replica's own state comes
//! from its node's report (stopped, and why) and the leader's replication progress (in sync,
//! lagging, catching up).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::{DescribeGroupsRequest, FollowerProgress, GroupState};
use cairn_proto::v1::{PartitionInfo, ReplicaState, ReplicaStatus};
use cairn_raft::ids::replica_id;
use cairn_raft::{GroupId, NodeId};

use crate::controller::state::{ClusterState, Topic};
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of local replicas among `ids` (all local ones when `ids` is empty), those that
/// failed to start included.
pub fn local_states(groups: &LocalGroups, ids: &[GroupId]) -> Vec<GroupState> {
    let wanted = |g: GroupId| ids.is_empty() || ids.contains(&g);
    let all = groups.all();
    let mut out: Vec<GroupState> = all
        .iter()
        .filter(|g| wanted(g.group_id()))
        .map(|g| {
            let st = g.status();
            let (leader_node_id, leader_address) = st.leader.map(|l| (l.node_id, l.address)).unwrap_or_default();
            let (last_log_index, followers) = g.followers().unwrap_or_default();
            let learners = g.membership().1;
            GroupState {
                group_id: st.group,
                is_leader: st.is_leader && st.stopped.is_none(),
                leader_node_id,
                leader_address,
                high_watermark: st.high_watermark,
                log_start_offset: st.log_start_offset,
                stopped: st.stopped.is_some(),
                stopped_reason: st.stopped.map(|f| f.reason).unwrap_or_default(),
                term: st.term,
                voter_replica_ids: g.membership().0.into_iter().collect(),
                producers: g.producer_count() as u32,
                replica_id: g.replica_id(),
                last_log_index,
                followers: followers
                    .into_iter()
                    .map(|(replica_id, matched_index)| FollowerProgress {
                        replica_id,
                        matched_index,
                        learner: learners.contains(&replica_id),
                    })
                    .collect(),
            }
        })
        .collect();
    let running: BTreeSet<GroupId> = all.iter().map(|g| g.group_id()).collect();
    for s in groups.stopped_replicas().into_iter().filter(|s| wanted(s.group) && !running.contains(&s.group)) {
        out.push(GroupState {
            group_id: s.group,
            stopped: true,
            stopped_reason: s.failure.reason,
            replica_id: s.replica,
            ..GroupState::default()
        });
    }
    out
}

/// What the cluster's nodes report about some groups.
#[derive(Debug, Default)]
pub struct Views {
    /// One view per group (see [`merge`]).
    pub merged: HashMap<GroupId, GroupState>,
    /// Each node's own report, by group and node.
    pub by_node: HashMap<(GroupId, NodeId), GroupState>,
    /// The nodes that answered (this one included).
    pub answered: BTreeSet<NodeId>,
}

/// Asks every live node (this one locally) about `ids` and merges the reports per group.
pub async fn gather(groups: &Arc<LocalGroups>, liveness: &Liveness, ids: Vec<GroupId>) -> Views {
    let env = groups.env();
    let state = groups.state();
    let mut reports: Vec<(NodeId, Vec<GroupState>)> = vec![(env.me, local_states(groups, &ids))];
    let asks = state.nodes.iter().filter(|(n, _)| **n != env.me && liveness.is_alive(**n)).map(|(node, addr)| {
        let ids = ids.clone();
        let peers = env.peers.clone();
        let (node, addr) = (*node, addr.peer.clone());
        async move {
            let ch = peers.get(&addr).ok()?;
            let mut req = tonic::Request::new(DescribeGroupsRequest { group_ids: ids });
            req.set_timeout(ASK_TIMEOUT);
            let resp =
                tokio::time::timeout(ASK_TIMEOUT, NodeInternalClient::new(ch).describe_groups(req)).await.ok()?.ok()?;
            let r = resp.into_inner();
            (r.node_id == node).then_some((node, r.groups))
        }
    });
    reports.extend(futures::future::join_all(asks).await.into_iter().flatten());
    let mut views = Views::default();
    for (node, groups) in &reports {
        views.answered.insert(*node);
        for g in groups {
            views.by_node.insert((g.group_id, *node), g.clone());
        }
    }
    views.merged = merge(reports.into_iter().flat_map(|(_, g)| g).collect());
    views
}

/// The state of the replica `replica` (on `node`) as the reports show it.
fn replica_status(views: &Views, group: GroupId, node: NodeId, replica: u64) -> ReplicaStatus {
    let status = |state: ReplicaState, reason: &str| ReplicaStatus {
        node_id: node,
        state: state as i32,
        reason: reason.to_string(),
        ..ReplicaStatus::default()
    };
    let Some(own) = views.by_node.get(&(group, node)) else {
        return if views.answered.contains(&node) {
            status(ReplicaState::Offline, "not started on its node yet")
        } else {
            status(ReplicaState::Offline, "its node does not answer")
        };
    };
    if own.replica_id != replica {
        return status(ReplicaState::Offline, "its node has not started this incarnation yet");
    }
    if own.stopped {
        let mut s = status(ReplicaState::Stopped, &own.stopped_reason);
        s.high_watermark = own.high_watermark;
        return s;
    }
    let mut s = status(ReplicaState::InSync, "");
    s.high_watermark = own.high_watermark;
    if own.is_leader {
        return s;
    }
    let Some(leader) = views.merged.get(&group).filter(|v| v.is_leader) else {
        s.state = ReplicaState::Lagging as i32;
        s.reason = "no leader is known".into();
        return s;
    };
    let Some(progress) = leader.followers.iter().find(|f| f.replica_id == replica) else {
        s.state = ReplicaState::CatchingUp as i32;
        s.reason = "not a member of the group yet".into();
        return s;
    };
    s.lag_entries = leader.last_log_index.saturating_sub(progress.matched_index.unwrap_or(0));
    if progress.learner {
        s.state = ReplicaState::CatchingUp as i32;
    } else if s.lag_entries > 0 {
        s.state = ReplicaState::Lagging as i32;
    }
    s
}

/// One view per group: a leader's own report (highest term) if any; otherwise the most
/// advanced replica's, with the newest leader hint any replica has.
pub fn merge(reports: Vec<GroupState>) -> HashMap<GroupId, GroupState> {
    let mut out: HashMap<GroupId, GroupState> = HashMap::new();
    for r in reports {
        let better = match out.get(&r.group_id) {
            None => true,
            Some(cur) => match (r.is_leader, cur.is_leader) {
                (true, false) => true,
                (false, true) => false,
                _ => (r.term, r.high_watermark) > (cur.term, cur.high_watermark),
            },
        };
        if better {
            out.insert(r.group_id, r);
        }
    }
    out
}

/// The public description of `topic`'s partitions from merged views.
pub fn partitions(topic: &Topic, views: &Views, state: &ClusterState) -> Vec<PartitionInfo> {
    topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = views.merged.get(&p.group_id);
            let leader: Option<NodeId> = v.map(|v| v.leader_node_id).filter(|n| *n != 0);
            let placed: BTreeSet<u64> = p.replicas.iter().map(|r| replica_id(r.node, r.incarnation)).collect();
            let reconfiguring =
                v.is_some_and(|v| v.voter_replica_ids.iter().copied().collect::<BTreeSet<u64>>() != placed);
            PartitionInfo {
                partition: i as u32,
                group_id: p.group_id,
                leader_node_id: leader.unwrap_or(0),
                leader_address: leader.and_then(|n| state.nodes.get(&n)).map(|a| a.client.clone()).unwrap_or_default(),
                replica_node_ids: p.replicas.iter().map(|r| r.node).collect(),
                high_watermark: v.map(|v| v.high_watermark).unwrap_or(0),
                log_start_offset: v.map(|v| v.log_start_offset).unwrap_or(0),
                reconfiguring,
                replicas: p
                    .replicas
                    .iter()
                    .map(|r| replica_status(views, p.group_id, r.node, replica_id(r.node, r.incarnation)))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gs(group: u64, leader: bool, leader_node: u64, term: u64, hw: u64) -> GroupState {
        GroupState {
            group_id: group,
            is_leader: leader,
            leader_node_id: leader_node,
            term,
            high_watermark: hw,
            ..GroupState::default()
        }
    }

    #[test]
    fn the_leaders_report_wins_and_the_newest_term_breaks_ties() {
        let m = merge(vec![gs(1, false, 2, 5, 10), gs(1, true, 3, 5, 12), gs(1, false, 3, 5, 11)]);
        assert_eq!(m[&1].leader_node_id, 3);
        assert_eq!(m[&1].high_watermark, 12);
        // A deposed leader that has not noticed yet loses to the newer term's leader.
        let m = merge(vec![gs(2, true, 1, 4, 50), gs(2, true, 2, 6, 48)]);
        assert_eq!(m[&2].leader_node_id, 2);
        // No leader anywhere: the most advanced replica.
        let m = merge(vec![gs(3, false, 0, 7, 3), gs(3, false, 0, 7, 9)]);
        assert_eq!(m[&3].high_watermark, 9);
    }
}
