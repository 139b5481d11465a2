//! Lost and phantom writes: acknowledged records must be read, at their offset, on every
//! replica; definitely failed ones must never be read; replicas must agree.

use std::collections::{BTreeMap, BTreeSet};

use super::{anomaly, Anomaly};
use crate::history::{Analysis, Outcome};

/// Per partition, the log start after the run (the largest a replica reported): records below
/// it may be gone by retention. That they went as a prefix, never a hole, is checked by
/// `lost-on-node` (every record from each replica's log start on) and `replica-divergence`
/// (every replica starts at the same offset).
fn final_log_start(a: &Analysis) -> BTreeMap<u32, u64> {
    let mut out: BTreeMap<u32, u64> = BTreeMap::new();
    for f in &a.finals {
        let s = out.entry(f.partition).or_insert(0);
        *s = (*s).max(f.log_start);
    }
    out
}

/// Whether an acknowledged record at `offset` of `partition` may be gone by retention.
fn truncated(starts: &BTreeMap<u32, u64>, partition: u32, offset: u64) -> bool {
    starts.get(&partition).is_some_and(|s| offset < *s)
}

fn read_values(a: &Analysis) -> BTreeSet<u64> {
    let mut seen: BTreeSet<u64> = a.polls.iter().flat_map(|p| p.records.iter().map(|r| r.1)).collect();
    seen.extend(a.finals.iter().flat_map(|f| f.records.iter().map(|r| r.1)));
    seen
}

/// lost-write: an acknowledged value below the highest offset read in its partition that no
/// read returned (and that retention has not removed).
pub fn lost_write(a: &Analysis) -> Vec<Anomaly> {
    let seen = read_values(a);
    let starts = final_log_start(a);
    let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &a.polls {
        for (o, _) in &p.records {
            let h = highest.entry(p.partition).or_insert(0);
            *h = (*h).max(*o);
        }
    }
    for f in &a.finals {
        for (o, _, _) in &f.records {
            let h = highest.entry(f.partition).or_insert(0);
            *h = (*h).max(*o);
        }
    }
    a.sends
        .iter()
        .filter_map(|s| match s.outcome {
            Outcome::Ok { offset }
                if highest.get(&s.partition).is_some_and(|h| *h > offset)
                    && !seen.contains(&s.value)
                    && !truncated(&starts, s.partition, offset) =>
            {
                Some(anomaly(
                    "lost-write",
                    format!(
                        "value {} acked at partition {} offset {offset}, never read though later offsets were",
                        s.value, s.partition
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

/// unseen: acknowledged values no read returned by the end (after the drain converged), except
/// those retention removed.
pub fn unseen(a: &Analysis) -> Vec<Anomaly> {
    let seen = read_values(a);
    let starts = final_log_start(a);
    a.sends
        .iter()
        .filter(|s| match s.outcome {
            Outcome::Ok { offset } => !seen.contains(&s.value) && !truncated(&starts, s.partition, offset),
            _ => false,
        })
        .map(|s| {
            anomaly(
                "unseen",
                format!("value {} acked on partition {} ({:?}) never read", s.value, s.partition, s.outcome),
            )
        })
        .collect()
}

/// aborted-read: a read of a value whose send definitely failed.
pub fn aborted_read(a: &Analysis) -> Vec<Anomaly> {
    let failed: BTreeMap<u64, u32> =
        a.sends.iter().filter(|s| s.outcome == Outcome::Fail).map(|s| (s.value, s.partition)).collect();
    let mut reported = BTreeSet::new();
    read_values(a)
        .into_iter()
        .filter(|v| failed.contains_key(v) && reported.insert(*v))
        .map(|v| anomaly("aborted-read", format!("value {v} was read although its send definitely failed")))
        .collect()
}

/// altered-record: a read (a poll, a final read, a read-back after a storage fault) returned a
/// record whose bytes are not the ones its producer sent: damaged data was served.
pub fn altered_record(a: &Analysis) -> Vec<Anomaly> {
    a.altered.iter().map(|d| anomaly("altered-record", d.clone())).collect()
}

/// lost-on-node: an acknowledged record missing, or different, on one particular replica that
/// claims to have committed past it.
pub fn lost_on_node(a: &Analysis) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for f in &a.finals {
        let at: BTreeMap<u64, u64> = f.records.iter().map(|(o, v, _)| (*o, *v)).collect();
        for s in a.sends.iter().filter(|s| s.partition == f.partition) {
            let Outcome::Ok { offset } = s.outcome else { continue };
            if offset < f.log_start || offset >= f.high_watermark {
                continue;
            }
            match at.get(&offset) {
                Some(v) if *v == s.value => {}
                other => out.push(anomaly(
                    "lost-on-node",
                    format!(
                        "node {} partition {} offset {offset}: acked value {}, node has {other:?}",
                        f.node, f.partition, s.value
                    ),
                )),
            }
        }
    }
    out
}

/// replica-divergence: after the run every replica of a partition must hold byte-identical
/// committed records (same high watermark, same record digests).
pub fn replica_agreement(a: &Analysis) -> Vec<Anomaly> {
    let mut by_partition: BTreeMap<u32, Vec<&crate::history::FinalRead>> = BTreeMap::new();
    for f in &a.finals {
        by_partition.entry(f.partition).or_default().push(f);
    }
    let mut out = Vec::new();
    for (p, reads) in by_partition {
        let Some(first) = reads.first() else { continue };
        for r in &reads[1..] {
            if r.log_start != first.log_start {
                // Truncation is replicated: every replica removes the same prefix.
                out.push(anomaly(
                    "replica-divergence",
                    format!(
                        "partition {p}: node {} starts at offset {}, node {} at {}",
                        first.node, first.log_start, r.node, r.log_start
                    ),
                ));
            }
            if r.high_watermark != first.high_watermark {
                out.push(anomaly(
                    "replica-divergence",
                    format!(
                        "partition {p}: node {} at high watermark {}, node {} at {}",
                        first.node, first.high_watermark, r.node, r.high_watermark
                    ),
                ));
                continue;
            }
            let mine: BTreeMap<u64, u64> = r.records.iter().map(|(o, _, d)| (*o, *d)).collect();
            for (o, _, d) in &first.records {
                if mine.get(o).is_some_and(|x| x != d) {
                    out.push(anomaly(
                        "replica-divergence",
                        format!("partition {p} offset {o}: nodes {} and {} differ", first.node, r.node),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn lost_write_and_unseen_flag_an_acked_value_nobody_reads() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).poll(2, 0, 1, &[(1, 11)]).final_read(1, 0, 2, &[(1, 11)]);
        assert_eq!(lost_write(&h.analysis()).len(), 1);
        assert_eq!(unseen(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).final_read(1, 0, 2, &[(0, 10), (1, 11)]);
        assert!(lost_write(&ok.analysis()).is_empty());
        assert!(unseen(&ok.analysis()).is_empty());
    }

    #[test]
    fn altered_record_flags_any_read_that_returned_other_bytes() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).poll(2, 0, 0, &[(0, 10)]).final_read(1, 0, 1, &[(0, 10)]);
        assert!(altered_record(&h.analysis()).is_empty(), "intact reads are fine");
        let mut bad = h.ops[h.ops.len() - 1].clone();
        bad.value["altered"] = serde_json::json!([0]);
        bad.index += 1;
        h.ops.push(bad);
        let found = altered_record(&h.analysis());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, "altered-record");
    }

    #[test]
    fn aborted_read_flags_reading_a_definitely_failed_send() {
        let mut h = H::default();
        h.send_fail(1, 0, 10).poll(2, 0, 0, &[(0, 10)]);
        assert_eq!(aborted_read(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_fail(1, 0, 10).send_info(1, 0, 11).poll(2, 0, 0, &[(0, 11)]);
        assert!(aborted_read(&ok.analysis()).is_empty());
    }

    #[test]
    fn lost_on_node_flags_a_replica_missing_an_acked_record() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).final_read(1, 0, 2, &[(0, 10), (1, 11)]).final_read(
            2,
            0,
            2,
            &[(0, 10), (1, 12)],
        );
        assert_eq!(lost_on_node(&h.analysis()).len(), 1);
        let mut ok = H::default();
        ok.send_ok(1, 0, 10, 0).final_read(1, 0, 1, &[(0, 10)]).final_read(2, 0, 1, &[(0, 10)]);
        assert!(lost_on_node(&ok.analysis()).is_empty());
    }

    #[test]
    fn records_below_the_final_log_start_may_be_gone_but_replicas_must_agree_on_it() {
        let mut h = H::default();
        h.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).send_ok(1, 0, 12, 2);
        h.final_read_from(1, 0, 2, 3, &[(2, 12)]).final_read_from(2, 0, 2, 3, &[(2, 12)]);
        let a = h.analysis();
        assert!(unseen(&a).is_empty() && lost_write(&a).is_empty(), "truncated by retention");
        assert!(replica_agreement(&a).is_empty());
        // One replica truncated one record further than the other.
        h.final_read_from(3, 0, 3, 3, &[]);
        assert_eq!(replica_agreement(&h.analysis()).len(), 1);
        // A record at or above the log start must still be there.
        let mut lost = H::default();
        lost.send_ok(1, 0, 10, 0).send_ok(1, 0, 11, 1).final_read_from(1, 0, 1, 2, &[]);
        assert_eq!(unseen(&lost.analysis()).len(), 1);
        assert_eq!(lost_on_node(&lost.analysis()).len(), 1);
    }

    #[test]
    fn replica_agreement_flags_different_bytes_or_lengths() {
        let mut h = H::default();
        h.final_read(1, 0, 2, &[(0, 1), (1, 2)]).final_read(2, 0, 2, &[(0, 1), (1, 3)]).final_read(3, 0, 1, &[(0, 1)]);
        assert_eq!(replica_agreement(&h.analysis()).len(), 2);
        let mut ok = H::default();
        ok.final_read(1, 0, 2, &[(0, 1), (1, 2)]).final_read(2, 0, 2, &[(0, 1), (1, 2)]);
        assert!(replica_agreement(&ok.analysis()).is_empty());
    }
}
