//! Storage faults on real files of a stopped node: flipped bytes in one replica's blob, SST or
//! WAL files (`corrupt`), and a WAL cut short (`wal-truncate`). One node at a time, and the next
//! fault only once the cluster has repaired the previous one: damage on a majority of a
//! partition's replicas can lose acknowledged records, and that is not what is tested here.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_client::{Client, ReplicaState};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

/// Whether all `nodes` are up and every partition has a leader and every replica serving (in
/// sync or lagging), as an answering node with metadata sees it.
pub async fn repaired(client: &Client, nodes: u64) -> bool {
    let Ok(d) = client.describe_cluster().await else { return false };
    d.nodes.len() as u64 == nodes
        && !d.topics.is_empty()
        && d.nodes.iter().all(|n| n.alive && !n.awaiting_replacement)
        && !d.controller_reconfiguring
        && d.topics.iter().flat_map(|t| &t.partitions).all(|p| {
            p.leader_node_id != 0
                && !p.reconfiguring
                && p.replicas.iter().all(|r| matches!(r.state(), ReplicaState::InSync | ReplicaState::Lagging))
        })
}

fn files(db: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(db) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext) && p.metadata().is_ok_and(|m| m.len() > 128))
        .collect();
    out.sort();
    out
}

/// Flips one bit in each of 1–4 random bytes of a random blob, SST or WAL file in `db` (a
/// stopped node's database). The header and footer of blob and SST files are spared so the
/// damage lands in record data. Returns what was done.
pub fn flip_bytes(db: &Path, rng: &mut StdRng) -> anyhow::Result<Value> {
    // Record data (blob files) twice as often as keys (SST) or the WAL.
    let kinds: Vec<(&str, Vec<PathBuf>)> = [
        ("blob", files(db, "blob")),
        ("blob", files(db, "blob")),
        ("sst", files(db, "sst")),
        ("log", files(db, "log")),
    ]
    .into_iter()
    .filter(|(_, f)| !f.is_empty())
    .collect();
    let (kind, candidates) = kinds.choose(rng).ok_or_else(|| anyhow::anyhow!("no data files in {}", db.display()))?;
    let path = candidates.choose(rng).ok_or_else(|| anyhow::anyhow!("no {kind} file"))?;
    let len = path.metadata()?.len();
    let (lo, hi) = match *kind {
        "blob" => (30, len.saturating_sub(32)),
        "sst" => (0, len.saturating_sub(64)),
        _ => (0, len),
    };
    anyhow::ensure!(hi > lo, "{} is too small to damage", path.display());
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut offsets = Vec::new();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(lo..hi);
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut b)?;
        b[0] ^= 1 << rng.random_range(0..8);
        f.seek(SeekFrom::Start(at))?;
        f.write_all(&b)?;
        offsets.push(at);
    }
    f.sync_all()?;
    Ok(json!({"kind": kind, "file": path.display().to_string(), "len": len, "offsets": offsets}))
}

/// Cuts 1 byte to 64 KiB off the end of the newest WAL file in `db` (a stopped node's
/// database): records the node had fsynced and acknowledged are gone.
pub fn truncate_wal(db: &Path, rng: &mut StdRng) -> anyhow::Result<Value> {
    let newest =
        files(db, "log").into_iter().max().ok_or_else(|| anyhow::anyhow!("no WAL file in {}", db.display()))?;
    let len = newest.metadata()?.len();
    let cut = rng.random_range(1..=len.min(64 << 10));
    std::fs::OpenOptions::new().write(true).open(&newest)?.set_len(len - cut)?;
    Ok(json!({"file": newest.display().to_string(), "len": len, "cut": cut}))
}

/// Polls until [`repaired`] or `limit`; returns how long it took, or None.
pub async fn wait_repaired(client: &Client, nodes: u64, limit: Duration) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if repaired(client, nodes).await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// When the last complete scrubber pass of the node serving metrics at `metrics_addr` began (its
/// `cairn_scrub_last_pass_start_timestamp_seconds`); `None` when the node does not answer.
pub async fn last_scrub_pass_start(metrics_addr: &str) -> Option<SystemTime> {
    let (status, body) =
        crate::http::request(metrics_addr, "GET", "/metrics", None, Duration::from_secs(5)).await.ok()?;
    if status != 200 {
        return None;
    }
    let secs: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("cairn_scrub_last_pass_start_timestamp_seconds "))?
        .trim()
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0)))
}

/// Polls until the node at `metrics_addr` has completed a scrubber pass that began after
/// `since` (so it has read every serving replica's log since then), or `limit`; answers whether
/// it has. Damage that a read-back did not meet is found by such a pass (or by nothing).
pub async fn wait_scrubbed(metrics_addr: &str, since: SystemTime, limit: Duration) -> bool {
    let start = tokio::time::Instant::now();
    loop {
        if last_scrub_pass_start(metrics_addr).await.is_some_and(|t| t >= since) {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads every partition of every topic in `topics` from the replica at `addr`, up to the
/// partition's current end (at most `limit` in all), as a consumer attached to that node would:
/// a read that meets damaged data makes the node stop that replica and report it, so the
/// cluster's repair starts before the next fault. Answers are not checked here (the drain
/// checks every replica at the end).
///
/// Returns `(topic, partition, offset)` of every record read that is not what was sent
/// (reported as `altered-record`).
pub async fn read_back(
    client: &Client,
    addr: &str,
    topics: &[(String, u64, u32)],
    limit: Duration,
) -> Vec<(String, u32, u64)> {
    let mut altered = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    for (topic, topic_id, partitions) in topics {
        for p in 0..*partitions {
            let Ok(end) = client.list_offsets(topic, p, cairn_client::OffsetSpec::Latest).await else { continue };
            let mut pos = 0;
            while pos < end.offset && tokio::time::Instant::now() < deadline {
                let req = cairn_proto::v1::FetchRequest {
                    topic: topic.clone(),
                    partition: p,
                    offset: pos,
                    max_bytes: 1 << 20,
                    max_wait_ms: 100,
                    topic_id: *topic_id,
                };
                match client.fetch_from_node(addr, req).await {
                    Ok(r) if !r.records.is_empty() => {
                        altered.extend(
                            crate::workload::altered_offsets(&r.records).into_iter().map(|o| (topic.clone(), p, o)),
                        );
                        pos = r.records.last().map_or(pos, |x| x.offset + 1);
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    // Stopped: the replica found the damage; its repair is under way.
                    Err(e) if e.code() == Some(cairn_client::ErrorCode::ReplicaStopped) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await, // starting
                }
            }
        }
    }
    altered
}
