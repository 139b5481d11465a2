//! Cluster metadata held by the controller group, and the deterministic rules that change it.
//!
//! Everything here is a pure function of the state and the command: every controller replica
//! applies the same commands in the same order and reaches the same state (placement included).

use std::collections::{BTreeMap, BTreeSet};

use cairn_raft::{GroupId, NodeId, ReplicaId};
use serde::{Deserialize, Serialize};

pub use crate::address::NodeAddress;

pub use super::producers::{NamedProducer, NamedProducerLimits, ProducerCheck};
use crate::auth::acl::Acl;

/// Most ACLs a cluster holds (each check reads them all).
pub const ACLS_MAX: usize = 10_000;

/// The controller's group id; partition groups start at 1 and ids are never reused.
pub const CONTROLLER_GROUP: GroupId = 0;
/// Incarnation of the controller's replicas (the bootstrap members).
pub const CONTROLLER_INCARNATION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster's id, drawn at random by the leader that bootstrapped it (empty before):
    /// two clusters never share one, even with the same members.
    pub cluster_id: String,
    /// Registered nodes and their client and peer addresses (the bootstrap members).
    pub nodes: BTreeMap<NodeId, NodeAddress>,
    pub topics: BTreeMap<String, Topic>,
    pub next_topic_id: u64,
    pub next_group_id: GroupId,
    pub next_incarnation: u32,
    /// Next idempotent producer id to hand out (ids start at 1 and are never reused).
    pub next_producer_id: u64,
    /// Named producers by id (see [`super::producers`]).
    pub named_producers: BTreeMap<u64, NamedProducer>,
    /// Name → id of every named producer.
    pub producer_names: BTreeMap<String, u64>,
    /// Registered data directory of each node; 0 while the node awaits its replacement
    /// (see [`super::directories`]).
    pub directories: BTreeMap<NodeId, u64>,
    /// Controller replica incarnation of replaced nodes (the others have
    /// [`CONTROLLER_INCARNATION`]).
    pub controller_incarnations: BTreeMap<NodeId, u32>,
    /// Data directories that were replaced (lost, or found damaged): never registered again, so
    /// a late report from a node's previous process cannot bring one back.
    pub retired_directories: BTreeSet<u64>,
    /// Who may do what (see [`crate::auth::acl`]); checked only with `[auth] acls` on.
    pub acls: BTreeSet<Acl>,
    /// Raft index of the last applied change.
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub id: u64,
    pub partitions: Vec<Partition>,
    pub replication_factor: u32,
    pub retention: Retention,
    /// Whether produce requires record keys and/or values to carry a schema id registered
    /// under the topic's subject (docs/schemas.md, "Broker-side validation").
    pub schema_validation: SchemaValidation,
}

/// A topic's broker-side schema validation: off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValidation {
    pub key: bool,
    pub value: bool,
}

/// A topic's retention settings: 0 = the cluster default (`[retention]` of the leader's
/// configuration), -1 = no limit, else the limit (ms; bytes per partition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub group_id: GroupId,
    /// The first replica is the preferred leader.
    pub replicas: Vec<Replica>,
    /// The replicas the group was created with: they (and only they) initialise it, all with
    /// this same first membership. A replica placed later (a replaced node) waits for the
    /// leader to add it as a learner.
    pub founders: Vec<Replica>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub node: NodeId,
    pub incarnation: u32,
}

/// A change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Registers the bootstrap members and the cluster's id; ignored once nodes are registered.
    Bootstrap {
        nodes: BTreeMap<NodeId, NodeAddress>,
        cluster_id: String,
    },
    /// Creates a topic on the `live` nodes (as the proposing leader saw them).
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u32,
        retention: Retention,
        live: Vec<NodeId>,
        /// The proposing leader's bounds on partitions.
        limits: PartitionLimits,
    },
    DeleteTopic {
        name: String,
    },
    /// Reserves `count` producer ids for one node to hand out.
    AllocateProducerIds {
        count: u64,
    },
    /// Records a node's data directory (its first, or the one replacing a lost one).
    RegisterDirectory {
        node: NodeId,
        directory: u64,
    },
    /// Marks a node that lost its data directory for replacement.
    ReplaceNode {
        node: NodeId,
    },
    /// Registers a named producer or issues it a new epoch: `instance` None for a new instance
    /// (fencing older ones), or the caller's `(id, epoch)` to bump its own epoch.
    InitNamedProducer {
        name: String,
        instance: Option<(u64, u32)>,
        /// The proposing leader's clock (registry expiry).
        now_ms: i64,
        limits: NamedProducerLimits,
    },
    /// Gives the replica `replica` of partition group `group` a new incarnation on the same
    /// node: an empty replica that catches up as a learner, then takes the old one's vote.
    RepairReplica {
        group: GroupId,
        replica: ReplicaId,
    },
    /// Changes a topic's retention settings: each `Some` replaces the stored value (0 returns it
    /// to the cluster default), each `None` keeps it.
    AlterTopicConfig {
        name: String,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
    },
    /// Grows topic `name` to `partitions` partitions (never fewer), the new ones placed on the
    /// `live` nodes like a new topic's and replicated as often as the topic's. AlreadyExists
    /// when the topic has exactly that many.
    CreatePartitions {
        name: String,
        partitions: u32,
        live: Vec<NodeId>,
        limits: PartitionLimits,
    },
    /// Adds ACLs (those already present stay as they are).
    AddAcls {
        acls: Vec<Acl>,
    },
    /// Removes exactly these ACLs; NotFound when none was present.
    RemoveAcls {
        acls: Vec<Acl>,
    },
    /// Turns a topic's schema validation of keys and/or values on or off (`None` keeps it).
    SetSchemaValidation {
        name: String,
        key: Option<bool>,
        value: Option<bool>,
    },
}

/// Bounds on partitions, from the proposing leader's configuration (in the command, so every
/// replica decides alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLimits {
    /// Partition replicas one node may host.
    pub per_node_max: u64,
    /// Partitions in the whole cluster.
    pub total_max: u64,
}

/// The outcome of one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaAnswer {
    Done,
    Created {
        topic_id: u64,
    },
    /// Producer ids `[first, first + count)`.
    ProducerIds {
        first: u64,
        count: u64,
    },
    Producer {
        id: u64,
        epoch: u32,
    },
    /// The named producer instance asking for an epoch was replaced by a newer one.
    Fenced {
        current_epoch: u32,
    },
    /// A configured limit would be exceeded; nothing changed.
    LimitExceeded(String),
    /// A node was marked for replacement; this many partition replicas get rebuilt on it.
    Replaced {
        replicas: u32,
    },
    AlreadyExists,
    NotFound,
    Invalid(String),
    /// A replica was given a new incarnation.
    Repaired {
        replica: ReplicaId,
    },
    /// ACLs added or removed (those not already so).
    AclsChanged {
        count: u32,
    },
}

/// Largest partition count of one topic.
pub const PARTITIONS_MAX: u32 = 10_000;

impl MetaAnswer {
    /// What kind of answer this is, for a message about an answer that was not expected.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaAnswer::Done => "done",
            MetaAnswer::Created { .. } => "created",
            MetaAnswer::ProducerIds { .. } => "producer ids",
            MetaAnswer::Producer { .. } => "a producer",
            MetaAnswer::Fenced { .. } => "fenced",
            MetaAnswer::LimitExceeded(_) => "limit exceeded",
            MetaAnswer::Replaced { .. } => "replaced",
            MetaAnswer::AlreadyExists => "already exists",
            MetaAnswer::NotFound => "not found",
            MetaAnswer::Invalid(_) => "invalid",
            MetaAnswer::Repaired { .. } => "repaired",
            MetaAnswer::AclsChanged { .. } => "ACLs changed",
        }
    }

    /// The error for an answer a caller did not expect (a bug, reported as INTERNAL).
    pub fn unexpected(&self) -> String {
        format!("the controller gave an unexpected answer ({})", self.kind())
    }

    /// Whether applying the command changed the state (refusals change nothing).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            MetaAnswer::AlreadyExists
                | MetaAnswer::NotFound
                | MetaAnswer::Invalid(_)
                | MetaAnswer::Fenced { .. }
                | MetaAnswer::LimitExceeded(_)
        )
    }
}

impl ClusterState {
    /// Applies `cmd` at raft `index`.
    pub fn apply(&mut self, index: u64, cmd: &MetaCommand) -> MetaAnswer {
        let answer = match cmd {
            MetaCommand::Bootstrap { nodes, cluster_id } => {
                if self.nodes.is_empty() {
                    self.nodes = nodes.clone();
                    self.cluster_id = cluster_id.clone();
                    self.next_group_id = self.next_group_id.max(CONTROLLER_GROUP + 1);
                    self.next_incarnation = self.next_incarnation.max(CONTROLLER_INCARNATION + 1);
                }
                MetaAnswer::Done
            }
            MetaCommand::CreateTopic { name, partitions, replication_factor, retention, live, limits } => {
                self.create_topic(name, *partitions, *replication_factor, *retention, live, limits)
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => MetaAnswer::Done,
                None => MetaAnswer::NotFound,
            },
            MetaCommand::AllocateProducerIds { count } => {
                let first = self.next_producer_id.max(1);
                let count = (*count).clamp(1, 1 << 20);
                self.next_producer_id = first + count;
                MetaAnswer::ProducerIds { first, count }
            }
            MetaCommand::RegisterDirectory { node, directory } => self.register_directory(*node, *directory),
            MetaCommand::ReplaceNode { node } => self.replace_node(*node),
            MetaCommand::InitNamedProducer { name, instance, now_ms, limits } => {
                self.init_named_producer(name, *instance, *now_ms, limits)
            }
            MetaCommand::RepairReplica { group, replica } => self.repair_replica(*group, *replica),
            MetaCommand::AlterTopicConfig { name, retention_ms, retention_bytes } => match self.topics.get_mut(name) {
                None => MetaAnswer::NotFound,
                Some(_) if [retention_ms, retention_bytes].iter().any(|v| v.is_some_and(|v| v < -1)) => {
                    MetaAnswer::Invalid("retention settings are -1, 0 or positive".into())
                }
                Some(t) => {
                    t.retention.retention_ms = retention_ms.unwrap_or(t.retention.retention_ms);
                    t.retention.retention_bytes = retention_bytes.unwrap_or(t.retention.retention_bytes);
                    MetaAnswer::Done
                }
            },
            MetaCommand::CreatePartitions { name, partitions, live, limits } => {
                self.create_partitions(name, *partitions, live, limits)
            }
            MetaCommand::SetSchemaValidation { name, key, value } => match self.topics.get_mut(name) {
                None => MetaAnswer::NotFound,
                Some(t) => {
                    t.schema_validation.key = key.unwrap_or(t.schema_validation.key);
                    t.schema_validation.value = value.unwrap_or(t.schema_validation.value);
                    MetaAnswer::Done
                }
            },
            MetaCommand::AddAcls { acls } => self.add_acls(acls),
            MetaCommand::RemoveAcls { acls } => {
                let count = acls.iter().filter(|a| self.acls.remove(a)).count();
                match count {
                    0 => MetaAnswer::NotFound,
                    n => MetaAnswer::AclsChanged { count: n as u32 },
                }
            }
        };
        if answer.changes_state() {
            self.version = index;
        }
        answer
    }

    fn add_acls(&mut self, acls: &[Acl]) -> MetaAnswer {
        if let Some((acl, why)) = acls.iter().find_map(|a| a.check().err().map(|e| (a, e))) {
            return MetaAnswer::Invalid(format!("ACL for {:?} on {}: {why}", acl.principal, acl.name));
        }
        let new: BTreeSet<&Acl> = acls.iter().filter(|a| !self.acls.contains(*a)).collect();
        if self.acls.len() + new.len() > ACLS_MAX {
            return MetaAnswer::LimitExceeded(format!(
                "the cluster holds {} ACLs; {} more would pass the limit of {ACLS_MAX}",
                self.acls.len(),
                new.len()
            ));
        }
        let count = new.len() as u32;
        self.acls.extend(new.into_iter().cloned());
        MetaAnswer::AclsChanged { count }
    }

    fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        rf: u32,
        retention: Retention,
        live: &[NodeId],
        limits: &PartitionLimits,
    ) -> MetaAnswer {
        if let Err(e) = crate::topic::check_name(name) {
            return MetaAnswer::Invalid(e);
        }
        if self.topics.contains_key(name) {
            return MetaAnswer::AlreadyExists;
        }
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return MetaAnswer::Invalid(format!("partitions must be 1..={PARTITIONS_MAX}, got {partitions}"));
        }
        let parts = match self.new_partitions(partitions, rf, live, limits) {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        // Ids start at 1: 0 in a request means "resolve by name".
        let topic_id = self.next_topic_id.max(1);
        self.next_topic_id = topic_id + 1;
        self.topics.insert(
            name.to_string(),
            Topic {
                id: topic_id,
                partitions: parts,
                replication_factor: rf,
                retention,
                schema_validation: SchemaValidation::default(),
            },
        );
        MetaAnswer::Created { topic_id }
    }

    /// Adds partitions to `name` up to `partitions` in all. Existing partitions keep their
    /// groups and data; keys hash over the new count from now on (as in Kafka).
    fn create_partitions(
        &mut self,
        name: &str,
        partitions: u32,
        live: &[NodeId],
        limits: &PartitionLimits,
    ) -> MetaAnswer {
        let Some(t) = self.topics.get(name) else { return MetaAnswer::NotFound };
        let (now, rf) = (t.partitions.len() as u32, t.replication_factor);
        if partitions == now {
            // Already done (perhaps by an earlier attempt of the same request).
            return MetaAnswer::AlreadyExists;
        }
        if partitions < now {
            return MetaAnswer::Invalid(format!(
                "topic {name} has {now} partitions; the count can only grow (asked for {partitions})"
            ));
        }
        if partitions > PARTITIONS_MAX {
            return MetaAnswer::Invalid(format!("partitions must be 1..={PARTITIONS_MAX}, got {partitions}"));
        }
        let parts = match self.new_partitions(partitions - now, rf, live, limits) {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        match self.topics.get_mut(name) {
            Some(t) => {
                t.partitions.extend(parts);
                MetaAnswer::Done
            }
            None => MetaAnswer::NotFound,
        }
    }

    /// `count` new partitions with `rf` replicas on the `live` nodes, within `limits`, each with
    /// its own group and fresh incarnations; a refusal changes nothing.
    fn new_partitions(
        &mut self,
        count: u32,
        rf: u32,
        live: &[NodeId],
        limits: &PartitionLimits,
    ) -> Result<Vec<Partition>, MetaAnswer> {
        let eligible: Vec<NodeId> =
            live.iter().copied().filter(|n| self.nodes.contains_key(n)).collect::<BTreeSet<_>>().into_iter().collect();
        if rf == 0 || rf as usize > eligible.len() {
            return Err(MetaAnswer::Invalid(format!(
                "replication factor {rf} needs {rf} live nodes; {} of {} nodes are live",
                eligible.len(),
                self.nodes.len()
            )));
        }
        let total: u64 = self.topics.values().map(|t| t.partitions.len() as u64).sum();
        if total + u64::from(count) > limits.total_max {
            return Err(MetaAnswer::LimitExceeded(format!(
                "the cluster has {total} partitions; {count} more would pass the limit of {} \
                 (limits.partitions_max)",
                limits.total_max
            )));
        }
        let placement = self.place(count, rf, &eligible);
        let mut hosted: BTreeMap<NodeId, u64> = BTreeMap::new();
        for r in self.topics.values().flat_map(|t| &t.partitions).flat_map(|p| &p.replicas) {
            *hosted.entry(r.node).or_default() += 1;
        }
        for n in placement.iter().flatten() {
            *hosted.entry(*n).or_default() += 1;
        }
        if let Some((node, hosts)) = hosted.iter().find(|(_, c)| **c > limits.per_node_max) {
            return Err(MetaAnswer::LimitExceeded(format!(
                "node {node} would host {hosts} partition replicas, over the limit of {} \
                 (limits.partition_replicas_per_node_max)",
                limits.per_node_max
            )));
        }
        let mut parts = Vec::with_capacity(count as usize);
        for nodes in placement {
            let replicas: Vec<Replica> = nodes
                .into_iter()
                .map(|node| {
                    let incarnation = self.next_incarnation;
                    self.next_incarnation += 1;
                    Replica { node, incarnation }
                })
                .collect();
            parts.push(Partition { group_id: self.next_group_id, founders: replicas.clone(), replicas });
            self.next_group_id += 1;
        }
        Ok(parts)
    }

    /// Chooses replicas for `partitions` new partitions: each partition's preferred leader is
    /// the eligible node leading the fewest partitions so far, the other replicas the nodes
    /// holding the fewest replicas (ties by lowest node id). Deterministic.
    fn place(&self, partitions: u32, rf: u32, eligible: &[NodeId]) -> Vec<Vec<NodeId>> {
        let mut leads: BTreeMap<NodeId, u64> = eligible.iter().map(|n| (*n, 0)).collect();
        let mut holds: BTreeMap<NodeId, u64> = leads.clone();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            if let Some(first) = p.replicas.first() {
                if let Some(c) = leads.get_mut(&first.node) {
                    *c += 1;
                }
            }
            for r in &p.replicas {
                if let Some(c) = holds.get_mut(&r.node) {
                    *c += 1;
                }
            }
        }
        let mut out = Vec::with_capacity(partitions as usize);
        for _ in 0..partitions {
            let leader = *leads
                .iter()
                .min_by_key(|(n, c)| (**c, **n))
                .map(|(n, _)| n)
                .expect("invariant: 1 <= rf <= eligible.len()");
            let mut chosen = vec![leader];
            while chosen.len() < rf as usize {
                let next = holds
                    .iter()
                    .filter(|(n, _)| !chosen.contains(n))
                    .min_by_key(|(n, c)| (**c, **n))
                    .map(|(n, _)| *n)
                    .expect("invariant: rf <= eligible.len()");
                chosen.push(next);
            }
            *leads.entry(leader).or_default() += 1;
            for n in &chosen {
                *holds.entry(*n).or_default() += 1;
            }
            out.push(chosen);
        }
        out
    }

    /// Every partition replica placed on `node`: (topic, partition index, partition).
    pub fn replicas_on(&self, node: NodeId) -> impl Iterator<Item = (&str, u32, &Partition)> {
        self.topics.iter().flat_map(move |(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.replicas.iter().any(|r| r.node == node))
                .map(move |(i, p)| (name.as_str(), i as u32, p))
        })
    }
}

#[cfg(test)]
#[path = "state_test.rs"]
mod tests;
