//! One test run: cluster up, workload and nemesis, heal, drain, check, report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientConfig, ClientError, OffsetSpec};
use cairn_proto::v1::FetchRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::checker::{check, Results};
use crate::cluster::disks::SmallDisks;
use crate::cluster::{Cluster, Net, NodeSpec};
use crate::history::{analyse, OpType, Recorder, DRAIN};
use crate::incarnations::Incarnations;
use crate::members::{self, MemberSpec, Members};
use crate::nemesis::{leader_of, Nemesis, NemesisKind};
use crate::quota::{self, BULK_BYTES_PER_SECOND, BULK_PRINCIPAL};
use crate::report;
use crate::tls::RunTls;
use crate::workload::{self, WorkloadKind, WorkloadSpec};

/// Everything that defines a run; saved with it so it can be repeated.
#[derive(Clone, Debug, Serialize)]
pub struct RunParams {
    pub name: String,
    pub seed: u64,
    pub nemesis: NemesisKind,
    pub workload: WorkloadSpec,
    pub nodes: u64,
    pub time_limit_s: u64,
    /// Seconds at the end with every fault healed (recovery is measured there).
    pub heal_s: u64,
    pub node_faults: Vec<String>,
    pub network_faults: bool,
    pub node_binary: PathBuf,
    pub port: u16,
    /// TLS on both listeners and between nodes (development certificates made for the run).
    pub tls: bool,
}

/// What a run produced.
pub struct Outcome {
    pub dir: PathBuf,
    pub results: Results,
    pub drained: bool,
}

/// Runs one test and writes `history.jsonl`, `results.json`, `params.json`, `latency.svg` and
/// the node logs into `dir`.
///
/// # Errors
/// The cluster cannot start or the topic cannot be created (not a safety verdict).
pub async fn run(params: RunParams, dir: &Path) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("params.json"), serde_json::to_vec_pretty(&params)?)?;
    println!("cairn-jepsen: {} (seed {}) -> {}", params.name, params.seed, dir.display());
    println!("{}", serde_json::to_string(&params)?);
    let own_disks = params.nemesis == NemesisKind::DiskFull;
    // One node runs without a free-space floor, as if its check were too slow: when its disk
    // fills, RocksDB's own writes fail and must be recovered from.
    let no_floor: Option<u64> = own_disks.then(|| params.seed % params.nodes + 1);
    let mounts: Vec<PathBuf> =
        if own_disks { (1..=params.nodes).map(|id| dir.join(format!("n{id}"))).collect() } else { Vec::new() };
    // Unmounted (and its images deleted) when the run ends, after the nodes stopped.
    let mut disks = if own_disks { Some(SmallDisks::mount(&mounts, DISK_BYTES)?) } else { None };
    let tls =
        if params.tls { Some(RunTls::make(&params.node_binary, &dir.join("certs"), params.nodes)?) } else { None };
    let mut node_args = config_args(&params, dir, no_floor)?;
    if let Some(t) = &tls {
        for id in 1..=params.nodes {
            node_args.entry(id).or_default().extend(t.node_args(id));
        }
    }
    let peer_tls = tls.as_ref().map(RunTls::peer).transpose()?;
    let spec = NodeSpec {
        count: params.nodes,
        port: params.port,
        binary: params.node_binary.clone(),
        dir: dir.to_path_buf(),
        extra_args: params.node_faults.iter().flat_map(|f| ["--fault".to_string(), f.clone()]).collect(),
        node_args,
        data_subdir: own_disks.then(|| "data".to_string()),
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(spec)?));
    let addrs = cluster.lock().await.addrs();
    let rf = params.nodes.min(3) as u32;
    if let Some(t) = &tls {
        t.set_up(addrs.clone(), BULK_PARTITIONS, rf).await?;
    }
    let mut cfg = ClientConfig::new(addrs.clone());
    cfg.retry_deadline = Duration::from_secs(10);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.tls = tls.as_ref().map(RunTls::client).transpose()?;
    let client = Arc::new(connect(cfg).await?);
    let retention = (params.workload.kind == WorkloadKind::Retention)
        .then_some(cairn_proto::v1::RetentionConfig { retention_ms: -1, retention_bytes: RETENTION_BYTES });
    let first = client.create_topic(&params.workload.topic, params.workload.partitions, rf, retention).await?;
    let mut groups = wait_for_leaders(&client, &params.workload.topic).await?;
    if params.workload.kind == WorkloadKind::Group {
        // The group's coordinator is a fault target as often as the topic's leaders together:
        // "the leader of a random partition" is then the coordinator half the time.
        let coordinator = coordinator_group(&client).await?;
        groups.extend(std::iter::repeat_n(coordinator, groups.len()));
    }
    let registry = params.workload.kind == WorkloadKind::Registry;
    if registry {
        // Likewise the registry's leader (the leader of `__schemas`).
        let schemas = until_deadline(Duration::from_secs(60), || client.describe_topic("__schemas")).await?;
        let group = schemas.partitions.first().map(|p| p.group_id).ok_or_else(|| anyhow::anyhow!("no __schemas"))?;
        groups.extend(std::iter::repeat_n(group, groups.len()));
    }
    let incarnations = Arc::new(Incarnations::with_room(
        params.workload.partitions,
        params.workload.partitions + params.workload.add_partitions,
    ));
    incarnations.add(&params.workload.topic, first.topic_id);

    let rec = Recorder::new(Some(&dir.join("history.jsonl")))?;
    if let Some(n) = no_floor {
        rec.nemesis("no-floor", json!({"node": n, "floor_bytes": FREE_SPACE_FLOOR}));
    }
    let shared = Arc::new(workload::Shared {
        client: client.clone(),
        rec: rec.clone(),
        spec: params.workload.clone(),
        stop: AtomicBool::new(false),
        next_value: AtomicU64::new(0),
        incarnations: incarnations.clone(),
        replication_factor: rf,
    });
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut workers = Vec::new();
    for w in 0..params.workload.producers {
        if params.workload.kind == WorkloadKind::Conditional {
            workers.push(tokio::spawn(crate::conditional::writer(shared.clone(), w, rng.random())));
        } else {
            workers.push(tokio::spawn(workload::producer(shared.clone(), w, rng.random())));
        }
    }
    let group = params.workload.kind == WorkloadKind::Group;
    // Group members replace the plain consumers in the group workload.
    let consumers = if group { 0 } else { params.workload.consumers };
    for w in 0..consumers {
        workers.push(tokio::spawn(workload::consumer(shared.clone(), w, rng.random())));
    }
    let member_stop = Arc::new(AtomicBool::new(false));
    let members = if group {
        let spec = MemberSpec {
            exe: std::env::current_exe()?,
            brokers: addrs.join(","),
            topic: params.workload.topic.clone(),
            dir: dir.to_path_buf(),
            commit_before_processing: params.workload.commit_before_processing,
            ca: tls.as_ref().map(RunTls::ca),
            cert: tls.as_ref().map(RunTls::client_cert),
        };
        let m = Members::new(spec, rec.clone());
        workers.push(tokio::spawn(members::churn(m.clone(), member_stop.clone(), rng.random())));
        workers.push(tokio::spawn(members::monitor(client.clone(), rec.clone(), member_stop.clone())));
        Some(m)
    } else {
        None
    };
    if params.workload.kind == WorkloadKind::Topics {
        workers.push(tokio::spawn(workload::creator(shared.clone(), rng.random())));
    }
    let registry_stop = Arc::new(AtomicBool::new(false));
    let http: Vec<String> = cluster.lock().await.nodes.iter().map(|n| n.metrics_addr.clone()).collect();
    if registry {
        let seen = Arc::default();
        for w in 0..crate::registry::WORKERS {
            let (rec, http, stop, seen) = (rec.clone(), http.clone(), registry_stop.clone(), Arc::clone(&seen));
            workers.push(tokio::spawn(crate::registry::worker(rec, http, w, rng.random(), stop, seen)));
        }
    }
    if params.workload.kind == WorkloadKind::Retention {
        let nodes = cluster.lock().await.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
        workers.push(tokio::spawn(workload::log_bounds_monitor(shared.clone(), nodes)));
    }
    let start = Instant::now();
    let fault_until = start + Duration::from_secs(params.time_limit_s.saturating_sub(params.heal_s));
    if params.workload.add_partitions > 0 {
        workers.push(tokio::spawn(workload::grower(shared.clone(), start, fault_until)));
    }
    // Secured runs deny the workload's writes now and then, where every node keeps hearing
    // from the controller (a node cut off from it keeps the ACLs it has: see docs/operations.md).
    let denies = !params.nemesis.needs_network() && params.nemesis != NemesisKind::Combined;
    if let Some(t) = tls.as_ref().filter(|_| denies) {
        let (brokers, topic) = (addrs.clone(), params.workload.topic.clone());
        workers.push(tokio::spawn(t.clone().deny_windows(brokers, topic, rec.clone(), fault_until, rng.random())));
    }
    // Secured runs also flood a topic of their own as a principal held to a quota.
    let bulk_stop = Arc::new(AtomicBool::new(false));
    if let Some(t) = &tls {
        quota::record_quota(&rec, params.nodes);
        let cfg = t.bulk_config(addrs.clone())?;
        workers.push(tokio::spawn(quota::flood(cfg, BULK_PARTITIONS, rec.clone(), bulk_stop.clone(), rng.random())));
    }
    let nemesis = Nemesis {
        cluster: cluster.clone(),
        net: Net { enabled: params.network_faults },
        rec: rec.clone(),
        groups: groups.clone(),
        rng: StdRng::seed_from_u64(rng.random()),
        client: client.clone(),
        incarnations: incarnations.clone(),
        replication_factor: rf,
        disks: mounts.clone(),
        free_space_floor: FREE_SPACE_FLOOR,
        no_floor,
        peer_tls: peer_tls.clone(),
        unscrubbed: None,
    };
    nemesis.run(params.nemesis, fault_until).await;
    tokio::time::sleep_until(start + Duration::from_secs(params.time_limit_s)).await;
    shared.stop.store(true, Ordering::SeqCst);
    member_stop.store(true, Ordering::SeqCst);
    bulk_stop.store(true, Ordering::SeqCst);
    registry_stop.store(true, Ordering::SeqCst);
    if let Some(m) = &members {
        // Every member commits and leaves cleanly, so the final committed offsets are settled.
        let m = m.clone();
        tokio::task::spawn_blocking(move || m.stop_all()).await.ok();
    }
    for w in workers {
        if tokio::time::timeout(Duration::from_secs(60), w).await.is_err() {
            eprintln!("cairn-jepsen: a worker did not finish within 60 s of the end");
        }
    }
    let crashed = cluster.lock().await.crashed();
    if !crashed.is_empty() {
        rec.nemesis("unexpected-exit", json!({"nodes": crashed}));
    }
    let drained = drain(&client, &cluster, &incarnations, &rec, peer_tls.as_ref()).await;
    if group && !members::final_read(&client, &rec).await {
        rec.nemesis("error", json!({"error": "the group's committed offsets could not be read after the run"}));
    }
    if registry {
        crate::registry::final_read(&rec, &http, Duration::from_secs(60)).await;
    }
    rec.flush();
    cluster.lock().await.stop();
    drop(disks.take());

    let ops = rec.ops();
    let analysis = analyse(&ops);
    let mut results = check(&analysis, drained);
    if !crashed.is_empty() {
        results.counts.insert("node-crash", crashed.len());
        results.examples.insert("node-crash", vec![format!("nodes {crashed:?} exited on their own")]);
        results.valid = false;
    }
    report::write(dir, &params, &analysis, &results, drained)?;
    Ok(Outcome { dir: dir.to_path_buf(), results, drained })
}

async fn connect(cfg: ClientConfig) -> anyhow::Result<Client> {
    until_deadline(Duration::from_secs(60), || Client::connect(cfg.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("cluster did not come up: {e}"))
}

/// Waits until every partition has a leader; returns the partitions' group ids.
async fn wait_for_leaders(client: &Client, topic: &str) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_topic(topic).await {
            if !d.partitions.is_empty() && d.partitions.iter().all(|p| p.leader_node_id != 0) {
                let _ = client.refresh_metadata().await;
                return Ok(d.partitions.iter().map(|p| p.group_id).collect());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "partitions of {topic} got no leaders within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Size of each node's own filesystem (disk-full runs): a sparse image, so only what the node
/// and the nemesis write takes room on the machine.
const DISK_BYTES: u64 = 512 << 20;
/// The nodes' free-space floor in every run (the node default is 128 MiB; the disk-full
/// nemesis fills to half of it, or to zero).
pub const FREE_SPACE_FLOOR: u64 = 48 << 20;

/// The node configuration of a run: scrubs fast and repairs quickly, so storage faults are found
/// and repaired within a run; small memtables, so RocksDB flushes (and meets a full disk) within
/// a run too. The negative control that skips fetch checksums also turns the scrubber off: it
/// shows what reaches readers when reads do not verify.
fn node_config(params: &RunParams, floor: u64) -> String {
    let skip = params.node_faults.iter().any(|f| f == "skip-fetch-checksum");
    let scrub: u64 = if skip { 0 } else { 64 << 20 };
    let mut config = format!(
        "[storage]\nscrub_bytes_per_second = {scrub}\nrepair_stopped_after_ms = 15000\nrepairs_per_minute_max = 30\n\
         free_space_min_bytes = {floor}\nwrite_buffer_bytes = {WRITE_BUFFER_BYTES}\n"
    );
    if params.workload.kind == WorkloadKind::Retention {
        config.push_str(&format!("[retention]\nsegment_bytes = {SEGMENT_BYTES}\ncheck_interval_ms = 200\n"));
    }
    if params.tls {
        // Only the flooding principal has a quota: the workload's sends are not throttled.
        config.push_str(&format!(
            "[quotas]\n[[quotas.principals]]\nprincipal = \"{BULK_PRINCIPAL}\"\nproduce_bytes_per_second = {BULK_BYTES_PER_SECOND}\n"
        ));
    }
    config
}

/// The retention workload's topic keeps about this many record bytes per partition (some 100
/// records of the workload's ~330 bytes), in segments of [`SEGMENT_BYTES`]: at the workload's
/// rate each partition is truncated every second or so.
const RETENTION_BYTES: i64 = 32 << 10;
/// Partitions of the throttled principal's topic in secured runs: one per node, so its
/// requests meet every node's quota.
const BULK_PARTITIONS: u32 = 3;
const SEGMENT_BYTES: u64 = 8 << 10;

/// Memtable size of every node in a run (256 KiB; the log's is 512 KiB): flushes every few
/// seconds at the workload's rate, so a disk that fills meets RocksDB's own writes.
const WRITE_BUFFER_BYTES: u64 = 256 << 10;

/// Each node's `--config`: the run's configuration (see [`node_config`]), without a floor for
/// `no_floor`.
fn config_args(
    params: &RunParams,
    dir: &Path,
    no_floor: Option<u64>,
) -> anyhow::Result<std::collections::BTreeMap<u64, Vec<String>>> {
    let config = dir.join("node.toml");
    std::fs::write(&config, node_config(params, FREE_SPACE_FLOOR))?;
    let bare = dir.join("node-no-floor.toml");
    if no_floor.is_some() {
        std::fs::write(&bare, node_config(params, 0))?;
    }
    Ok((1..=params.nodes)
        .map(|n| {
            let file = if no_floor == Some(n) { &bare } else { &config };
            (n, vec!["--config".to_string(), file.display().to_string()])
        })
        .collect())
}

/// A stable digest of a whole record (key, value, headers, timestamp): replicas must agree on
/// every byte, not only on the value.
fn digest(r: &cairn_proto::v1::FetchedRecord) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: &[u8]| {
        for x in b.iter().chain((b.len() as u64).to_le_bytes().iter()) {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&r.key);
    feed(&r.value);
    for hd in &r.headers {
        feed(hd.key.as_bytes());
        feed(&hd.value);
    }
    feed(&r.timestamp_ms.to_le_bytes());
    h
}

/// The Raft group of the `__consumer_offsets` partition that holds the workload's group.
async fn coordinator_group(client: &Client) -> anyhow::Result<u64> {
    let found = until_deadline(Duration::from_secs(60), || client.find_coordinator(crate::members::GROUP)).await?;
    let offsets = until_deadline(Duration::from_secs(60), || client.describe_topic("__consumer_offsets")).await?;
    offsets
        .partitions
        .iter()
        .find(|p| p.partition == found.partition)
        .map(|p| p.group_id)
        .ok_or_else(|| anyhow::anyhow!("__consumer_offsets has no partition {}", found.partition))
}

/// After healing: for every partition of every live topic incarnation, reads [log start, high
/// watermark) from every replica of it, once that replica has caught up with the leader. Returns
/// whether every read converged. Only replicas are read: with 5 nodes and replication factor 3
/// the other two nodes hold no copy (they refuse the fetch), and waiting on them would starve
/// the replicas of their deadline. Reads name the incarnation, so a replica that still holds a
/// deleted one cannot pass it off as the current one.
async fn drain(
    client: &Client,
    cluster: &Mutex<Cluster>,
    incarnations: &Incarnations,
    rec: &Recorder,
    peer_tls: Option<&tonic::transport::ClientTlsConfig>,
) -> bool {
    let addrs: BTreeMap<u64, String> = cluster.lock().await.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    let mut converged = true;
    let mut groups = Vec::new();
    for topic in incarnations.live() {
        let described = match until_deadline(Duration::from_secs(90), || client.describe_topic(&topic.name)).await {
            Ok(d) if d.topic.as_ref().is_some_and(|t| t.topic_id == topic.topic_id || t.topic_id == 0) => d,
            Ok(_) => {
                eprintln!("cairn-jepsen: drain: topic {} is another incarnation than {}", topic.name, topic.topic_id);
                converged = false;
                continue;
            }
            Err(e) => {
                eprintln!("cairn-jepsen: drain: topic {} could not be described: {e}", topic.name);
                converged = false;
                continue;
            }
        };
        // More partitions than the run knows: an add-partitions whose answer was lost at the
        // end; nothing was sent to those.
        converged &= described.partitions.len() >= incarnations.partitions() as usize;
        for part in described.partitions.iter().take(incarnations.partitions() as usize) {
            let p = part.partition;
            groups.push(part.group_id);
            let latest = || client.list_offsets(&topic.name, p, OffsetSpec::Latest);
            let Ok(hw) = until_deadline(Duration::from_secs(90), latest).await.map(|r| r.offset) else {
                converged = false;
                continue;
            };
            for id in &part.replica_node_ids {
                let Some(addr) = addrs.get(id) else {
                    converged = false;
                    continue;
                };
                let (complete, v) = read_replica(client, addr, &topic, p, hw).await;
                converged &= complete;
                let kind = if complete { OpType::Ok } else { OpType::Fail };
                rec.record(kind, DRAIN, Some(*id), "final-read", v, None, None);
            }
        }
    }
    let nodes: Vec<(u64, String)> = cluster.lock().await.nodes.iter().map(|n| (n.id, n.peer_addr.clone())).collect();
    for g in groups {
        if leader_of(&nodes, g, peer_tls).await.is_none() {
            rec.nemesis("no-leader-after-heal", json!({"group": g}));
        }
    }
    converged
}

/// Retries `call` until it succeeds or `limit` has passed; the last error otherwise.
async fn until_deadline<T, F, Fut>(limit: Duration, call: F) -> Result<T, ClientError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match call().await {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "retrying until the deadline");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads partition `p` of incarnation `topic` from one replica up to the leader's high watermark
/// `hw`, giving the replica 90 s to catch up. Returns whether it got there, and the final-read
/// op's value (its partition the virtual one).
async fn read_replica(
    client: &Client,
    addr: &str,
    topic: &crate::incarnations::Incarnation,
    p: u32,
    hw: u64,
) -> (bool, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut records = Vec::new();
    let (mut pos, mut log_start, mut node_hw) = (0u64, 0u64, 0u64);
    let mut altered = Vec::new();
    while pos < hw && Instant::now() < deadline {
        let req = FetchRequest {
            topic: topic.name.clone(),
            partition: p,
            offset: pos,
            max_bytes: 1 << 20,
            max_wait_ms: 200,
            topic_id: topic.topic_id,
        };
        match client.fetch_from_node(addr, req).await {
            Ok(r) => {
                log_start = r.log_start_offset;
                node_hw = r.high_watermark;
                if pos < log_start {
                    pos = log_start;
                }
                altered.extend(crate::workload::altered_offsets(&r.records));
                for x in &r.records {
                    let value = String::from_utf8_lossy(&x.value).parse::<u64>().unwrap_or(u64::MAX);
                    records.push(json!([x.offset, value, digest(x)]));
                    pos = x.offset + 1;
                }
            }
            // Retention moved the log start past `pos`: read on from there.
            Err(e) if e.offset_bounds().is_some_and(|(start, _)| pos < start) => {
                if let Some((start, _)) = e.offset_bounds() {
                    log_start = start;
                    pos = start;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let complete = pos >= hw;
    let v = json!({
        "partition": topic.base + p,
        "log_start": log_start,
        "high_watermark": node_hw.max(pos),
        "records": records,
        "complete": complete,
        "altered": altered,
    });
    (complete, v)
}
