//! Quotas under faults (secured runs): a second principal, `bulk`, authenticated by a bearer
//! token and held to a produce byte-rate quota on every node, floods a topic of its own with
//! several requests in flight, as fast as its client lets it (capped at many times the quota so
//! a node ignoring the quota does not swamp the machine). Each request is a `bulk-send` op with
//! its record bytes; the `over-quota` checker bounds the bytes acknowledged in every interval.
//!
//! The workload's own principal has no quota, so its sends (and the safety checkers over them)
//! see the faults, not the throttling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientConfig, Record, RecordExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::history::{OpType, Recorder};

/// The throttled principal (a bearer token's).
pub const BULK_PRINCIPAL: &str = "bulk";
/// Its topic (it may write only there).
pub const BULK_TOPIC: &str = "bulk";
/// Its produce quota on each node, in record bytes per second.
pub const BULK_BYTES_PER_SECOND: u64 = 64 << 10;
/// How far ahead of the quota a node lets a principal run (the node's burst, 1 s).
pub const BULK_BURST_NS: u64 = 1_000_000_000;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_REQUEST: usize = 16;
/// Record bytes of one request: the most one admission charges.
pub const REQUEST_BYTES: u64 = (RECORD_BYTES * RECORDS_PER_REQUEST) as u64;
/// Requests in flight. With every partition led by one node, the last in line waits about
/// `FLOODERS * REQUEST_BYTES / BULK_BYTES_PER_SECOND` = 1 s: well inside the node's 5 s
/// maximum wait and the client's timeout, so the flood is throttled, rarely refused.
const FLOODERS: i64 = 4;
/// Each flooder starts a request at most this often: 4 × 16 KiB every 50 ms offers 1.3 MB/s,
/// 7× the three nodes' quotas together.
const PACE: Duration = Duration::from_millis(50);
/// History processes of the flooders: -10, -11, ...
pub const BULK_PROCESS_BASE: i64 = -10;

/// The `bulk` principal's client settings: `base` (the CA) with its token, and timeouts longer
/// than the node's longest wait.
pub fn bulk_config(mut base: ClientConfig, token: &str) -> ClientConfig {
    base.token = Some(cairn_client::Token::new(token));
    base.request_timeout = Duration::from_secs(10);
    base.retry_deadline = Duration::from_secs(15);
    base
}

/// Records the quota the checker holds the flood to (the run's parameters, as nemesis info).
pub fn record_quota(rec: &Recorder, nodes: u64) {
    rec.nemesis(
        "quota",
        json!({
            "principal": BULK_PRINCIPAL,
            "produce_bytes_per_second": BULK_BYTES_PER_SECOND,
            "burst_ns": BULK_BURST_NS,
            "request_bytes_max": REQUEST_BYTES,
            "nodes": nodes,
        }),
    );
}

/// Floods [`BULK_TOPIC`] (`partitions` partitions) as the `bulk` principal until `stop`.
pub async fn flood(cfg: ClientConfig, partitions: u32, rec: Recorder, stop: Arc<AtomicBool>, seed: u64) {
    let client = match Client::connect(cfg).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            rec.nemesis("error", json!({"error": format!("the bulk client could not connect: {e}")}));
            return;
        }
    };
    let mut tasks = Vec::new();
    for i in 0..FLOODERS {
        let (client, rec, stop) = (client.clone(), rec.clone(), stop.clone());
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        tasks.push(tokio::spawn(async move {
            let process = BULK_PROCESS_BASE - i;
            let payload = vec![b'q'; RECORD_BYTES];
            while !stop.load(Ordering::SeqCst) {
                let next = tokio::time::Instant::now() + PACE;
                let partition = rng.random_range(0..partitions.max(1));
                let records: Vec<Record> =
                    (0..RECORDS_PER_REQUEST).map(|_| Record::from_value(payload.clone())).collect();
                let value = json!({"partition": partition, "bytes": REQUEST_BYTES});
                rec.record(OpType::Invoke, process, None, "bulk-send", value, None, None);
                let (kind, value, error) = match client.produce(BULK_TOPIC, partition, records).await {
                    Ok(r) => (OpType::Ok, json!({"partition": partition, "throttle_ms": r.throttle_time_ms}), None),
                    Err(e) if e.is_definite() => (OpType::Fail, json!({"partition": partition}), Some(e.to_string())),
                    Err(e) => (OpType::Info, json!({"partition": partition}), Some(e.to_string())),
                };
                rec.record(kind, process, None, "bulk-send", value, error, None);
                tokio::time::sleep_until(next).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The quota a run held the flood to (its `quota` nemesis info).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuotaSpec {
    pub bytes_per_second: u64,
    pub burst_ns: u64,
    pub request_bytes_max: u64,
    pub nodes: u64,
}

/// An acknowledged `bulk-send`.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkSend {
    pub invoke: u64,
    pub complete: u64,
    pub bytes: u64,
}

/// What the flood did, and the node restarts (each gives a node a fresh quota clock).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BulkHistory {
    pub quota: Option<QuotaSpec>,
    pub acked: Vec<BulkSend>,
    /// (from, to, count): `count` restarts somewhere between the two times.
    pub restarts: Vec<(u64, u64, u64)>,
}

impl BulkHistory {
    pub fn from_ops(ops: &[crate::history::Op]) -> BulkHistory {
        use crate::history::NEMESIS;
        let get = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let mut b = BulkHistory::default();
        let mut open: std::collections::BTreeMap<i64, (u64, u64)> = std::collections::BTreeMap::new();
        let mut window_from: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for op in ops {
            if op.process == NEMESIS {
                let v = &op.value;
                match op.f.as_str() {
                    "quota" => {
                        b.quota = Some(QuotaSpec {
                            bytes_per_second: get(v, "produce_bytes_per_second").unwrap_or(0),
                            burst_ns: get(v, "burst_ns").unwrap_or(0),
                            request_bytes_max: get(v, "request_bytes_max").unwrap_or(0),
                            nodes: get(v, "nodes").unwrap_or(0),
                        });
                    }
                    "stop-kill" => b.restarts.push((op.time, op.time, 1)),
                    // Storage damage restarts its node once or twice, the last time just
                    // before `<name>-done`.
                    "start-crash-loop" | "start-corrupt" | "start-wal-truncate" => {
                        window_from.insert(op.f.trim_start_matches("start-").to_string(), op.time);
                    }
                    "stop-crash-loop" | "corrupt-done" | "wal-truncate-done" => {
                        let name = op.f.trim_start_matches("stop-").trim_end_matches("-done");
                        let from = window_from.remove(name).unwrap_or(0);
                        let count = if name == "crash-loop" { get(v, "kills").unwrap_or(u64::MAX / 4) } else { 2 };
                        b.restarts.push((from, op.time, count));
                    }
                    // Healing restarts whatever is down: count every node.
                    "heal" => b.restarts.push((op.time, op.time, b.quota.as_ref().map_or(u64::MAX / 4, |q| q.nodes))),
                    _ => {}
                }
                continue;
            }
            if op.f != "bulk-send" {
                continue;
            }
            match op.kind {
                crate::history::OpType::Invoke => {
                    open.insert(op.process, (op.time, get(&op.value, "bytes").unwrap_or(0)));
                }
                kind => {
                    // Only acknowledged bytes are bounded; refused and unknown sends are not.
                    let Some((invoke, bytes)) = open.remove(&op.process) else { continue };
                    if kind == crate::history::OpType::Ok {
                        b.acked.push(BulkSend { invoke, complete: op.time, bytes });
                    }
                }
            }
        }
        b
    }
}
