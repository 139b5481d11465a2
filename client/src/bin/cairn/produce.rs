//! `cairn produce TOPIC`: one record per stdin line (or `--value`), through the idempotent
//! producer (batched, pipelined, retried without duplicates).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, Header, Producer, ProducerConfig, Record};
use clap::Args;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::output::Output;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Partition to write to (default: by key hash, or round-robin without a key).
    #[arg(short = 'p', long)]
    pub partition: Option<u32>,
    /// Record key (all records of one key go to one partition, in order).
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Produce this one value instead of reading stdin.
    #[arg(long)]
    pub value: Option<String>,
    /// Header KEY=VALUE (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Stable producer name: a newer producer with the same name fences this one.
    #[arg(long)]
    pub producer_name: Option<String>,
    /// How long to wait for more records before sending a partial batch (ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Vec<Header>> {
    raw.iter()
        .map(|h| {
            let (k, v) = h.split_once('=').ok_or_else(|| anyhow::anyhow!("header {h:?} is not KEY=VALUE"))?;
            Ok(Header { key: k.to_string(), value: v.as_bytes().to_vec().into() })
        })
        .collect()
}

/// Acks still being awaited before `produce` stops reading input (bounds memory).
const OUTSTANDING_MAX: usize = 50_000;

pub async fn run(client: Arc<Client>, args: ProduceArgs, out: &Output) -> anyhow::Result<()> {
    let partitions = client.partition_count(&args.topic).await?;
    if let Some(p) = args.partition {
        anyhow::ensure!(p < partitions, "topic {} has {partitions} partitions; there is no partition {p}", args.topic);
    }
    let headers = parse_headers(&args.headers)?;
    let cfg = ProducerConfig {
        name: args.producer_name.clone(),
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, cfg).await?;
    let make = |value: String| Record {
        key: args.key.clone().map(|k| k.into_bytes().into()).unwrap_or_default(),
        value: value.into_bytes().into(),
        headers: headers.clone(),
        timestamp_ms: 0,
    };
    let mut acks = FuturesOrdered::new();
    let mut ranges: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut total = 0usize;
    let mut note = |ack: cairn_client::RecordAck| {
        total += 1;
        if out.json {
            out.value(&json!({"topic": ack.topic, "partition": ack.partition, "offset": ack.offset}));
        }
        let r = ranges.entry(ack.partition).or_insert((ack.offset, ack.offset));
        r.0 = r.0.min(ack.offset);
        r.1 = r.1.max(ack.offset);
    };
    if let Some(v) = &args.value {
        acks.push_back(producer.send(&args.topic, args.partition, make(v.clone())).await?);
    } else {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            acks.push_back(producer.send(&args.topic, args.partition, make(line)).await?);
            while acks.len() >= OUTSTANDING_MAX {
                if let Some(ack) = acks.next().await {
                    note(ack?);
                }
            }
        }
    }
    while let Some(ack) = acks.next().await {
        note(ack?);
    }
    if !out.json {
        for (p, (lo, hi)) in &ranges {
            out.line(&format!("{}/{p}: offsets {lo}..={hi}", args.topic));
        }
        out.line(&format!("produced {total} record(s) to {}", args.topic));
    }
    Ok(())
}
