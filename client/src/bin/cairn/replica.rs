//! Replica states as `topic describe`, `cluster info` and `cluster health` show them, and
//! `cairn replica repair`.

use cairn_client::{Client, PartitionInfo, ReplicaState, ReplicaStatus};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum ReplicaCommand {
    /// Rebuilds one partition replica from the others: its node gets a new, empty replica that
    /// catches up as a learner and then takes over the old one's vote. The controller does this
    /// by itself for a replica that stopped on damaged data; this is for operators who want it
    /// now (a replica they distrust, one stopped for another reason).
    Repair {
        topic: String,
        /// Partition index.
        #[arg(short, long)]
        partition: u32,
        /// Node whose replica is rebuilt.
        #[arg(long = "node")]
        node_id: u64,
    },
}

pub async fn run(client: &Client, cmd: ReplicaCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ReplicaCommand::Repair { topic, partition, node_id } => {
            let replica = client.repair_replica(&topic, partition, node_id).await?;
            if out.json {
                out.value(&json!({"topic": topic, "partition": partition, "node": node_id, "replica_id": replica}));
            } else {
                out.line(&format!(
                    "{topic}/{partition} on node {node_id}: rebuilding as replica {replica:#x}; \
                     `cairn topic describe {topic}` shows it catching up, then in sync"
                ));
            }
            Ok(())
        }
    }
}

pub fn state_name(s: &ReplicaStatus) -> &'static str {
    match s.state() {
        ReplicaState::InSync => "in-sync",
        ReplicaState::Lagging => "lagging",
        ReplicaState::Stopped => "STOPPED",
        ReplicaState::Offline => "offline",
        ReplicaState::CatchingUp => "catching-up",
        ReplicaState::Unspecified => "unknown",
    }
}

/// `1:in-sync,2:lagging(12),3:STOPPED` for a table column.
pub fn column(p: &PartitionInfo) -> String {
    if p.replicas.is_empty() {
        return "-".into();
    }
    p.replicas
        .iter()
        .map(|r| match r.state() {
            ReplicaState::Lagging | ReplicaState::CatchingUp if r.lag_entries > 0 => {
                format!("{}:{}({})", r.node_id, state_name(r), r.lag_entries)
            }
            _ => format!("{}:{}", r.node_id, state_name(r)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Lines explaining the stopped and offline replicas of `p` (why), for below a table.
pub fn problems(topic: &str, p: &PartitionInfo) -> Vec<String> {
    p.replicas
        .iter()
        .filter(|r| matches!(r.state(), ReplicaState::Stopped | ReplicaState::Offline))
        .map(|r| format!("  {topic}/{} on node {}: {} ({})", p.partition, r.node_id, state_name(r), r.reason))
        .collect()
}

pub fn json(p: &PartitionInfo) -> Value {
    json!(p
        .replicas
        .iter()
        .map(|r| json!({
            "node": r.node_id, "state": state_name(r).to_lowercase(), "reason": r.reason,
            "lag_entries": r.lag_entries, "high_watermark": r.high_watermark,
        }))
        .collect::<Vec<_>>())
}
