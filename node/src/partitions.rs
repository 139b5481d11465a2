//! The partitions this node hosts. In this release the topic set is fixed at bootstrap: each
//! bootstrap topic's partitions get consecutive group ids from 1 (group 0 is reserved for the
//! controller), and every partition is a Raft group replicated on every bootstrap member.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_raft::group::{GroupConfig, PartitionGroup, RaftTimings};
use cairn_raft::ids::replica_id;
use cairn_raft::network::{GroupRegistry, PeerChannels};
use cairn_raft::storage::Db;
use cairn_raft::GroupId;

use crate::config::Config;
use crate::service::ServiceError;

/// Incarnation of every bootstrap replica.
const BOOTSTRAP_INCARNATION: u32 = 1;

/// Topic → its partitions' replicas on this node.
pub struct Partitions {
    topics: BTreeMap<String, Vec<Arc<PartitionGroup>>>,
}

impl Partitions {
    /// Starts (or restarts from the data directory) every bootstrap partition's replica and
    /// makes sure each group is initialised with the bootstrap members.
    ///
    /// # Errors
    /// A group that fails to start.
    pub async fn start(
        config: &Config,
        db: Arc<Db>,
        peers: PeerChannels,
        registry: GroupRegistry,
    ) -> anyhow::Result<Partitions> {
        let mut topics = BTreeMap::new();
        let mut next_group: GroupId = 1;
        for t in &config.topics {
            let mut parts = Vec::with_capacity(t.partitions as usize);
            for p in 0..t.partitions {
                let cfg = group_config(config, next_group);
                let group = PartitionGroup::start(cfg, db.clone(), peers.clone(), registry.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("topic {} partition {p} (group {next_group}): {e}", t.name))?;
                group.bootstrap(&config.initial_cluster, BOOTSTRAP_INCARNATION).await?;
                parts.push(Arc::new(group));
                next_group += 1;
                // Stagger start-up so many groups do not time out their first elections together.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            topics.insert(t.name.clone(), parts);
        }
        Ok(Partitions { topics })
    }

    /// The replica of `topic`/`partition` on this node.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC / UNKNOWN_PARTITION.
    pub fn get(&self, topic: &str, partition: u32) -> Result<&Arc<PartitionGroup>, ServiceError> {
        let parts = self.topics.get(topic).ok_or_else(|| ServiceError::UnknownTopic(topic.to_string()))?;
        parts.get(partition as usize).ok_or(ServiceError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            count: parts.len() as u32,
        })
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &Vec<Arc<PartitionGroup>>)> {
        self.topics.iter()
    }

    /// Stops every replica.
    pub async fn shutdown(self) {
        for (_, parts) in self.topics {
            for p in parts {
                match Arc::try_unwrap(p) {
                    Ok(g) => g.shutdown().await,
                    Err(_) => tracing::warn!("partition still in use at shutdown; dropping it"),
                }
            }
        }
    }
}

fn group_config(config: &Config, group: GroupId) -> GroupConfig {
    let mut g = GroupConfig::new(group, replica_id(config.node_id, BOOTSTRAP_INCARNATION));
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
    g
}
