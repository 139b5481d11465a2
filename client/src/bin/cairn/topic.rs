//! `cairn topic create|list|describe|delete|alter|add-partitions|delete-records`.

use std::time::{Duration, Instant};

use cairn_client::{Client, ErrorCode, RetentionConfig, TopicSummary};
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic; waits until every partition has a leader (unless --no-wait).
    Create {
        name: String,
        /// Number of partitions.
        #[arg(short = 'p', long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition [default: 3, or the node count if smaller].
        #[arg(short = 'r', long, default_value_t = 0, hide_default_value = true)]
        replicas: u32,
        /// Remove records once they are all older than this (ms); -1 = keep forever; default:
        /// the cluster's (retention_ms of the node config's retention section, 7 days unless set).
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Keep about this many record bytes per partition, removing the oldest segments
        /// beyond it; -1 = unlimited; default: the cluster's (unlimited unless configured).
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
        /// Return as soon as the topic exists in the metadata.
        #[arg(long)]
        no_wait: bool,
        /// A topic of that name already existing is not an error (its settings are left as
        /// they are, whatever was asked).
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Also internal topics (`__consumer_offsets`).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions of a topic: leader, replicas, log start, high watermark.
    Describe { name: String },
    /// Delete a topic and all of its data on every node.
    Delete { name: String },
    /// Read every partition from every replica and check they hold the same records up to the
    /// leader's high watermark (exit 1 when one does not).
    Verify { name: String },
    /// Change a topic's settings; applied by the partition leaders within
    /// check_interval_ms of the node config's retention section, no restart.
    Alter {
        name: String,
        /// Remove records once they are all older than this (ms); -1 = keep forever; 0 = back
        /// to the cluster default.
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Keep about this many record bytes per partition; -1 = unlimited; 0 = back to the
        /// cluster default.
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
        /// Broker-side schema validation (docs/schemas.md): `key`, `value`, `key,value` or
        /// `none`. Produce then refuses records whose key / value does not start with the id of
        /// a schema registered under `<topic>-key` / `<topic>-value`.
        #[arg(long, value_parser = parse_validation)]
        schema_validation: Option<(bool, bool)>,
    },
    /// Grow a topic to more partitions (never fewer); waits until every partition has a leader
    /// (unless --no-wait). Producers and consumers pick the new partitions up without a
    /// restart, at their next metadata refresh.
    AddPartitions {
        name: String,
        /// The new partition count (not the number to add).
        #[arg(long)]
        to: u32,
        /// Return as soon as the partitions exist in the metadata.
        #[arg(long)]
        no_wait: bool,
    },
    /// Make every record of a partition below an offset unreadable, for good (Kafka's
    /// DeleteRecords); the bytes go at the next segment boundary below it.
    DeleteRecords {
        name: String,
        #[arg(short = 'p', long)]
        partition: u32,
        /// The new log start; omit with --all.
        #[arg(long, required_unless_present = "all")]
        before: Option<u64>,
        /// Everything committed so far (the high watermark).
        #[arg(long, conflicts_with = "before")]
        all: bool,
    },
}

/// `key`, `value`, `key,value` (either order) or `none`: (key, value).
fn parse_validation(s: &str) -> Result<(bool, bool), String> {
    let mut on = (false, false);
    for part in s.split(',').map(str::trim) {
        match part {
            "key" => on.0 = true,
            "value" => on.1 = true,
            "none" if s.trim() == "none" => {}
            _ => return Err(format!("{part:?}: expected key, value, key,value or none")),
        }
    }
    Ok(on)
}

/// `retention_ms=604800000 (default)  retention_bytes=4096 (topic)`, or the stored values for
/// a server that does not report effective ones.
fn configs_line(t: &TopicSummary) -> String {
    if t.configs.is_empty() {
        let r = t.retention.unwrap_or_default();
        return format!("retention_ms={} retention_bytes={}", r.retention_ms, r.retention_bytes);
    }
    let show = |v: i64| if v == -1 { "-1 (no limit)".to_string() } else { v.to_string() };
    t.configs.iter().map(|c| format!("{}={} ({})", c.name, show(c.value), c.source)).collect::<Vec<_>>().join("  ")
}

fn summary_json(t: &TopicSummary) -> serde_json::Value {
    let r = t.retention.unwrap_or_default();
    let configs: serde_json::Map<String, serde_json::Value> =
        t.configs.iter().map(|c| (c.name.clone(), json!({"value": c.value, "source": c.source}))).collect();
    json!({"name": t.name, "topic_id": t.topic_id, "partitions": t.partitions, "replication_factor": t.replication_factor,
           "retention_ms": r.retention_ms, "retention_bytes": r.retention_bytes, "configs": configs})
}

pub async fn run(client: &Client, cmd: TopicCommand, out: &Output, timeout: Duration) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Verify { name } => crate::verify::run(client, &name, out).await?,
        TopicCommand::Create { name, partitions, replicas, retention_ms, retention_bytes, no_wait, if_not_exists } => {
            let started = Instant::now();
            let retention = Some(RetentionConfig {
                retention_ms: retention_ms.unwrap_or(0),
                retention_bytes: retention_bytes.unwrap_or(0),
            });
            let t = match client.create_topic(&name, partitions, replicas, retention).await {
                Err(e) if if_not_exists && e.code() == Some(ErrorCode::TopicAlreadyExists) => {
                    let t = client.describe_topic(&name).await?.topic.unwrap_or_default();
                    if out.json {
                        let mut v = summary_json(&t);
                        v["created"] = json!(false);
                        out.value(&v);
                    } else {
                        out.line(&format!(
                            "topic {name} already exists: {} partitions, replication factor {} (unchanged)",
                            t.partitions, t.replication_factor
                        ));
                    }
                    return Ok(());
                }
                r => r?,
            };
            if !no_wait {
                wait_for_leaders(client, &name, started + timeout.max(Duration::from_secs(60))).await?;
            }
            if out.json {
                let mut v = summary_json(&t);
                v["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
                out.value(&v);
            } else {
                let ready = if no_wait { "created" } else { "created, every partition has a leader" };
                out.line(&format!(
                    "topic {} {ready}: {} partitions, replication factor {} ({:.2} s)",
                    t.name,
                    t.partitions,
                    t.replication_factor,
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        TopicCommand::List { internal } => {
            let topics = client.list_topics_with(internal).await?;
            if out.json {
                for t in &topics {
                    out.value(&summary_json(t));
                }
            } else {
                out.line("TOPIC                            PARTITIONS  REPLICATION");
                for t in &topics {
                    out.line(&format!("{:<32} {:<11} {}", t.name, t.partitions, t.replication_factor));
                }
            }
        }
        TopicCommand::Describe { name } => {
            let d = client.describe_topic(&name).await?;
            let t = d.topic.unwrap_or_default();
            if out.json {
                let mut v = summary_json(&t);
                v["partitions_detail"] = json!(d.partitions.iter().map(|p| json!({
                    "partition": p.partition, "group_id": p.group_id, "leader": p.leader_node_id,
                    "replicas": p.replica_node_ids, "high_watermark": p.high_watermark, "log_start_offset": p.log_start_offset,
                    "replica_states": crate::replica::json(p),
                })).collect::<Vec<_>>());
                out.value(&v);
            } else {
                out.line(&format!(
                    "topic {} (id {}): {} partitions, replication factor {}",
                    t.name, t.topic_id, t.partitions, t.replication_factor
                ));
                out.line(&format!("config: {}", configs_line(&t)));
                out.line("PARTITION  LEADER  LOG START  HIGH WATERMARK  REPLICAS (node:state)");
                for p in &d.partitions {
                    let leader = if p.leader_node_id == 0 { "-".to_string() } else { p.leader_node_id.to_string() };
                    out.line(&format!(
                        "{:<10} {:<7} {:<10} {:<15} {}",
                        p.partition,
                        leader,
                        p.log_start_offset,
                        p.high_watermark,
                        crate::replica::column(p)
                    ));
                }
                for line in d.partitions.iter().flat_map(|p| crate::replica::problems(&t.name, p)) {
                    out.line(&line);
                }
            }
        }
        TopicCommand::Alter { name, retention_ms, retention_bytes, schema_validation } => {
            anyhow::ensure!(
                retention_ms.is_some() || retention_bytes.is_some() || schema_validation.is_some(),
                "nothing to change: give --retention-ms, --retention-bytes and/or --schema-validation"
            );
            let mut t = None;
            if retention_ms.is_some() || retention_bytes.is_some() {
                t = Some(client.alter_topic_config(&name, retention_ms, retention_bytes).await?);
            }
            if let Some((key, value)) = schema_validation {
                t = Some(client.set_schema_validation(&name, Some(key), Some(value)).await?);
            }
            let t = t.ok_or_else(|| anyhow::anyhow!("nothing was changed"))?;
            if out.json {
                out.value(&summary_json(&t));
            } else {
                out.line(&format!("topic {name} altered; config: {}", configs_line(&t)));
            }
        }
        TopicCommand::AddPartitions { name, to, no_wait } => {
            let started = Instant::now();
            let before = client.describe_topic(&name).await?.topic.map_or(0, |t| t.partitions);
            let t = client.create_partitions(&name, to).await?;
            if !no_wait {
                wait_for_leaders(client, &name, started + timeout.max(Duration::from_secs(60))).await?;
            }
            if t.partitions > before {
                // Kafka's tools warn alike: the key → partition mapping depends on the count.
                eprintln!(
                    "warning: keyed records of {name} now hash over {} partitions: a key's new records may go                      to another partition than its earlier ones (order per key holds within a partition only)",
                    t.partitions
                );
            }
            if out.json {
                let mut v = summary_json(&t);
                v["previous_partitions"] = json!(before);
                out.value(&v);
            } else if t.partitions == before {
                out.line(&format!("topic {name} already has {before} partitions; nothing changed"));
            } else {
                out.line(&format!(
                    "topic {name}: {before} → {} partitions{} ({:.2} s)",
                    t.partitions,
                    if no_wait { "" } else { ", every partition has a leader" },
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        TopicCommand::DeleteRecords { name, partition, before, all: _ } => {
            let log_start = client.delete_records(&name, partition, before).await?;
            if out.json {
                out.value(&json!({"topic": name, "partition": partition, "log_start_offset": log_start}));
            } else {
                out.line(&format!(
                    "{name} partition {partition}: records below offset {log_start} deleted (log start {log_start})"
                ));
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            if out.json {
                out.value(&json!({"deleted": name}));
            } else {
                out.line(&format!("topic {name} deleted"));
            }
        }
    }
    Ok(())
}

async fn wait_for_leaders(client: &Client, name: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        // The node asked may not have applied the new topic yet: not there yet, not an error.
        let d = match client.describe_topic(name).await {
            Ok(d) => d,
            Err(e) if e.code() == Some(cairn_client::ErrorCode::UnknownTopic) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let missing = d.partitions.iter().filter(|p| p.leader_node_id == 0).count();
        if missing == 0 && !d.partitions.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{missing} partition(s) of {name} still have no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
