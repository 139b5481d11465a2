//! Workloads: producers sending unique integers to partitions, consumers polling assigned
//! partitions from their position (Jepsen's Kafka queue test).
//!
//! - `queue`: each producer process sends one record at a time through an idempotent
//!   `Producer` and waits for its acknowledgement.
//! - `idempotent`: each producer keeps many sends in flight (5 batches per partition on the
//!   wire) with a short request timeout, so retries of in-doubt batches are frequent; the run
//!   also loses a share of produce answers on the nodes (a fault switch) to force more.
//!
//! A send that fails definitely is `fail`; one whose outcome is unknown is `info`, after which
//! the process continues as a new process (Jepsen's convention) with a new producer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientError, Producer, ProducerConfig, Record, RecordAck, RecordExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::history::{OpType, Recorder};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    Queue,
    Idempotent,
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
}

pub struct Shared {
    pub client: Arc<Client>,
    pub rec: Recorder,
    pub spec: WorkloadSpec,
    pub stop: AtomicBool,
    pub next_value: AtomicU64,
}

fn classify(e: &ClientError) -> OpType {
    if e.is_definite() {
        OpType::Fail
    } else {
        OpType::Info
    }
}

fn producer_config(kind: WorkloadKind) -> ProducerConfig {
    match kind {
        WorkloadKind::Queue => ProducerConfig {
            linger: Duration::ZERO,
            request_timeout: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
        WorkloadKind::Idempotent => ProducerConfig {
            linger: Duration::from_millis(2),
            batch_records_max: 4,
            request_timeout: Duration::from_millis(400),
            delivery_timeout: Duration::from_secs(30),
            ..ProducerConfig::default()
        },
    }
}

/// The completion of one send: its type, value (with offset and sequence when acknowledged),
/// error, and the producer identity it went under (a partition may have taken a new one).
fn send_completion(
    partition: u32,
    value: u64,
    res: Result<RecordAck, ClientError>,
    who: &Value,
) -> (OpType, Value, Option<String>, Value) {
    match res {
        Ok(ack) => (
            OpType::Ok,
            json!({"partition": partition, "value": value, "offset": ack.offset, "sequence": ack.sequence}),
            None,
            json!({"id": ack.producer_id, "epoch": ack.epoch}),
        ),
        Err(e) => (classify(&e), json!({"partition": partition, "value": value}), Some(e.to_string()), who.clone()),
    }
}

/// Producer process `worker` (process ids `worker`, `worker + producers`, ... after crashes).
pub async fn producer(shared: Arc<Shared>, worker: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = shared.spec.clone();
    let mut process = i64::from(worker);
    let pause = Duration::from_secs_f64(f64::from(spec.producers) / f64::from(spec.rate.max(1)));
    let window = if spec.kind == WorkloadKind::Idempotent { 16 } else { 1 };
    'process: while !shared.stop.load(Ordering::SeqCst) {
        let p = match Producer::new(shared.client.clone(), producer_config(spec.kind)).await {
            Ok(p) => p,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let who = json!({"id": p.producer_id(), "epoch": p.epoch()});
        let mut in_flight = VecDeque::new();
        loop {
            let stopping = shared.stop.load(Ordering::SeqCst);
            if !stopping && in_flight.len() < window {
                let partition = rng.random_range(0..spec.partitions);
                let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
                let v = json!({"partition": partition, "value": value});
                shared.rec.record(OpType::Invoke, process, None, "send", v, None, Some(who.clone()));
                match p.send(&spec.topic, Some(partition), Record::from_value(value.to_string())).await {
                    Ok(delivery) => in_flight.push_back((partition, value, delivery)),
                    Err(e) => {
                        let (kind, val, err, id) = send_completion(partition, value, Err(e), &who);
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
            let Some((partition, value, delivery)) = in_flight.pop_front() else {
                if stopping {
                    return;
                }
                continue;
            };
            let (kind, val, err, id) = send_completion(partition, value, delivery.await, &who);
            shared.rec.record(kind, process, None, "send", val, err, Some(id));
            if kind == OpType::Info {
                // Unknown outcome: this producer is done. The sends still in flight
                // complete (or fail) under the same process before it is retired.
                for (partition, value, d) in in_flight.drain(..) {
                    let (kind, val, err, id) = send_completion(partition, value, d.await, &who);
                    shared.rec.record(kind, process, None, "send", val, err, Some(id));
                }
                process += i64::from(spec.producers);
                continue 'process;
            }
        }
    }
}

/// Consumer process `worker`: assigns itself random partitions, polls them from its position,
/// and reassigns now and then.
pub async fn consumer(shared: Arc<Shared>, worker: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = shared.spec.clone();
    let process = 10_000 + i64::from(worker);
    let mut positions: BTreeMap<u32, u64> = BTreeMap::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let mut assigned: Vec<u32> = (0..spec.partitions).filter(|_| rng.random_bool(0.5)).collect();
        if assigned.is_empty() {
            assigned.push(rng.random_range(0..spec.partitions));
        }
        let offsets: Vec<u64> = assigned.iter().map(|p| *positions.get(p).unwrap_or(&0)).collect();
        shared.rec.record(
            OpType::Invoke,
            process,
            None,
            "assign",
            json!({"partitions": assigned, "offsets": offsets}),
            None,
            None,
        );
        shared.rec.record(
            OpType::Ok,
            process,
            None,
            "assign",
            json!({"partitions": assigned, "offsets": offsets}),
            None,
            None,
        );
        for _ in 0..rng.random_range(10..40) {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let p = assigned[rng.random_range(0..assigned.len())];
            let from = *positions.get(&p).unwrap_or(&0);
            shared.rec.record(OpType::Invoke, process, None, "poll", json!({"partition": p, "from": from}), None, None);
            match shared.client.fetch(&spec.topic, p, from, 64 << 10, 200).await {
                Ok(resp) => {
                    let records: Vec<serde_json::Value> = resp
                        .records
                        .iter()
                        .map(|r| {
                            json!([r.offset, String::from_utf8_lossy(&r.value).parse::<u64>().unwrap_or(u64::MAX)])
                        })
                        .collect();
                    if let Some(last) = resp.records.last() {
                        positions.insert(p, last.offset + 1);
                    }
                    shared.rec.record(
                        OpType::Ok,
                        process,
                        None,
                        "poll",
                        json!({"partition": p, "records": records}),
                        None,
                        None,
                    );
                }
                // A read changes nothing: every failed poll is definite.
                Err(e) => shared.rec.record(
                    OpType::Fail,
                    process,
                    None,
                    "poll",
                    json!({"partition": p}),
                    Some(e.to_string()),
                    None,
                ),
            }
        }
    }
}
