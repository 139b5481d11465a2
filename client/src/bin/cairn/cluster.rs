//! `cairn cluster info`.

use cairn_client::Client;
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes, liveness, topics, partitions and their leaders.
    Info,
}

pub async fn run(client: &Client, cmd: ClusterCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Info => info(client, out).await,
    }
}

async fn info(client: &Client, out: &Output) -> anyhow::Result<()> {
    let d = client.describe_cluster().await?;
    if out.json {
        out.value(&json!({
            "cluster_id": d.cluster_id,
            "answering_node": d.answering_node_id,
            "controller_leader": d.controller_leader_id,
            "nodes": d.nodes.iter().map(|n| json!({
                "id": n.node_id, "address": n.address, "alive": n.alive, "leads": n.leader_count,
                "directory": format!("{:x}", n.directory_id), "awaiting_replacement": n.awaiting_replacement,
            })).collect::<Vec<_>>(),
            "topics": d.topics.iter().map(|t| json!({
                "name": t.name,
                "partitions": t.partitions.iter().map(|p| json!({
                    "partition": p.partition, "group_id": p.group_id, "leader": p.leader_node_id,
                    "replicas": p.replica_node_ids, "high_watermark": p.high_watermark, "log_start_offset": p.log_start_offset,
                    "reconfiguring": p.reconfiguring,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let controller =
        if d.controller_leader_id == 0 { "none".to_string() } else { format!("node {}", d.controller_leader_id) };
    out.line(&format!(
        "cluster {} (answered by node {}, controller leader: {controller})",
        d.cluster_id, d.answering_node_id
    ));
    out.line("NODE  ADDRESS                 STATUS  LEADS  DATA DIRECTORY");
    for n in &d.nodes {
        let directory = match (n.awaiting_replacement, n.directory_id) {
            (true, _) => "awaiting replacement".to_string(),
            (false, 0) => "-".to_string(),
            (false, d) => format!("{d:016x}"),
        };
        out.line(&format!(
            "{:<5} {:<23} {:<7} {:<6} {directory}",
            n.node_id,
            n.address,
            if n.alive { "up" } else { "down" },
            n.leader_count
        ));
    }
    if d.controller_reconfiguring {
        out.line("the controller group is taking in a replaced node (not a voter yet)");
    }
    if d.topics.iter().flat_map(|t| &t.partitions).any(|p| p.reconfiguring) {
        out.line("* a replaced replica is still catching up: not a voter yet");
    }
    for t in &d.topics {
        out.line(&format!("\ntopic {} ({} partitions)", t.name, t.partitions.len()));
        out.line("PARTITION  LEADER  REPLICAS   LOG START  HIGH WATERMARK");
        for p in &t.partitions {
            let leader = if p.leader_node_id == 0 { "-".to_string() } else { p.leader_node_id.to_string() };
            let mut replicas = p.replica_node_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            if p.reconfiguring {
                replicas.push('*'); // a replaced replica is still catching up (see the legend)
            }
            out.line(&format!(
                "{:<10} {:<7} {:<10} {:<10} {}",
                p.partition, leader, replicas, p.log_start_offset, p.high_watermark
            ));
        }
    }
    Ok(())
}
