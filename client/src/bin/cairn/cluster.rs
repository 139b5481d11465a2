//! `cairn cluster info` and `cairn cluster health`.

use cairn_client::{Client, DescribeClusterResponse, ReplicaState};
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes, liveness, topics, partitions, their leaders and replica states.
    Info,
    /// Whether every node is up (with free space above its floor) and every partition has a
    /// leader and all replicas serving; lists what is not (stopped replicas with their reasons)
    /// and each node's free disk space. Exits 1 when the cluster is not healthy (for scripts).
    Health,
}

pub async fn run(client: &Client, cmd: ClusterCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Info => info(client, out).await,
        ClusterCommand::Health => health(client, out).await,
    }
}

/// What is wrong with the cluster, as lines (empty: healthy).
fn findings(d: &DescribeClusterResponse) -> (Vec<String>, Vec<String>, Vec<String>) {
    let down: Vec<String> =
        d.nodes.iter().filter(|n| !n.alive).map(|n| format!("node {} ({})", n.node_id, n.address)).collect();
    let mut leaderless = Vec::new();
    let mut replicas = Vec::new();
    for t in &d.topics {
        for p in &t.partitions {
            if p.leader_node_id == 0 {
                leaderless.push(format!("{}/{}", t.name, p.partition));
            }
            for r in p.replicas.iter().filter(|r| !matches!(r.state(), ReplicaState::InSync | ReplicaState::Lagging)) {
                let why = if r.reason.is_empty() { String::new() } else { format!(": {}", r.reason) };
                replicas.push(format!(
                    "{}/{} on node {}: {}{why}",
                    t.name,
                    p.partition,
                    r.node_id,
                    crate::replica::state_name(r)
                ));
            }
        }
    }
    (down, leaderless, replicas)
}

async fn health(client: &Client, out: &Output) -> anyhow::Result<()> {
    let d = client.describe_cluster().await?;
    let (down, leaderless, replicas) = findings(&d);
    let below_floor: Vec<String> = d
        .nodes
        .iter()
        .filter(|n| n.alive && n.disk_free_bytes > 0 && n.disk_free_bytes < n.disk_free_floor_bytes)
        .map(|n| {
            format!("node {}: {} free, floor {}", n.node_id, bytes(n.disk_free_bytes), bytes(n.disk_free_floor_bytes))
        })
        .collect();
    let healthy = down.is_empty()
        && leaderless.is_empty()
        && replicas.is_empty()
        && below_floor.is_empty()
        && d.controller_leader_id != 0;
    if out.json {
        let disk: Vec<_> = d
            .nodes
            .iter()
            .map(
                |n| json!({"node": n.node_id, "free_bytes": n.disk_free_bytes, "floor_bytes": n.disk_free_floor_bytes}),
            )
            .collect();
        out.value(&json!({
            "healthy": healthy, "controller_leader": d.controller_leader_id, "nodes_down": down,
            "leaderless_partitions": leaderless, "replicas_not_serving": replicas,
            "nodes_below_free_space_floor": below_floor, "disk": disk,
        }));
    } else {
        out.line(&format!("healthy: {}", if healthy { "yes" } else { "no" }));
        if d.controller_leader_id == 0 {
            out.line("controller: no leader");
        }
        for (title, items) in [
            ("nodes down", &down),
            ("partitions without a leader", &leaderless),
            ("replicas not serving", &replicas),
            ("nodes below their free-space floor (writes refused)", &below_floor),
        ] {
            out.line(&format!("{title}: {}", items.len()));
            for i in items {
                out.line(&format!("  {i}"));
            }
        }
        let disk: Vec<String> = d
            .nodes
            .iter()
            .map(|n| match n.disk_free_bytes {
                0 => format!("node {} unknown", n.node_id),
                free => format!("node {} {}", n.node_id, bytes(free)),
            })
            .collect();
        out.line(&format!("disk free: {}", disk.join(", ")));
    }
    if !healthy {
        anyhow::bail!("the cluster is not healthy");
    }
    Ok(())
}

/// Bytes for people: 1.5 GiB, 300 MiB, 12 KiB.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
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
                "id": n.node_id, "address": n.address, "peer_address": n.peer_address, "alive": n.alive, "leads": n.leader_count,
                "directory": format!("{:x}", n.directory_id), "awaiting_replacement": n.awaiting_replacement,
            })).collect::<Vec<_>>(),
            "topics": d.topics.iter().map(|t| json!({
                "name": t.name,
                "partitions": t.partitions.iter().map(|p| json!({
                    "partition": p.partition, "group_id": p.group_id, "leader": p.leader_node_id,
                    "replicas": p.replica_node_ids, "high_watermark": p.high_watermark, "log_start_offset": p.log_start_offset,
                    "reconfiguring": p.reconfiguring, "replica_states": crate::replica::json(p),
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
    out.line("NODE  ADDRESS                 PEER ADDRESS            STATUS  LEADS  DATA DIRECTORY");
    for n in &d.nodes {
        let directory = match (n.awaiting_replacement, n.directory_id) {
            (true, _) => "awaiting replacement".to_string(),
            (false, 0) => "-".to_string(),
            (false, d) => format!("{d:016x}"),
        };
        out.line(&format!(
            "{:<5} {:<23} {:<23} {:<7} {:<6} {directory}",
            n.node_id,
            n.address,
            n.peer_address,
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
        out.line("PARTITION  LEADER  LOG START  HIGH WATERMARK  REPLICAS (node:state)");
        for p in &t.partitions {
            let leader = if p.leader_node_id == 0 { "-".to_string() } else { p.leader_node_id.to_string() };
            let mut replicas = crate::replica::column(p);
            if p.reconfiguring {
                replicas.push('*'); // a replaced replica is still catching up (see the legend)
            }
            out.line(&format!(
                "{:<10} {:<7} {:<10} {:<15} {}",
                p.partition, leader, p.log_start_offset, p.high_watermark, replicas
            ));
        }
        for line in t.partitions.iter().flat_map(|p| crate::replica::problems(&t.name, p)) {
            out.line(&line);
        }
    }
    Ok(())
}
