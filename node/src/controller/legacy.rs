//! Controller states saved in older formats, decoded into today's [`ClusterState`]. Commands
//! and answers keep their encoding across formats (variants are only ever appended), so only
//! the saved state needs this.

use std::collections::{BTreeMap, BTreeSet};

use cairn_raft::{GroupId, NodeId};
use serde::Deserialize;

use super::state::{ClusterState, NamedProducer, NodeAddress, Partition, Retention, SchemaValidation, Topic};
use crate::auth::acl::Acl;

/// Format 4: topics without their schema validation.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct TopicV4 {
    id: u64,
    partitions: Vec<Partition>,
    replication_factor: u32,
    retention: Retention,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize, Default))]
struct ClusterStateV4 {
    cluster_id: String,
    nodes: BTreeMap<NodeId, NodeAddress>,
    topics: BTreeMap<String, TopicV4>,
    next_topic_id: u64,
    next_group_id: GroupId,
    next_incarnation: u32,
    next_producer_id: u64,
    named_producers: BTreeMap<u64, NamedProducer>,
    producer_names: BTreeMap<String, u64>,
    directories: BTreeMap<NodeId, u64>,
    controller_incarnations: BTreeMap<NodeId, u32>,
    retired_directories: BTreeSet<u64>,
    acls: BTreeSet<Acl>,
    version: u64,
}

/// Decodes a state saved in format 4 (bincode, after the format byte).
///
/// # Errors
/// Bytes that are not a format-4 state.
pub fn state_v4(body: &[u8]) -> Result<ClusterState, String> {
    let s: ClusterStateV4 = bincode::deserialize(body).map_err(|e| e.to_string())?;
    let topics = s
        .topics
        .into_iter()
        .map(|(name, t)| {
            let topic = Topic {
                id: t.id,
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                retention: t.retention,
                schema_validation: SchemaValidation::default(),
            };
            (name, topic)
        })
        .collect();
    Ok(ClusterState {
        cluster_id: s.cluster_id,
        nodes: s.nodes,
        topics,
        next_topic_id: s.next_topic_id,
        next_group_id: s.next_group_id,
        next_incarnation: s.next_incarnation,
        next_producer_id: s.next_producer_id,
        named_producers: s.named_producers,
        producer_names: s.producer_names,
        directories: s.directories,
        controller_incarnations: s.controller_incarnations,
        retired_directories: s.retired_directories,
        acls: s.acls,
        version: s.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_4_state_with_topics_decodes_with_validation_off() {
        let topic = TopicV4 {
            id: 7,
            partitions: Vec::new(),
            replication_factor: 3,
            retention: Retention { retention_ms: -1, retention_bytes: 0 },
        };
        let old = ClusterStateV4 {
            cluster_id: "c".into(),
            topics: BTreeMap::from([("orders".to_string(), topic)]),
            next_topic_id: 8,
            version: 42,
            ..ClusterStateV4::default()
        };
        let bytes = bincode::serialize(&old).expect("encode");
        let s = state_v4(&bytes).expect("decodes");
        let t = &s.topics["orders"];
        assert_eq!((t.id, t.replication_factor, t.retention.retention_ms), (7, 3, -1));
        assert_eq!(t.schema_validation, SchemaValidation::default());
        assert_eq!((s.cluster_id.as_str(), s.next_topic_id, s.version), ("c", 8, 42));
        assert!(state_v4(b"\x01").is_err());
    }
}
