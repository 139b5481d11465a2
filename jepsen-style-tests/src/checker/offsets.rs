//! Offsets and values: one value per offset, one offset per value, no holes, nothing invented.

use std::collections::{BTreeMap, BTreeSet};

use super::{anomaly, Anomaly};
use crate::history::{Analysis, Outcome};

/// Every (partition, offset, value) observed: acknowledgements, polls, final reads.
fn observations(a: &Analysis) -> Vec<(u32, u64, u64, &'static str)> {
    let mut out = Vec::new();
    for s in &a.sends {
        if let Outcome::Ok { offset } = s.outcome {
            out.push((s.partition, offset, s.value, "ack"));
        }
    }
    for p in &a.polls {
        for (o, v) in &p.records {
            out.push((p.partition, *o, *v, "poll"));
        }
    }
    for f in &a.finals {
        for (o, v, _) in &f.records {
            out.push((f.partition, *o, *v, "final read"));
        }
    }
    out
}

/// inconsistent-offsets: two different values seen at one offset of a partition.
pub fn inconsistent_offsets(a: &Analysis) -> Vec<Anomaly> {
    let mut at: BTreeMap<(u32, u64), BTreeSet<u64>> = BTreeMap::new();
    for (p, o, v, _) in observations(a) {
        at.entry((p, o)).or_default().insert(v);
    }
    at.into_iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|((p, o), vs)| anomaly("inconsistent-offsets", format!("partition {p} offset {o} holds values {vs:?}")))
        .collect()
}

/// duplicate: one value at two offsets (or two partitions) — including an acknowledged offset
/// that differs from where reads saw the value.
pub fn duplicate(a: &Analysis) -> Vec<Anomaly> {
    let mut at: BTreeMap<u64, BTreeSet<(u32, u64)>> = BTreeMap::new();
    for (p, o, v, _) in observations(a) {
        at.entry(v).or_default().insert((p, o));
    }
    at.into_iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(v, places)| anomaly("duplicate", format!("value {v} at (partition, offset) {places:?}")))
        .collect()
}

/// offset-hole: after the drain, an offset in [log start, high watermark) that no read returned.
pub fn offset_hole(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut by_partition: BTreeMap<u32, (u64, u64, BTreeSet<u64>)> = BTreeMap::new();
    for f in &a.finals {
        let e = by_partition.entry(f.partition).or_insert((u64::MAX, 0, BTreeSet::new()));
        e.0 = e.0.min(f.log_start);
        e.1 = e.1.max(f.high_watermark);
        e.2.extend(f.records.iter().map(|r| r.0));
    }
    for p in &a.polls {
        if let Some(e) = by_partition.get_mut(&p.partition) {
            e.2.extend(p.records.iter().map(|r| r.0));
        }
    }
    for (p, (start, hw, seen)) in by_partition {
        let missing: Vec<u64> = (start..hw).filter(|o| !seen.contains(o)).take(10).collect();
        if !missing.is_empty() {
            out.push(anomaly("offset-hole", format!("partition {p}: nobody read offsets {missing:?} below {hw}")));
        }
    }
    out
}

/// unexpected: a value read that nobody ever sent.
pub fn unexpected(a: &Analysis) -> Vec<Anomaly> {
    let sent: BTreeSet<u64> = a.sends.iter().map(|s| s.value).collect();
    let mut seen = BTreeSet::new();
    observations(a)
        .into_iter()
        .filter(|(_, _, v, _)| !sent.contains(v) && seen.insert(*v))
        .map(|(p, o, v, how)| {
            anomaly("unexpected", format!("value {v} ({how}, partition {p} offset {o}) was never sent"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn inconsistent_offsets_flags_two_values_at_one_offset() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).poll(2, 0, 0, &[(0, 11)]).send_info(1, 0, 11);
        assert_eq!(inconsistent_offsets(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).poll(2, 0, 0, &[(0, 10), (1, 11)]);
        assert!(inconsistent_offsets(&ok.analysis()).is_empty());
    }

    #[test]
    fn duplicate_flags_a_value_at_two_offsets_or_an_ack_elsewhere() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).poll(2, 0, 0, &[(0, 10), (1, 10)]);
        assert_eq!(duplicate(&h.analysis()).len(), 1);
        let mut moved = H::default();
        moved.send_ok(1, 0, 10, 3).poll(2, 0, 0, &[(0, 10)]);
        assert_eq!(duplicate(&moved.analysis()).len(), 1, "acked at 3, read at 0");
        let mut ok = H::default();
        ok.send_ok(1, 0, 10, 0).poll(2, 0, 0, &[(0, 10)]).final_read(1, 0, 1, &[(0, 10)]);
        assert!(duplicate(&ok.analysis()).is_empty());
    }

    #[test]
    fn offset_hole_flags_an_offset_nobody_read() {
        let mut h = H::default();
        h.final_read(1, 0, 3, &[(0, 1), (2, 3)]);
        assert_eq!(offset_hole(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.final_read(1, 0, 3, &[(0, 1), (2, 3)]).final_read(2, 0, 3, &[(0, 1), (1, 2), (2, 3)]);
        assert!(offset_hole(&ok.analysis()).is_empty());
    }

    #[test]
    fn unexpected_flags_a_value_never_sent() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).poll(2, 0, 0, &[(0, 10), (1, 99)]);
        assert_eq!(unexpected(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_info(1, 0, 10).poll(2, 0, 0, &[(0, 10)]);
        assert!(unexpected(&ok.analysis()).is_empty(), "an unknown-outcome send may be read");
    }
}
