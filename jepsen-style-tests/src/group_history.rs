//! The `group` workload's part of the history, in the group checkers' terms: what each member
//! polled and when it owned which partition, what it committed, and what the monitor read of
//! the group's committed offsets.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::history::{Op, OpType, MONITOR, NEMESIS};

/// Records one member polled from one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPoll {
    pub member: i64,
    pub partition: u32,
    /// When the member recorded what the poll returned.
    pub time: u64,
    /// When the member called the poll that returned these records (the records were handed
    /// out between the two: a member paused in between records them late). `time` for
    /// histories that do not say.
    pub invoked: u64,
    pub offsets: Vec<u64>,
}

/// A member owning a partition from `start` (assigned) to `end` (revoked, lost, or the member
/// stopped or was killed); `None` while it still owns it at the end of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Ownership {
    pub member: i64,
    pub partition: u32,
    pub start: u64,
    pub end: Option<u64>,
    /// How it ended: revoked, lost, killed, stopped.
    pub ended_by: &'static str,
}

/// One observation of the group's committed offsets (a monitor read, or the final one).
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedRead {
    pub invoked: u64,
    pub time: u64,
    pub offsets: BTreeMap<u32, u64>,
}

/// An acknowledged commit of a member.
#[derive(Clone, Debug, PartialEq)]
pub struct AckedCommit {
    pub member: i64,
    pub time: u64,
    pub offsets: BTreeMap<u32, u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupHistory {
    pub polls: Vec<GroupPoll>,
    pub ownerships: Vec<Ownership>,
    pub reads: Vec<CommittedRead>,
    pub commits: Vec<AckedCommit>,
    pub final_committed: Option<CommittedRead>,
}

fn offsets(v: Option<&Value>) -> BTreeMap<u32, u64> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?))).collect())
        .unwrap_or_default()
}

fn partitions(v: &Value) -> Vec<u32> {
    v.get("partitions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).map(|p| p as u32).collect())
        .unwrap_or_default()
}

impl GroupHistory {
    /// Builds it from the whole history (member ops are stamped by the members themselves, so
    /// they are taken in time order).
    pub fn from_ops(ops: &[Op]) -> GroupHistory {
        let mut g = GroupHistory::default();
        let mut sorted: Vec<&Op> = ops
            .iter()
            .filter(|o| o.process >= crate::members::MEMBER_BASE || o.process == MONITOR || o.process == NEMESIS)
            .collect();
        sorted.sort_by_key(|o| (o.time, o.index));
        // Open ownerships by (member, partition): start time.
        let mut open: BTreeMap<(i64, u32), u64> = BTreeMap::new();
        let close = |g: &mut GroupHistory,
                     open: &mut BTreeMap<(i64, u32), u64>,
                     member: i64,
                     ps: Option<&[u32]>,
                     at: u64,
                     by: &'static str| {
            let keys: Vec<(i64, u32)> =
                open.keys().filter(|(m, p)| *m == member && ps.is_none_or(|ps| ps.contains(p))).copied().collect();
            for k in keys {
                if let Some(start) = open.remove(&k) {
                    g.ownerships.push(Ownership { member, partition: k.1, start, end: Some(at), ended_by: by });
                }
            }
        };
        for op in sorted {
            match (op.process, op.f.as_str()) {
                (MONITOR, "committed-read" | "final-committed") => {
                    let read = CommittedRead {
                        invoked: op.value.get("invoked").and_then(Value::as_u64).unwrap_or(op.time),
                        time: op.time,
                        offsets: offsets(op.value.get("offsets")),
                    };
                    if op.f == "final-committed" {
                        g.final_committed = Some(read);
                    } else {
                        g.reads.push(read);
                    }
                }
                (NEMESIS, "member-kill" | "member-stop") => {
                    if let Some(m) = op.value.get("member").and_then(Value::as_i64) {
                        let by = if op.f == "member-kill" { "killed" } else { "stopped" };
                        close(&mut g, &mut open, m, None, op.time, by);
                    }
                }
                (NEMESIS, _) | (MONITOR, _) => {}
                (m, "gpoll") if op.kind == OpType::Ok => g.polls.push(GroupPoll {
                    member: m,
                    partition: op.value.get("partition").and_then(Value::as_u64).unwrap_or(0) as u32,
                    time: op.time,
                    invoked: op.value.get("invoked").and_then(Value::as_u64).unwrap_or(op.time),
                    offsets: op
                        .value
                        .get("records")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|r| r.get(0)?.as_u64()).collect())
                        .unwrap_or_default(),
                }),
                (m, "assigned") => {
                    for p in partitions(&op.value) {
                        open.entry((m, p)).or_insert(op.time);
                    }
                }
                (m, "revoked") => close(&mut g, &mut open, m, Some(&partitions(&op.value)), op.time, "revoked"),
                (m, "lost") => close(&mut g, &mut open, m, Some(&partitions(&op.value)), op.time, "lost"),
                (m, "member-exit") => close(&mut g, &mut open, m, None, op.time, "stopped"),
                (m, "gcommit") if op.kind == OpType::Ok => {
                    g.commits.push(AckedCommit { member: m, time: op.time, offsets: offsets(op.value.get("offsets")) })
                }
                _ => {}
            }
        }
        for ((member, partition), start) in open {
            g.ownerships.push(Ownership { member, partition, start, end: None, ended_by: "still-owned" });
        }
        g
    }

    pub fn is_empty(&self) -> bool {
        self.polls.is_empty() && self.reads.is_empty() && self.final_committed.is_none()
    }
}
