//! Cached cluster metadata: each topic's incarnation (id), partition count and the last known
//! leader of each partition.
//!
//! Answers come from whichever broker is asked, and a broker cut off from the controller can
//! lag far behind: the cache keeps the newest metadata version it has seen and ignores older
//! answers, so a stale broker can never bring back a deleted topic or an old incarnation.

use std::collections::HashMap;

use cairn_proto::v1::DescribeClusterResponse;

/// One topic as cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    /// The incarnation (never reused by a re-created topic of the same name); 0 from a server
    /// that does not report ids.
    pub id: u64,
    /// Leader address per partition (None while unknown).
    pub leaders: Vec<Option<String>>,
    /// Addresses of every placed replica per partition (reads fall back to them).
    pub replicas: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Metadata {
    pub topics: HashMap<String, TopicMeta>,
    /// Version of the cluster metadata the cache reflects (0: unknown).
    pub version: u64,
}

impl Metadata {
    pub fn from_response(resp: &DescribeClusterResponse) -> Metadata {
        let address: HashMap<u64, &str> = resp.nodes.iter().map(|n| (n.node_id, n.address.as_str())).collect();
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                let mut leaders = vec![None; t.partitions.len()];
                let mut replicas = vec![Vec::new(); t.partitions.len()];
                for p in &t.partitions {
                    if let Some(slot) = leaders.get_mut(p.partition as usize) {
                        *slot = (!p.leader_address.is_empty()).then(|| p.leader_address.clone());
                    }
                    if let Some(slot) = replicas.get_mut(p.partition as usize) {
                        *slot =
                            p.replica_node_ids.iter().filter_map(|n| address.get(n)).map(|a| a.to_string()).collect();
                    }
                }
                (t.name.clone(), TopicMeta { id: t.topic_id, leaders, replicas })
            })
            .collect();
        Metadata { topics, version: resp.metadata_version }
    }

    /// Takes `fresh` as the truth about which topics exist, their ids and partition counts,
    /// unless it is older than what the cache has (then only its leaders are learned, for
    /// the same incarnations); keeps a known leader where `fresh` knows none. Returns whether
    /// `fresh` was taken.
    pub fn merge(&mut self, fresh: Metadata) -> bool {
        if fresh.version != 0 && fresh.version < self.version {
            for (name, t) in fresh.topics {
                if let Some(mine) =
                    self.topics.get_mut(&name).filter(|m| m.id == t.id && m.leaders.len() == t.leaders.len())
                {
                    for (slot, l) in mine.leaders.iter_mut().zip(t.leaders) {
                        if l.is_some() {
                            *slot = l;
                        }
                    }
                }
            }
            return false;
        }
        let mut old = std::mem::take(&mut self.topics);
        for (topic, mut t) in fresh.topics {
            if let Some(prev) = old.remove(&topic).filter(|p| p.id == t.id && p.leaders.len() == t.leaders.len()) {
                for (slot, prev) in t.leaders.iter_mut().zip(prev.leaders) {
                    if slot.is_none() {
                        *slot = prev;
                    }
                }
            }
            self.topics.insert(topic, t);
        }
        self.version = self.version.max(fresh.version);
        true
    }

    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|t| t.leaders.len() as u32)
    }

    pub fn topic_id(&self, topic: &str) -> Option<u64> {
        self.topics.get(topic).map(|t| t.id)
    }

    pub fn leader(&self, topic: &str, partition: u32) -> Option<&str> {
        self.topics.get(topic)?.leaders.get(partition as usize)?.as_deref()
    }

    /// A replica of the partition other than those in `avoid`, if the cache knows one.
    pub fn other_replica(&self, topic: &str, partition: u32, avoid: &[String]) -> Option<&str> {
        self.topics
            .get(topic)?
            .replicas
            .get(partition as usize)?
            .iter()
            .find(|a| !avoid.contains(a))
            .map(String::as_str)
    }

    pub fn set_leader(&mut self, topic: &str, partition: u32, addr: Option<String>) {
        if let Some(slot) = self.topics.get_mut(topic).and_then(|t| t.leaders.get_mut(partition as usize)) {
            *slot = addr;
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_proto::v1::{PartitionInfo, TopicInfo};

    use super::*;

    fn answer(version: u64, topics: &[(&str, u64, &[&str])]) -> Metadata {
        let resp = DescribeClusterResponse {
            metadata_version: version,
            topics: topics
                .iter()
                .map(|(name, id, leaders)| TopicInfo {
                    name: name.to_string(),
                    topic_id: *id,
                    partitions: leaders
                        .iter()
                        .enumerate()
                        .map(|(i, l)| PartitionInfo {
                            partition: i as u32,
                            leader_address: l.to_string(),
                            ..PartitionInfo::default()
                        })
                        .collect(),
                })
                .collect(),
            ..DescribeClusterResponse::default()
        };
        Metadata::from_response(&resp)
    }

    #[test]
    fn a_lagging_broker_cannot_bring_back_an_old_incarnation_or_a_deleted_topic() {
        let mut m = Metadata::default();
        assert!(m.merge(answer(10, &[("orders", 7, &["a:1"]), ("gone", 3, &["a:1"])])));
        // The topic was deleted and re-created (id 9); "gone" was deleted.
        assert!(m.merge(answer(20, &[("orders", 9, &[""])])));
        assert_eq!(m.topic_id("orders"), Some(9));
        assert_eq!(m.leader("orders", 0), None, "the old incarnation's leader is not carried over");
        // A broker that lags answers with the state of version 10.
        assert!(!m.merge(answer(10, &[("orders", 7, &["c:1"]), ("gone", 3, &["c:1"])])));
        assert_eq!(m.topic_id("orders"), Some(9));
        assert_eq!(m.partition_count("gone"), None);
        assert_eq!(m.leader("orders", 0), None, "a leader of another incarnation is ignored");
        // An older answer about the same incarnation still teaches a leader.
        assert!(!m.merge(answer(15, &[("orders", 9, &["b:1"])])));
        assert_eq!(m.leader("orders", 0), Some("b:1"));
        assert_eq!(m.version, 20);
    }
}
