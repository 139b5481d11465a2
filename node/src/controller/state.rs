//! Cluster metadata held by the controller group, and the deterministic rules that change it.
//!
//! Everything here is a pure function of the state and the command: every controller replica
//! applies the same commands in the same order and reaches the same state (placement included).

use std::collections::{BTreeMap, BTreeSet};

use cairn_raft::{GroupId, NodeId};
use serde::{Deserialize, Serialize};

/// The controller's group id; partition groups start at 1 and ids are never reused.
pub const CONTROLLER_GROUP: GroupId = 0;
/// Incarnation of the controller's replicas (the bootstrap members).
pub const CONTROLLER_INCARNATION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Registered nodes and their addresses (the bootstrap members).
    pub nodes: BTreeMap<NodeId, String>,
    pub topics: BTreeMap<String, Topic>,
    pub next_topic_id: u64,
    pub next_group_id: GroupId,
    pub next_incarnation: u32,
    /// Next idempotent producer id to hand out (ids start at 1 and are never reused).
    pub next_producer_id: u64,
    /// Named producers (stable name → id and current epoch).
    pub named_producers: BTreeMap<String, NamedProducer>,
    /// Raft index of the last applied change.
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedProducer {
    pub id: u64,
    pub epoch: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub id: u64,
    pub partitions: Vec<Partition>,
    pub replication_factor: u32,
    pub retention: Retention,
}

/// Retention settings, stored for the retention machinery (0 = unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub retention_ms: u64,
    pub retention_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub group_id: GroupId,
    /// The first replica is the preferred leader.
    pub replicas: Vec<Replica>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub node: NodeId,
    pub incarnation: u32,
}

/// A change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Registers the bootstrap members; ignored once nodes are registered.
    Bootstrap {
        nodes: BTreeMap<NodeId, String>,
    },
    /// Creates a topic on the `live` nodes (as the proposing leader saw them).
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u32,
        retention: Retention,
        live: Vec<NodeId>,
    },
    DeleteTopic {
        name: String,
    },
    /// Reserves `count` producer ids for one node to hand out.
    AllocateProducerIds {
        count: u64,
    },
    /// Registers a named producer, or bumps its epoch (fencing the previous instance).
    InitNamedProducer {
        name: String,
    },
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
    AlreadyExists,
    NotFound,
    Invalid(String),
}

/// Largest partition count of one topic.
pub const PARTITIONS_MAX: u32 = 10_000;

impl ClusterState {
    /// Applies `cmd` at raft `index`.
    pub fn apply(&mut self, index: u64, cmd: &MetaCommand) -> MetaAnswer {
        let answer = match cmd {
            MetaCommand::Bootstrap { nodes } => {
                if self.nodes.is_empty() {
                    self.nodes = nodes.clone();
                    self.next_group_id = self.next_group_id.max(CONTROLLER_GROUP + 1);
                    self.next_incarnation = self.next_incarnation.max(CONTROLLER_INCARNATION + 1);
                }
                MetaAnswer::Done
            }
            MetaCommand::CreateTopic { name, partitions, replication_factor, retention, live } => {
                self.create_topic(name, *partitions, *replication_factor, *retention, live)
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
            MetaCommand::InitNamedProducer { name } => self.init_named_producer(name),
        };
        if !matches!(answer, MetaAnswer::AlreadyExists | MetaAnswer::NotFound | MetaAnswer::Invalid(_)) {
            self.version = index;
        }
        answer
    }

    fn init_named_producer(&mut self, name: &str) -> MetaAnswer {
        if name.is_empty() || name.len() > 249 {
            return MetaAnswer::Invalid("producer name must be 1 to 249 bytes".into());
        }
        let p = match self.named_producers.get(name) {
            // Epoch exhausted: a fresh id (Kafka does the same).
            Some(p) if p.epoch < u32::MAX => NamedProducer { id: p.id, epoch: p.epoch + 1 },
            _ => {
                let id = self.next_producer_id.max(1);
                self.next_producer_id = id + 1;
                NamedProducer { id, epoch: 0 }
            }
        };
        self.named_producers.insert(name.to_string(), p);
        MetaAnswer::Producer { id: p.id, epoch: p.epoch }
    }

    /// The current epoch of a named producer's id (None: not a named producer).
    pub fn named_epoch(&self, producer_id: u64) -> Option<u32> {
        self.named_producers.values().find(|p| p.id == producer_id).map(|p| p.epoch)
    }

    fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        rf: u32,
        retention: Retention,
        live: &[NodeId],
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
        let eligible: Vec<NodeId> =
            live.iter().copied().filter(|n| self.nodes.contains_key(n)).collect::<BTreeSet<_>>().into_iter().collect();
        if rf == 0 || rf as usize > eligible.len() {
            return MetaAnswer::Invalid(format!(
                "replication factor {rf} needs {rf} live nodes; {} of {} nodes are live",
                eligible.len(),
                self.nodes.len()
            ));
        }
        let placement = self.place(partitions, rf, &eligible);
        let mut parts = Vec::with_capacity(partitions as usize);
        for nodes in placement {
            let replicas = nodes
                .into_iter()
                .map(|node| {
                    let incarnation = self.next_incarnation;
                    self.next_incarnation += 1;
                    Replica { node, incarnation }
                })
                .collect();
            parts.push(Partition { group_id: self.next_group_id, replicas });
            self.next_group_id += 1;
        }
        let topic_id = self.next_topic_id;
        self.next_topic_id += 1;
        self.topics
            .insert(name.to_string(), Topic { id: topic_id, partitions: parts, replication_factor: rf, retention });
        MetaAnswer::Created { topic_id }
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
