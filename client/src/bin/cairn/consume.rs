//! `cairn consume TOPIC`: read one or all partitions from an offset, up to the end as of the
//! start (or `--count`), or forever with `--follow`.

use std::sync::Arc;

use cairn_client::{Client, FetchedRecord, OffsetSpec};
use clap::Args;
use tokio::sync::mpsc;

use crate::output::Output;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(short = 'p', long)]
    pub partition: Option<u32>,
    /// Where to start in each partition: earliest, latest or an offset number.
    #[arg(long, default_value = "earliest")]
    pub offset: String,
    /// Stop after this many records in total.
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Long-poll wait per fetch (ms).
    #[arg(long, default_value_t = 1000)]
    pub max_wait_ms: u32,
}

enum Start {
    Earliest,
    Latest,
    At(u64),
}

fn parse_start(s: &str) -> anyhow::Result<Start> {
    match s {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        n => n
            .parse()
            .map(Start::At)
            .map_err(|_| anyhow::anyhow!("--offset {n:?}: expected earliest, latest or a number")),
    }
}

pub async fn run(client: Arc<Client>, args: ConsumeArgs, out: &Output) -> anyhow::Result<()> {
    let start = parse_start(&args.offset)?;
    let n = client.partition_count(&args.topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= n => anyhow::bail!("topic {} has {n} partitions; there is no partition {p}", args.topic),
        Some(p) => vec![p],
        None => (0..n).collect(),
    };
    if args.count == Some(0) {
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<(u32, Vec<FetchedRecord>)>>(64);
    let topic = Arc::new(args.topic.clone());
    let mut tasks = Vec::new();
    for p in partitions {
        let (tx, topic, client) = (tx.clone(), topic.clone(), client.clone());
        let from = match start {
            Start::Earliest => client.list_offsets(&topic, p, OffsetSpec::Earliest).await?.offset,
            Start::Latest => client.list_offsets(&topic, p, OffsetSpec::Latest).await?.offset,
            Start::At(o) => o,
        };
        let end =
            if args.follow { None } else { Some(client.list_offsets(&topic, p, OffsetSpec::Latest).await?.offset) };
        if let Some(e) = end {
            anyhow::ensure!(from <= e, "partition {p}: offset {from} is past the end (high watermark {e})");
        }
        let wait = args.max_wait_ms;
        tasks.push(tokio::spawn(async move {
            let mut pos = from;
            while end.is_none_or(|e| pos < e) {
                match client.fetch(&topic, p, pos, 0, wait).await {
                    Ok(resp) => {
                        if let Some(last) = resp.records.last() {
                            pos = last.offset + 1;
                            let recs = match end {
                                Some(e) => resp.records.into_iter().filter(|r| r.offset < e).collect(),
                                None => resp.records,
                            };
                            if tx.send(Ok((p, recs))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("partition {p}: {e}"))).await;
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut printed = 0u64;
    while let Some(msg) = rx.recv().await {
        let (p, recs) = msg?;
        for r in &recs {
            out.record(&args.topic, p, r);
            printed += 1;
            if args.count.is_some_and(|c| printed >= c) {
                out.flush();
                for t in &tasks {
                    t.abort();
                }
                return Ok(());
            }
        }
    }
    out.flush();
    Ok(())
}
