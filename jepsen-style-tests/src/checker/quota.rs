//! Quotas under faults (secured runs): the throttled principal never gets more bytes
//! acknowledged than its quota allows.
//!
//! - *over-quota*: an interval [t1, t2] in which the `bulk-send`s invoked at or after t1 and
//!   acknowledged by t2 carry more record bytes than the nodes may admit in it.
//!
//! The bound. A node admits a request at some time between its invocation and its
//! acknowledgement, charging its bytes to the principal's clock, and admits none while the
//! clock is more than the burst ahead of now. So the bytes one node admits in [t1, t2] are at
//! most `rate × (t2 - t1 + burst)` plus one request (the last one admitted may run the clock
//! past the burst). Every node has a clock of its own, and a restart gives a node a fresh one
//! (its debt, at most `rate × burst` plus one request, forgiven): the bound is that per node,
//! plus that again per restart in the interval. Requests charged on one node and acknowledged
//! by another are charged twice and counted once, so retries only loosen it.

use super::{anomaly, Anomaly};
use crate::quota::BulkHistory;

pub fn over_quota(b: &BulkHistory) -> Vec<Anomaly> {
    let Some(q) = &b.quota else { return Vec::new() };
    let bound = |t1: u64, t2: u64| -> u64 {
        let restarts: u64 = b
            .restarts
            .iter()
            .filter(|(from, to, _)| *from <= t2 && *to >= t1)
            .fold(0u64, |n, (_, _, c)| n.saturating_add(*c));
        let per_node = |ns: u64| (q.bytes_per_second as u128 * ns as u128 / 1_000_000_000) as u64;
        let node = per_node(t2.saturating_sub(t1).saturating_add(q.burst_ns)).saturating_add(q.request_bytes_max);
        let restart = per_node(q.burst_ns).saturating_add(q.request_bytes_max);
        q.nodes.saturating_mul(node).saturating_add(restarts.saturating_mul(restart))
    };
    let mut by_completion = b.acked.clone();
    by_completion.sort_by_key(|s| s.complete);
    let mut starts: Vec<u64> = b.acked.iter().map(|s| s.invoke).collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = Vec::new();
    for t1 in starts {
        let mut bytes = 0u64;
        for s in by_completion.iter().filter(|s| s.invoke >= t1) {
            bytes += s.bytes;
            let allowed = bound(t1, s.complete);
            if bytes > allowed {
                out.push(anomaly(
                    "over-quota",
                    format!(
                        "{bytes} bytes acknowledged from {:.3} s to {:.3} s, where {} nodes at {} bytes/s allow {allowed}",
                        t1 as f64 / 1e9,
                        s.complete as f64 / 1e9,
                        q.nodes,
                        q.bytes_per_second
                    ),
                ));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{BulkSend, QuotaSpec};

    const S: u64 = 1_000_000_000;

    fn flood(sends_per_s: u64, secs: u64, restarts: Vec<(u64, u64, u64)>) -> BulkHistory {
        let every = S / sends_per_s;
        BulkHistory {
            quota: Some(QuotaSpec { bytes_per_second: 1_000, burst_ns: S, request_bytes_max: 100, nodes: 2 }),
            acked: (0..sends_per_s * secs)
                .map(|i| BulkSend { invoke: i * every, complete: i * every + every / 2, bytes: 100 })
                .collect(),
            restarts,
        }
    }

    #[test]
    fn a_flood_at_the_nodes_rate_passes_and_one_past_it_does_not() {
        // Two nodes at 1,000 bytes/s: 20 requests of 100 bytes per second is exactly the rate.
        assert_eq!(over_quota(&flood(20, 30, Vec::new())), Vec::new());
        // 30 per second is half as much again: caught once the burst is spent.
        let found = over_quota(&flood(30, 30, Vec::new()));
        assert!(!found.is_empty());
        assert!(found[0].detail.contains("2 nodes at 1000 bytes/s"), "{}", found[0].detail);
    }

    #[test]
    fn restarts_forgive_a_burst_each_but_no_more() {
        // 26 per second for 8 s: 2,600 bytes/s against 2,000 allowed plus 2 × 1,100 of burst
        // and last request, so intervals longer than 3.5 s are over. Caught without restarts;
        // within the bound with 4 restarts (4 × 1,100 more) during every such interval.
        assert!(!over_quota(&flood(26, 8, Vec::new())).is_empty());
        assert_eq!(over_quota(&flood(26, 8, vec![(3 * S, 5 * S, 4)])), Vec::new());
        // Restarts outside the intervals do not help them.
        assert!(!over_quota(&flood(26, 8, vec![(20 * S, 20 * S, 4)])).is_empty());
    }

    #[test]
    fn runs_without_a_quota_are_not_checked() {
        let mut b = flood(1_000, 5, Vec::new());
        b.quota = None;
        assert_eq!(over_quota(&b), Vec::new());
    }
}
