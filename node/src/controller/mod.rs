//! The controller: a Raft group (group 0) over the bootstrap nodes holding the cluster
//! metadata (nodes, topics, partition → group and replicas), plus the duties of its leader.
//!
//! ```text
//!  admin request ─► Controller::propose (leader only) ─► group 0 log ─► ControllerSm::apply
//!                                                   every node's copy ─► watch ─► reconciler
//! ```

pub mod duties;
pub mod rebalancer;
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

use self::sm::{decode_answer, encode_command, ControllerSm};
use self::state::{ClusterState, MetaAnswer, MetaCommand, CONTROLLER_GROUP, CONTROLLER_INCARNATION};
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
}

impl Controller {
    /// Starts this node's controller replica (restoring the metadata it last applied) and
    /// makes sure the group is initialised with the bootstrap members.
    ///
    /// # Errors
    /// The group cannot start.
    pub async fn start(env: &GroupEnv) -> anyhow::Result<Controller> {
        let (sm, state) = ControllerSm::new();
        let cfg = env.group_config(CONTROLLER_GROUP, replica_id(env.me, CONTROLLER_INCARNATION));
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
            .map(|(n, addr)| (replica_id(*n, CONTROLLER_INCARNATION), addr.clone()))
            .collect();
        group.bootstrap(&members).await.map_err(|e| anyhow::anyhow!("controller group: {e}"))?;
        Ok(Controller { group, state, producer_ids: tokio::sync::Mutex::new(0..0) })
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

    /// A producer id and epoch: for a name, registered (or its epoch bumped) through the
    /// controller log; anonymous ids come from a block this node reserved in the log.
    ///
    /// # Errors
    /// NOT_LEADER (call the controller leader), TIMEOUT, invalid names.
    pub async fn init_producer(&self, name: &str) -> Result<(u64, u32), ServiceError> {
        if !self.is_leader() {
            return Err(ServiceError::Group(cairn_raft::GroupError::NotLeader { leader: self.leader() }));
        }
        if !name.is_empty() {
            return match self.propose(&MetaCommand::InitNamedProducer { name: name.to_string() }).await? {
                MetaAnswer::Producer { id, epoch } => Ok((id, epoch)),
                MetaAnswer::Invalid(m) => Err(ServiceError::InvalidArgument(m)),
                other => Err(ServiceError::Internal(format!("unexpected controller answer {other:?}"))),
            };
        }
        let mut block = self.producer_ids.lock().await;
        if block.is_empty() {
            match self.propose(&MetaCommand::AllocateProducerIds { count: PRODUCER_ID_BLOCK }).await? {
                MetaAnswer::ProducerIds { first, count } => *block = first..first + count,
                other => return Err(ServiceError::Internal(format!("unexpected controller answer {other:?}"))),
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
