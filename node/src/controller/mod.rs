//! The controller: a Raft group (group 0) over the bootstrap nodes holding the cluster
//! metadata (nodes, topics, partition → group and replicas), plus the duties of its leader.
//!
//! ```text
//!  admin request ─► Controller::propose (leader only) ─► group 0 log ─► ControllerSm::apply
//!                                                   every node's copy ─► watch ─► reconciler
//! ```

pub mod directories;
pub mod duties;
pub mod legacy;
pub mod producers;
pub mod rebalancer;
pub mod repair;
pub mod sm;
pub mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_raft::error::LeaderHint;
use cairn_raft::group::PartitionGroup;
use cairn_raft::ids::replica_id;
use cairn_raft::ReplicaId;
use tokio::sync::watch;

use self::producers::NAME_BYTES_MAX;
use self::sm::{decode_answer, encode_command, ControllerSm};
use self::state::{
    ClusterState, MetaAnswer, MetaCommand, NamedProducerLimits, PartitionLimits, CONTROLLER_GROUP,
    CONTROLLER_INCARNATION,
};
use crate::config::LimitsSection;
use crate::groups::GroupEnv;
use crate::service::ServiceError;

/// How long a metadata change may take to commit before the outcome is reported unknown.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Producer ids the controller leader reserves at a time for anonymous producers.
const PRODUCER_ID_BLOCK: u64 = 1000;

/// This node's replica of the controller group.
pub struct Controller {
    group: PartitionGroup,
    state: watch::Receiver<Arc<ClusterState>>,
    /// Unused ids of the block this node reserved (lost, never reused, if the node stops).
    producer_ids: tokio::sync::Mutex<std::ops::Range<u64>>,
    limits: LimitsSection,
}

impl LimitsSection {
    /// The partition bounds a CreateTopic command carries.
    pub fn partition_limits(&self) -> PartitionLimits {
        PartitionLimits { per_node_max: self.partition_replicas_per_node_max, total_max: self.partitions_max }
    }

    /// The registry bounds an InitNamedProducer command carries.
    pub fn named_producer_limits(&self) -> NamedProducerLimits {
        NamedProducerLimits {
            max: self.named_producers_max,
            expiry_ms: i64::try_from(self.named_producer_expiry_ms).unwrap_or(i64::MAX),
        }
    }
}

impl Controller {
    /// Starts this node's controller replica `incarnation` (restoring the metadata it last
    /// applied). A bootstrap member (incarnation 1) makes sure the group is initialised with
    /// the bootstrap members; a replacement waits for the leader to add it as a learner.
    ///
    /// # Errors
    /// The group cannot start.
    pub async fn start(env: &GroupEnv, incarnation: u32) -> anyhow::Result<Controller> {
        let (sm, state) = ControllerSm::new();
        let cfg = env.group_config(CONTROLLER_GROUP, replica_id(env.me, incarnation));
        let group = PartitionGroup::start_with_meta(
            cfg,
            env.db.clone(),
            env.peers.clone(),
            env.registry.clone(),
            Some(Box::new(sm)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("controller group: {e}"))?;
        let members: BTreeMap<ReplicaId, String> = env
            .config
            .initial_cluster
            .iter()
            .map(|(n, addr)| (replica_id(*n, CONTROLLER_INCARNATION), addr.client.clone()))
            .collect();
        if incarnation == CONTROLLER_INCARNATION {
            group.bootstrap(&members).await.map_err(|e| anyhow::anyhow!("controller group: {e}"))?;
        } else {
            tracing::info!(incarnation, "controller replica of a replaced node: waiting to be added as a learner");
        }
        Ok(Controller { group, state, producer_ids: tokio::sync::Mutex::new(0..0), limits: env.config.limits })
    }

    /// This node's configured limits (what its proposals carry).
    pub fn limits(&self) -> &LimitsSection {
        &self.limits
    }

    /// The metadata this node last applied.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.state.clone()
    }

    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    pub fn leader(&self) -> Option<LeaderHint> {
        self.group.status().leader
    }

    pub fn group(&self) -> &PartitionGroup {
        &self.group
    }

    /// Proposes a metadata change (on the controller leader) and returns its answer.
    ///
    /// # Errors
    /// NOT_LEADER with the controller leader's address, TIMEOUT (outcome unknown), or a
    /// corrupt answer.
    pub async fn propose(&self, cmd: &MetaCommand) -> Result<MetaAnswer, ServiceError> {
        let answer = self.group.propose_meta(encode_command(cmd), PROPOSE_TIMEOUT).await?;
        decode_answer(&answer).map_err(ServiceError::Internal)
    }

    /// A producer id and epoch. A named producer is registered (or its epoch bumped) through
    /// the controller log: `instance` None for a new instance, which fences every older one, or
    /// the caller's current `(id, epoch)` to bump its own epoch. Anonymous ids come from a
    /// block this node reserved in the log, always with epoch 0; an anonymous producer that
    /// must start over takes a new id.
    ///
    /// # Errors
    /// NOT_LEADER (call the controller leader), TIMEOUT, invalid names, FENCED for a replaced
    /// instance, LIMIT_EXCEEDED when the registry is full.
    pub async fn init_producer(&self, name: &str, instance: Option<(u64, u32)>) -> Result<(u64, u32), ServiceError> {
        if name.len() > NAME_BYTES_MAX {
            return Err(ServiceError::InvalidArgument(format!(
                "producer name is {} bytes; at most {NAME_BYTES_MAX} are allowed",
                name.len()
            )));
        }
        if name.is_empty() && instance.is_some() {
            return Err(ServiceError::InvalidArgument(
                "an anonymous producer starts over with a new id: send no producer_id".into(),
            ));
        }
        if !self.is_leader() {
            return Err(ServiceError::Group(cairn_raft::GroupError::NotLeader { leader: self.leader() }));
        }
        if !name.is_empty() {
            let (now, limits) = (now_ms(), self.limits.named_producer_limits());
            if instance.is_none() && self.state().named_registry_full(name, now, &limits) {
                // Refused here, not in the log: a client must not grow the controller's log
                // with names it cannot have.
                return Err(ServiceError::LimitExceeded(format!(
                    "the cluster already has {} named producers (the limit, limits.named_producers_max); \
                     unused names are forgotten {} ms after their last use",
                    limits.max, limits.expiry_ms
                )));
            }
            let cmd = MetaCommand::InitNamedProducer { name: name.to_string(), instance, now_ms: now, limits };
            return match self.propose(&cmd).await? {
                MetaAnswer::Producer { id, epoch } => Ok((id, epoch)),
                MetaAnswer::Fenced { current_epoch } => Err(ServiceError::ProducerFenced { current_epoch }),
                MetaAnswer::LimitExceeded(m) => Err(ServiceError::LimitExceeded(m)),
                MetaAnswer::Invalid(m) => Err(ServiceError::InvalidArgument(m)),
                other => Err(ServiceError::Internal(other.unexpected())),
            };
        }
        let mut block = self.producer_ids.lock().await;
        if block.is_empty() {
            match self.propose(&MetaCommand::AllocateProducerIds { count: PRODUCER_ID_BLOCK }).await? {
                MetaAnswer::ProducerIds { first, count } => *block = first..first + count,
                other => return Err(ServiceError::Internal(other.unexpected())),
            }
        }
        let id = block.start;
        block.start += 1;
        Ok((id, 0))
    }

    /// The index of the last metadata change this node applied.
    pub fn applied_version(&self) -> u64 {
        self.state.borrow().version
    }

    /// Stops the controller replica.
    pub async fn shutdown(&self) {
        self.group.shutdown().await;
    }
}

/// The proposing leader's wall clock (ms since the Unix epoch), carried in commands that expire
/// things, so every replica applies the same time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
