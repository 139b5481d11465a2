//! Node-level failure detection: every node pings every other node a few times a second.
//!
//! Quiesced groups send no heartbeats, so their followers learn that a leader died from here:
//! a node is *down* once no ping succeeded for [`DOWN_AFTER`]. A ping also reports the peer's
//! boot id (a restart shows as a new id) and the groups whose replica stopped on it. A node
//! answering for another cluster (another cluster's process on a member's address) is never
//! counted as up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::{PingRequest, PingResponse, StoppedReplica};
use cairn_raft::network::PeerChannels;
use cairn_raft::{GroupId, NodeId};
use tokio::sync::watch;

use crate::controller::state::ClusterState;

const PING_EVERY: Duration = Duration::from_millis(250);
/// How often a member's address answering for another cluster is logged again.
const FOREIGN_WARN_EVERY: Duration = Duration::from_secs(60);
/// A node is down when no ping succeeded for this long.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

#[derive(Clone, Debug)]
struct Peer {
    last_ok: Instant,
    boot_id: u64,
    /// When the node last became reachable (or restarted).
    up_since: Instant,
    stopped_groups: BTreeSet<GroupId>,
    stopped_replicas: Vec<StoppedReplica>,
    leading_groups: BTreeSet<GroupId>,
    metadata_version: u64,
    /// The node's data directory (0 while it is still checking whether it may join).
    directory_id: u64,
    /// Free bytes of its data directory (0: unknown) and its floor.
    disk: (u64, u64),
}

/// What this node knows about the others.
#[derive(Clone, Default)]
pub struct Liveness {
    peers: Arc<Mutex<BTreeMap<NodeId, Peer>>>,
}

impl Liveness {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<NodeId, Peer>) -> T) -> T {
        f(&mut self.peers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn is_alive(&self, node: NodeId) -> bool {
        self.with(|m| m.get(&node).is_some_and(|p| p.last_ok.elapsed() < DOWN_AFTER))
    }

    /// The data directory `node` reports, while it is alive (None: down, or not known yet).
    pub fn directory_of(&self, node: NodeId) -> Option<u64> {
        self.with(|m| {
            m.get(&node).filter(|p| p.last_ok.elapsed() < DOWN_AFTER && p.directory_id != 0).map(|p| p.directory_id)
        })
    }

    /// The free bytes and floor `node` last reported ((0, 0): never heard of).
    pub fn disk_of(&self, node: NodeId) -> (u64, u64) {
        self.with(|m| m.get(&node).map_or((0, 0), |p| p.disk))
    }

    /// When a ping to `node` last succeeded.
    pub fn last_seen(&self, node: NodeId) -> Option<Instant> {
        self.with(|m| m.get(&node).map(|p| p.last_ok))
    }

    /// How long `node` has been continuously up (None when down or never seen).
    pub fn up_for(&self, node: NodeId) -> Option<Duration> {
        self.with(|m| m.get(&node).filter(|p| p.last_ok.elapsed() < DOWN_AFTER).map(|p| p.up_since.elapsed()))
    }

    /// Whether `node` is alive and its last ping said it leads `group` (its replica running).
    pub fn leads(&self, node: NodeId, group: GroupId) -> bool {
        self.with(|m| {
            m.get(&node).is_some_and(|p| {
                p.last_ok.elapsed() < DOWN_AFTER
                    && p.leading_groups.contains(&group)
                    && !p.stopped_groups.contains(&group)
            })
        })
    }

    /// The stopped replicas each live node reported in its last ping.
    pub fn stopped_replicas(&self) -> BTreeMap<NodeId, Vec<StoppedReplica>> {
        self.with(|m| {
            m.iter()
                .filter(|(_, p)| p.last_ok.elapsed() < DOWN_AFTER && !p.stopped_replicas.is_empty())
                .map(|(n, p)| (*n, p.stopped_replicas.clone()))
                .collect()
        })
    }

    /// The live nodes among `nodes` (other than `me`) that have not reported applying cluster
    /// metadata up to `version`. Down nodes are not listed: they catch up when they return.
    pub fn live_nodes_behind(&self, me: NodeId, nodes: impl Iterator<Item = NodeId>, version: u64) -> Vec<NodeId> {
        self.with(|m| {
            nodes
                .filter(|n| *n != me)
                .filter(|n| m.get(n).is_some_and(|p| p.last_ok.elapsed() < DOWN_AFTER && p.metadata_version < version))
                .collect()
        })
    }

    /// `me` plus every node of `nodes` that is alive.
    pub fn live_nodes(&self, me: NodeId, nodes: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
        nodes.filter(|n| *n == me || self.is_alive(*n)).collect()
    }

    fn record(&self, node: NodeId, r: PingResponse) {
        if r.joining {
            return; // still checking whether it may start: not a working member yet
        }
        let (boot_id, stopped, leading, metadata_version, directory_id) =
            (r.boot_id, r.stopped_groups, r.leading_groups, r.metadata_version, r.directory_id);
        let stopped_replicas = r.stopped_replicas;
        let disk = (r.disk_free_bytes, r.disk_free_floor_bytes);
        self.with(|m| {
            let now = Instant::now();
            let up_since = match m.get(&node) {
                Some(p) if p.boot_id == boot_id && p.last_ok.elapsed() < DOWN_AFTER => p.up_since,
                _ => now,
            };
            let peer = Peer {
                last_ok: now,
                boot_id,
                up_since,
                stopped_groups: stopped.into_iter().collect(),
                stopped_replicas,
                leading_groups: leading.into_iter().collect(),
                metadata_version,
                directory_id,
                disk,
            };
            m.insert(node, peer);
        });
    }

    /// Pings every node of `members` except `me`, each on its own task, until aborted.
    /// `state`: the cluster metadata, for this cluster's id.
    pub fn spawn(
        &self,
        me: NodeId,
        members: BTreeMap<NodeId, String>,
        peers: PeerChannels,
        state: watch::Receiver<Arc<ClusterState>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        members
            .into_iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, addr)| {
                let (this, peers, state) = (self.clone(), peers.clone(), state.clone());
                tokio::spawn(async move {
                    let mut warned: Option<Instant> = None;
                    let mut tick = tokio::time::interval(PING_EVERY);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let Ok(ch) = peers.get(&addr) else { continue };
                        let mut req = tonic::Request::new(PingRequest { from_node_id: me });
                        req.set_timeout(PING_EVERY);
                        if let Ok(Ok(r)) = tokio::time::timeout(PING_EVERY, NodeInternalClient::new(ch).ping(req)).await
                        {
                            let r = r.into_inner();
                            let ours = state.borrow().cluster_id.clone();
                            if !r.cluster_id.is_empty() && !ours.is_empty() && r.cluster_id != ours {
                                if warned.is_none_or(|t| t.elapsed() > FOREIGN_WARN_EVERY) {
                                    tracing::error!(node = id, %addr, theirs = %r.cluster_id, ours = %ours, "the node answering on this member's address belongs to another cluster; not counting it as a member");
                                    warned = Some(Instant::now());
                                }
                            } else if r.node_id == id {
                                this.record(id, r);
                            }
                        }
                    }
                })
            })
            .collect()
    }
}
