//! `cairn produce TOPIC`: one record per stdin line (or `--value`), batched while lines keep
//! arriving.

use std::time::Duration;

use cairn_client::partitioner::partition_for_key;
use cairn_client::{Client, Header, Record};
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::output::Output;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Partition to write to (default: by key hash, or round-robin per batch without a key).
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
    /// Records per request at most.
    #[arg(long, default_value_t = 500)]
    pub batch_records: usize,
    /// How long to wait for more stdin lines before sending a partial batch (ms).
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

pub async fn run(client: &Client, args: ProduceArgs, out: &Output) -> anyhow::Result<()> {
    let partitions = client.partition_count(&args.topic).await?;
    if let Some(p) = args.partition {
        anyhow::ensure!(p < partitions, "topic {} has {partitions} partitions; there is no partition {p}", args.topic);
    }
    let headers = parse_headers(&args.headers)?;
    let make = |value: String| Record {
        key: args.key.clone().map(|k| k.into_bytes().into()).unwrap_or_default(),
        value: value.into_bytes().into(),
        headers: headers.clone(),
        timestamp_ms: 0,
    };
    let mut rr = 0u32;
    let mut choose = || match (args.partition, &args.key) {
        (Some(p), _) => p,
        (None, Some(k)) => partition_for_key(k.as_bytes(), partitions),
        (None, None) => {
            rr = rr.wrapping_add(1);
            (rr - 1) % partitions
        }
    };
    let mut total = 0usize;
    if let Some(v) = &args.value {
        total += send(client, &args.topic, choose(), vec![make(v.clone())], out).await?;
    } else {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let linger = Duration::from_millis(args.linger_ms);
        let mut eof = false;
        while !eof {
            let mut batch = Vec::new();
            match lines.next_line().await? {
                Some(l) => batch.push(make(l)),
                None => break,
            }
            while batch.len() < args.batch_records.max(1) {
                match tokio::time::timeout(linger, lines.next_line()).await {
                    Ok(Ok(Some(l))) => batch.push(make(l)),
                    Ok(Ok(None)) => {
                        eof = true;
                        break;
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => break,
                }
            }
            total += send(client, &args.topic, choose(), batch, out).await?;
        }
    }
    if !out.json {
        out.line(&format!("produced {total} record(s) to {}", args.topic));
    }
    Ok(())
}

async fn send(
    client: &Client,
    topic: &str,
    partition: u32,
    records: Vec<Record>,
    out: &Output,
) -> anyhow::Result<usize> {
    let n = records.len();
    let ack = client.produce(topic, partition, records).await?;
    if out.json {
        for i in 0..n as u64 {
            out.value(&json!({"topic": topic, "partition": partition, "offset": ack.base_offset + i}));
        }
    } else {
        let last = ack.base_offset + n as u64 - 1;
        out.line(&format!("{topic}/{partition}: offsets {}..={last}", ack.base_offset));
    }
    Ok(n)
}
