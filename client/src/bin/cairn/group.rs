//! `cairn group list | describe | reset-offsets | delete`: consumer groups, like
//! `kafka-consumer-groups`.

use std::collections::BTreeMap;

use cairn_client::{Client, OffsetCommitPartition, OffsetSpec};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Every consumer group, with its state and member count.
    List,
    /// A group's members and, per partition, committed offset, log end, lag and owner.
    Describe { group: String },
    /// Sets a group's committed offsets (only while it has no members).
    ResetOffsets(ResetArgs),
    /// Deletes a group and its committed offsets (only while it has no members).
    Delete { group: String },
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    pub group: String,
    #[arg(long)]
    pub topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(short = 'p', long)]
    pub partition: Option<u32>,
    #[arg(long, conflicts_with_all = ["to_latest", "to_offset", "to_timestamp", "shift_by"])]
    pub to_earliest: bool,
    #[arg(long, conflicts_with_all = ["to_offset", "to_timestamp", "shift_by"])]
    pub to_latest: bool,
    #[arg(long, conflicts_with_all = ["to_timestamp", "shift_by"])]
    pub to_offset: Option<u64>,
    /// The first offset at or after this time (ms since the Unix epoch).
    #[arg(long, conflicts_with = "shift_by")]
    pub to_timestamp: Option<i64>,
    /// Moves the committed offset by N (negative: back), kept within the log.
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Show the new offsets without setting them.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(client: &Client, cmd: GroupCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List => list(client, out).await,
        GroupCommand::Describe { group } => describe(client, &group, out).await,
        GroupCommand::ResetOffsets(args) => reset(client, args, out).await,
        GroupCommand::Delete { group } => {
            client.delete_group(&group).await?;
            if out.json {
                out.value(&json!({"deleted": group}));
            } else {
                out.line(&format!("deleted group {group}"));
            }
            Ok(())
        }
    }
}

async fn list(client: &Client, out: &Output) -> anyhow::Result<()> {
    let r = client.list_groups().await?;
    if out.json {
        for g in &r.groups {
            out.value(&json!({"group": g.group_id, "state": g.state, "members": g.members, "coordinator": g.coordinator_node_id}));
        }
    } else {
        out.line(&format!("{:<32} {:<12} {:>7} {:>11}", "GROUP", "STATE", "MEMBERS", "COORDINATOR"));
        for g in &r.groups {
            out.line(&format!("{:<32} {:<12} {:>7} {:>11}", g.group_id, g.state, g.members, g.coordinator_node_id));
        }
    }
    if !r.unreachable_node_ids.is_empty() {
        eprintln!("note: nodes {:?} did not answer; their groups are missing", r.unreachable_node_ids);
    }
    Ok(())
}

async fn describe(client: &Client, group: &str, out: &Output) -> anyhow::Result<()> {
    let d = client.describe_group(group).await?;
    if d.state == "DEAD" {
        anyhow::bail!("there is no consumer group {group:?} [GROUP_NOT_FOUND]");
    }
    if out.json {
        let members: Vec<_> = d
            .members
            .iter()
            .map(|m| {
                json!({"member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                       "host": m.client_host, "epoch": m.member_epoch,
                       "assignment": m.assignment.iter().map(|t| json!({"topic": t.topic, "partitions": t.partitions})).collect::<Vec<_>>()})
            })
            .collect();
        let partitions: Vec<_> = d
            .partitions
            .iter()
            .map(|p| {
                json!({"topic": p.topic, "partition": p.partition,
                       "committed": p.has_committed.then_some(p.committed_offset),
                       "log_end": p.log_end_known.then_some(p.log_end_offset),
                       "lag": p.log_end_known.then_some(p.lag), "owner": p.owner_member_id, "client_id": p.owner_client_id})
            })
            .collect();
        out.value(&json!({"group": d.group_id, "state": d.state, "epoch": d.group_epoch, "assignor": d.assignor,
                          "coordinator": d.coordinator_node_id, "members": members, "partitions": partitions}));
        return Ok(());
    }
    out.line(&format!(
        "group {} ({}), epoch {}, assignor {}, coordinator node {}, {} member(s)",
        d.group_id,
        d.state,
        d.group_epoch,
        d.assignor,
        d.coordinator_node_id,
        d.members.len()
    ));
    out.line(&format!(
        "{:<24} {:>9} {:>12} {:>12} {:>10}  {:<24} {}",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "OWNER", "CLIENT-ID"
    ));
    let dash = || "-".to_string();
    for p in &d.partitions {
        out.line(&format!(
            "{:<24} {:>9} {:>12} {:>12} {:>10}  {:<24} {}",
            p.topic,
            p.partition,
            if p.has_committed { p.committed_offset.to_string() } else { dash() },
            if p.log_end_known { p.log_end_offset.to_string() } else { dash() },
            if p.log_end_known { p.lag.to_string() } else { dash() },
            if p.owner_member_id.is_empty() { dash() } else { p.owner_member_id.clone() },
            p.owner_client_id
        ));
    }
    for m in &d.members {
        let pending: usize = m.pending_revocation.iter().map(|t| t.partitions.len()).sum();
        out.line(&format!(
            "member {} (client {}, host {}{}) epoch {}: {} partition(s){}",
            m.member_id,
            m.client_id,
            m.client_host,
            if m.instance_id.is_empty() { String::new() } else { format!(", instance {}", m.instance_id) },
            m.member_epoch,
            m.assignment.iter().map(|t| t.partitions.len()).sum::<usize>(),
            if pending > 0 { format!(", giving up {pending}") } else { String::new() }
        ));
    }
    Ok(())
}

async fn reset(client: &Client, a: ResetArgs, out: &Output) -> anyhow::Result<()> {
    let count = client.partition_count(&a.topic).await?;
    let partitions: Vec<u32> = match a.partition {
        Some(p) if p >= count => {
            anyhow::bail!("topic {} has {count} partitions; there is no partition {p} [UNKNOWN_PARTITION]", a.topic)
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let committed: BTreeMap<u32, u64> = client
        .committed_offsets(&a.group, std::slice::from_ref(&a.topic))
        .await?
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    let mut plan = Vec::new();
    for p in partitions {
        let start = client.list_offsets(&a.topic, p, OffsetSpec::Earliest).await?;
        let (lo, hi) = (start.log_start_offset, start.high_watermark);
        let to = if a.to_earliest {
            lo
        } else if a.to_latest {
            hi
        } else if let Some(o) = a.to_offset {
            anyhow::ensure!(
                (lo..=hi).contains(&o),
                "offset {o} is outside partition {p}'s log [{lo}, {hi}] [OFFSET_OUT_OF_RANGE]"
            );
            o
        } else if let Some(ts) = a.to_timestamp {
            client.list_offsets(&a.topic, p, OffsetSpec::Timestamp(ts)).await?.offset
        } else if let Some(d) = a.shift_by {
            let from = committed.get(&p).copied().unwrap_or(lo) as i64;
            (from + d).clamp(lo as i64, hi as i64) as u64
        } else {
            anyhow::bail!("say where to: --to-earliest, --to-latest, --to-offset N, --to-timestamp MS or --shift-by N");
        };
        plan.push((p, committed.get(&p).copied(), to));
    }
    for (p, from, to) in &plan {
        if out.json {
            out.value(&json!({"group": a.group, "topic": a.topic, "partition": p, "from": from, "to": to, "dry_run": a.dry_run}));
        } else {
            let from = from.map_or("-".to_string(), |f| f.to_string());
            out.line(&format!("{}/{p}: {from} -> {to}", a.topic));
        }
    }
    if a.dry_run {
        if !out.json {
            out.line("(dry run: nothing changed)");
        }
        return Ok(());
    }
    let offsets = plan
        .iter()
        .map(|(p, _, to)| OffsetCommitPartition {
            topic: a.topic.clone(),
            partition: *p,
            offset: *to,
            ..Default::default()
        })
        .collect();
    client.alter_offsets(&a.group, offsets).await?;
    Ok(())
}
