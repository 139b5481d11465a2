//! `cairn consume TOPIC`: read one or all partitions from an offset, up to the end as of the
//! start (or `--count`), or forever with `--follow`.

use std::sync::Arc;

use cairn_client::schema::{AvroSerde, SchemaRegistryClient};
use cairn_client::{Client, FetchedRecord, OffsetSpec};
use clap::Args;
use tokio::sync::mpsc;

use crate::format::{parse_start, parse_time, Format, Start};
use crate::output::Output;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  cairn consume orders                          everything up to the end as of now, then exit
  cairn consume orders -f                       keep following (Ctrl-C to stop)
  cairn consume orders -p 0,2 --offset -10      the last ten records of partitions 0 and 2
  cairn consume orders --offset @2026-12-03T14:00:00Z --until @2026-12-03T15:00:00Z
  cairn consume orders --format '%p:%o %k=%s\\n'  kcat-style placeholders
  cairn consume blobs -p 0 --offset 5 -n 1 --raw > blob.bin
  cairn consume orders -g billing               as a member of consumer group billing")]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read only these partitions (comma-separated; default: all).
    #[arg(short = 'p', long = "partitions", alias = "partition", value_delimiter = ',')]
    pub partitions: Vec<u32>,
    /// Where to start in each partition: earliest, latest, an offset, -N (the last N records)
    /// or @TIME (the first record at or after TIME: ms since the epoch or RFC 3339).
    #[arg(short = 'o', long, default_value = "earliest", allow_hyphen_values = true)]
    pub offset: String,
    /// Stop each partition at its first record at or after TIME (ms since the epoch or RFC
    /// 3339; a leading @ is accepted).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Stop after this many records in total.
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(short = 'f', long, conflicts_with = "exit_at_end")]
    pub follow: bool,
    /// Stop at each partition's end as of the start (the default without --follow; kcat's -e).
    #[arg(short = 'e', long)]
    pub exit_at_end: bool,
    /// Print each record with this format (kcat-style placeholders, binary safe; see --help).
    #[arg(long, conflicts_with = "raw", long_help = format!("Print each record with this format instead of the default line: {}.", crate::format::PLACEHOLDERS))]
    pub format: Option<String>,
    /// Write each value's bytes and nothing else (binary output; with -n 1 for one record).
    #[arg(long)]
    pub raw: bool,
    /// Long-poll wait per fetch (ms).
    #[arg(long, default_value_t = 1000)]
    pub max_wait_ms: u32,
    /// Consume as a member of this consumer group: the group's coordinator assigns partitions,
    /// reading starts at the committed offsets and progress is committed. Stops at `--count`,
    /// on Ctrl-C, or (without `--follow`) once nothing arrived for `--idle-ms`.
    #[arg(short = 'g', long, conflicts_with_all = ["partitions", "offset", "until"])]
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
    /// Decode values framed in Confluent's wire format (Avro, with the writer's schema from the
    /// registry: --registry) and print them as JSON; values that do not decode are printed as
    /// they are, with a warning.
    #[arg(long, conflicts_with = "raw")]
    pub decode: bool,
}

/// How records are printed.
struct Printer<'a> {
    out: &'a Output,
    format: Option<Format>,
    buf: Vec<u8>,
}

impl Printer<'_> {
    fn record(&mut self, topic: &str, partition: u32, r: &FetchedRecord) {
        match &self.format {
            Some(f) => {
                self.buf.clear();
                f.render(topic, partition, r, &mut self.buf);
                self.out.bytes(&self.buf);
            }
            None => self.out.record(topic, partition, r),
        }
    }
}

fn printer<'a>(args: &ConsumeArgs, out: &'a Output) -> anyhow::Result<Printer<'a>> {
    let format = match (&args.format, args.raw) {
        (Some(f), _) => Some(Format::parse(f)?),
        (None, true) => Some(Format::raw()),
        (None, false) => None,
    };
    Ok(Printer { out, format, buf: Vec::new() })
}

/// Where partition `p` starts and (without --follow) where it ends.
async fn bounds(
    client: &Client,
    topic: &str,
    p: u32,
    start: Start,
    follow: bool,
) -> anyhow::Result<(u64, Option<u64>)> {
    let earliest = || client.list_offsets(topic, p, OffsetSpec::Earliest);
    let latest = client.list_offsets(topic, p, OffsetSpec::Latest).await?.offset;
    let from = match start {
        Start::Earliest => earliest().await?.offset,
        Start::Latest => latest,
        Start::At(o) => o,
        Start::Last(n) => latest.saturating_sub(n).max(earliest().await?.offset),
        Start::Time(t) => client.list_offsets(topic, p, OffsetSpec::Timestamp(t)).await?.offset,
    };
    let end = (!follow).then_some(latest);
    if let Some(e) = end {
        anyhow::ensure!(from <= e, "offset {from} is past the end (high watermark {e}) [OFFSET_OUT_OF_RANGE]");
    }
    Ok((from, end))
}

type Batch = (u32, Result<Vec<FetchedRecord>, String>);

pub async fn run(client: Arc<Client>, args: ConsumeArgs, out: &Output, registry: &str) -> anyhow::Result<()> {
    let mut printer = printer(&args, out)?;
    let decoder = if args.decode { Some(AvroSerde::new(SchemaRegistryClient::new(registry)?)) } else { None };
    if let Some(group) = args.group.clone() {
        return run_group(client, &group, &args, &mut printer, decoder.as_ref()).await;
    }
    let start = parse_start(&args.offset)?;
    let until = args.until.as_deref().map(|u| parse_time(u.strip_prefix('@').unwrap_or(u))).transpose()?;
    let n = client.partition_count(&args.topic).await?;
    if let Some(p) = args.partitions.iter().find(|p| **p >= n) {
        anyhow::bail!(
            "topic {} has {n} partition(s) (0 to {}); there is no partition {p} [UNKNOWN_PARTITION]",
            args.topic,
            n - 1
        );
    }
    let partitions: Vec<u32> = if args.partitions.is_empty() { (0..n).collect() } else { args.partitions.clone() };
    if args.count == Some(0) {
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel::<Batch>(64);
    let topic = Arc::new(args.topic.clone());
    let mut tasks = Vec::new();
    // A partition that cannot be read is reported and the others go on; the exit code says
    // whether every partition asked for was read.
    let mut failed = 0usize;
    for p in &partitions {
        match bounds(&client, &topic, *p, start, args.follow).await {
            Ok((from, end)) => {
                let read =
                    Read { client: client.clone(), topic: topic.clone(), p: *p, end, until, wait: args.max_wait_ms };
                tasks.push(tokio::spawn(read.run(from, tx.clone())));
            }
            Err(e) => {
                eprintln!("cairn: partition {p}: {e:#}");
                failed += 1;
            }
        }
    }
    if args.follow && args.partitions.is_empty() {
        // Partitions added to the topic while following are read from their start.
        tasks.push(tokio::spawn(watch_new_partitions(
            client.clone(),
            topic.clone(),
            n,
            until,
            args.max_wait_ms,
            tx.clone(),
        )));
    }
    drop(tx);
    let mut printed = 0u64;
    while let Some((p, batch)) = rx.recv().await {
        let recs = match batch {
            Ok(recs) => recs,
            Err(e) => {
                eprintln!("cairn: partition {p}: {e}");
                failed += 1;
                continue;
            }
        };
        for r in &recs {
            let r = &decoded(decoder.as_ref(), p, r).await;
            printer.record(&args.topic, p, r);
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
    anyhow::ensure!(failed == 0, "{failed} of {} partition(s) could not be read (see above)", partitions.len());
    Ok(())
}

/// `r` with its value decoded to JSON text (with a decoder); as it is when it does not decode.
async fn decoded(decoder: Option<&AvroSerde>, partition: u32, r: &FetchedRecord) -> FetchedRecord {
    let Some(d) = decoder else { return r.clone() };
    match d.deserialize(&r.value).await {
        Ok(v) => FetchedRecord { value: v.to_string().into_bytes().into(), ..r.clone() },
        Err(e) => {
            eprintln!("cairn: partition {partition} offset {}: not decoded ({e})", r.offset);
            r.clone()
        }
    }
}

/// Reads one partition up to `end` (or forever) and, with `until`, up to its first record at
/// or after that time.
struct Read {
    client: Arc<Client>,
    topic: Arc<String>,
    p: u32,
    end: Option<u64>,
    until: Option<i64>,
    wait: u32,
}

impl Read {
    async fn run(self, from: u64, tx: mpsc::Sender<Batch>) {
        let p = self.p;
        let mut pos = from;
        while self.end.is_none_or(|e| pos < e) {
            match self.client.fetch(&self.topic, p, pos, 0, self.wait).await {
                Ok(resp) => {
                    let Some(last) = resp.records.last() else { continue };
                    pos = last.offset + 1;
                    let mut recs: Vec<FetchedRecord> = match self.end {
                        Some(e) => resp.records.into_iter().filter(|r| r.offset < e).collect(),
                        None => resp.records,
                    };
                    let cut = self.until.and_then(|u| recs.iter().position(|r| r.timestamp_ms >= u));
                    if let Some(i) = cut {
                        recs.truncate(i);
                    }
                    if !recs.is_empty() && tx.send((p, Ok(recs))).await.is_err() {
                        return;
                    }
                    if cut.is_some() {
                        return;
                    }
                }
                // Retention (or DeleteRecords) removed what was next: go on from the log start,
                // as Kafka's consumers do with auto.offset.reset=earliest.
                Err(e) if e.offset_bounds().is_some_and(|(start, _)| pos < start) => {
                    let start = e.offset_bounds().map_or(pos, |b| b.0);
                    eprintln!(
                        "partition {p}: offsets {pos} to {} were removed (retention); continuing at {start}",
                        start - 1
                    );
                    pos = start;
                }
                Err(e) => {
                    let _ = tx.send((p, Err(e.to_string()))).await;
                    return;
                }
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
    until: Option<i64>,
    wait: u32,
    tx: mpsc::Sender<Batch>,
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
            let read = Read { client: client.clone(), topic: topic.clone(), p, end: None, until, wait };
            tokio::spawn(read.run(0, tx.clone()));
        }
        known = known.max(n);
    }
}

/// `consume --group`: a group member that prints what it is given and commits as it goes.
async fn run_group(
    client: Arc<Client>,
    group: &str,
    args: &ConsumeArgs,
    printer: &mut Printer<'_>,
    decoder: Option<&AvroSerde>,
) -> anyhow::Result<()> {
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
            let fetched = decoded(decoder, r.partition, &fetched).await;
            printer.record(&r.topic, r.partition, &fetched);
            printed += 1;
            done = args.count.is_some_and(|c| printed >= c);
        }
        if done {
            break;
        }
    }
    printer.out.flush();
    // Everything printed counts as processed: close commits exactly that, then leaves.
    consumer.close().await?;
    Ok(())
}
