//! Partition state across the cluster: each node knows only its own replicas, so describing a
//! topic asks every live node for the groups it hosts and merges the answers (the leader's
//! report wins; among leader claims, the highest term).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::{DescribeGroupsRequest, GroupState};
use cairn_proto::v1::PartitionInfo;
use cairn_raft::ids::replica_id;
use cairn_raft::{GroupId, NodeId};

use crate::controller::state::{ClusterState, Topic};
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of local replicas among `ids` (all local ones when `ids` is empty).
pub fn local_states(groups: &LocalGroups, ids: &[GroupId]) -> Vec<GroupState> {
    let all = groups.all();
    all.iter()
        .filter(|g| ids.is_empty() || ids.contains(&g.group_id()))
        .map(|g| {
            let st = g.status();
            let (leader_node_id, leader_address) = st.leader.map(|l| (l.node_id, l.address)).unwrap_or_default();
            GroupState {
                group_id: st.group,
                is_leader: st.is_leader,
                leader_node_id,
                leader_address,
                high_watermark: st.high_watermark,
                log_start_offset: st.log_start_offset,
                stopped: st.stopped.is_some(),
                term: st.term,
                voter_replica_ids: g.membership().0.into_iter().collect(),
                producers: g.producer_count() as u32,
            }
        })
        .collect()
}

/// Asks every live node (this one locally) about `ids` and merges the reports per group.
pub async fn gather(groups: &Arc<LocalGroups>, liveness: &Liveness, ids: Vec<GroupId>) -> HashMap<GroupId, GroupState> {
    let env = groups.env();
    let state = groups.state();
    let mut reports: Vec<GroupState> = local_states(groups, &ids);
    let asks = state.nodes.iter().filter(|(n, _)| **n != env.me && liveness.is_alive(**n)).map(|(_, addr)| {
        let ids = ids.clone();
        let peers = env.peers.clone();
        let addr = addr.clone();
        async move {
            let ch = peers.get(&addr).ok()?;
            let mut req = tonic::Request::new(DescribeGroupsRequest { group_ids: ids });
            req.set_timeout(ASK_TIMEOUT);
            let resp =
                tokio::time::timeout(ASK_TIMEOUT, NodeInternalClient::new(ch).describe_groups(req)).await.ok()?.ok()?;
            Some(resp.into_inner().groups)
        }
    });
    for r in futures::future::join_all(asks).await.into_iter().flatten() {
        reports.extend(r);
    }
    merge(reports)
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
pub fn partitions(topic: &Topic, views: &HashMap<GroupId, GroupState>, state: &ClusterState) -> Vec<PartitionInfo> {
    topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = views.get(&p.group_id);
            let leader: Option<NodeId> = v.map(|v| v.leader_node_id).filter(|n| *n != 0);
            let placed: BTreeSet<u64> = p.replicas.iter().map(|r| replica_id(r.node, r.incarnation)).collect();
            let reconfiguring =
                v.is_some_and(|v| v.voter_replica_ids.iter().copied().collect::<BTreeSet<u64>>() != placed);
            PartitionInfo {
                partition: i as u32,
                group_id: p.group_id,
                leader_node_id: leader.unwrap_or(0),
                leader_address: leader.and_then(|n| state.nodes.get(&n).cloned()).unwrap_or_default(),
                replica_node_ids: p.replicas.iter().map(|r| r.node).collect(),
                high_watermark: v.map(|v| v.high_watermark).unwrap_or(0),
                log_start_offset: v.map(|v| v.log_start_offset).unwrap_or(0),
                reconfiguring,
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
