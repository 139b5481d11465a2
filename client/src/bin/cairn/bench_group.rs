//! `cairn bench group rebalance | failover | commit | consume`: consumer group figures.
//!
//! - rebalance: a member joins a group of 8 consuming 64 partitions that records keep arriving
//!   on; how long the partitions that move pause, and that the others do not.
//! - failover: a member of 8 dies (no leave); how long until its partitions are consumed again.
//! - commit: offset commits per second to one coordinator, with their latency.
//! - consume: records per second read by a group of 4 and by a group of 1 from a filled topic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::bench::ensure_topic;
use cairn_client::consumer::{Consumer, ConsumerConfig, Subscription};
use cairn_client::{Client, OffsetCommitPartition, Producer, ProducerConfig, Record};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum GroupBench {
    /// A ninth member joins a group of 8 on 64 partitions with records arriving.
    Rebalance(GroupArgs),
    /// A member of 8 dies without leaving; time until its partitions are consumed again.
    Failover(GroupArgs),
    /// Offset commits per second to one coordinator (concurrent committers).
    Commit(GroupArgs),
    /// Read a filled topic with a group of `--members` and with a group of 1.
    Consume(GroupArgs),
}

#[derive(Args, Debug, Clone)]
pub struct GroupArgs {
    #[arg(long, default_value = "bench-group")]
    topic: String,
    #[arg(short = 'p', long, default_value_t = 64)]
    partitions: u32,
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Session timeout of the members (ms; failover is bounded by it).
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// commit: concurrent committers; consume: records to fill the topic with.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

/// When each partition last delivered a record to some member, and to whom.
#[derive(Default)]
struct Deliveries {
    last: Mutex<BTreeMap<u32, (Instant, usize)>>,
    /// Since `since`: the longest gap between two deliveries of each partition that kept its
    /// owner, and the gap at the move of each partition that changed owner.
    gaps: Mutex<BTreeMap<u32, (Duration, bool)>>,
    since: Mutex<Option<Instant>>,
}

impl Deliveries {
    fn note(&self, p: u32, member: usize) {
        let now = Instant::now();
        let since = *self.since.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(since), Some((t, m))) = (since, last.get(&p).copied()) {
            if now > since {
                let gap = now - t.max(since);
                let mut gaps = self.gaps.lock().unwrap_or_else(|e| e.into_inner());
                let e = gaps.entry(p).or_insert((Duration::ZERO, false));
                let moved = m != member;
                // A move's pause is what is reported for a partition that moved.
                if moved && !e.1 {
                    *e = (gap, true);
                } else if moved == e.1 && gap > e.0 {
                    e.0 = gap;
                }
            }
        }
        last.insert(p, (now, member));
    }

    fn all_recent(&self, n: u32, within: Duration) -> bool {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        (0..n).all(|p| last.get(&p).is_some_and(|(t, _)| t.elapsed() < within))
    }
}

fn member_cfg(group: &str, a: &GroupArgs) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(group);
    c.session_timeout = Duration::from_millis(a.session_timeout_ms);
    c.auto_commit_interval = Duration::from_millis(500);
    c.fetch_wait = Duration::from_millis(100);
    c
}

/// A member consuming in its own task until `stop` (or until aborted: a crash, no leave).
fn spawn_member(
    client: Arc<Client>,
    cfg: ConsumerConfig,
    topic: String,
    id: usize,
    seen: Arc<Deliveries>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut c) = Consumer::subscribe(client, cfg, Subscription::Topics(vec![topic])).await else { return };
        while !stop.load(Ordering::Relaxed) {
            if let Ok(records) = c.poll(Duration::from_millis(100)).await {
                for r in &records {
                    seen.note(r.partition, id);
                }
            }
        }
        let _ = c.close().await;
    })
}

/// Keeps records arriving on every partition (one per partition every 50 ms).
fn spawn_feed(
    client: Arc<Client>,
    topic: String,
    partitions: u32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cfg = ProducerConfig { linger: Duration::from_millis(5), ..ProducerConfig::default() };
        let Ok(producer) = Producer::new(client, cfg).await else { return };
        while !stop.load(Ordering::Relaxed) {
            for p in 0..partitions {
                let _ = producer.send(&topic, Some(p), Record { value: "tick".into(), ..Record::default() }).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Stops the feed and every member (each leaves the group), waiting up to 10 s for each.
async fn stop_all(feed: &AtomicBool, members: Vec<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)>) {
    feed.store(true, Ordering::Relaxed);
    for (s, _) in &members {
        s.store(true, Ordering::Relaxed);
    }
    for (_, h) in members {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !ok() {
        anyhow::ensure!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(start.elapsed())
}

fn emit(a: &GroupArgs, v: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    if let Some(p) = &a.json_out {
        std::fs::write(p, serde_json::to_vec_pretty(&v)?)?;
    }
    Ok(())
}

pub async fn run(client: Arc<Client>, cmd: GroupBench) -> anyhow::Result<()> {
    match cmd {
        GroupBench::Rebalance(a) => rebalance(client, a).await,
        GroupBench::Failover(a) => failover(client, a).await,
        GroupBench::Commit(a) => commit(client, a).await,
        GroupBench::Consume(a) => consume(client, a).await,
    }
}

/// Starts `n` members of a fresh group on a fed topic and waits until every partition is being
/// consumed.
async fn steady_group(
    client: &Arc<Client>,
    a: &GroupArgs,
    group: &str,
    n: usize,
) -> anyhow::Result<(Arc<Deliveries>, Arc<AtomicBool>, Vec<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)>)> {
    ensure_topic(client, &a.topic, a.partitions).await?;
    let stop = Arc::new(AtomicBool::new(false));
    spawn_feed(client.clone(), a.topic.clone(), a.partitions, stop.clone());
    let seen = Arc::new(Deliveries::default());
    let mut members = Vec::new();
    for id in 0..n {
        let own_stop = Arc::new(AtomicBool::new(false));
        let h = spawn_member(client.clone(), member_cfg(group, a), a.topic.clone(), id, seen.clone(), own_stop.clone());
        members.push((own_stop, h));
    }
    let took = wait_for("every partition consumed", Duration::from_secs(60), || {
        seen.all_recent(a.partitions, Duration::from_millis(300))
    })
    .await?;
    eprintln!("{n} members consume all {} partitions after {took:?}", a.partitions);
    // Let the assignment settle (stable group) before measuring.
    let settle = Instant::now();
    loop {
        let d = client.describe_group(group).await?;
        if d.state == "STABLE" && d.members.len() == n {
            break;
        }
        anyhow::ensure!(settle.elapsed() < Duration::from_secs(60), "the group never settled: {}", d.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((seen, stop, members))
}

async fn rebalance(client: Arc<Client>, a: GroupArgs) -> anyhow::Result<()> {
    let group = format!("bench-rebalance-{}", std::process::id());
    let (seen, stop, mut members) = steady_group(&client, &a, &group, a.members).await?;
    let t0 = Instant::now();
    *seen.since.lock().unwrap_or_else(|e| e.into_inner()) = Some(t0);
    let own_stop = Arc::new(AtomicBool::new(false));
    let h = spawn_member(
        client.clone(),
        member_cfg(&group, &a),
        a.topic.clone(),
        a.members,
        seen.clone(),
        own_stop.clone(),
    );
    members.push((own_stop, h));
    let newcomer_consumes = wait_for("the newcomer consuming", Duration::from_secs(60), || {
        seen.last.lock().unwrap_or_else(|e| e.into_inner()).values().any(|(t, m)| *m == a.members && *t > t0)
    })
    .await?;
    let stable = loop {
        let d = client.describe_group(&group).await?;
        if d.state == "STABLE" && d.members.len() == a.members + 1 {
            break t0.elapsed();
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(60), "no stable group after the join");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gaps = seen.gaps.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let moved: Vec<Duration> = gaps.values().filter(|(_, m)| *m).map(|(g, _)| *g).collect();
    let kept: Vec<Duration> = gaps.values().filter(|(_, m)| !*m).map(|(g, _)| *g).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    stop_all(&stop, members).await;
    emit(
        &a,
        json!({
            "bench": "group rebalance",
            "partitions": a.partitions,
            "members_before": a.members,
            "newcomer_first_record_ms": ms(newcomer_consumes),
            "group_stable_after_ms": ms(stable),
            "moved_partitions": moved.len(),
            "moved_longest_pause_ms": moved.iter().copied().max().map(ms),
            "kept_partitions": kept.len(),
            "kept_longest_gap_ms": kept.iter().copied().max().map(ms),
        }),
    )
}

async fn failover(client: Arc<Client>, a: GroupArgs) -> anyhow::Result<()> {
    let group = format!("bench-failover-{}", std::process::id());
    let (seen, stop, mut members) = steady_group(&client, &a, &group, a.members).await?;
    let d = client.describe_group(&group).await?;
    let victim_parts: Vec<u32> =
        d.members.first().map(|m| m.assignment.iter().flat_map(|t| t.partitions.clone()).collect()).unwrap_or_default();
    let victim_client = d.members.first().map(|m| m.client_id.clone()).unwrap_or_default();
    anyhow::ensure!(!victim_parts.is_empty(), "the first member owns nothing");
    // Which task is it? Members are told apart by the partitions they deliver.
    let victim_id = {
        let last = seen.last.lock().unwrap_or_else(|e| e.into_inner());
        last.get(&victim_parts[0]).map(|(_, m)| *m).unwrap_or(0)
    };
    let t0 = Instant::now();
    let (_, h) = members.remove(victim_id);
    h.abort(); // a crash: no leave, no commit
    let took = wait_for("the dead member's partitions consumed again", Duration::from_secs(120), || {
        let last = seen.last.lock().unwrap_or_else(|e| e.into_inner());
        victim_parts.iter().all(|p| last.get(p).is_some_and(|(t, m)| *t > t0 && *m != victim_id))
    })
    .await?;
    stop_all(&stop, members).await;
    emit(
        &a,
        json!({
            "bench": "group failover",
            "members": a.members,
            "session_timeout_ms": a.session_timeout_ms,
            "dead_member": victim_client,
            "its_partitions": victim_parts.len(),
            "consumed_again_after_ms": took.as_secs_f64() * 1e3,
        }),
    )
}

async fn commit(client: Arc<Client>, a: GroupArgs) -> anyhow::Result<()> {
    ensure_topic(&client, &a.topic, a.partitions).await?;
    let group = format!("bench-commit-{}", std::process::id());
    let coordinator = client.find_coordinator(&group).await?;
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(a.duration);
    let mut tasks = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let (client, group, topic, hist, done, errors) =
            (client.clone(), group.clone(), a.topic.clone(), hist.clone(), done.clone(), errors.clone());
        let p = w as u32 % a.partitions.max(1);
        tasks.push(tokio::spawn(async move {
            let mut offset = 0u64;
            while Instant::now() < end {
                offset += 1;
                let o = OffsetCommitPartition { topic: topic.clone(), partition: p, offset, ..Default::default() };
                let t = Instant::now();
                match client.commit_offsets(&group, "", -1, vec![o]).await {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        let _ = hist
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(t.elapsed().as_micros().max(1) as u64);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let n = done.load(Ordering::Relaxed);
    emit(
        &a,
        json!({
            "bench": "group commit",
            "coordinator_node": coordinator.node_id,
            "concurrent_committers": a.concurrency,
            "seconds": a.duration,
            "commits": n,
            "commits_per_s": n as f64 / a.duration as f64,
            "errors": errors.load(Ordering::Relaxed),
            "p50_ms": h.value_at_quantile(0.5) as f64 / 1e3,
            "p99_ms": h.value_at_quantile(0.99) as f64 / 1e3,
        }),
    )
}

/// Reads the whole topic with a group of `n` members; records per second.
async fn read_with_group(client: &Arc<Client>, a: &GroupArgs, n: usize, total: u64) -> anyhow::Result<f64> {
    let group = format!("bench-consume-{n}-{}", std::process::id());
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..n {
        let (client, topic, count, stop) = (client.clone(), a.topic.clone(), count.clone(), stop.clone());
        let mut cfg = member_cfg(&group, a);
        cfg.fetch_bytes_max = 4 << 20;
        handles.push(tokio::spawn(async move {
            let Ok(mut c) = Consumer::subscribe(client, cfg, Subscription::Topics(vec![topic])).await else { return };
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = c.poll(Duration::from_millis(100)).await {
                    count.fetch_add(r.len() as u64, Ordering::Relaxed);
                }
            }
            let _ = c.close().await;
        }));
    }
    // The rate once the group is stable (every member assigned its share): the join itself is
    // measured by `bench group rebalance`.
    loop {
        let d = client.describe_group(&group).await?;
        if (d.state == "STABLE" && d.members.len() == n) || count.load(Ordering::Relaxed) >= total {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "the group never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stable_at, before) = (Instant::now(), count.load(Ordering::Relaxed));
    eprintln!("group of {n}: stable after {:?}, {before} records read by then", start.elapsed());
    wait_for("the whole topic read", Duration::from_secs(600), || count.load(Ordering::Relaxed) >= total).await?;
    let secs = stable_at.elapsed().as_secs_f64();
    let total = total - before;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
    }
    Ok(total as f64 / secs)
}

async fn consume(client: Arc<Client>, a: GroupArgs) -> anyhow::Result<()> {
    ensure_topic(&client, &a.topic, a.partitions).await?;
    let mut total = 0u64;
    for p in 0..a.partitions {
        total += client.list_offsets(&a.topic, p, cairn_client::OffsetSpec::Latest).await?.offset;
    }
    if total < a.records {
        eprintln!("filling {} with {} records of 100 bytes", a.topic, a.records - total);
        let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
        let mut acks = futures::stream::FuturesUnordered::new();
        for _ in 0..(a.records - total) {
            acks.push(
                producer.send(&a.topic, None, Record { value: vec![b'x'; 100].into(), ..Record::default() }).await?,
            );
            while acks.len() >= 4096 {
                use futures::StreamExt;
                if let Some(r) = acks.next().await {
                    r?;
                }
            }
        }
        use futures::StreamExt;
        while let Some(r) = acks.next().await {
            r?;
        }
        total = a.records;
    }
    let single_rate = read_with_group(&client, &a, 1, total).await?;
    let group_rate = read_with_group(&client, &a, a.members, total).await?;
    emit(
        &a,
        json!({
            "bench": "group consume",
            "records": total,
            "members": a.members,
            "group_records_per_s": group_rate,
            "one_member_records_per_s": single_rate,
            "speedup": group_rate / single_rate,
        }),
    )
}
