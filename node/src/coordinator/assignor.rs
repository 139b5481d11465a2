//! Server-side assignors (KIP-848): from the members' subscriptions and the topics' partition
//! counts to each member's *target* partitions. Pure and deterministic: the same input gives
//! the same output on any coordinator.
//!
//! - `uniform`: every subscribed partition to exactly one of its subscribers, counts as even as
//!   the subscriptions allow, and *sticky*: a member keeps the partitions it was targeted with
//!   before up to its fair share, so a join or a leave moves only what must move.
//! - `range`: per topic, contiguous ranges of partitions to the subscribers in a fixed order
//!   (instance id, else member id), the first `n mod m` getting one more: members subscribed to
//!   co-partitioned topics get the same partition numbers of each.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::group::Partitions;

/// Which assignor a group uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignor {
    #[default]
    Uniform,
    Range,
}

impl Assignor {
    /// Parses a name from a heartbeat (empty: the default).
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Assignor, String> {
        match name {
            "" | "uniform" => Ok(Assignor::Uniform),
            "range" => Ok(Assignor::Range),
            other => Err(format!("unknown assignor {other:?}: expected \"uniform\" or \"range\"")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// One member as an assignor sees it.
#[derive(Clone, Debug)]
pub struct Subscriber<'a> {
    pub member_id: &'a str,
    /// Fixed order among members (instance id, else member id).
    pub sort_key: &'a str,
    /// Topic ids it subscribes to (that exist).
    pub topics: BTreeSet<u64>,
    /// Its target before this assignment (stickiness).
    pub previous: &'a Partitions,
}

/// Targets for every member (members with nothing get an empty entry).
pub fn assign(kind: Assignor, members: &[Subscriber<'_>], topics: &BTreeMap<u64, u32>) -> BTreeMap<String, Partitions> {
    let mut ordered: Vec<&Subscriber<'_>> = members.iter().collect();
    ordered.sort_by(|a, b| (a.sort_key, a.member_id).cmp(&(b.sort_key, b.member_id)));
    let mut out: BTreeMap<String, Partitions> =
        ordered.iter().map(|m| (m.member_id.to_string(), Partitions::new())).collect();
    match kind {
        Assignor::Range => range(&ordered, topics, &mut out),
        Assignor::Uniform => uniform(&ordered, topics, &mut out),
    }
    out
}

fn give(out: &mut BTreeMap<String, Partitions>, member: &str, topic: u64, p: u32) {
    if let Some(t) = out.get_mut(member) {
        t.entry(topic).or_default().insert(p);
    }
}

fn range(ordered: &[&Subscriber<'_>], topics: &BTreeMap<u64, u32>, out: &mut BTreeMap<String, Partitions>) {
    for (topic, count) in topics {
        let subs: Vec<&&Subscriber<'_>> = ordered.iter().filter(|m| m.topics.contains(topic)).collect();
        if subs.is_empty() {
            continue;
        }
        let m = subs.len() as u32;
        let (q, r) = (count / m, count % m);
        let mut next = 0u32;
        for (i, s) in subs.iter().enumerate() {
            let n = q + u32::from((i as u32) < r);
            for p in next..next + n {
                give(out, s.member_id, *topic, p);
            }
            next += n;
        }
    }
}

fn uniform(ordered: &[&Subscriber<'_>], topics: &BTreeMap<u64, u32>, out: &mut BTreeMap<String, Partitions>) {
    // Every partition with its candidates; partitions with fewer candidates first, so the
    // constrained ones are placed while there is still choice.
    let mut parts: Vec<(u64, u32, Vec<usize>)> = Vec::new();
    for (topic, count) in topics {
        let cands: Vec<usize> = (0..ordered.len()).filter(|i| ordered[*i].topics.contains(topic)).collect();
        if cands.is_empty() {
            continue;
        }
        parts.extend((0..*count).map(|p| (*topic, p, cands.clone())));
    }
    parts.sort_by_key(|(t, p, c)| (c.len(), *t, *p));
    let previous_count: Vec<usize> =
        ordered.iter().map(|m| m.previous.values().map(BTreeSet::len).sum::<usize>()).collect();
    // Fair shares: place every partition on its least-loaded candidate; among equals, the one
    // that held more before (so the extra partitions stay where they were), then by order.
    let mut quota = vec![0usize; ordered.len()];
    for (_, _, cands) in &parts {
        if let Some(best) = cands.iter().min_by_key(|i| (quota[**i], std::cmp::Reverse(previous_count[**i]), **i)) {
            quota[*best] += 1;
        }
    }
    let mut count = vec![0usize; ordered.len()];
    let mut placed: BTreeSet<(u64, u32)> = BTreeSet::new();
    // Sticky: keep what each member had, up to its share.
    for (i, m) in ordered.iter().enumerate() {
        for (topic, ps) in m.previous {
            let Some(n) = topics.get(topic) else { continue };
            if !m.topics.contains(topic) {
                continue;
            }
            for p in ps.iter().filter(|p| **p < *n) {
                if count[i] < quota[i] && placed.insert((*topic, *p)) {
                    give(out, m.member_id, *topic, *p);
                    count[i] += 1;
                }
            }
        }
    }
    // The rest to candidates below their share (least loaded first), else the least loaded.
    for (topic, p, cands) in &parts {
        if placed.contains(&(*topic, *p)) {
            continue;
        }
        let below = cands.iter().filter(|i| count[**i] < quota[**i]).min_by_key(|i| (count[**i], **i));
        let pick = below.or_else(|| cands.iter().min_by_key(|i| (count[**i], **i)));
        if let Some(i) = pick {
            give(out, ordered[*i].member_id, *topic, *p);
            count[*i] += 1;
            placed.insert((*topic, *p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs<'a>(ids: &'a [&'a str], topics: &[u64], prev: &'a [Partitions]) -> Vec<Subscriber<'a>> {
        ids.iter()
            .zip(prev)
            .map(|(id, p)| Subscriber {
                member_id: id,
                sort_key: id,
                topics: topics.iter().copied().collect(),
                previous: p,
            })
            .collect()
    }

    fn counts(a: &BTreeMap<String, Partitions>) -> Vec<usize> {
        a.values().map(|p| p.values().map(BTreeSet::len).sum()).collect()
    }

    /// Every partition assigned exactly once.
    fn assert_complete(a: &BTreeMap<String, Partitions>, topics: &BTreeMap<u64, u32>) {
        let mut seen = BTreeSet::new();
        for p in a.values() {
            for (t, ps) in p {
                for x in ps {
                    assert!(seen.insert((*t, *x)), "{t}/{x} assigned twice");
                }
            }
        }
        let all: usize = topics.values().map(|n| *n as usize).sum();
        assert_eq!(seen.len(), all, "every partition assigned");
    }

    #[test]
    fn uniform_is_balanced_and_moves_only_what_a_join_needs() {
        let topics: BTreeMap<u64, u32> = [(1, 64)].into();
        let empty = vec![Partitions::new(); 9];
        let ids8 = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let first = assign(Assignor::Uniform, &subs(&ids8, &[1], &empty[..8]), &topics);
        assert_complete(&first, &topics);
        assert!(counts(&first).iter().all(|c| *c == 8), "{:?}", counts(&first));
        // A ninth member joins: 64 = 7×9 + 1; only the moved partitions change owner.
        let ids9 = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev: Vec<Partitions> = ids8.iter().map(|id| first[*id].clone()).collect();
        prev.push(Partitions::new());
        let second = assign(Assignor::Uniform, &subs(&ids9, &[1], &prev), &topics);
        assert_complete(&second, &topics);
        let c = counts(&second);
        assert!(c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) <= 1, "{c:?}");
        let moved: usize = ids8
            .iter()
            .map(|id| first[*id][&1].difference(second[*id].get(&1).unwrap_or(&BTreeSet::new())).count())
            .sum();
        assert_eq!(moved, c[8], "only the newcomer's partitions moved");
    }

    #[test]
    fn uniform_respects_different_subscriptions() {
        let topics: BTreeMap<u64, u32> = [(1, 4), (2, 4)].into();
        let none = Partitions::new();
        let members = vec![
            Subscriber { member_id: "a", sort_key: "a", topics: [1].into(), previous: &none },
            Subscriber { member_id: "b", sort_key: "b", topics: [1, 2].into(), previous: &none },
        ];
        let a = assign(Assignor::Uniform, &members, &topics);
        assert_complete(&a, &topics);
        assert!(!a["a"].contains_key(&2), "a is not subscribed to topic 2");
        assert_eq!(counts(&a), vec![4, 4]);
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_same_numbers_of_co_partitioned_topics() {
        let topics: BTreeMap<u64, u32> = [(1, 5), (2, 5)].into();
        let empty = vec![Partitions::new(); 2];
        let a = assign(Assignor::Range, &subs(&["x", "y"], &[1, 2], &empty), &topics);
        assert_complete(&a, &topics);
        assert_eq!(a["x"][&1], [0, 1, 2].into());
        assert_eq!(a["y"][&1], [3, 4].into());
        assert_eq!(a["x"][&1], a["x"][&2], "co-partitioned topics line up");
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!(Assignor::parse(""), Ok(Assignor::Uniform));
        assert_eq!(Assignor::parse("range"), Ok(Assignor::Range));
        assert!(Assignor::parse("sticky-ish").is_err());
    }
}
