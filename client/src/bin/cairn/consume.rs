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
    /// Consume as a member of this consumer group: the group's coordinator assigns partitions,
    /// reading starts at the committed offsets and progress is committed. Stops at `--count`,
    /// on Ctrl-C, or (without `--follow`) once nothing arrived for `--idle-ms`.
    #[arg(short = 'g', long, conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// With --group: a stable instance id (static membership: a restart within the session
    /// timeout gets its partitions back without a rebalance).
    #[arg(long, requires = "group")]
    pub instance_id: Option<String>,
    /// With --group: where a partition without a committed offset starts (earliest, latest,
    /// none).
    #[arg(long, default_value = "earliest", requires = "group")]
    pub offset_reset: String,
    /// With --group and no --follow: stop once nothing arrived for this long (ms).
    #[arg(long, default_value_t = 3000, requires = "group")]
    pub idle_ms: u64,
    /// With --group: session timeout (ms; 0 = the group default).
    #[arg(long, default_value_t = 0, requires = "group")]
    pub session_timeout_ms: u64,
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
    if let Some(group) = args.group.clone() {
        return run_group(client, &group, &args, out).await;
    }
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
        tasks.push(tokio::spawn(read_partition(
            client.clone(),
            topic.clone(),
            p,
            from,
            end,
            args.max_wait_ms,
            tx.clone(),
        )));
    }
    if args.follow && args.partition.is_none() {
        // Partitions added to the topic while following are read from their start.
        tasks.push(tokio::spawn(watch_new_partitions(client.clone(), topic.clone(), n, args.max_wait_ms, tx.clone())));
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

/// Reads partition `p` from `from` up to `end` (or forever), sending what it reads to `tx`.
async fn read_partition(
    client: Arc<Client>,
    topic: Arc<String>,
    p: u32,
    from: u64,
    end: Option<u64>,
    wait: u32,
    tx: mpsc::Sender<anyhow::Result<(u32, Vec<FetchedRecord>)>>,
) {
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
            // Retention (or DeleteRecords) removed what was next: go on from the log start, as
            // Kafka's consumers do with auto.offset.reset=earliest.
            Err(e) if e.offset_bounds().is_some_and(|(start, _)| pos < start) => {
                let start = e.offset_bounds().map_or(pos, |b| b.0);
                eprintln!("partition {p}: offsets {pos}..{start} were removed (retention); continuing at {start}");
                pos = start;
            }
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!("partition {p}: {e}"))).await;
                return;
            }
        }
    }
}

/// How often `consume --follow` looks for partitions added to its topic.
const NEW_PARTITIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// With `--follow` over every partition: starts reading each partition added to the topic
/// (`add-partitions`) from its log start, so nothing written to it is missed.
async fn watch_new_partitions(
    client: Arc<Client>,
    topic: Arc<String>,
    mut known: u32,
    wait: u32,
    tx: mpsc::Sender<anyhow::Result<(u32, Vec<FetchedRecord>)>>,
) {
    loop {
        tokio::time::sleep(NEW_PARTITIONS_EVERY).await;
        if tx.is_closed() {
            return;
        }
        if client.refresh_metadata().await.is_err() {
            continue;
        }
        let Ok(n) = client.partition_count(&topic).await else { continue };
        for p in known..n {
            eprintln!("partition {p} was added to {topic}; reading it from its start");
            // Ends with the process (the command returns once it has printed what was asked).
            tokio::spawn(read_partition(client.clone(), topic.clone(), p, 0, None, wait, tx.clone()));
        }
        known = known.max(n);
    }
}

/// `consume --group`: a group member that prints what it is given and commits as it goes.
async fn run_group(client: Arc<Client>, group: &str, args: &ConsumeArgs, out: &Output) -> anyhow::Result<()> {
    use cairn_client::consumer::{Consumer, ConsumerConfig, OffsetReset, Subscription};
    let reset = match args.offset_reset.as_str() {
        "earliest" => OffsetReset::Earliest,
        "latest" => OffsetReset::Latest,
        "none" => OffsetReset::None,
        other => anyhow::bail!("--offset-reset {other:?}: expected earliest, latest or none"),
    };
    client.partition_count(&args.topic).await?;
    let mut cfg = ConsumerConfig::new(group);
    cfg.instance_id = args.instance_id.clone();
    cfg.client_id = format!("cairn-cli-{}", std::process::id());
    cfg.auto_offset_reset = reset;
    cfg.auto_commit_interval = std::time::Duration::from_secs(1);
    cfg.session_timeout = std::time::Duration::from_millis(args.session_timeout_ms);
    let mut consumer = Consumer::subscribe(client, cfg, Subscription::Topics(vec![args.topic.clone()])).await?;
    let mut printed = 0u64;
    let mut idle_since = std::time::Instant::now();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let polled = tokio::select! {
            r = consumer.poll(std::time::Duration::from_millis(200)) => r,
            _ = &mut stop => break,
        };
        let records = match polled {
            Ok(r) => r,
            Err(e) => {
                let _ = consumer.close().await;
                return Err(e.into());
            }
        };
        if records.is_empty() {
            let assigned = !consumer.assignment().is_empty();
            if !args.follow && assigned && idle_since.elapsed().as_millis() as u64 >= args.idle_ms {
                break;
            }
            continue;
        }
        idle_since = std::time::Instant::now();
        let mut done = false;
        for r in &records {
            if done {
                // Not printed: the group must read it again, so the committed position stays
                // before it.
                let tp = cairn_client::consumer::TopicPartition {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    topic_id: r.topic_id,
                };
                if consumer.position(&tp).is_some_and(|p| p > r.offset) {
                    consumer.seek(&tp, r.offset)?;
                }
                continue;
            }
            let fetched = FetchedRecord {
                offset: r.offset,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
                timestamp_ms: r.timestamp_ms,
            };
            out.record(&r.topic, r.partition, &fetched);
            printed += 1;
            done = args.count.is_some_and(|c| printed >= c);
        }
        if done {
            break;
        }
    }
    out.flush();
    // Everything printed counts as processed: close commits exactly that, then leaves.
    consumer.close().await?;
    Ok(())
}
