//! `cairn-retention`: disk use against retention while producing, and how long a follower that
//! was down takes to catch up past the log start.
//!
//! ```text
//!  3 nodes (ports 7841-7843, [retention] segment_bytes, check_interval_ms 1000) ─► topic "ret"
//!  phase 1: produce --factor × retention_bytes × partitions; every 2 s: produced, log starts,
//!           disk per node (data directory, by allocated blocks), and its parts (blob, sst, wal)
//!  phase 2: stop node 3, produce 5 × retention more, restart it: time until its replicas reach
//!           the leaders' high watermarks (they install checkpoints: they are behind the start)
//! ```
//! `bench/retention.sh` builds and runs it.

#[path = "../procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig, Record, RecordExt};
use cairn_proto::v1::{FetchRequest, RetentionConfig};
use clap::Parser;
use procs::Procs;

const PORTS: [u16; 3] = [7841, 7842, 7843];
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(name = "cairn-retention", about = "Disk use against retention while producing; catch-up by snapshot")]
struct Args {
    #[arg(long)]
    cairn_node: PathBuf,
    #[arg(long, default_value = "/var/tmp/cairn-retention")]
    dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// retention_bytes of the topic (per partition).
    #[arg(long, default_value_t = 16 << 20)]
    retention_bytes: u64,
    /// segment_bytes of the nodes (their config's retention section).
    #[arg(long, default_value_t = 1 << 20)]
    segment_bytes: u64,
    /// Produce this many times the retained total (retention_bytes × partitions).
    #[arg(long, default_value_t = 10)]
    factor: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 4096)]
    record_bytes: usize,
}

fn brokers() -> Vec<String> {
    PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

fn node_cmd(args: &Args, id: usize, config: &Path) -> Command {
    let cluster: Vec<String> = brokers().iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut cmd = Command::new(&args.cairn_node);
    cmd.args(["--node-id", &id.to_string(), "--initial-cluster", &cluster.join(",")])
        .arg("--data-dir")
        .arg(args.dir.join(format!("node{id}")))
        .arg("--config")
        .arg(config)
        .env("CAIRN_LOG_LEVEL", "info,openraft=warn");
    cmd
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let config = args.dir.join("retention.toml");
    std::fs::write(
        &config,
        format!("[retention]\nsegment_bytes = {}\ncheck_interval_ms = 1000\n", args.segment_bytes),
    )?;
    let mut nodes: Vec<Procs> = Vec::new();
    for id in 1..=3 {
        let mut p = Procs::default();
        p.spawn(node_cmd(&args, id, &config), &args.dir.join(format!("node{id}.log")))?;
        nodes.push(p);
    }
    let mut cfg = ClientConfig::new(brokers());
    cfg.retry_deadline = Duration::from_secs(60);
    let client = Arc::new(Client::connect(cfg).await?);
    let retention = Some(RetentionConfig { retention_ms: -1, retention_bytes: args.retention_bytes as i64 });
    client.create_topic("ret", args.partitions, 3, retention).await?;
    wait_for_leaders(&client).await?;

    let retained = args.retention_bytes * u64::from(args.partitions);
    println!(
        "topic ret: {} partitions, retention_bytes {:.0} MiB each ({:.0} MiB retained), segment {:.1} MiB; producing {} × that",
        args.partitions,
        args.retention_bytes as f64 / MIB,
        retained as f64 / MIB,
        args.segment_bytes as f64 / MIB,
        args.factor
    );
    println!(
        "{:>6}  {:>12}  {:>18}  {:>22}  {:>40}",
        "t (s)", "produced MiB", "log start (min)", "disk MiB (nodes 1,2,3)", "node 1: blob / sst / wal MiB"
    );
    let start = Instant::now();
    let mut peak = 0f64;
    let target = retained * args.factor;
    let mut produced = 0u64;
    let mut next_report = Instant::now();
    while produced < target {
        produced += produce_round(&client, &args).await?;
        if Instant::now() >= next_report {
            peak = peak.max(report(&client, &args, start, produced).await);
            next_report = Instant::now() + Duration::from_secs(2);
        }
    }
    // Retention catches up with the last writes within a few checks.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        peak = peak.max(report(&client, &args, start, produced).await);
    }
    let finals: Vec<f64> = (1..=3).map(|id| dir_bytes(&args.dir.join(format!("node{id}"))) as f64 / MIB).collect();
    let pids: Vec<u32> = nodes.iter().flat_map(Procs::pids).collect();
    anyhow::ensure!(nodes.iter_mut().all(Procs::alive), "a node exited while producing");
    println!(
        "produced {:.0} MiB ({:.1} MiB/s, nodes' CPU {:.0} s); retained by the limits {:.0} MiB; peak disk per node {:.0} MiB, at the end {:.0} / {:.0} / {:.0} MiB",
        produced as f64 / MIB,
        produced as f64 / MIB / start.elapsed().as_secs_f64(),
        procs::cpu_seconds(&pids),
        retained as f64 / MIB,
        peak,
        finals[0],
        finals[1],
        finals[2]
    );

    // Phase 2: a follower behind the log start.
    nodes[2].stop();
    let down = Instant::now();
    let mut more = 0u64;
    while more < retained * 5 {
        more += produce_round(&client, &args).await?;
    }
    println!(
        "node 3 down for {:.1} s while {:.0} MiB more were produced (the log start moved past it)",
        down.elapsed().as_secs_f64(),
        more as f64 / MIB
    );
    let hw = high_watermarks(&client, &args).await?;
    let mut p = Procs::default();
    let restarted = Instant::now();
    p.spawn(node_cmd(&args, 3, &config), &args.dir.join("node3.log"))?;
    nodes[2] = p;
    caught_up(&client, &hw).await?;
    let installs = std::fs::read_to_string(args.dir.join("node3.log"))
        .unwrap_or_default()
        .matches("installed a checkpoint snapshot")
        .count();
    println!(
        "node 3 caught up with every partition {:.2} s after its restart ({installs} checkpoint installs)",
        restarted.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let disks: Vec<String> =
        (1..=3).map(|id| format!("{:.0}", dir_bytes(&args.dir.join(format!("node{id}"))) as f64 / MIB)).collect();
    println!(
        "after {:.0} MiB produced in all ({:.0} x the retained bytes): disk per node {} MiB",
        (produced + more) as f64 / MIB,
        (produced + more) as f64 / retained as f64,
        disks.join(" / ")
    );
    for mut n in nodes {
        n.stop();
    }
    Ok(())
}

/// One produce of 64 records per partition, all partitions at once; returns the value bytes.
async fn produce_round(client: &Arc<Client>, args: &Args) -> anyhow::Result<u64> {
    let value = "x".repeat(args.record_bytes);
    let sends = (0..args.partitions).map(|p| {
        let records: Vec<Record> = (0..64).map(|_| Record::from_value(value.clone())).collect();
        let client = client.clone();
        async move { client.produce("ret", p, records).await }
    });
    for r in futures::future::join_all(sends).await {
        r?;
    }
    Ok(64 * args.record_bytes as u64 * u64::from(args.partitions))
}

async fn report(client: &Client, args: &Args, start: Instant, produced: u64) -> f64 {
    let mut min_start = u64::MAX;
    for p in 0..args.partitions {
        if let Ok(r) = client.list_offsets("ret", p, cairn_client::OffsetSpec::Earliest).await {
            min_start = min_start.min(r.offset);
        }
    }
    let disks: Vec<f64> = (1..=3).map(|id| dir_bytes(&args.dir.join(format!("node{id}"))) as f64 / MIB).collect();
    let parts = by_kind(&args.dir.join("node1"));
    println!(
        "{:>6.0}  {:>12.0}  {:>18}  {:>22}  {:>40}",
        start.elapsed().as_secs_f64(),
        produced as f64 / MIB,
        min_start,
        disks.iter().map(|d| format!("{d:.0}")).collect::<Vec<_>>().join(", "),
        format!("{:.0} / {:.0} / {:.0}", parts.0 as f64 / MIB, parts.1 as f64 / MIB, parts.2 as f64 / MIB)
    );
    disks.into_iter().fold(0.0, f64::max)
}

async fn wait_for_leaders(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_topic("ret").await {
            if !d.partitions.is_empty() && d.partitions.iter().all(|p| p.leader_node_id != 0) {
                let _ = client.refresh_metadata().await;
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "topic ret got no leaders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn high_watermarks(client: &Client, args: &Args) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for p in 0..args.partitions {
        out.push(client.list_offsets("ret", p, cairn_client::OffsetSpec::Latest).await?.offset);
    }
    Ok(out)
}

/// Waits until node 3's replica of every partition reached `hw`.
async fn caught_up(client: &Client, hw: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let addr = brokers()[2].clone();
    loop {
        let mut done = true;
        for (p, want) in hw.iter().enumerate() {
            let req = FetchRequest {
                topic: "ret".into(),
                partition: p as u32,
                offset: u64::MAX / 2,
                max_bytes: 1,
                max_wait_ms: 0,
                topic_id: 0,
            };
            let have = match client.fetch_from_node(&addr, req).await {
                Ok(r) => r.high_watermark,
                Err(e) => e.offset_bounds().map_or(0, |b| b.1),
            };
            done &= have >= *want;
        }
        if done {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "node 3 did not catch up within 300 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bytes allocated on disk under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    walk(dir).iter().map(|(_, b)| b).sum()
}

/// Node data split into blob files, SST files and WAL files (RocksDB's `*.blob`, `*.sst`, `*.log`).
fn by_kind(dir: &Path) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for (name, b) in walk(dir) {
        if name.ends_with(".blob") {
            out.0 += b;
        } else if name.ends_with(".sst") {
            out.1 += b;
        } else if name.ends_with(".log") && !name.starts_with("LOG") {
            out.2 += b;
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.file_name().to_string_lossy().into_owned(), m.blocks() * 512));
        }
    }
    out
}
