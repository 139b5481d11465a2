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

    pub fn leader(&self, topic: &str, partition: u32) -> Option<&str> {
        self.topics.get(topic)?.get(partition as usize)?.as_deref()
    }

    pub fn set_leader(&mut self, topic: &str, partition: u32, addr: Option<String>) {
        if let Some(slot) = self.topics.get_mut(topic).and_then(|t| t.get_mut(partition as usize)) {
            *slot = addr;
        }
    }
}
