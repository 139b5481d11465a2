//! Retention: the log start only moves forward, and what it leaves behind stays gone.
//!
//! - *log-start-regression*: one node's replica reported a log start below one it reported
//!   before, while holding records there (a truncated prefix came back). An empty replica (a
//!   rebuilt one, `[0, 0)`) holds nothing and is not one.
//! - *read-below-log-start*: a consumer read a record below a log start it had been told of.
//!
//! The loss checkers ([`super::loss`]) learn the final log start: records below it may be gone,
//! but only as a prefix (`lost-on-node` still wants every record from each replica's log start
//! on, `replica-divergence` wants every replica to start at the same offset).

use std::collections::BTreeMap;

use super::{anomaly, Anomaly};
use crate::history::Analysis;

pub fn log_start_regression(a: &Analysis) -> Vec<Anomaly> {
    let mut highest: BTreeMap<(u64, u32), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for s in &a.log_starts {
        let Some((node, hw)) = s.node else { continue };
        let h = highest.entry((node, s.partition)).or_insert(0);
        if s.log_start < *h && hw > s.log_start {
            out.push(anomaly(
                "log-start-regression",
                format!(
                    "node {node} partition {}: log start {} after {} (holding records up to {hw})",
                    s.partition, s.log_start, *h
                ),
            ));
        }
        *h = (*h).max(s.log_start);
    }
    out
}

pub fn read_below_log_start(a: &Analysis) -> Vec<Anomaly> {
    // Per (process, partition): the log starts it was told of, in time order.
    let mut told: BTreeMap<(i64, u32), Vec<(u64, u64)>> = BTreeMap::new();
    for s in &a.log_starts {
        if let Some(p) = s.process {
            told.entry((p, s.partition)).or_default().push((s.time, s.log_start));
        }
    }
    let mut out = Vec::new();
    for p in &a.polls {
        let Some(seen) = told.get(&(p.process, p.partition)) else { continue };
        // Each consumer process polls one request at a time: what it was told before this poll
        // completed came from earlier answers (or this one).
        let known = seen.iter().filter(|(t, _)| *t < p.time).map(|(_, s)| *s).max().unwrap_or(0);
        if let Some((o, v)) = p.records.iter().find(|(o, _)| *o < known) {
            out.push(anomaly(
                "read-below-log-start",
                format!(
                    "process {} partition {}: read offset {o} (value {v}) after being told the log starts at {known}",
                    p.process, p.partition
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn a_replica_whose_log_start_goes_back_with_records_is_flagged_an_empty_rebuilt_one_is_not() {
        let mut h = H::default();
        h.log_bounds(1, 0, 10, 50).log_bounds(1, 0, 20, 60).log_bounds(2, 0, 5, 60);
        assert!(log_start_regression(&h.analysis()).is_empty(), "each node only moved forward");
        h.log_bounds(1, 0, 0, 0);
        assert!(log_start_regression(&h.analysis()).is_empty(), "an empty replica holds nothing");
        h.log_bounds(1, 0, 15, 70);
        assert_eq!(log_start_regression(&h.analysis()).len(), 1);
    }

    #[test]
    fn a_consumer_reading_below_a_log_start_it_was_told_of_is_flagged() {
        let mut h = H::default();
        h.poll_at(7, 0, 10, 10, &[(10, 1), (11, 2)]).poll_at(7, 0, 12, 20, &[(20, 3)]);
        assert!(read_below_log_start(&h.analysis()).is_empty());
        h.poll_at(7, 0, 15, 12, &[(15, 4)]);
        let found = read_below_log_start(&h.analysis());
        assert_eq!(found.len(), 1, "{found:?}");
        // Another consumer that was never told is not held to it.
        let mut other = H::default();
        other.poll_at(7, 0, 10, 20, &[(20, 3)]).poll_at(8, 0, 15, 12, &[(15, 4)]);
        assert!(read_below_log_start(&other.analysis()).is_empty());
    }
}
