//! `cairn dlq replay TOPIC.dlq`: sends dead letters back to the topic they came from (once the
//! consumer that failed on them is fixed), as a consumer group so a second replay continues
//! where the first stopped instead of sending everything again.
//!
//! ```text
//!  join group (default cairn-dlq-replay) ─► poll until the end offsets seen at the start
//!   └► each dead letter: strip dlq.* headers, add dlq.replayed_from ─► produce (same key)
//!   └► all acknowledged ─► commit ─► leave
//! ```
//! A crash between the produce and the commit replays those records again on the next run (at
//! least once, like any consumer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::consumer::{Consumer, ConsumerConfig, Subscription};
use cairn_client::{dlq, Client, Header, OffsetSpec, Producer, ProducerConfig, Record};
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Send the dead letters of TOPIC.dlq back to TOPIC (or --to).
    Replay {
        /// The dead-letter topic (`<topic>.dlq`).
        dlq: String,
        /// Where to send them (default: the topic the name says).
        #[arg(long)]
        to: Option<String>,
        /// The consumer group that remembers how far replays got.
        #[arg(long, default_value = "cairn-dlq-replay")]
        group: String,
        /// List what would be replayed; send nothing, commit nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(client: Arc<Client>, cmd: DlqCommand, out: &Output) -> anyhow::Result<()> {
    let DlqCommand::Replay { dlq: dlq_topic, to, group, dry_run } = cmd;
    let target = match to.as_deref().or_else(|| dlq::original_topic(&dlq_topic)) {
        Some(t) => t.to_string(),
        None => anyhow::bail!("{dlq_topic} does not end in .dlq: name the topic to replay to with --to"),
    };
    client.partition_count(&target).await.map_err(|e| anyhow::anyhow!("cannot replay to {target}: {e}"))?;
    let partitions = client.partition_count(&dlq_topic).await?;
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        ends.insert(p, client.list_offsets(&dlq_topic, p, OffsetSpec::Latest).await?.offset);
    }
    let cfg = ConsumerConfig { auto_commit: false, ..ConsumerConfig::new(group.clone()) };
    let mut consumer = Consumer::subscribe(client.clone(), cfg, Subscription::Topics(vec![dlq_topic.clone()])).await?;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
    let mut pending = Vec::new();
    let mut done: BTreeMap<u32, u64> = BTreeMap::new();
    let mut listed = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let caught_up = consumer.assignment().len() == partitions as usize
            && ends.iter().all(|(p, end)| {
                let owned = consumer.assignment().into_iter().find(|tp| tp.partition == *p);
                owned.and_then(|tp| consumer.position(&tp)).is_some_and(|pos| pos >= *end)
            });
        if caught_up {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "could not read {dlq_topic} to its end within 60 s");
        for r in consumer.poll(Duration::from_millis(500)).await? {
            if r.offset >= ends.get(&r.partition).copied().unwrap_or(0) {
                continue; // arrived after the replay started: the next replay takes it
            }
            let from = format!("{dlq_topic}/{}/{}", r.partition, r.offset);
            let reason = r.headers.iter().find(|h| h.key == dlq::HEADER_REASON);
            let reason = reason.map(|h| String::from_utf8_lossy(&h.value).into_owned()).unwrap_or_default();
            if out.json {
                out.value(&json!({"dead_letter": from, "reason": reason, "to": target, "dry_run": dry_run}));
            } else {
                out.line(&format!("{from} -> {target}{}  ({reason})", if dry_run { " [dry run]" } else { "" }));
            }
            done.insert(r.partition, r.offset + 1);
            listed += 1;
            if dry_run {
                continue;
            }
            let mut headers: Vec<Header> = r.headers.into_iter().filter(|h| !dlq::is_dlq_header(&h.key)).collect();
            headers.push(Header { key: dlq::HEADER_REPLAYED_FROM.into(), value: from.into_bytes().into() });
            let record = Record { key: r.key, value: r.value, headers, timestamp_ms: 0 };
            pending.push(producer.send(&target, None, record).await?);
        }
    }
    for d in pending {
        d.await.map_err(|e| anyhow::anyhow!("a replayed record was not acknowledged (nothing committed): {e}"))?;
    }
    if !dry_run && !done.is_empty() {
        let offsets: Vec<_> = consumer
            .assignment()
            .into_iter()
            .filter_map(|tp| done.get(&tp.partition).map(|n| (tp.clone(), *n)))
            .collect();
        consumer.commit_offsets(&offsets).await?;
    }
    consumer.close().await?;
    if !out.json {
        let what = if dry_run { "would be replayed" } else { "replayed" };
        out.line(&format!("{listed} dead letter(s) {what} to {target}"));
    }
    Ok(())
}
