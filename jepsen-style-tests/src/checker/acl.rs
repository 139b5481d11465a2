//! ACLs under faults (secured runs): while the workload's principal is denied writing to the
//! topic, no write of it is acknowledged.
//!
//! - *denied-write*: a send acknowledged (OK) that was invoked at least [`ACL_GRACE_NS`] after a
//!   deny ACL on the workload's writes was acknowledged, and completed before its removal was
//!   invoked (an `acl-deny` window). The grace covers the deny reaching every node: it is
//!   applied from the controller log, which a node learns is committed at the next heartbeat,
//!   or after an election when the controller leader was just killed.

use super::{anomaly, Anomaly};
use crate::history::Analysis;

/// How long after its acknowledgement a deny must hold on every node.
pub const ACL_GRACE_NS: u64 = 3_000_000_000;

pub fn denied_write(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for w in a.windows.iter().filter(|w| w.name == "acl-deny") {
        let from = w.start.saturating_add(ACL_GRACE_NS);
        for s in &a.sends {
            let acked = matches!(s.outcome, crate::history::Outcome::Ok { .. });
            if acked && s.invoke_time >= from && s.complete_time.is_some_and(|t| t <= w.end) {
                out.push(anomaly(
                    "denied-write",
                    format!(
                        "value {} (partition {}) acknowledged at {:.3} s, {:.3} s into a deny of the workload's writes",
                        s.value,
                        s.partition,
                        s.complete_time.unwrap_or(0) as f64 / 1e9,
                        (s.invoke_time - w.start) as f64 / 1e9
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Outcome, Send, Window};

    fn send(value: u64, invoke_s: f64, complete_s: f64, ok: bool) -> Send {
        Send {
            process: 0,
            partition: 0,
            value,
            outcome: if ok { Outcome::Ok { offset: value } } else { Outcome::Fail },
            producer: None,
            sequence: None,
            condition: None,
            invoke_time: (invoke_s * 1e9) as u64,
            complete_time: Some((complete_s * 1e9) as u64),
        }
    }

    #[test]
    fn only_writes_acknowledged_well_inside_a_deny_window_are_anomalies() {
        let a = Analysis {
            windows: vec![Window { name: "acl-deny".into(), start: 10_000_000_000, end: 20_000_000_000 }],
            sends: vec![
                send(1, 11.0, 11.1, true),  // within the grace: the deny may not have arrived
                send(2, 14.0, 14.1, false), // refused, as it should be
                send(3, 14.0, 14.1, true),  // acknowledged while denied
                send(4, 19.9, 20.5, true),  // completed after the deny's removal began
            ],
            ..Analysis::default()
        };
        let found = denied_write(&a);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("value 3"));
    }
}
