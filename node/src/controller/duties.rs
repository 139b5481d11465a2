//! What the controller leader does on its own: register the bootstrap members once, register
//! each node's data directory (its own from its identity, the others' from their pings), and
//! create the internal `__consumer_offsets` and `__schemas` topics and the topics named in the configuration
//! (`--topic`) when they do not exist yet.

use std::sync::Arc;
use std::time::Duration;

use super::state::{MetaAnswer, MetaCommand, Retention};
use super::Controller;
use crate::config::Config;
use crate::liveness::Liveness;

/// Default replication factor: three replicas, or fewer on a smaller cluster.
pub fn default_replication(cluster_size: usize) -> u32 {
    cluster_size.clamp(1, 3) as u32
}

/// A fresh cluster id: 128 random bits, so clusters bootstrapped with the same members (the
/// same addresses on another machine, or after their directories were wiped) differ.
fn new_cluster_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Runs until aborted; acts only while this node leads the controller group. `directory_id` is
/// this node's data directory.
pub async fn run(controller: Arc<Controller>, config: Arc<Config>, liveness: Liveness, directory_id: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !controller.is_leader() {
            continue;
        }
        let state = controller.state();
        if state.nodes.is_empty() {
            let cmd = MetaCommand::Bootstrap { nodes: config.initial_cluster.clone(), cluster_id: new_cluster_id() };
            if let Err(e) = controller.propose(&cmd).await {
                tracing::warn!(error = %e, "registering the bootstrap members failed; will retry");
            }
            continue;
        }
        for node in state.nodes.keys().filter(|n| state.directories.get(n).copied().unwrap_or(0) == 0) {
            let seen = if *node == config.node_id { Some(directory_id) } else { liveness.directory_of(*node) };
            let Some(directory) = seen else { continue };
            match controller.propose(&MetaCommand::RegisterDirectory { node: *node, directory }).await {
                Ok(MetaAnswer::Done) => {
                    tracing::info!(node, directory = format_args!("{directory:#x}"), "registered a data directory")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(node, error = %e, "registering a data directory failed; will retry"),
            }
        }
        // The internal topics (consumer groups, the schema registry), then the configured ones.
        let internal = [
            crate::config::TopicSpec {
                name: crate::topic::OFFSETS_TOPIC.to_string(),
                partitions: config.groups.offsets_partitions,
            },
            crate::config::TopicSpec { name: crate::topic::SCHEMAS_TOPIC.to_string(), partitions: 1 },
        ];
        for t in internal.iter().chain(&config.topics).filter(|t| !state.topics.contains_key(&t.name)) {
            let rf = default_replication(state.nodes.len());
            let live = liveness.live_nodes(config.node_id, state.nodes.keys().copied());
            if (live.len() as u32) < rf {
                continue; // wait until enough nodes are up for the bootstrap topic
            }
            let cmd = MetaCommand::CreateTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: rf,
                retention: Retention::default(),
                live,
                limits: config.limits.partition_limits(),
            };
            match controller.propose(&cmd).await {
                Ok(MetaAnswer::Created { .. }) => {
                    tracing::info!(topic = %t.name, partitions = t.partitions, "created configured topic")
                }
                Ok(MetaAnswer::AlreadyExists) => {}
                Ok(other) => tracing::error!(topic = %t.name, answer = ?other, "configured topic rejected"),
                Err(e) => tracing::warn!(topic = %t.name, error = %e, "creating configured topic failed; will retry"),
            }
        }
    }
}
