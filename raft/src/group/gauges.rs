//! A replica's figures for the node's metrics, read in one go from openraft's metrics and the
//! replica's own state (a child module of `partition`, so the group file stays small).

use openraft::ServerState;

use super::PartitionGroup;
use crate::ids::{node_of, NodeId};

/// What a scrape shows of one replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub is_leader: bool,
    pub term: u64,
    /// Last index in this replica's log.
    pub last_log_index: u64,
    /// Last index applied (openraft 0.9 does not report the commit index; apply follows it).
    pub applied_index: u64,
    /// Proposals waiting in this replica's queue (leader).
    pub proposal_queue_depth: usize,
    /// Entries proposed to Raft and not yet answered (leader).
    pub proposals_in_flight: usize,
    /// Leader only: each other voter's node and how many entries it is behind (None: nothing
    /// known replicated there yet); learners are listed in `learners`.
    pub followers: Vec<(NodeId, Option<u64>)>,
    /// Leader only: nodes of replicas still catching up as learners.
    pub learners: Vec<NodeId>,
}

impl PartitionGroup {
    /// This replica's figures now.
    pub fn gauges(&self) -> Gauges {
        let depth = self.proposals.max_capacity().saturating_sub(self.proposals.capacity());
        let in_flight = self.cfg.proposals_in_flight_max.max(1).saturating_sub(self.in_flight.available_permits());
        let m = self.raft.metrics();
        let m = m.borrow();
        let last = m.last_log_index.unwrap_or(0);
        let mut g = Gauges {
            is_leader: m.state == ServerState::Leader,
            term: m.current_term,
            last_log_index: last,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            proposal_queue_depth: depth,
            proposals_in_flight: in_flight,
            ..Gauges::default()
        };
        if let (true, Some(replication)) = (g.is_leader, m.replication.as_ref()) {
            let membership = m.membership_config.membership();
            for (replica, matched) in replication.iter().filter(|(r, _)| **r != self.cfg.replica) {
                if membership.voter_ids().any(|v| v == *replica) {
                    g.followers.push((node_of(*replica), matched.map(|l| last.saturating_sub(l.index))));
                } else {
                    g.learners.push(node_of(*replica));
                }
            }
        }
        g
    }
}
