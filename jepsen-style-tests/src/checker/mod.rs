//! Checkers: pure functions over the analysed history (and the replicas' final contents).
//! Each returns the anomalies it found; [`check`] runs them all.

mod acl;
mod conditional;
mod groups;
mod liveness;
mod loss;
mod offsets;
mod order;
mod quota;
mod registry;
mod retention;

use std::collections::BTreeMap;

use serde::Serialize;

pub use acl::{denied_write, ACL_GRACE_NS};
pub use conditional::conditional_conflict;
pub use groups::{commit_regression, committed_lost, double_owner, partition_never_polled, redelivered};
pub use liveness::{liveness, Liveness};
pub use loss::{aborted_read, altered_record, lost_on_node, lost_write, replica_agreement, unseen};
pub use offsets::{duplicate, inconsistent_offsets, offset_hole, unexpected};
pub use order::{idempotence, nonmonotonic_send, poll_order};
pub use quota::over_quota;
pub use registry::registry;
pub use retention::{log_start_regression, read_below_log_start};

use crate::history::Analysis;

/// One violation of a guarantee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: &'static str,
    pub detail: String,
}

pub(crate) fn anomaly(kind: &'static str, detail: String) -> Anomaly {
    Anomaly { kind, detail }
}

/// Every safety checker, in a fixed order (also the report's row order).
pub const SAFETY_CHECKERS: [&str; 29] = [
    "inconsistent-offsets",
    "duplicate",
    "lost-write",
    "unseen",
    "offset-hole",
    "aborted-read",
    "poll-skip",
    "nonmonotonic-poll",
    "nonmonotonic-send",
    "idempotence",
    "lost-on-node",
    "replica-divergence",
    "unexpected",
    "altered-record",
    "incomplete-drain",
    "committed-lost",
    "commit-regression",
    "double-owner",
    "partition-never-polled",
    "log-start-regression",
    "read-below-log-start",
    "denied-write",
    "over-quota",
    "conditional-conflict",
    "registry-lost",
    "registry-id-conflict",
    "registry-incompatible",
    "registry-version-order",
    "registry-stale-read",
];

/// Results of all checkers.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Anomaly counts by kind (every safety checker listed, zero included).
    pub counts: BTreeMap<&'static str, usize>,
    /// Up to 20 examples per kind.
    pub examples: BTreeMap<&'static str, Vec<String>>,
    pub liveness: Liveness,
    pub valid: bool,
    /// Reported, not errors: consumer group records delivered more than once (at-least-once).
    pub redelivered: usize,
}

/// Runs every checker. `drained` says whether the final drain converged (every node reached the
/// leaders' high watermarks); without it, `unseen` and replica checks are not meaningful, and
/// that is itself reported (`incomplete-drain`).
pub fn check(a: &Analysis, drained: bool) -> Results {
    // Records acknowledged in a topic incarnation that was deleted are gone with it: the loss
    // checkers look only at incarnations that survive; the others see everything.
    let surviving = a.without_deleted();
    let mut all = Vec::new();
    all.extend(inconsistent_offsets(a));
    all.extend(duplicate(a));
    all.extend(lost_write(&surviving));
    all.extend(offset_hole(a));
    all.extend(aborted_read(a));
    all.extend(poll_order(a));
    all.extend(nonmonotonic_send(a));
    all.extend(idempotence(a));
    all.extend(unexpected(a));
    all.extend(altered_record(a));
    all.extend(commit_regression(&a.group));
    all.extend(double_owner(&a.group, a.end_time));
    all.extend(partition_never_polled(&a.group, &a.sends));
    let log_start: BTreeMap<u32, u64> = a.finals.iter().map(|f| (f.partition, f.log_start)).collect();
    all.extend(committed_lost(&a.group, &log_start));
    all.extend(log_start_regression(a));
    all.extend(read_below_log_start(a));
    all.extend(denied_write(a));
    all.extend(over_quota(&a.bulk));
    all.extend(conditional_conflict(a));
    all.extend(registry(&a.registry));
    if drained {
        all.extend(unseen(&surviving));
        all.extend(lost_on_node(a));
        all.extend(replica_agreement(a));
    } else {
        all.push(anomaly("incomplete-drain", "the final reads did not converge on every node".into()));
    }
    let mut counts: BTreeMap<&'static str, usize> = SAFETY_CHECKERS.iter().map(|k| (*k, 0)).collect();
    let mut examples: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for x in all {
        *counts.entry(x.kind).or_insert(0) += 1;
        let e = examples.entry(x.kind).or_default();
        if e.len() < 20 {
            e.push(x.detail);
        }
    }
    let valid = counts.values().all(|c| *c == 0);
    Results { counts, examples, liveness: liveness(a), valid, redelivered: redelivered(&a.group) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn records_of_a_deleted_incarnation_may_vanish_but_not_reappear_in_the_new_one() {
        // Value 1 was acknowledged in incarnation 0 (partition 0), which was then deleted; the
        // new incarnation is partition 4.
        let mut h = H::default();
        h.send_ok(1, 0, 1, 0).delete_topic(&[0, 1, 2, 3]).send_ok(1, 4, 2, 0).final_read(1, 4, 1, &[(0, 2)]);
        let r = check(&h.analysis(), true);
        assert!(r.valid, "the deleted incarnation's record may be gone: {:?}", r.counts);
        // Without the deletion, the same history loses an acknowledged record.
        let mut h = H::default();
        h.send_ok(1, 0, 1, 0).send_ok(1, 4, 2, 0).final_read(1, 4, 1, &[(0, 2)]);
        assert_eq!(check(&h.analysis(), true).counts["unseen"], 1);
        // A record of the old incarnation read as the new one is one value at two partitions.
        let mut h = H::default();
        h.send_ok(1, 0, 1, 0).delete_topic(&[0, 1, 2, 3]).final_read(1, 4, 1, &[(0, 1)]);
        let r = check(&h.analysis(), true);
        assert_eq!(r.counts["duplicate"], 1, "{:?}", r.counts);
    }
}
