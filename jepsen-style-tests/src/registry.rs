//! The `registry` workload: besides the records of `queue`, clients register schemas with the
//! schema registry through random nodes' HTTP listeners while the nemesis strikes (the kill
//! nemesis also targets the node leading `__schemas`). After healing, the registry is read back
//! once (`registry-final`); the `registry-*` checkers compare it with what was acknowledged.
//!
//! Schemas are Avro records `Ev` from one chain: schema `k` has the string field `f0` and the
//! long fields `f1..fk`, each with a default, so any of them may follow any other under
//! BACKWARD (the default level). The *incompatible* schema makes `f0` an int: it is sent only
//! to a subject on which a chain schema was acknowledged before, so accepting it is always
//! wrong. Each worker writes its own subject (one writer: its versions follow its order) and a
//! subject all workers share (races: the same schema from two workers is one version).
//!
//! In the history: `register` invocations carry `subject`, `k` and `compatible`; ok completions
//! `id`; fail completions the registry's `error_code`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::history::{Op, OpType, Recorder, DRAIN};

/// Registering workers.
pub const WORKERS: u32 = 3;
/// Process ids of the registering workers start here (apart from producers and consumers).
const PROCESS_BASE: i64 = 10_000;
/// Highest chain schema sent to the shared subject.
const SHARED_K_MAX: u32 = 12;
/// The subject every worker registers to.
pub const SHARED_SUBJECT: &str = "reg-shared";
/// One registration's deadline (the node waits up to 10 s for a registry leader).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn own_subject(worker: u32) -> String {
    format!("reg-w{worker}")
}

/// Chain schema `k`, or the incompatible one.
pub fn schema(k: u32, compatible: bool) -> String {
    if !compatible {
        return r#"{"type":"record","name":"Ev","fields":[{"name":"f0","type":"int"}]}"#.to_string();
    }
    let mut fields = vec![json!({"name": "f0", "type": "string"})];
    fields.extend((1..=k).map(|i| json!({"name": format!("f{i}"), "type": "long", "default": 0})));
    json!({"type": "record", "name": "Ev", "fields": fields}).to_string()
}

/// Which schema a registered text is: `(k, compatible)`, or None for a text of no chain.
pub fn identify(text: &str) -> Option<(u32, bool)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let fields = v.get("fields")?.as_array()?;
    let f0 = fields.first()?.get("type")?.as_str()?;
    match f0 {
        "string" => Some((fields.len() as u32 - 1, true)),
        "int" if fields.len() == 1 => Some((0, false)),
        _ => None,
    }
}

/// What the workers have seen acknowledged, shared among them.
#[derive(Debug, Default)]
pub struct Seen {
    /// Per subject: whether a chain schema was acknowledged there (an incompatible schema is
    /// sent only after one).
    subjects: BTreeMap<String, bool>,
    /// Ids acknowledged so far (read back by id while the faults go on).
    ids: Vec<u64>,
}

/// Worker `worker`: registers (and reads schemas back by id, 30% of its operations) until
/// `stop`, through the nodes at `http` (their HTTP listeners).
pub async fn worker(
    rec: Recorder,
    http: Vec<String>,
    worker: u32,
    seed: u64,
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<Seen>>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut process = PROCESS_BASE + i64::from(worker);
    let mut next_k = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let Some(node) = http.choose(&mut rng).cloned() else { return };
        let known = seen.lock().unwrap_or_else(|p| p.into_inner()).ids.choose(&mut rng).copied();
        if let Some(id) = known.filter(|_| rng.random_bool(0.3)) {
            read(&rec, process, &node, id).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..250))).await;
            continue;
        }
        let own = rng.random_bool(0.5);
        let subject = if own { own_subject(worker) } else { SHARED_SUBJECT.to_string() };
        let has_schema =
            seen.lock().unwrap_or_else(|p| p.into_inner()).subjects.get(&subject).copied().unwrap_or(false);
        let compatible = !(has_schema && rng.random_bool(0.15));
        let k = if own { next_k } else { rng.random_range(0..=SHARED_K_MAX) };
        rec.record(
            OpType::Invoke,
            process,
            None,
            "register",
            json!({"subject": subject, "k": k, "compatible": compatible}),
            None,
            None,
        );
        let body = json!({ "schema": schema(k, compatible) }).to_string();
        let path = format!("/subjects/{subject}/versions");
        let answer = crate::http::request(&node, "POST", &path, Some(&body), REQUEST_TIMEOUT).await;
        let parsed = answer.as_ref().ok().map(|(s, b)| (*s, serde_json::from_str::<Value>(b).unwrap_or(Value::Null)));
        match parsed {
            Some((200, v)) if v.get("id").and_then(Value::as_u64).is_some() => {
                rec.record(OpType::Ok, process, None, "register", json!({"id": v["id"]}), None, None);
                if let Some(id) = v["id"].as_u64() {
                    seen.lock().unwrap_or_else(|p| p.into_inner()).ids.push(id);
                }
                if compatible {
                    seen.lock().unwrap_or_else(|p| p.into_inner()).subjects.insert(subject, true);
                    if own {
                        next_k += 1;
                    }
                }
            }
            // A definite refusal (4xx); a 5xx may have been written (a timeout, a lost answer).
            Some((status, v)) if (400..500).contains(&status) => {
                let code = v["error_code"].as_u64().unwrap_or(u64::from(status));
                rec.record(OpType::Fail, process, None, "register", json!({"error_code": code}), None, None);
            }
            // Never sent: nothing can have been written.
            None if answer.as_ref().is_err_and(|e| !e.sent) => {
                let why = answer.err().map(|e| e.why);
                rec.record(OpType::Fail, process, None, "register", json!({"error_code": 0}), why, None);
            }
            other => {
                let why = match (other, answer) {
                    (Some((s, v)), _) => format!("HTTP {s}: {v}"),
                    (None, Err(e)) => e.to_string(),
                    (None, Ok(_)) => "no answer".to_string(),
                };
                rec.record(OpType::Info, process, None, "register", Value::Null, Some(why), None);
                // Jepsen style: a process with an unknown outcome does no more.
                process += i64::from(WORKERS);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..250))).await;
    }
}

/// Reads schema `id` (acknowledged earlier) from `node`: recorded as a `registry-read`, ok when
/// found, fail with the registry's code when refused, info without an answer.
async fn read(rec: &Recorder, process: i64, node: &str, id: u64) {
    rec.record(OpType::Invoke, process, None, "registry-read", json!({"id": id}), None, None);
    let answer = crate::http::request(node, "GET", &format!("/schemas/ids/{id}"), None, REQUEST_TIMEOUT).await;
    match answer {
        Ok((200, _)) => rec.record(OpType::Ok, process, None, "registry-read", json!({"id": id}), None, None),
        Ok((status, body)) if (400..500).contains(&status) => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let code = v["error_code"].as_u64().unwrap_or(u64::from(status));
            rec.record(OpType::Fail, process, None, "registry-read", json!({"error_code": code}), None, None);
        }
        Ok((status, body)) => rec.record(
            OpType::Info,
            process,
            None,
            "registry-read",
            Value::Null,
            Some(format!("HTTP {status}: {body}")),
            None,
        ),
        Err(e) => rec.record(OpType::Info, process, None, "registry-read", Value::Null, Some(e.why), None),
    }
}

/// After healing: reads every version of the workload's subjects from one node (the first that
/// answers everything within `limit`), recorded as one `registry-final` op.
pub async fn final_read(rec: &Recorder, http: &[String], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::from("no node tried");
    while tokio::time::Instant::now() < deadline {
        for node in http {
            match read_all(node).await {
                Ok(versions) => {
                    rec.record(OpType::Ok, DRAIN, None, "registry-final", json!({"versions": versions}), None, None);
                    return;
                }
                Err(e) => last = format!("{node}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rec.record(OpType::Fail, DRAIN, None, "registry-final", Value::Null, Some(last), None);
}

/// `[subject, version, id, k, compatible]` of every version of every `reg-*` subject.
async fn read_all(node: &str) -> anyhow::Result<Vec<Value>> {
    let get = |path: String| async move {
        let (status, body) = crate::http::request(node, "GET", &path, None, REQUEST_TIMEOUT).await?;
        anyhow::ensure!(status == 200, "GET {path}: HTTP {status} {body}");
        Ok::<Value, anyhow::Error>(serde_json::from_str(&body)?)
    };
    let subjects = get("/subjects".to_string()).await?;
    let mut out = Vec::new();
    for s in subjects.as_array().into_iter().flatten().filter_map(Value::as_str).filter(|s| s.starts_with("reg-")) {
        let versions = get(format!("/subjects/{s}/versions")).await?;
        for v in versions.as_array().into_iter().flatten().filter_map(Value::as_u64) {
            let got = get(format!("/subjects/{s}/versions/{v}")).await?;
            let text = got["schema"].as_str().unwrap_or_default();
            let (k, compatible) = identify(text).map_or((Value::Null, Value::Null), |(k, c)| (json!(k), json!(c)));
            out.push(json!([s, v, got["id"], k, compatible]));
        }
    }
    Ok(out)
}

/// One registration: what was sent and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub subject: String,
    pub k: u32,
    pub compatible: bool,
    pub invoke: u64,
    pub complete: Option<u64>,
    /// The id, when acknowledged.
    pub id: Option<u64>,
    pub outcome: OpType,
}

/// One version in the final read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalVersion {
    pub subject: String,
    pub version: u64,
    pub id: u64,
    /// `(k, compatible)`; None for a text of no chain.
    pub schema: Option<(u32, bool)>,
}

/// A read of a schema by id while the faults went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRead {
    pub id: u64,
    pub invoke: u64,
    pub outcome: OpType,
    /// The registry's error code of a refused read.
    pub code: Option<u64>,
}

/// The registry part of a history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryHistory {
    pub registrations: Vec<Registration>,
    pub reads: Vec<RegistryRead>,
    /// The final read (None: the run had no registry workload); `Some(Err)` when it failed.
    pub finals: Option<Result<Vec<FinalVersion>, String>>,
}

impl RegistryHistory {
    pub fn from_ops(ops: &[Op]) -> RegistryHistory {
        let mut h = RegistryHistory::default();
        let mut open: BTreeMap<i64, Registration> = BTreeMap::new();
        let mut reading: BTreeMap<i64, RegistryRead> = BTreeMap::new();
        for op in ops {
            match (op.f.as_str(), op.kind) {
                ("registry-read", OpType::Invoke) => {
                    let id = op.value["id"].as_u64().unwrap_or(0);
                    reading.insert(op.process, RegistryRead { id, invoke: op.time, outcome: OpType::Info, code: None });
                }
                ("registry-read", kind) => {
                    if let Some(mut r) = reading.remove(&op.process) {
                        r.outcome = kind;
                        r.code = op.value.get("error_code").and_then(Value::as_u64);
                        h.reads.push(r);
                    }
                }
                ("register", OpType::Invoke) => {
                    let v = &op.value;
                    open.insert(
                        op.process,
                        Registration {
                            subject: v["subject"].as_str().unwrap_or_default().to_string(),
                            k: v["k"].as_u64().unwrap_or(0) as u32,
                            compatible: v["compatible"].as_bool().unwrap_or(true),
                            invoke: op.time,
                            complete: None,
                            id: None,
                            outcome: OpType::Info,
                        },
                    );
                }
                ("register", kind) => {
                    if let Some(mut r) = open.remove(&op.process) {
                        r.complete = Some(op.time);
                        r.outcome = kind;
                        r.id = op.value.get("id").and_then(Value::as_u64);
                        h.registrations.push(r);
                    }
                }
                ("registry-final", OpType::Ok) => {
                    let versions = op.value["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| FinalVersion {
                            subject: v[0].as_str().unwrap_or_default().to_string(),
                            version: v[1].as_u64().unwrap_or(0),
                            id: v[2].as_u64().unwrap_or(0),
                            schema: v[3].as_u64().zip(v[4].as_bool()).map(|(k, c)| (k as u32, c)),
                        })
                        .collect();
                    h.finals = Some(Ok(versions));
                }
                ("registry-final", _) => h.finals = Some(Err(op.error.clone().unwrap_or_default())),
                _ => {}
            }
        }
        h.registrations.extend(open.into_values());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_identified_by_their_text() {
        for k in [0, 1, 7] {
            assert_eq!(identify(&schema(k, true)), Some((k, true)));
        }
        assert_eq!(identify(&schema(3, false)), Some((0, false)));
        assert_eq!(identify(r#""string""#), None);
    }
}
