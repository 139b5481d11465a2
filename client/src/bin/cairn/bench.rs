//! `cairn bench produce|consume|e2e`: load generators with live progress, an HdrHistogram
//! latency table and JSON output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::bench::{
    ensure_topic, print_table, read_topic, run_load, CairnProduce, LoadResult, LoadSpec, SendFuture, Target,
};
use cairn_client::{Client, OffsetSpec, Producer, ProducerConfig, Record};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce with a window of records in flight; latency = send to durable acknowledgement.
    Produce(Load),
    /// Read a topic from the start as fast as possible (it is filled first if too small).
    Consume(Load),
    /// Produce and consume at once; latency = send to seen by a consumer.
    E2e(Load),
    /// Consumer groups: rebalance, failover, commit rate, group read throughput.
    Group {
        #[command(subcommand)]
        command: crate::bench_group::GroupBench,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Load {
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Partitions of the topic (created if missing).
    #[arg(short = 'p', long, default_value_t = 6)]
    partitions: u32,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records in flight (1 measures latency; hundreds measure throughput).
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Independent producers (each with its own producer id) sharing the window.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Producer linger (ms) and batch size (records). With linger 0 a batch leaves as soon as
    /// the partition has a free in-flight slot, so records still batch under load.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

impl Load {
    fn spec(&self) -> LoadSpec {
        LoadSpec {
            record_bytes: self.record_size,
            window: self.window,
            tasks: self.producers,
            warmup: Duration::from_secs(self.warmup),
            duration: Duration::from_secs(self.duration),
        }
    }

    async fn producers(&self, client: &Arc<Client>) -> anyhow::Result<Vec<Arc<Producer>>> {
        ensure_topic(client, &self.topic, self.partitions).await?;
        let mut out = Vec::new();
        for _ in 0..self.producers.max(1) {
            let cfg = ProducerConfig {
                linger: Duration::from_millis(self.linger_ms),
                batch_records_max: self.batch_records,
                queue_records_max: self.window.max(1) * 2,
                ..ProducerConfig::default()
            };
            out.push(Arc::new(Producer::new(client.clone(), cfg).await?));
        }
        Ok(out)
    }
}

/// Spreads sends over several producers.
struct Spread {
    targets: Vec<CairnProduce>,
    next: AtomicU64,
}

impl Target for Spread {
    fn send(&self, payload: bytes::Bytes) -> SendFuture {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.targets.len();
        self.targets[i].send(payload)
    }

    fn retry_reasons(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = Vec::new();
        for (e, n) in self.targets.iter().flat_map(|t| t.retry_reasons()) {
            match all.iter_mut().find(|(t, _)| *t == e) {
                Some(c) => c.1 += n,
                None => all.push((e, n)),
            }
        }
        all
    }
}

fn emit(title: &str, name: &str, r: &LoadResult, json_out: &Option<std::path::PathBuf>) -> anyhow::Result<()> {
    print_table(title, &[(name.to_string(), r.clone())]);
    if let Some(p) = json_out {
        std::fs::write(p, serde_json::to_vec_pretty(r)?)?;
    }
    Ok(())
}

pub async fn run(client: Arc<Client>, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(l) => {
            let producers = l.producers(&client).await?;
            let targets = producers.into_iter().map(|p| CairnProduce { producer: p, topic: l.topic.clone() }).collect();
            let target = Arc::new(Spread { targets, next: AtomicU64::new(0) });
            let r = run_load(target, &l.spec(), true).await;
            emit("cairn bench produce (latency: send to durable ack)", "produce", &r, &l.json_out)
        }
        BenchCommand::Consume(l) => consume(client, l).await,
        BenchCommand::E2e(l) => e2e(client, l).await,
        BenchCommand::Group { command } => crate::bench_group::run(client, command).await,
    }
}

async fn consume(client: Arc<Client>, l: Load) -> anyhow::Result<()> {
    ensure_topic(&client, &l.topic, l.partitions).await?;
    let parts = client.partition_count(&l.topic).await?;
    let mut total = 0u64;
    for p in 0..parts {
        total += client.list_offsets(&l.topic, p, OffsetSpec::Latest).await?.offset;
    }
    // Enough data to read for the whole duration at a generous rate.
    let want = (200_000u64 * l.duration).max(100_000);
    if total < want {
        eprintln!("filling {} with {} records of {} bytes first", l.topic, want - total, l.record_size);
        let producers = l.producers(&client).await?;
        let payload = bytes::Bytes::from(vec![b'x'; l.record_size]);
        let mut acks = futures::stream::FuturesUnordered::new();
        for i in 0..(want - total) {
            let p = &producers[i as usize % producers.len()];
            acks.push(p.send(&l.topic, None, Record { value: payload.clone(), ..Record::default() }).await?);
            while acks.len() >= 4096 {
                use futures::StreamExt;
                if let Some(a) = acks.next().await {
                    a?;
                }
            }
        }
        use futures::StreamExt;
        while let Some(a) = acks.next().await {
            a?;
        }
    }
    let r = read_topic(client, &l.topic, &l.spec()).await?;
    emit("cairn bench consume (latency: one fetch of up to 4 MiB)", "consume", &r, &l.json_out)
}

/// Produce and consume at once: each record carries its send time; a consumer per partition
/// tails from the end and records send→seen latency.
async fn e2e(client: Arc<Client>, l: Load) -> anyhow::Result<()> {
    let producers = l.producers(&client).await?;
    let parts = client.partition_count(&l.topic).await?;
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let hist =
        Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("invariant: valid bounds")));
    let seen = Arc::new(AtomicU64::new(0));
    let measure_from = Duration::from_secs(l.warmup);
    let mut consumers = Vec::new();
    for p in 0..parts {
        let (client, topic, stop, hist, seen) =
            (client.clone(), l.topic.clone(), stop.clone(), hist.clone(), seen.clone());
        let start = client.list_offsets(&topic, p, OffsetSpec::Latest).await?.offset;
        consumers.push(tokio::spawn(async move {
            let mut pos = start;
            while !stop.load(Ordering::Relaxed) {
                let Ok(r) = client.fetch(&topic, p, pos, 4 << 20, 200).await else { continue };
                let now = origin.elapsed();
                for x in &r.records {
                    pos = x.offset + 1;
                    let Some(sent) =
                        x.value.get(..16).and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    let sent = Duration::from_micros(sent);
                    if sent >= measure_from {
                        seen.fetch_add(1, Ordering::Relaxed);
                        let _ = hist
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record((now.saturating_sub(sent)).as_micros().max(1) as u64);
                    }
                }
            }
        }));
    }
    let record_size = l.record_size.max(16);
    let deadline = origin + measure_from + Duration::from_secs(l.duration);
    let mut senders = Vec::new();
    for p in producers {
        let (topic, window) = (l.topic.clone(), (l.window / l.producers.max(1)).max(1));
        senders.push(tokio::spawn(async move {
            let mut in_flight = std::collections::VecDeque::new();
            while Instant::now() < deadline {
                let mut v = format!("{:016}", origin.elapsed().as_micros()).into_bytes();
                v.resize(record_size, b'x');
                let Ok(d) = p.send(&topic, None, Record { value: v.into(), ..Record::default() }).await else { break };
                in_flight.push_back(d);
                if in_flight.len() >= window {
                    if let Some(d) = in_flight.pop_front() {
                        let _ = d.await;
                    }
                }
            }
            for d in in_flight {
                let _ = d.await;
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await?;
    }
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let r = LoadResult::from_histogram(&l.spec(), seen.load(Ordering::Relaxed), 0, l.duration as f64, &h);
    emit("cairn bench e2e (latency: send to seen by a consumer)", "e2e", &r, &l.json_out)
}
