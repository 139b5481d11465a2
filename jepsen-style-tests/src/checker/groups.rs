//! Consumer group checkers (DESIGN invariants G1–G4):
//!
//! - `committed-lost`: a record below a partition's final committed offset that no member ever
//!   polled (the group skipped it);
//! - `commit-regression`: a committed offset observed lower than one observed, or acknowledged,
//!   before (no reset happens in the workload);
//! - `double-owner`: two members polled the same partition while both owned it (a partition
//!   given to a new owner before the old one gave it up); a poll counts from when it was called
//!   to when its records were recorded, so a member paused in between is not blamed for records
//!   it was handed while it still owned the partition;
//! - `partition-never-polled`: a partition holding acknowledged records long before the
//!   members stopped that no member ever polled (never assigned: a partition added during the
//!   run that the group did not pick up);
//! - reported, not an error: records delivered more than once (after rebalances and crashes,
//!   expected with at-least-once).

use std::collections::{BTreeMap, BTreeSet};

use super::{anomaly, Anomaly};
use crate::group_history::{GroupHistory, Ownership};

/// Records below the final committed offset that nobody polled. `log_start` per partition
/// (records below it are gone by retention, not skipped).
pub fn committed_lost(g: &GroupHistory, log_start: &BTreeMap<u32, u64>) -> Vec<Anomaly> {
    let Some(fin) = &g.final_committed else { return Vec::new() };
    let mut polled: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for p in &g.polls {
        polled.entry(p.partition).or_default().extend(&p.offsets);
    }
    let mut out = Vec::new();
    for (p, committed) in &fin.offsets {
        let seen = polled.get(p);
        let from = log_start.get(p).copied().unwrap_or(0);
        let missing: Vec<u64> = (from..*committed).filter(|o| !seen.is_some_and(|s| s.contains(o))).collect();
        if !missing.is_empty() {
            out.push(anomaly(
                "committed-lost",
                format!(
                    "partition {p}: committed up to {committed}, but {} record(s) below it were never polled by any member (first {:?})",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ),
            ));
        }
    }
    out
}

/// A committed offset going backwards: each read (and the final one) must be at least every
/// value read, and every commit acknowledged, before it was invoked.
pub fn commit_regression(g: &GroupHistory) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut reads = g.reads.clone();
    reads.extend(g.final_committed.clone());
    reads.sort_by_key(|r| r.invoked);
    for r in &reads {
        for (p, v) in &r.offsets {
            let read_before = reads
                .iter()
                .filter(|x| x.time < r.invoked)
                .filter_map(|x| x.offsets.get(p).map(|o| (*o, x.time)))
                .max_by_key(|(o, _)| *o);
            if let Some((o, at)) = read_before.filter(|(o, _)| o > v) {
                out.push(anomaly(
                    "commit-regression",
                    format!("partition {p}: committed offset read as {o} at {at} ns, then as {v} at {} ns", r.time),
                ));
            }
            let acked = g
                .commits
                .iter()
                .filter(|c| c.time < r.invoked)
                .filter_map(|c| c.offsets.get(p).map(|o| (*o, c.member, c.time)))
                .max_by_key(|(o, _, _)| *o);
            if let Some((o, m, at)) = acked.filter(|(o, _, _)| o > v) {
                out.push(anomaly(
                    "commit-regression",
                    format!("partition {p}: member {m}'s commit of {o} was acknowledged at {at} ns, then the committed offset read {v} at {} ns", r.time),
                ));
            }
        }
        // A partition with a committed offset that a later read no longer has.
        for p in reads.iter().filter(|x| x.time < r.invoked).flat_map(|x| x.offsets.keys()).collect::<BTreeSet<_>>() {
            if !r.offsets.contains_key(p) {
                out.push(anomaly(
                    "commit-regression",
                    format!("partition {p}: had a committed offset, then none at {} ns", r.time),
                ));
            }
        }
    }
    out
}

fn overlap(a: &Ownership, b: &Ownership, end: u64) -> Option<(u64, u64)> {
    let lo = a.start.max(b.start);
    let hi = a.end.unwrap_or(end).min(b.end.unwrap_or(end));
    (lo < hi).then_some((lo, hi))
}

/// Two members polling one partition while both owned it.
pub fn double_owner(g: &GroupHistory, end: u64) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let by_partition: BTreeMap<u32, Vec<&Ownership>> = g.ownerships.iter().fold(BTreeMap::new(), |mut m, o| {
        m.entry(o.partition).or_insert_with(Vec::new).push(o);
        m
    });
    for (p, owners) in by_partition {
        for (i, a) in owners.iter().enumerate() {
            for b in owners.iter().skip(i + 1).filter(|b| b.member != a.member) {
                let Some((lo, hi)) = overlap(a, b, end) else { continue };
                // A poll counts only if it surely handed records out inside the overlap: called
                // after it began and recorded before it ended. (A member paused between its poll
                // and recording it records late records handed out while it still owned them.)
                let polled_in = |m: i64| {
                    g.polls.iter().any(|x| x.member == m && x.partition == p && x.invoked >= lo && x.time <= hi)
                };
                if polled_in(a.member) && polled_in(b.member) {
                    out.push(anomaly(
                        "double-owner",
                        format!(
                            "partition {p}: members {} and {} both polled it between {lo} and {hi} ns (ownerships ended by {} and {})",
                            a.member, b.member, a.ended_by, b.ended_by
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// How long after a record is acknowledged the group has to poll its partition: the
/// coordinator's next tick, a heartbeat, a session timeout if the new owner was paused, and a
/// leader election on the way.
pub const POLL_GRACE_NS: u64 = 20_000_000_000;

/// Partitions with a record acknowledged at least `POLL_GRACE_NS` before the members' last
/// poll that no member ever polled. Only for runs with group members (`polls` non-empty).
pub fn partition_never_polled(g: &GroupHistory, sends: &[crate::history::Send]) -> Vec<Anomaly> {
    let Some(last_poll) = g.polls.iter().map(|p| p.time).max() else { return Vec::new() };
    let polled: BTreeSet<u32> = g.polls.iter().filter(|p| !p.offsets.is_empty()).map(|p| p.partition).collect();
    let mut due: BTreeMap<u32, u64> = BTreeMap::new();
    for s in sends.iter().filter(|s| matches!(s.outcome, crate::history::Outcome::Ok { .. })) {
        if let Some(t) = s.complete_time.filter(|t| t.saturating_add(POLL_GRACE_NS) <= last_poll) {
            let e = due.entry(s.partition).or_insert(t);
            *e = (*e).min(t);
        }
    }
    due.into_iter()
        .filter(|(p, _)| !polled.contains(p))
        .map(|(p, t)| {
            anomaly(
                "partition-never-polled",
                format!(
                    "partition {p}: a record was acknowledged at {t} ns, {} s before the members' last poll,                      yet no member ever read the partition",
                    (last_poll - t) / 1_000_000_000
                ),
            )
        })
        .collect()
}

/// Records polled more than once (by one member or several): at-least-once redelivery.
pub fn redelivered(g: &GroupHistory) -> usize {
    let mut seen: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut again = 0;
    for p in &g.polls {
        for o in &p.offsets {
            if !seen.insert((p.partition, *o)) {
                again += 1;
            }
        }
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_history::{AckedCommit, CommittedRead, GroupPoll};

    fn poll(member: i64, partition: u32, time: u64, offsets: &[u64]) -> GroupPoll {
        GroupPoll { member, partition, time, invoked: time, offsets: offsets.to_vec() }
    }

    fn read(invoked: u64, time: u64, offsets: &[(u32, u64)]) -> CommittedRead {
        CommittedRead { invoked, time, offsets: offsets.iter().copied().collect() }
    }

    #[test]
    fn a_committed_record_nobody_polled_is_lost_and_polled_ones_are_not() {
        let mut g = GroupHistory { final_committed: Some(read(90, 100, &[(0, 3)])), ..GroupHistory::default() };
        g.polls = vec![poll(1000, 0, 10, &[0, 1]), poll(1001, 0, 20, &[2, 3])];
        assert!(committed_lost(&g, &BTreeMap::new()).is_empty());
        g.polls = vec![poll(1000, 0, 10, &[0]), poll(1001, 0, 20, &[2])];
        let a = committed_lost(&g, &BTreeMap::new());
        assert_eq!(a.len(), 1);
        assert!(a[0].detail.contains("[1]"), "{a:?}");
        // Below the log start nothing is expected.
        assert!(committed_lost(&g, &[(0, 2)].into()).is_empty());
    }

    #[test]
    fn a_partition_with_old_acknowledged_records_that_nobody_polled_is_reported() {
        use crate::history::{Outcome, Send};
        let sent = |partition, t| Send {
            process: 0,
            partition,
            value: u64::from(partition),
            outcome: Outcome::Ok { offset: 0 },
            producer: None,
            sequence: None,
            condition: None,
            invoke_time: t,
            complete_time: Some(t),
        };
        let s = 1_000_000_000;
        let g = GroupHistory {
            polls: vec![poll(1000, 0, 5 * s, &[0]), poll(1000, 1, 40 * s, &[0])],
            ..GroupHistory::default()
        };
        // Partition 2's record came 30 s before the last poll: due, and never read.
        let a = partition_never_polled(&g, &[sent(0, s), sent(1, s), sent(2, 10 * s)]);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].detail.starts_with("partition 2:"), "{a:?}");
        // Acknowledged within the grace before the end: not yet due.
        assert!(partition_never_polled(&g, &[sent(2, 30 * s)]).is_empty());
        // No group in the run: nothing to check.
        assert!(partition_never_polled(&GroupHistory::default(), &[sent(2, s)]).is_empty());
    }

    #[test]
    fn a_committed_offset_going_back_is_a_regression() {
        let reads = |r: Vec<CommittedRead>| GroupHistory { reads: r, ..GroupHistory::default() };
        let mut g = reads(vec![read(0, 10, &[(0, 5)]), read(20, 30, &[(0, 7)])]);
        assert!(commit_regression(&g).is_empty());
        g.reads.push(read(40, 50, &[(0, 6)]));
        assert_eq!(commit_regression(&g).len(), 1);
        // An acknowledged commit later not seen.
        let g = GroupHistory {
            commits: vec![AckedCommit { member: 1000, time: 15, offsets: [(1, 9)].into() }],
            reads: vec![read(20, 30, &[(1, 4)])],
            ..GroupHistory::default()
        };
        assert_eq!(commit_regression(&g).len(), 1);
        // Overlapping reads do not constrain each other.
        assert!(commit_regression(&reads(vec![read(0, 30, &[(0, 7)]), read(10, 40, &[(0, 5)])])).is_empty());
        // A committed offset that vanishes.
        assert_eq!(commit_regression(&reads(vec![read(0, 10, &[(0, 5)]), read(20, 30, &[])])).len(), 1);
    }

    #[test]
    fn two_members_polling_one_partition_while_both_own_it_are_double_owners() {
        let own = |member, start, end: Option<u64>, ended_by| Ownership { member, partition: 0, start, end, ended_by };
        // a owns until 50 (revoked), b from 60: no overlap.
        let mut g = GroupHistory {
            ownerships: vec![own(1000, 0, Some(50), "revoked"), own(1001, 60, None, "still-owned")],
            polls: vec![poll(1000, 0, 40, &[0]), poll(1001, 0, 70, &[1])],
            ..GroupHistory::default()
        };
        assert!(double_owner(&g, 100).is_empty());
        // b given the partition at 30 while a still polls it at 40.
        g.ownerships[1].start = 30;
        g.polls.push(poll(1001, 0, 35, &[1]));
        assert_eq!(double_owner(&g, 100).len(), 1);
        // An overlap with no polls by one of them (a paused zombie that then found out) is fine.
        g.polls.retain(|p| p.member != 1000);
        assert!(double_owner(&g, 100).is_empty());
        // a called poll at 20 (it owned the partition alone), was paused, and recorded the
        // records at 45: they may have been handed out before b's ownership began.
        g.polls.push(GroupPoll { member: 1000, partition: 0, time: 45, invoked: 20, offsets: vec![0] });
        assert!(double_owner(&g, 100).is_empty());
        // A poll called inside the overlap is a double owner again.
        g.polls.push(GroupPoll { member: 1000, partition: 0, time: 48, invoked: 46, offsets: vec![1] });
        assert_eq!(double_owner(&g, 100).len(), 1);
    }

    #[test]
    fn redeliveries_are_counted() {
        let g = GroupHistory { polls: vec![poll(1, 0, 1, &[0, 1]), poll(2, 0, 2, &[1, 2])], ..GroupHistory::default() };
        assert_eq!(redelivered(&g), 1);
    }
}
