//! The recorded history: one JSON object per line with Jepsen's field names, and its parsed
//! form for the checkers.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `invoke`, then one of `ok`, `fail` (definitely not applied) or `info` (unknown outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One history event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub index: u64,
    /// Nanoseconds since the run started (one monotonic clock).
    pub time: u64,
    #[serde(rename = "type")]
    pub kind: OpType,
    /// Client process; the nemesis is -1, the final drain -2.
    pub process: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<u64>,
    pub f: String,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Idempotent producer identity of a send: `{"id": .., "epoch": ..}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub producer: Option<Value>,
}

pub const NEMESIS: i64 = -1;
pub const DRAIN: i64 = -2;
/// The group workload's reader of committed offsets.
pub const MONITOR: i64 = -3;

/// The machine's monotonic clock in nanoseconds (CLOCK_MONOTONIC): one clock for the run and
/// for the group members it starts as processes of their own, so their ops sort with its.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// Appends ops to `history.jsonl` (and keeps them for the checkers).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
    /// [`monotonic_ns`] when the run started: times are nanoseconds since then.
    base: u64,
}

struct RecorderInner {
    out: Option<std::io::BufWriter<std::fs::File>>,
    ops: Vec<Op>,
}

impl Recorder {
    /// Records into `path` (None: memory only, for tests).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn new(path: Option<&Path>) -> std::io::Result<Recorder> {
        let out = match path {
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
            None => None,
        };
        Ok(Recorder { inner: Arc::new(Mutex::new(RecorderInner { out, ops: Vec::new() })), base: monotonic_ns() })
    }

    /// Nanoseconds since the recorder started.
    pub fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.base)
    }

    /// The clock reading times count from (other processes stamp their ops with
    /// `monotonic_ns() - base`).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Appends an op another process stamped (its `time` kept; its index replaced).
    pub fn record_op(&self, mut op: Op) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        op.index = inner.ops.len() as u64;
        if let Some(out) = inner.out.as_mut() {
            if let Ok(line) = serde_json::to_string(&op) {
                let _ = writeln!(out, "{line}");
            }
        }
        inner.ops.push(op);
    }

    /// Appends one op; the arguments are the history's fields, one to one.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        kind: OpType,
        process: i64,
        node: Option<u64>,
        f: &str,
        value: Value,
        error: Option<String>,
        producer: Option<Value>,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let op = Op {
            index: inner.ops.len() as u64,
            time: self.now(),
            kind,
            process,
            node,
            f: f.to_string(),
            value,
            error,
            producer,
        };
        if let Some(out) = inner.out.as_mut() {
            if let Ok(line) = serde_json::to_string(&op) {
                let _ = writeln!(out, "{line}");
            }
        }
        inner.ops.push(op);
    }

    /// Nemesis events are `info` ops of process -1.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.record(OpType::Info, NEMESIS, None, f, value, None, None);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).ops.clone()
    }

    pub fn flush(&self) {
        if let Some(out) = self.inner.lock().unwrap_or_else(|p| p.into_inner()).out.as_mut() {
            let _ = out.flush();
        }
    }
}

/// Reads a stored history.
///
/// # Errors
/// I/O errors and malformed lines.
pub fn load(path: &Path) -> anyhow::Result<Vec<Op>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut ops = Vec::new();
    for (i, line) in f.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        ops.push(serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?);
    }
    Ok(ops)
}

/// The outcome of a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        offset: u64,
    },
    Fail,
    Info,
    /// Invoked, never completed (the run ended).
    Pending,
}

/// A send with its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Send {
    pub process: i64,
    pub partition: u32,
    pub value: u64,
    pub outcome: Outcome,
    pub producer: Option<(u64, u32)>,
    pub sequence: Option<u32>,
    /// A conditional send's key and expected last offset of it (None: no record yet).
    pub condition: Option<(String, Option<u64>)>,
    pub invoke_time: u64,
    pub complete_time: Option<u64>,
}

/// A successful poll: the records one consumer read from one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Poll {
    pub process: i64,
    pub partition: u32,
    pub from: u64,
    pub records: Vec<(u64, u64)>,
    pub time: u64,
    /// Incremented by every `assign` of this process: polls of different assignments are not
    /// expected to continue each other.
    pub assignment: u64,
    /// The log start the answering replica reported.
    pub log_start: Option<u64>,
}

/// A log start somebody was told of: a consumer process (by a poll's answer or an
/// out-of-range refusal) or the monitor (from one node's replica, with its high watermark).
#[derive(Clone, Debug, PartialEq)]
pub struct LogStartSeen {
    pub time: u64,
    pub partition: u32,
    pub log_start: u64,
    /// The consumer process that was told.
    pub process: Option<i64>,
    /// The node whose replica the monitor read, and that replica's high watermark.
    pub node: Option<(u64, u64)>,
}

/// One node's committed records of one partition after the run (the drain).
#[derive(Clone, Debug, PartialEq)]
pub struct FinalRead {
    pub node: u64,
    pub partition: u32,
    pub log_start: u64,
    pub high_watermark: u64,
    /// (offset, value, digest of the whole record).
    pub records: Vec<(u64, u64, u64)>,
}

/// A fault window (start and end times of one nemesis action).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

/// The history in the checkers' terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Analysis {
    pub sends: Vec<Send>,
    pub polls: Vec<Poll>,
    pub finals: Vec<FinalRead>,
    pub windows: Vec<Window>,
    /// Completed client ops: (time, latency ns, f, type) for the picture and liveness.
    pub completions: Vec<(u64, u64, String, OpType)>,
    pub end_time: u64,
    /// Virtual partitions of topic incarnations the run deleted (`delete-topic` nemesis ops):
    /// their records are gone with them, so loss checkers skip them.
    pub deleted: std::collections::BTreeSet<u32>,
    /// Reads that returned a record other than the one sent (damaged bytes served): which op,
    /// and what.
    pub altered: Vec<String>,
    /// What consumer group members did (the `group` workload).
    pub group: crate::group_history::GroupHistory,
    /// Log starts seen during the run (the `retention` workload), in history order.
    pub log_starts: Vec<LogStartSeen>,
    /// The throttled principal's flood (secured runs).
    pub bulk: crate::quota::BulkHistory,
    /// Schema registrations and the registry's final state (the `registry` workload).
    pub registry: crate::registry::RegistryHistory,
}

impl Analysis {
    /// The analysis without the sends, polls and final reads of deleted incarnations.
    pub fn without_deleted(&self) -> Analysis {
        if self.deleted.is_empty() {
            return self.clone();
        }
        let keep = |p: &u32| !self.deleted.contains(p);
        Analysis {
            sends: self.sends.iter().filter(|s| keep(&s.partition)).cloned().collect(),
            polls: self.polls.iter().filter(|p| keep(&p.partition)).cloned().collect(),
            finals: self.finals.iter().filter(|f| keep(&f.partition)).cloned().collect(),
            ..self.clone()
        }
    }
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn pairs(v: &Value) -> Vec<(u64, u64)> {
    v.as_array()
        .map(|a| a.iter().filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?))).collect())
        .unwrap_or_default()
}

/// Pairs invocations with completions (per process, Jepsen style) and collects what the
/// checkers need.
pub fn analyse(ops: &[Op]) -> Analysis {
    let mut a = Analysis { end_time: ops.last().map_or(0, |o| o.time), ..Analysis::default() };
    // Sends are paired by value (unique per send; a pipelining process has several open),
    // everything else by process.
    // (is a send, process or 0, value or 0): sends and other ops never share a key (a send's
    // value 0 once shared one with the monitor's committed reads, which took its invocation).
    let mut open: BTreeMap<(bool, i64, u64), &Op> = BTreeMap::new();
    let key =
        |op: &Op| if op.f == "send" { (true, 0, u(&op.value, "value").unwrap_or(0)) } else { (false, op.process, 0) };
    let mut assignment: BTreeMap<i64, u64> = BTreeMap::new();
    let mut fault_open: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops {
        if op.f == "bulk-send" {
            continue; // [`crate::quota::BulkHistory`]
        }
        if op.f == "register" || op.f == "registry-read" || op.f == "registry-final" {
            continue; // [`crate::registry::RegistryHistory`]
        }
        let altered = if op.f == "altered-read" { op.value.get("records") } else { op.value.get("altered") };
        if let Some(list) = altered.and_then(Value::as_array).filter(|l| !l.is_empty()) {
            let node = op.node.map_or(String::new(), |n| format!(" from node {n}"));
            a.altered.push(format!("{}{node} (op {}): altered records {}", op.f, op.index, Value::Array(list.clone())));
        }
        if op.process == NEMESIS {
            if op.f == "delete-topic" {
                if let Some(ps) = op.value.get("partitions").and_then(Value::as_array) {
                    a.deleted.extend(ps.iter().filter_map(Value::as_u64).map(|p| p as u32));
                }
            }
            if let Some(name) = op.f.strip_prefix("start-") {
                fault_open.insert(name.to_string(), op.time);
            } else if let Some(name) = op.f.strip_prefix("stop-") {
                if let Some(start) = fault_open.remove(name) {
                    a.windows.push(Window { name: name.to_string(), start, end: op.time });
                }
            }
            continue;
        }
        if op.process == MONITOR && op.f == "log-bounds" {
            let v = &op.value;
            if let (Some(p), Some(start), Some(hw), Some(node)) =
                (u(v, "partition"), u(v, "log_start"), u(v, "high_watermark"), op.node)
            {
                a.log_starts.push(LogStartSeen {
                    time: op.time,
                    partition: p as u32,
                    log_start: start,
                    process: None,
                    node: Some((node, hw)),
                });
            }
            continue;
        }
        if op.process == DRAIN {
            if op.f == "final-read" && op.kind == OpType::Ok {
                let v = &op.value;
                let records = v
                    .get("records")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?, r.get(2)?.as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                a.finals.push(FinalRead {
                    node: op.node.unwrap_or(0),
                    partition: u(v, "partition").unwrap_or(0) as u32,
                    log_start: u(v, "log_start").unwrap_or(0),
                    high_watermark: u(v, "high_watermark").unwrap_or(0),
                    records,
                });
            }
            continue;
        }
        match op.kind {
            OpType::Invoke => {
                if op.f == "assign" {
                    *assignment.entry(op.process).or_insert(0) += 1;
                }
                open.insert(key(op), op);
            }
            kind => {
                let Some(inv) = open.remove(&key(op)) else { continue };
                a.completions.push((op.time, op.time.saturating_sub(inv.time), op.f.clone(), kind));
                if op.f == "poll" {
                    if let Some(start) = u(&op.value, "log_start") {
                        a.log_starts.push(LogStartSeen {
                            time: op.time,
                            partition: u(&op.value, "partition").unwrap_or(0) as u32,
                            log_start: start,
                            process: Some(op.process),
                            node: None,
                        });
                    }
                }
                match op.f.as_str() {
                    "send" => a.sends.push(send_of(inv, Some(op))),
                    "poll" if kind == OpType::Ok => a.polls.push(Poll {
                        process: op.process,
                        partition: u(&op.value, "partition").unwrap_or(0) as u32,
                        from: u(&inv.value, "from").unwrap_or(0),
                        records: pairs(op.value.get("records").unwrap_or(&Value::Null)),
                        time: op.time,
                        assignment: assignment.get(&op.process).copied().unwrap_or(0),
                        log_start: u(&op.value, "log_start"),
                    }),
                    _ => {}
                }
            }
        }
    }
    for (_, inv) in open {
        if inv.f == "send" {
            a.sends.push(send_of(inv, None));
        }
    }
    for (name, start) in fault_open {
        a.windows.push(Window { name, start, end: a.end_time });
    }
    a.group = crate::group_history::GroupHistory::from_ops(ops);
    a.bulk = crate::quota::BulkHistory::from_ops(ops);
    a.registry = crate::registry::RegistryHistory::from_ops(ops);
    a
}

fn send_of(inv: &Op, done: Option<&Op>) -> Send {
    let outcome = match done {
        None => Outcome::Pending,
        Some(d) => match d.kind {
            OpType::Ok => Outcome::Ok { offset: u(&d.value, "offset").unwrap_or(u64::MAX) },
            OpType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        },
    };
    let producer = done.and_then(|d| d.producer.as_ref()).or(inv.producer.as_ref());
    // The completion names where the send landed (an incarnation other than the one meant).
    let partition = done.and_then(|d| u(&d.value, "partition")).or_else(|| u(&inv.value, "partition"));
    Send {
        process: inv.process,
        partition: partition.unwrap_or(0) as u32,
        value: u(&inv.value, "value").unwrap_or(0),
        outcome,
        producer: producer.and_then(|p| Some((u(p, "id")?, u(p, "epoch")? as u32))),
        sequence: done.and_then(|d| u(&d.value, "sequence")).map(|s| s as u32),
        condition: inv.value.get("key").and_then(Value::as_str).map(|k| (k.to_string(), u(&inv.value, "expected"))),
        invoke_time: inv.time,
        complete_time: done.map(|d| d.time),
    }
}

/// Helpers building histories by hand (checker tests).
pub mod build {
    use super::*;

    /// A tiny history builder: each call appends invoke + completion ops.
    #[derive(Default)]
    pub struct H {
        pub ops: Vec<Op>,
        t: u64,
    }

    impl H {
        fn push(
            &mut self,
            kind: OpType,
            process: i64,
            node: Option<u64>,
            f: &str,
            value: Value,
            producer: Option<Value>,
        ) {
            self.t += 1_000;
            self.ops.push(Op {
                index: self.ops.len() as u64,
                time: self.t,
                kind,
                process,
                node,
                f: f.into(),
                value,
                error: None,
                producer,
            });
        }

        pub fn send_ok(&mut self, process: i64, partition: u32, value: u64, offset: u64) -> &mut Self {
            self.push(OpType::Invoke, process, None, "send", json!({"partition": partition, "value": value}), None);
            self.push(
                OpType::Ok,
                process,
                None,
                "send",
                json!({"partition": partition, "value": value, "offset": offset}),
                None,
            );
            self
        }

        pub fn send_seq(
            &mut self,
            process: i64,
            partition: u32,
            value: u64,
            offset: u64,
            pid: u64,
            seq: u32,
        ) -> &mut Self {
            let p = Some(json!({"id": pid, "epoch": 0}));
            self.push(
                OpType::Invoke,
                process,
                None,
                "send",
                json!({"partition": partition, "value": value}),
                p.clone(),
            );
            self.push(
                OpType::Ok,
                process,
                None,
                "send",
                json!({"partition": partition, "value": value, "offset": offset, "sequence": seq}),
                p,
            );
            self
        }

        /// A conditional send of `key` expecting `expected`, acknowledged at `offset` (None:
        /// refused).
        pub fn send_cond(
            &mut self,
            process: i64,
            partition: u32,
            value: u64,
            key: &str,
            expected: Option<u64>,
            offset: Option<u64>,
        ) -> &mut Self {
            let v = json!({"partition": partition, "value": value, "key": key, "expected": expected});
            self.push(OpType::Invoke, process, None, "send", v, None);
            let (kind, done) = match offset {
                Some(o) => (OpType::Ok, json!({"partition": partition, "value": value, "offset": o})),
                None => (OpType::Fail, json!({"partition": partition, "value": value})),
            };
            self.push(kind, process, None, "send", done, None);
            self
        }

        /// A conditional send of `key` expecting `expected` whose outcome is unknown.
        pub fn push_cond_info(
            &mut self,
            process: i64,
            partition: u32,
            value: u64,
            key: &str,
            expected: Option<u64>,
        ) -> &mut Self {
            let v = json!({"partition": partition, "value": value, "key": key, "expected": expected});
            self.push(OpType::Invoke, process, None, "send", v, None);
            self.push(OpType::Info, process, None, "send", json!({"partition": partition, "value": value}), None);
            self
        }

        pub fn send_fail(&mut self, process: i64, partition: u32, value: u64) -> &mut Self {
            self.push(OpType::Invoke, process, None, "send", json!({"partition": partition, "value": value}), None);
            self.push(OpType::Fail, process, None, "send", json!({"partition": partition, "value": value}), None);
            self
        }

        pub fn send_info(&mut self, process: i64, partition: u32, value: u64) -> &mut Self {
            self.push(OpType::Invoke, process, None, "send", json!({"partition": partition, "value": value}), None);
            self.push(OpType::Info, process, None, "send", json!({"partition": partition, "value": value}), None);
            self
        }

        pub fn assign(&mut self, process: i64) -> &mut Self {
            self.push(OpType::Invoke, process, None, "assign", json!({}), None);
            self.push(OpType::Ok, process, None, "assign", json!({}), None);
            self
        }

        pub fn poll(&mut self, process: i64, partition: u32, from: u64, records: &[(u64, u64)]) -> &mut Self {
            let recs: Vec<Value> = records.iter().map(|(o, v)| json!([o, v])).collect();
            self.push(OpType::Invoke, process, None, "poll", json!({"partition": partition, "from": from}), None);
            self.push(OpType::Ok, process, None, "poll", json!({"partition": partition, "records": recs}), None);
            self
        }

        pub fn final_read(&mut self, node: u64, partition: u32, hw: u64, records: &[(u64, u64)]) -> &mut Self {
            let recs: Vec<Value> = records.iter().map(|(o, v)| json!([o, v, v.wrapping_mul(31)])).collect();
            self.push(
                OpType::Ok,
                DRAIN,
                Some(node),
                "final-read",
                json!({"partition": partition, "log_start": 0, "high_watermark": hw, "records": recs}),
                None,
            );
            self
        }

        /// A poll whose answer reported log start `start`.
        pub fn poll_at(
            &mut self,
            process: i64,
            partition: u32,
            from: u64,
            start: u64,
            records: &[(u64, u64)],
        ) -> &mut Self {
            let recs: Vec<Value> = records.iter().map(|(o, v)| json!([o, v])).collect();
            self.push(OpType::Invoke, process, None, "poll", json!({"partition": partition, "from": from}), None);
            let v = json!({"partition": partition, "records": recs, "log_start": start});
            self.push(OpType::Ok, process, None, "poll", v, None);
            self
        }

        /// The monitor saw node `node`'s replica at `[start, hw)`.
        pub fn log_bounds(&mut self, node: u64, partition: u32, start: u64, hw: u64) -> &mut Self {
            let v = json!({"partition": partition, "log_start": start, "high_watermark": hw});
            self.push(OpType::Ok, MONITOR, Some(node), "log-bounds", v, None);
            self
        }

        /// Like [`H::final_read`], from a replica whose log starts at `start`.
        pub fn final_read_from(
            &mut self,
            node: u64,
            partition: u32,
            start: u64,
            hw: u64,
            records: &[(u64, u64)],
        ) -> &mut Self {
            let recs: Vec<Value> = records.iter().map(|(o, v)| json!([o, v, v.wrapping_mul(31)])).collect();
            let v = json!({"partition": partition, "log_start": start, "high_watermark": hw, "records": recs});
            self.push(OpType::Ok, DRAIN, Some(node), "final-read", v, None);
            self
        }

        /// The nemesis deleted the incarnation owning `partitions`.
        pub fn delete_topic(&mut self, partitions: &[u32]) -> &mut Self {
            self.push(OpType::Info, NEMESIS, None, "delete-topic", json!({"partitions": partitions}), None);
            self
        }

        pub fn analysis(&self) -> Analysis {
            analyse(&self.ops)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::H;
    use super::*;

    #[test]
    fn pairs_invocations_with_completions_and_round_trips_json() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).send_fail(2, 1, 11).poll(3, 0, 0, &[(0, 10)]).final_read(1, 0, 1, &[(0, 10)]);
        let a = h.analysis();
        assert_eq!(a.sends.len(), 2);
        assert_eq!(a.sends[0].outcome, Outcome::Ok { offset: 0 });
        assert_eq!(a.sends[1].outcome, Outcome::Fail);
        assert_eq!(a.polls[0].records, vec![(0, 10)]);
        assert_eq!(a.finals[0].records.len(), 1);
        let line = serde_json::to_string(&h.ops[0]).expect("json");
        assert!(line.contains("\"type\":\"invoke\""), "{line}");
        let back: Op = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, h.ops[0]);
    }

    #[test]
    fn a_monitor_op_between_a_send_of_value_zero_and_its_ack_does_not_take_the_invocation() {
        // The group monitor (process MONITOR) records committed reads as lone ok ops; they once
        // shared a pairing key with the send of value 0 and consumed its invocation.
        let mut h = H::default();
        h.ops.push(Op {
            index: 0,
            time: 1,
            kind: OpType::Invoke,
            process: 3,
            node: None,
            f: "send".into(),
            value: json!({"partition": 0, "value": 0}),
            error: None,
            producer: None,
        });
        h.ops.push(Op {
            index: 1,
            time: 2,
            kind: OpType::Ok,
            process: MONITOR,
            node: None,
            f: "committed-read".into(),
            value: json!({"invoked": 1, "offsets": {}}),
            error: None,
            producer: None,
        });
        h.ops.push(Op {
            index: 2,
            time: 3,
            kind: OpType::Ok,
            process: 3,
            node: None,
            f: "send".into(),
            value: json!({"partition": 0, "value": 0, "offset": 0}),
            error: None,
            producer: None,
        });
        let a = h.analysis();
        assert_eq!(a.sends.len(), 1, "{:?}", a.sends);
        assert_eq!(a.sends[0].outcome, Outcome::Ok { offset: 0 });
    }
}
