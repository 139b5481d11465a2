//! Workloads: producers sending unique integers to partitions, consumers polling assigned
//! partitions from their position (Jepsen's Kafka queue test).
//!
//! - `queue`: each producer process sends one record at a time through an idempotent
//!   `Producer` and waits for its acknowledgement.
//! - `idempotent`: each producer keeps many sends in flight (5 batches per partition on the
//!   wire) with a short request timeout, so retries of in-doubt batches are frequent; the run
//!   also loses a share of produce answers on the nodes (a fault switch) to force more.
//!
//! - `topics`: like `idempotent`, but over topics created while the run goes on (a creator adds
//!   one every few seconds; the `recreate` nemesis deletes and re-creates them): metadata that
//!   lags on some node, and more than one incarnation of a topic name.
//!
//! A send that fails definitely is `fail`; one whose outcome is unknown is `info`, after which
//! the process continues as a new process (Jepsen's convention) with a new producer. Partitions
//! in the history are virtual partitions ([`crate::incarnations`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientError, Header, Producer, ProducerConfig, Record, RecordAck, RecordExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::history::{OpType, Recorder};
use crate::incarnations::{Incarnation, Incarnations};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Queue,
    Idempotent,
    Topics,
    /// Producers as in `queue`; consumers are consumer group members in processes of their own
    /// ([`crate::members`]), joining, leaving, crashing and pausing as the run goes.
    Group,
    /// As `queue`, on a topic with a tight size limit and small segments, so retention truncates
    /// every partition all the time; consumers that fall below the log start move to it, and a
    /// monitor watches every replica's log start.
    Retention,
    /// Writers race on a few keys with per-key conditional appends ([`crate::conditional`]);
    /// consumers as in `queue`.
    Conditional,
    /// As `queue`, while clients register schemas with the schema registry ([`crate::registry`]).
    Registry,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Queue => "queue",
            WorkloadKind::Idempotent => "idempotent",
            WorkloadKind::Topics => "topics",
            WorkloadKind::Group => "group",
            WorkloadKind::Retention => "retention",
            WorkloadKind::Conditional => "conditional",
            WorkloadKind::Registry => "registry",
        }
    }

    /// Whether sends are pipelined with forced retries (answers dropped by the nodes).
    pub fn pipelined(self) -> bool {
        !matches!(
            self,
            WorkloadKind::Queue
                | WorkloadKind::Group
                | WorkloadKind::Retention
                | WorkloadKind::Conditional
                | WorkloadKind::Registry
        )
    }
}

/// Settings shared by every worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    pub topic: String,
    pub partitions: u32,
    pub producers: u32,
    pub consumers: u32,
    /// Target sends per second, all producers together.
    pub rate: u32,
    /// Negative control: the producers trust a definite refusal of a retry (the behaviour
    /// before in-doubt tracking).
    pub trust_retry_refusals: bool,
    /// Negative control: group members commit before they record (process) what they polled.
    pub commit_before_processing: bool,
    /// Partitions added to the topic during the run, one at a time (`add-partitions` ops).
    pub add_partitions: u32,
}

pub struct Shared {
    pub client: Arc<Client>,
    pub rec: Recorder,
    pub spec: WorkloadSpec,
    pub stop: AtomicBool,
    pub next_value: AtomicU64,
    /// The topics the run writes to (one for `queue` and `idempotent`).
    pub incarnations: Arc<Incarnations>,
    /// Replication factor of topics created during the run.
    pub replication_factor: u32,
}

fn classify(e: &ClientError) -> OpType {
    if e.is_definite() {
        OpType::Fail
    } else {
        OpType::Info
    }
}

fn producer_config(spec: &WorkloadSpec) -> ProducerConfig {
    let cfg = match spec.kind {
        WorkloadKind::Queue
        | WorkloadKind::Group
        | WorkloadKind::Retention
        | WorkloadKind::Conditional
        | WorkloadKind::Registry => ProducerConfig {
            linger: Duration::ZERO,
            request_timeout: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
        WorkloadKind::Idempotent | WorkloadKind::Topics => ProducerConfig {
            linger: Duration::from_millis(2),
            batch_records_max: 4,
            request_timeout: Duration::from_millis(400),
            delivery_timeout: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
    };
    ProducerConfig { fault_trust_retry_refusals: spec.trust_retry_refusals, ..cfg }
}

/// The completion of one send: its type, value (with the virtual partition it landed in, offset
/// and sequence when acknowledged), error, and the producer identity it went under (a partition
/// may have taken a new one).
pub(crate) fn send_completion(
    inc: &Incarnations,
    target: &(Incarnation, u32),
    value: u64,
    res: Result<RecordAck, ClientError>,
    who: &Value,
) -> (OpType, Value, Option<String>, Value) {
    let (topic, p) = target;
    let intended = topic.base + p;
    match res {
        Ok(ack) => {
            // The acknowledgement names the incarnation it went to (0: a server without ids).
            let vp = inc.virtual_partition(&topic.name, ack.topic_id, *p).unwrap_or(intended);
            (
                OpType::Ok,
                json!({"partition": vp, "value": value, "offset": ack.offset, "sequence": ack.sequence}),
                None,
                json!({"id": ack.producer_id, "epoch": ack.epoch}),
            )
        }
        Err(e) => (classify(&e), json!({"partition": intended, "value": value}), Some(e.to_string()), who.clone()),
    }
}

/// A new producer process's producer and its identity for the history; None (after a pause)
/// when the cluster could not give one now.
pub(crate) async fn new_producer(shared: &Shared) -> Option<(Producer, Value)> {
    match Producer::new(shared.client.clone(), producer_config(&shared.spec)).await {
        Ok(p) => {
            let who = json!({"id": p.producer_id(), "epoch": p.epoch()});
            Some((p, who))
        }
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            None
        }
    }
}

/// Producer process `worker` (process ids `worker`, `worker + producers`, ... after crashes).
pub async fn producer(shared: Arc<Shared>, worker: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = shared.spec.clone();
    let inc = shared.incarnations.clone();
    let mut process = i64::from(worker);
    let pause = Duration::from_secs_f64(f64::from(spec.producers) / f64::from(spec.rate.max(1)));
    let window = if spec.kind.pipelined() { 16 } else { 1 };
    'process: while !shared.stop.load(Ordering::SeqCst) {
        let Some((p, who)) = new_producer(&shared).await else { continue };
        let mut in_flight = VecDeque::new();
        loop {
            let stopping = shared.stop.load(Ordering::SeqCst);
            if !stopping && in_flight.len() < window {
                let Some(target) = inc.pick(&mut rng) else {
                    tokio::time::sleep(pause).await;
                    continue;
                };
                let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
                let v = json!({"partition": target.0.base + target.1, "value": value});
                shared.rec.record(OpType::Invoke, process, None, "send", v, None, Some(who.clone()));
                match p.send(&target.0.name, Some(target.1), record(value)).await {
                    Ok(delivery) => in_flight.push_back((target, value, delivery)),
                    Err(e) => {
                        let (kind, val, err, id) = send_completion(&inc, &target, value, Err(e), &who);
                        shared.rec.record(kind, process, None, "send", val, err, Some(id));
                        if kind == OpType::Info {
                            process += i64::from(spec.producers);
                            continue 'process;
                        }
                    }
                }
                tokio::time::sleep(pause).await;
                continue;
            }
            let Some((target, value, delivery)) = in_flight.pop_front() else {
                if stopping {
                    return;
                }
                continue;
            };
            let (kind, val, err, id) = send_completion(&inc, &target, value, delivery.await, &who);
            shared.rec.record(kind, process, None, "send", val, err, Some(id));
            if kind == OpType::Info {
                // Unknown outcome: this producer is done. The sends still in flight
                // complete (or fail) under the same process before it is retired.
                for (target, value, d) in in_flight.drain(..) {
                    let (kind, val, err, id) = send_completion(&inc, &target, value, d.await, &who);
                    shared.rec.record(kind, process, None, "send", val, err, Some(id));
                }
                process += i64::from(spec.producers);
                continue 'process;
            }
        }
    }
}

/// The `topics` workload's creator (process 20000): a new topic every few seconds, each a new
/// incarnation with its own virtual partitions.
pub async fn creator(shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let process = 20_000;
    let mut k = 1u32;
    while !shared.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..6_000))).await;
        let name = format!("{}-{k}", shared.spec.topic);
        k += 1;
        shared.rec.record(OpType::Invoke, process, None, "create", json!({"topic": name}), None, None);
        let partitions = shared.incarnations.partitions();
        match shared.client.create_topic(&name, partitions, shared.replication_factor, None).await {
            Ok(t) => {
                let base = shared.incarnations.add(&name, t.topic_id);
                let v = json!({"topic": name, "topic_id": t.topic_id, "partitions": [base, base + partitions - 1]});
                shared.rec.record(OpType::Ok, process, None, "create", v, None, None);
            }
            Err(e) => {
                let kind = classify(&e);
                shared.rec.record(kind, process, None, "create", json!({"topic": name}), Some(e.to_string()), None);
            }
        }
    }
}

/// The process id of [`grower`].
pub const GROWER: i64 = 20_001;

/// Adds [`WorkloadSpec::add_partitions`] partitions to the run's topic, one at a time, at
/// evenly spread moments before `until` (process [`GROWER`], `add-partitions` ops). A request
/// that fails or whose outcome is unknown is retried (growing to a count is idempotent); once
/// acknowledged, this client's metadata is reloaded and the workers use the new partition.
pub async fn grower(shared: Arc<Shared>, start: tokio::time::Instant, until: tokio::time::Instant) {
    let n = shared.spec.add_partitions;
    let first = shared.incarnations.partitions();
    let topic = shared.spec.topic.clone();
    for k in 1..=n {
        // With n + 2 slices, the last growth leaves a slice of the fault window to use it.
        let at = start + (until - start) * k / (n + 2);
        tokio::time::sleep_until(at).await;
        let to = first + k;
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let v = json!({"topic": topic, "partitions": to});
            shared.rec.record(OpType::Invoke, GROWER, None, "add-partitions", v.clone(), None, None);
            match shared.client.create_partitions(&topic, to).await {
                Ok(t) => {
                    shared.rec.record(OpType::Ok, GROWER, None, "add-partitions", v, None, None);
                    let _ = shared.client.refresh_metadata().await;
                    shared.incarnations.grow(t.partitions.min(to));
                    break;
                }
                Err(e) => {
                    shared.rec.record(classify(&e), GROWER, None, "add-partitions", v, Some(e.to_string()), None);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Consumer process `worker`: assigns itself random live partitions, polls them from its
/// position (each from the incarnation it means), and reassigns now and then.
pub async fn consumer(shared: Arc<Shared>, worker: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let inc = shared.incarnations.clone();
    let process = 10_000 + i64::from(worker);
    let mut positions: BTreeMap<u32, u64> = BTreeMap::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let mut assigned: Vec<(Incarnation, u32)> = Vec::new();
        for topic in inc.live() {
            for p in 0..inc.partitions() {
                if rng.random_bool(0.5) {
                    assigned.push((topic.clone(), p));
                }
            }
        }
        if assigned.is_empty() {
            match inc.pick(&mut rng) {
                Some(t) => assigned.push(t),
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let vps: Vec<u32> = assigned.iter().map(|(t, p)| t.base + p).collect();
        let offsets: Vec<u64> = vps.iter().map(|p| *positions.get(p).unwrap_or(&0)).collect();
        let v = json!({"partitions": vps, "offsets": offsets});
        shared.rec.record(OpType::Invoke, process, None, "assign", v.clone(), None, None);
        shared.rec.record(OpType::Ok, process, None, "assign", v, None, None);
        'polls: for _ in 0..rng.random_range(10..40) {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let (topic, p) = &assigned[rng.random_range(0..assigned.len())];
            let vp = topic.base + p;
            let from = *positions.get(&vp).unwrap_or(&0);
            shared.rec.record(
                OpType::Invoke,
                process,
                None,
                "poll",
                json!({"partition": vp, "from": from}),
                None,
                None,
            );
            match shared.client.fetch_incarnation(&topic.name, topic.topic_id, *p, from, 64 << 10, 200).await {
                Ok(resp) => {
                    // The answer names the incarnation it read (0: a server without ids).
                    let read = inc.virtual_partition(&topic.name, resp.topic_id, *p).unwrap_or(vp);
                    let records: Vec<serde_json::Value> = resp
                        .records
                        .iter()
                        .map(|r| {
                            json!([r.offset, String::from_utf8_lossy(&r.value).parse::<u64>().unwrap_or(u64::MAX)])
                        })
                        .collect();
                    if let (Some(last), true) = (resp.records.last(), read == vp) {
                        positions.insert(vp, last.offset + 1);
                    }
                    let altered = altered_offsets(&resp.records);
                    let v = json!({"partition": read, "records": records, "altered": altered,
                                   "log_start": resp.log_start_offset});
                    shared.rec.record(OpType::Ok, process, None, "poll", v, None, None);
                }
                // A read changes nothing: every failed poll is definite.
                Err(e) => {
                    let bounds = e.offset_bounds();
                    let v = json!({"partition": vp, "log_start": bounds.map(|b| b.0)});
                    shared.rec.record(OpType::Fail, process, None, "poll", v, Some(e.to_string()), None);
                    if let Some((log_start, _)) = bounds.filter(|(start, _)| from < *start) {
                        // Retention removed what this consumer had not read yet: continue from
                        // the log start (the reset policy `earliest`), as a new assignment.
                        positions.insert(vp, log_start);
                        break 'polls;
                    }
                }
            }
        }
    }
}

/// The `retention` workload's monitor (process MONITOR): every 250 ms, each node's view of each
/// partition's bounds (`log-bounds` ops), read straight from that node's replica.
pub async fn log_bounds_monitor(shared: Arc<Shared>, nodes: Vec<(u64, String)>) {
    while !shared.stop.load(Ordering::SeqCst) {
        for topic in shared.incarnations.live() {
            for p in 0..shared.incarnations.partitions() {
                // Nodes at once: a paused one only delays its own answer.
                let asks = nodes.iter().map(|(id, addr)| {
                    // Far beyond the end: the leader refuses with its bounds, a follower answers
                    // with none and its bounds; either way nothing is read.
                    let req = cairn_proto::v1::FetchRequest {
                        topic: topic.name.clone(),
                        partition: p,
                        offset: u64::MAX / 2,
                        max_bytes: 1,
                        max_wait_ms: 0,
                        topic_id: topic.topic_id,
                    };
                    let shared = shared.clone();
                    let base = topic.base;
                    async move {
                        let bounds = match shared.client.fetch_from_node(addr, req).await {
                            Ok(r) => Some((r.log_start_offset, r.high_watermark)),
                            Err(e) => e.offset_bounds(),
                        };
                        if let Some((log_start, hw)) = bounds {
                            let v = json!({"partition": base + p, "log_start": log_start, "high_watermark": hw});
                            shared.rec.record(
                                OpType::Ok,
                                crate::history::MONITOR,
                                Some(*id),
                                "log-bounds",
                                v,
                                None,
                                None,
                            );
                        }
                    }
                });
                futures::future::join_all(asks).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pad(value: u64) -> Vec<u8> {
    (0..300u64).map(|i| (value.wrapping_mul(31).wrapping_add(i) % 251) as u8).collect()
}

/// The record sent for `value`: the value as text, plus a header of 300 bytes derived from it,
/// so entries are large enough for RocksDB's blob files (where the `corrupt` nemesis damages
/// record bytes) and every reader can tell an altered record from the one sent.
pub(crate) fn record(value: u64) -> Record {
    let mut r = Record::from_value(value.to_string());
    r.headers.push(Header { key: "pad".into(), value: pad(value).into() });
    r
}

/// Whether `r` is exactly what a producer of this workload sent: a decimal value and the pad
/// derived from it (`altered-record` counts the others).
pub fn intact(r: &cairn_client::FetchedRecord) -> bool {
    let Ok(v) = std::str::from_utf8(&r.value).unwrap_or("x").parse::<u64>() else { return false };
    // The conditional workload's records carry one of its keys.
    let key_ok =
        r.key.is_empty() || r.key.strip_prefix(b"k").is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit));
    key_ok && r.headers.len() == 1 && r.headers[0].key == "pad" && r.headers[0].value[..] == pad(v)[..]
}

/// Offsets of the records among `records` that are not [`intact`].
pub fn altered_offsets(records: &[cairn_client::FetchedRecord]) -> Vec<u64> {
    records.iter().filter(|r| !intact(r)).map(|r| r.offset).collect()
}
