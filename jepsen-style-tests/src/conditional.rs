//! The `conditional` workload: writers race on a few keys with per-key conditional appends
//! (`expected_key_offset`, optimistic concurrency), each through its own idempotent producer.
//!
//! Every writer keeps what it believes each key's last offset is, learnt from its own
//! acknowledgements and from the OFFSET_MISMATCH answers that tell where the key is now (a
//! compare-and-set loop). Several writers on one key keep losing races to each other, so most
//! sends are refused; the `conditional-conflict` checker proves that no two records were ever
//! appended against the same expected offset of a key, and that each record expected exactly
//! the offset of its key's record before it.
//!
//! In the history, a send's invocation carries `key` and `expected` (null: no record yet).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::Condition;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::history::OpType;
use crate::workload::{new_producer, record, send_completion, Shared};

/// Keys the writers race on (spread over the partitions: key `k` lives in partition
/// `k % partitions`).
pub const KEYS: u32 = 4;

/// The record key of key number `k`.
pub fn key_name(k: u32) -> String {
    format!("k{k}")
}

/// Writer process `worker` (process ids `worker`, `worker + producers`, ... after an unknown
/// outcome, which retires the process and its producer, as in the other workloads).
pub async fn writer(shared: Arc<Shared>, worker: u32, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = shared.spec.clone();
    let inc = shared.incarnations.clone();
    let mut process = i64::from(worker);
    let pause = Duration::from_secs_f64(f64::from(spec.producers) / f64::from(spec.rate.max(1)));
    // What this writer believes each key's last offset is (None: no record yet).
    let mut belief: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    'process: while !shared.stop.load(Ordering::SeqCst) {
        let Some((p, who)) = new_producer(&shared).await else { continue };
        while !shared.stop.load(Ordering::SeqCst) {
            let Some(topic) = inc.live().into_iter().next() else { return };
            let k = rng.random_range(0..KEYS);
            let partition = k % inc.partitions();
            let expected = belief.get(&k).copied().flatten();
            let value = shared.next_value.fetch_add(1, Ordering::SeqCst);
            let v =
                json!({"partition": topic.base + partition, "value": value, "key": key_name(k), "expected": expected});
            shared.rec.record(OpType::Invoke, process, None, "send", v, None, Some(who.clone()));
            let mut r = record(value);
            r.key = key_name(k).into_bytes().into();
            let res = match p.send_conditional(&topic.name, Some(partition), r, Condition::key_at(expected)).await {
                Ok(delivery) => delivery.await,
                Err(e) => Err(e),
            };
            match &res {
                Ok(ack) => {
                    belief.insert(k, Some(ack.offset));
                }
                Err(e) => {
                    if let Some(now) = e.mismatch().and_then(|m| m.key_offset).and_then(|s| s.expectation()) {
                        belief.insert(k, now);
                    }
                }
            }
            let (kind, val, err, id) = send_completion(&inc, &(topic, partition), value, res, &who);
            shared.rec.record(kind, process, None, "send", val, err, Some(id));
            if kind == OpType::Info {
                process += i64::from(spec.producers);
                continue 'process;
            }
            // Jitter, so writers of one key interleave differently every time.
            tokio::time::sleep(pause.mul_f64(rng.random_range(0.5..1.5))).await;
        }
    }
}
