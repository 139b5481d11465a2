//! Cached cluster metadata: partition counts and the last known leader of each partition.

use std::collections::HashMap;

use cairn_proto::v1::DescribeClusterResponse;

#[derive(Clone, Debug, Default)]
pub(crate) struct Metadata {
    /// topic → leader address per partition (None while unknown).
    pub topics: HashMap<String, Vec<Option<String>>>,
}

impl Metadata {
    pub fn from_response(resp: &DescribeClusterResponse) -> Metadata {
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                let mut leaders = vec![None; t.partitions.len()];
                for p in &t.partitions {
                    if let Some(slot) = leaders.get_mut(p.partition as usize) {
                        *slot = (!p.leader_address.is_empty()).then(|| p.leader_address.clone());
                    }
                }
                (t.name.clone(), leaders)
            })
            .collect();
        Metadata { topics }
    }

    /// Takes `fresh` as the truth about which topics exist and how many partitions they have;
    /// keeps a known leader where `fresh` knows none.
    pub fn merge(&mut self, fresh: Metadata) {
        let mut old = std::mem::take(&mut self.topics);
        for (topic, mut leaders) in fresh.topics {
            if let Some(prev) = old.remove(&topic).filter(|p| p.len() == leaders.len()) {
                for (slot, prev) in leaders.iter_mut().zip(prev) {
                    if slot.is_none() {
                        *slot = prev;
                    }
                }
            }
            self.topics.insert(topic, leaders);
        }
    }

    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|t| t.len() as u32)
    }

    pub fn leader(&self, topic: &str, partition: u32) -> Option<&str> {
        self.topics.get(topic)?.get(partition as usize)?.as_deref()
    }

    pub fn set_leader(&mut self, topic: &str, partition: u32, addr: Option<String>) {
        if let Some(slot) = self.topics.get_mut(topic).and_then(|t| t.get_mut(partition as usize)) {
            *slot = addr;
        }
    }
}
