//! The partition replicas this node hosts, kept in line with the controller's metadata by the
//! [`reconciler`].

pub mod membership;
pub mod quiesce;
pub mod reconciler;
pub mod retained;
pub mod scrubber;
pub mod supervisor;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_raft::error::LeaderHint;
use cairn_raft::group::{GroupConfig, PartitionGroup, RaftTimings};
use cairn_raft::ids::replica_id;
use cairn_raft::network::{GroupRegistry, PeerChannels};
use cairn_raft::storage::producers::ProducerLimits;
use cairn_raft::storage::{Db, Failure};
use cairn_raft::{GroupId, NodeId, ReplicaId};
use tokio::sync::watch;

use crate::config::Config;
use crate::controller::state::{ClusterState, Partition};
use crate::service::ServiceError;

/// Where a request for one partition should go.
pub enum Route {
    /// This node hosts a replica.
    Local(Arc<PartitionGroup>),
    /// Hosted elsewhere: try this node (a replica; it redirects to the leader).
    Elsewhere(LeaderHint),
}

/// Shared pieces every local group is started with.
#[derive(Clone)]
pub struct GroupEnv {
    pub me: NodeId,
    pub db: Arc<Db>,
    pub peers: PeerChannels,
    pub registry: GroupRegistry,
    pub config: Arc<Config>,
    /// Free space of the data directory (writes are refused below the floor).
    pub disk: Arc<crate::disk::DiskGuard>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl GroupEnv {
    /// Group settings from the node configuration.
    pub fn group_config(&self, group: GroupId, replica: ReplicaId) -> GroupConfig {
        let config = &self.config;
        let mut g = GroupConfig::new(group, replica);
        g.timings = RaftTimings {
            heartbeat_ms: config.raft.heartbeat_interval_ms,
            election_timeout_min_ms: config.raft.election_timeout_ms_min,
            election_timeout_max_ms: config.raft.election_timeout_ms_max,
        };
        let l = &config.limits;
        g.proposal_queue_max = l.proposal_queue_max;
        g.entry_batches_max = l.entry_batches_max;
        g.entry_bytes_max = l.entry_bytes_max;
        g.proposals_in_flight_max = l.proposals_in_flight_max;
        g.produce_timeout = Duration::from_millis(l.produce_timeout_ms);
        g.producer_limits = ProducerLimits {
            expiry_ms: i64::try_from(l.producer_expiry_ms).unwrap_or(i64::MAX),
            max: l.producers_per_partition_max,
        };
        g.key_index_keys_max = l.key_index_keys_per_partition_max;
        g.faults.no_dedup = config.faults.no_dedup;
        g.faults.ignore_conditions = config.faults.ignore_conditions;
        g.faults.ack_before_commit = config.faults.ack_before_commit;
        g.faults.fetch_above_hw = config.faults.fetch_above_hw;
        g.faults.skip_fetch_checksum = config.faults.skip_fetch_checksum;
        g.faults.truncate_past_checkpoint = config.faults.truncate_past_checkpoint == Some(config.node_id);
        g
    }
}

/// Which local replicas lead and which stopped, as of the last quiescence pass (what this node
/// tells its peers in pings).
#[derive(Clone, Debug, Default)]
pub struct Roles {
    /// Groups led here, with when this replica was first seen leading.
    pub leading: HashMap<GroupId, std::time::Instant>,
    /// Replicas that stopped serving or failed to start.
    pub stopped: Vec<Stopped>,
}

/// A local replica that stopped serving (or never started), as this node reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub group: GroupId,
    pub replica: ReplicaId,
    pub failure: Failure,
}

/// A replica whose start failed; the [`supervisor`] retries it unless its data is damaged.
#[derive(Clone, Debug)]
pub(crate) struct FailedStart {
    pub replica: ReplicaId,
    pub failure: Failure,
}

/// Local replicas by group id, plus the metadata they were started from.
pub struct LocalGroups {
    env: GroupEnv,
    groups: RwLock<HashMap<GroupId, (ReplicaId, Arc<PartitionGroup>)>>,
    state: watch::Receiver<Arc<ClusterState>>,
    roles: RwLock<Roles>,
    /// Replicas the metadata places here whose start failed.
    failed: RwLock<HashMap<GroupId, FailedStart>>,
}

impl LocalGroups {
    pub fn new(env: GroupEnv, state: watch::Receiver<Arc<ClusterState>>) -> LocalGroups {
        LocalGroups { env, groups: RwLock::default(), state, roles: RwLock::default(), failed: RwLock::default() }
    }

    /// Every local replica that stopped serving or failed to start, with why.
    pub fn stopped_replicas(&self) -> Vec<Stopped> {
        let mut out: Vec<Stopped> = self
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(g, (r, p))| p.failure().map(|failure| Stopped { group: *g, replica: *r, failure }))
            .collect();
        out.extend(self.failed.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(g, f)| Stopped {
            group: *g,
            replica: f.replica,
            failure: f.failure.clone(),
        }));
        out
    }

    /// Forgets a failed start (the supervisor is about to retry it).
    pub(crate) fn clear_failed_start(&self, group: GroupId) {
        self.failed.write().unwrap_or_else(|p| p.into_inner()).remove(&group);
    }

    pub fn roles(&self) -> Roles {
        self.roles.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_roles(&self, roles: Roles) {
        *self.roles.write().unwrap_or_else(|p| p.into_inner()) = roles;
    }

    pub fn env(&self) -> &GroupEnv {
        &self.env
    }

    /// The latest metadata this node applied.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// The latest metadata, once this node has any (a replaced node's controller replica starts
    /// empty and catches up as a learner).
    ///
    /// # Errors
    /// UNAVAILABLE while it has none.
    pub fn known_state(&self) -> Result<Arc<ClusterState>, ServiceError> {
        let state = self.state();
        if state.nodes.is_empty() {
            return Err(ServiceError::NoMetadata);
        }
        Ok(state)
    }

    pub fn get(&self, group: GroupId) -> Option<Arc<PartitionGroup>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).get(&group).map(|(_, g)| g.clone())
    }

    /// Every local replica.
    pub fn all(&self) -> Vec<Arc<PartitionGroup>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).values().map(|(_, g)| g.clone()).collect()
    }

    /// Where `topic`/`partition` is served, and the topic incarnation (id) it resolved to.
    /// `topic_id` 0 resolves by name alone; otherwise it must be this node's incarnation.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC / UNKNOWN_PARTITION, UNKNOWN_TOPIC_ID for another incarnation (or a topic
    /// this node has not learned of yet), or UNAVAILABLE while the local replica is starting.
    pub fn route(&self, topic: &str, partition: u32, topic_id: u64) -> Result<(u64, Route), ServiceError> {
        let faults = &self.env.config.faults;
        let topic_id = if faults.ignore_topic_id { 0 } else { topic_id };
        let state = self.known_state()?;
        let Some(t) = state.topics.get(topic) else {
            if topic_id != 0 && !faults.definite_unknown_topic {
                // The client learned of this incarnation elsewhere: this node lags, or the
                // topic is gone. Either way, not something to resolve by name.
                return Err(ServiceError::UnknownTopicId {
                    topic: topic.to_string(),
                    requested: topic_id,
                    current: None,
                });
            }
            return Err(ServiceError::UnknownTopic(topic.to_string()));
        };
        if topic_id != 0 && topic_id != t.id {
            return Err(ServiceError::UnknownTopicId {
                topic: topic.to_string(),
                requested: topic_id,
                current: Some(t.id),
            });
        }
        let p = t.partitions.get(partition as usize).ok_or(ServiceError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            count: t.partitions.len() as u32,
        })?;
        if let Some(g) = self.get(p.group_id) {
            return Ok((t.id, Route::Local(g)));
        }
        if let Some(f) = self.failed.read().unwrap_or_else(|p| p.into_inner()).get(&p.group_id) {
            return Err(ServiceError::Group(cairn_raft::GroupError::Stopped { reason: f.failure.reason.clone() }));
        }
        if p.replicas.iter().any(|r| r.node == self.env.me) {
            // A local replica the reconciler has not started yet.
            return Err(ServiceError::Starting { group: p.group_id });
        }
        // Hosted elsewhere: send the client to the preferred leader, which redirects if needed.
        let first = p.replicas.first().ok_or(ServiceError::Starting { group: p.group_id })?;
        let address = state.nodes.get(&first.node).map(|a| a.client.clone()).unwrap_or_default();
        Ok((t.id, Route::Elsewhere(LeaderHint { node_id: first.node, address })))
    }

    /// Whether this node's metadata still has incarnation `topic_id` of `topic`.
    pub fn has_incarnation(&self, topic: &str, topic_id: u64) -> bool {
        self.state().topics.get(topic).is_some_and(|t| t.id == topic_id)
    }

    /// A partition group's replicas as the metadata places them, with their nodes' client
    /// addresses (what memberships carry).
    pub(crate) fn members(state: &ClusterState, p: &Partition) -> BTreeMap<ReplicaId, String> {
        p.replicas
            .iter()
            .map(|r| {
                (
                    replica_id(r.node, r.incarnation),
                    state.nodes.get(&r.node).map(|a| a.client.clone()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Starts the replicas `state` places here and destroys the ones it no longer does.
    pub async fn reconcile(&self, state: &ClusterState) {
        let wanted: HashMap<GroupId, (ReplicaId, &Partition)> = state
            .replicas_on(self.env.me)
            .filter_map(|(_, _, p)| {
                let r = p.replicas.iter().find(|r| r.node == self.env.me)?;
                Some((p.group_id, (replica_id(r.node, r.incarnation), p)))
            })
            .collect();
        let stale: Vec<(GroupId, Arc<PartitionGroup>)> = {
            let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<GroupId> = groups
                .iter()
                .filter(|(g, (replica, _))| wanted.get(g).is_none_or(|(r, _)| r != replica))
                .map(|(g, _)| *g)
                .collect();
            gone.into_iter().filter_map(|g| groups.remove(&g).map(|(_, p)| (g, p))).collect()
        };
        for (group, g) in stale {
            if wanted.contains_key(&group) && g.failure().is_some_and(|f| f.corrupt) {
                retained::keep(self, group, g.replica_id()).await;
            }
            tracing::info!(group, "replica removed from this node; deleting its data");
            if let Err(e) = g.destroy().await {
                tracing::error!(group, error = %e, "could not delete the replica's data");
            }
        }
        let stale_failed: Vec<(GroupId, FailedStart)> = {
            let mut failed = self.failed.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<GroupId> = failed
                .iter()
                .filter(|(g, f)| wanted.get(g).is_none_or(|(r, _)| *r != f.replica))
                .map(|(g, _)| *g)
                .collect();
            gone.into_iter().filter_map(|g| failed.remove(&g).map(|f| (g, f))).collect()
        };
        for (group, f) in stale_failed {
            if wanted.contains_key(&group) && f.failure.corrupt {
                retained::keep(self, group, f.replica).await;
            }
            tracing::info!(group, "replica that failed to start is no longer wanted here; deleting its data");
            if let Err(e) = cairn_raft::storage::StateMachineStore::destroy(self.env.db.clone(), group).await {
                tracing::error!(group, error = %e, "could not delete the replica's data");
            }
        }
        for (group, (replica, p)) in wanted {
            let failed = self.failed.read().unwrap_or_else(|p| p.into_inner()).contains_key(&group);
            if self.get(group).is_some() || failed {
                continue; // running, or the supervisor retries its start
            }
            self.start_replica(state, group, replica, p).await;
        }
    }

    /// Starts one replica the metadata places here (its first start or a restart). A failure
    /// is recorded for the supervisor and reported to the cluster.
    pub(crate) async fn start_replica(&self, state: &ClusterState, group: GroupId, replica: ReplicaId, p: &Partition) {
        let mut cfg = self.env.group_config(group, replica);
        // Consumer groups' state and the schema registry: the latest record per key, kept at
        // apply time.
        cfg.keyed_state = [crate::topic::OFFSETS_TOPIC, crate::topic::SCHEMAS_TOPIC]
            .iter()
            .filter_map(|name| state.topics.get(*name))
            .any(|t| t.partitions.iter().any(|x| x.group_id == group));
        let started =
            PartitionGroup::start(cfg, self.env.db.clone(), self.env.peers.clone(), self.env.registry.clone()).await;
        let g = match started {
            Ok(g) => g,
            Err(e) => {
                let corrupt = e.is_damage();
                tracing::error!(group, error = %e, corrupt, "partition replica failed to start");
                let failure = Failure { reason: format!("start failed: {e}"), corrupt };
                self.failed.write().unwrap_or_else(|p| p.into_inner()).insert(group, FailedStart { replica, failure });
                return;
            }
        };
        self.failed.write().unwrap_or_else(|p| p.into_inner()).remove(&group);
        // Only the replicas the partition was created with initialise its group, all with that
        // same first membership; one placed later (a replaced node) waits for the leader to
        // add it as a learner.
        if p.founders.iter().any(|r| replica_id(r.node, r.incarnation) == replica) {
            let founders: BTreeMap<ReplicaId, String> = p
                .founders
                .iter()
                .map(|r| {
                    (
                        replica_id(r.node, r.incarnation),
                        state.nodes.get(&r.node).map(|a| a.client.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            if let Err(e) = g.bootstrap(&founders).await {
                tracing::error!(group, error = %e, "partition replica failed to initialise");
            }
        }
        self.groups.write().unwrap_or_else(|p| p.into_inner()).insert(group, (replica, Arc::new(g)));
    }

    /// Stops a running replica and takes it out of service here (the supervisor restarts it).
    pub(crate) async fn take_out(&self, group: GroupId) -> Option<ReplicaId> {
        let removed = self.groups.write().unwrap_or_else(|p| p.into_inner()).remove(&group);
        let (replica, g) = removed?;
        g.shutdown().await;
        Some(replica)
    }

    /// Deletes data of groups this node holds on disk but `state` no longer places here (a
    /// deletion applied while a destroy was interrupted, for instance). `keep` are groups that
    /// are not partitions (the controller).
    pub async fn remove_orphans(&self, state: &ClusterState, keep: &[GroupId]) {
        let on_disk = match self.env.db.group_ids().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "cannot list local groups");
                return;
            }
        };
        let placed: Vec<GroupId> = state.replicas_on(self.env.me).map(|(_, _, p)| p.group_id).collect();
        for g in on_disk.into_iter().filter(|g| !placed.contains(g) && !keep.contains(g)) {
            tracing::info!(group = g, "deleting data of a group no longer placed on this node");
            if let Err(e) = cairn_raft::storage::StateMachineStore::destroy(self.env.db.clone(), g).await {
                tracing::error!(group = g, error = %e, "could not delete orphaned group data");
            }
        }
    }

    /// Stops every local replica (data is kept).
    pub async fn shutdown(&self) {
        let all: Vec<Arc<PartitionGroup>> = {
            let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
            groups.drain().map(|(_, (_, g))| g).collect()
        };
        for g in all {
            g.shutdown().await;
        }
    }
}
