//! Order: consumers never skip or go back; a producer's later send never lands earlier;
//! idempotent producers' sequences map to one offset each, increasing.

use std::collections::BTreeMap;

use super::{anomaly, Anomaly};
use crate::history::{Analysis, Outcome};

/// poll-skip / nonmonotonic-poll: within one poll offsets are consecutive; across polls of one
/// consumer on one partition (same assignment) each poll starts right after the previous one.
pub fn poll_order(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(i64, u32, u64), u64> = BTreeMap::new();
    for p in &a.polls {
        let key = (p.process, p.partition, p.assignment);
        let mut prev = last.get(&key).copied();
        for (o, _) in &p.records {
            if let Some(l) = prev {
                if *o <= l {
                    out.push(anomaly(
                        "nonmonotonic-poll",
                        format!("process {} partition {}: offset {o} after {l}", p.process, p.partition),
                    ));
                } else if *o > l + 1 {
                    out.push(anomaly(
                        "poll-skip",
                        format!("process {} partition {}: skipped from {l} to {o}", p.process, p.partition),
                    ));
                }
            } else if *o != p.from {
                out.push(anomaly(
                    "poll-skip",
                    format!("process {} partition {}: asked from {}, first got {o}", p.process, p.partition, p.from),
                ));
            }
            prev = Some(*o);
        }
        if let Some(l) = prev {
            last.insert(key, l);
        }
    }
    out
}

/// nonmonotonic-send: one process's successive acknowledged sends to one partition must get
/// increasing offsets.
pub fn nonmonotonic_send(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(i64, u32), (u64, u64)> = BTreeMap::new();
    let mut sends: Vec<_> = a.sends.iter().filter(|s| matches!(s.outcome, Outcome::Ok { .. })).collect();
    sends.sort_by_key(|s| s.invoke_time);
    for s in sends {
        let Outcome::Ok { offset } = s.outcome else { continue };
        let key = (s.process, s.partition);
        if let Some((prev, v)) = last.get(&key) {
            if offset <= *prev {
                out.push(anomaly(
                    "nonmonotonic-send",
                    format!(
                        "process {} partition {}: value {} at {offset} after value {v} at {prev}",
                        s.process, s.partition, s.value
                    ),
                ));
            }
        }
        last.insert(key, (offset, s.value));
    }
    out
}

/// idempotence: per (producer, epoch, partition), each sequence number maps to one offset and
/// offsets grow with sequence numbers.
pub fn idempotence(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut seqs: BTreeMap<(u64, u32, u32), BTreeMap<u32, Vec<u64>>> = BTreeMap::new();
    for s in &a.sends {
        if let (Some((pid, epoch)), Some(seq), Outcome::Ok { offset }) = (s.producer, s.sequence, s.outcome) {
            seqs.entry((pid, epoch, s.partition)).or_default().entry(seq).or_default().push(offset);
        }
    }
    for ((pid, epoch, p), by_seq) in seqs {
        let mut prev: Option<(u32, u64)> = None;
        for (seq, offsets) in by_seq {
            let first = offsets[0];
            if offsets.iter().any(|o| *o != first) {
                out.push(anomaly(
                    "idempotence",
                    format!("producer {pid}/{epoch} partition {p}: sequence {seq} at offsets {offsets:?}"),
                ));
            }
            if let Some((ps, po)) = prev {
                if first <= po {
                    out.push(anomaly("idempotence", format!("producer {pid}/{epoch} partition {p}: sequence {seq} at {first} not after sequence {ps} at {po}")));
                }
            }
            prev = Some((seq, first));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn poll_order_flags_skips_and_going_back() {
        let mut h = H::default();
        h.assign(1).poll(1, 0, 0, &[(0, 1), (1, 2)]).poll(1, 0, 3, &[(3, 4)]);
        assert_eq!(poll_order(&h.analysis()).iter().filter(|x| x.kind == "poll-skip").count(), 1);
        let mut back = H::default();
        back.assign(1).poll(1, 0, 0, &[(0, 1), (1, 2)]).poll(1, 0, 1, &[(1, 2)]);
        assert_eq!(poll_order(&back.analysis()).iter().filter(|x| x.kind == "nonmonotonic-poll").count(), 1);
        let mut ok = H::default();
        ok.assign(1).poll(1, 0, 0, &[(0, 1), (1, 2)]).poll(1, 0, 2, &[(2, 3)]).assign(1).poll(1, 0, 0, &[(0, 1)]);
        assert!(poll_order(&ok.analysis()).is_empty(), "a new assignment may start over");
    }

    #[test]
    fn nonmonotonic_send_flags_a_later_send_at_an_earlier_offset() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 5).send_ok(1, 0, 11, 4);
        assert_eq!(nonmonotonic_send(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_ok(1, 0, 10, 4).send_ok(2, 0, 12, 3).send_ok(1, 0, 11, 5);
        assert!(nonmonotonic_send(&ok.analysis()).is_empty(), "different processes may interleave");
    }

    #[test]
    fn idempotence_flags_a_sequence_at_two_offsets_or_out_of_order() {
        let mut h = H::default();
        h.send_seq(1, 0, 10, 0, 7, 0).send_seq(1, 0, 10, 3, 7, 0);
        assert_eq!(idempotence(&h.analysis()).len(), 1);
        let mut rev = H::default();
        rev.send_seq(1, 0, 10, 5, 7, 0).send_seq(1, 0, 11, 2, 7, 1);
        assert_eq!(idempotence(&rev.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_seq(1, 0, 10, 0, 7, 0).send_seq(1, 0, 11, 1, 7, 1).send_seq(2, 0, 12, 2, 8, 0);
        assert!(idempotence(&ok.analysis()).is_empty());
    }
}
