//! `conditional-conflict`: conditional appends (the `conditional` workload) must behave as a
//! compare-and-set on each key's last offset. Over every conditional send whose record is in
//! the log (acknowledged, or found by the final reads whatever its outcome):
//! - no two records of one key were appended against the same expected offset;
//! - each record expected exactly the offset of its key's record before it (the first one: no
//!   record), so no update was lost between a read and a write.

use std::collections::BTreeMap;

use super::{anomaly, Anomaly};
use crate::history::{Analysis, Outcome};

/// Where each value landed: acknowledged offsets, then what the final reads found.
fn landed(a: &Analysis) -> BTreeMap<u64, (u32, u64)> {
    let mut at = BTreeMap::new();
    for s in &a.sends {
        if let Outcome::Ok { offset } = s.outcome {
            at.insert(s.value, (s.partition, offset));
        }
    }
    for f in &a.finals {
        for (offset, value, _) in &f.records {
            at.entry(*value).or_insert((f.partition, *offset));
        }
    }
    at
}

fn show(expected: Option<u64>) -> String {
    expected.map_or("no record".to_string(), |e| format!("offset {e}"))
}

/// A conditional record in the log: (offset, value, expected offset of its key's last record).
type Landed = (u64, u64, Option<u64>);

pub fn conditional_conflict(a: &Analysis) -> Vec<Anomaly> {
    let at = landed(a);
    // (partition, key) → its records, put in offset order below.
    let mut keys: BTreeMap<(u32, &str), Vec<Landed>> = BTreeMap::new();
    for s in &a.sends {
        let (Some((key, expected)), Some(&(partition, offset))) = (s.condition.as_ref(), at.get(&s.value)) else {
            continue;
        };
        keys.entry((partition, key.as_str())).or_default().push((offset, s.value, *expected));
    }
    let mut out = Vec::new();
    for ((partition, key), mut records) in keys {
        records.sort_unstable();
        let mut by_expected: BTreeMap<Option<u64>, u64> = BTreeMap::new();
        let mut previous: Option<u64> = None;
        for (offset, value, expected) in records {
            if let Some(first) = by_expected.insert(expected, value) {
                out.push(anomaly(
                    "conditional-conflict",
                    format!(
                        "key {key} of partition {partition}: values {first} and {value} (offset {offset}) were both \
                         appended expecting {}",
                        show(expected)
                    ),
                ));
            } else if expected != previous {
                out.push(anomaly(
                    "conditional-conflict",
                    format!(
                        "key {key} of partition {partition}: value {value} at offset {offset} was appended expecting {} \
                         but the key's record before it is at {}",
                        show(expected),
                        show(previous)
                    ),
                ));
            }
            previous = Some(offset);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn a_chain_of_compare_and_sets_passes_and_refusals_are_ignored() {
        let mut h = H::default();
        h.send_cond(1, 0, 1, "k0", None, Some(0))
            .send_cond(2, 0, 2, "k0", None, None) // lost the race: refused
            .send_cond(2, 0, 3, "k0", Some(0), Some(1))
            .send_cond(1, 0, 4, "k1", None, Some(2)) // another key, same partition
            .send_cond(1, 0, 5, "k0", Some(1), Some(3))
            .send_fail(3, 0, 6);
        assert!(conditional_conflict(&h.analysis()).is_empty());
    }

    #[test]
    fn two_records_appended_against_one_expected_offset_are_reported() {
        let mut h = H::default();
        h.send_cond(1, 0, 1, "k0", None, Some(0)).send_cond(1, 0, 2, "k0", Some(0), Some(1)).send_cond(
            2,
            0,
            3,
            "k0",
            Some(0),
            Some(2),
        );
        let found = conditional_conflict(&h.analysis());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("values 2 and 3"), "{}", found[0].detail);
    }

    #[test]
    fn a_record_landed_with_an_unknown_outcome_counts_too() {
        // Value 2's send timed out (info) but the final read found it: it raced value 3.
        let mut h = H::default();
        h.send_cond(1, 0, 1, "k0", None, Some(0));
        h.push_cond_info(2, 0, 2, "k0", Some(0));
        h.send_cond(3, 0, 3, "k0", Some(0), Some(2)).final_read(1, 0, 3, &[(0, 1), (1, 2), (2, 3)]);
        let found = conditional_conflict(&h.analysis());
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_record_expecting_an_older_offset_than_its_predecessor_is_a_lost_update() {
        let mut h = H::default();
        h.send_cond(1, 0, 1, "k0", None, Some(0)).send_cond(1, 0, 2, "k0", Some(0), Some(1)).send_cond(
            2,
            0,
            3,
            "k0",
            Some(5),
            Some(2),
        );
        let found = conditional_conflict(&h.analysis());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains("before it is at offset 1"), "{}", found[0].detail);
    }
}
