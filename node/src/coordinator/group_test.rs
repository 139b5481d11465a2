//! The KIP-848 rules on hand-made groups: targets, two-step moves, acknowledgements, commits.

use super::*;

fn meta(topics: &[(&str, u64, u32)]) -> Metadata {
    topics
        .iter()
        .map(|(n, id, p)| (n.to_string(), TopicMeta { name: n.to_string(), id: *id, partitions: *p }))
        .collect()
}

fn member(id: &str, topics: &[&str]) -> Member {
    Member {
        member_id: id.into(),
        subscribed_topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Member::default()
    }
}

fn parts(topic: u64, ps: &[u32]) -> Partitions {
    [(topic, ps.iter().copied().collect())].into()
}

fn count(p: &Partitions) -> usize {
    p.values().map(BTreeSet::len).sum()
}

#[test]
fn a_first_member_gets_every_partition_at_the_new_epoch() {
    let m = meta(&[("t", 1, 4)]);
    let mut g = GroupState::default();
    g.members.insert("a".into(), member("a", &["t"]));
    g.reassign(&m);
    assert!(g.reconcile("a", Some(&Partitions::new())));
    let a = &g.members["a"];
    assert_eq!(a.epoch, g.assignment_epoch);
    assert_eq!(a.assigned, parts(1, &[0, 1, 2, 3]));
    assert_eq!(g.state_name(), "STABLE");
}

#[test]
fn a_partition_moves_only_after_its_owner_acknowledges_the_revocation() {
    let m = meta(&[("t", 1, 4)]);
    let mut g = GroupState::default();
    g.members.insert("a".into(), member("a", &["t"]));
    g.reassign(&m);
    g.reconcile("a", Some(&Partitions::new()));
    let all = g.members["a"].assigned.clone();

    g.members.insert("b".into(), member("b", &["t"]));
    g.reassign(&m);
    // b joins first: everything is still a's, so b gets nothing yet, but its epoch moves on.
    g.reconcile("b", Some(&Partitions::new()));
    assert!(is_empty(&g.members["b"].assigned));
    // a learns of the new target: two partitions go to pending revocation; a keeps the other two.
    g.reconcile("a", Some(&all));
    let a = g.members["a"].clone();
    assert_eq!(count(&a.assigned), 2);
    assert_eq!(count(&a.pending_revocation), 2);
    assert!(a.epoch < g.assignment_epoch, "a's epoch waits for its acknowledgement");
    // Still owned by a: b cannot have them, and a may still commit them.
    g.reconcile("b", Some(&Partitions::new()));
    assert!(is_empty(&g.members["b"].assigned));
    let (t, p) =
        a.pending_revocation.iter().next().map(|(t, ps)| (*t, *ps.iter().next().unwrap_or(&0))).unwrap_or((0, 0));
    assert_eq!(a.may_commit(a.epoch, t, p), Ok(()));
    // a acknowledges (reports owning only what it kept): now b gets them, and a's commits for
    // them are refused.
    g.reconcile("a", Some(&a.assigned));
    assert_eq!(g.members["a"].epoch, g.assignment_epoch);
    assert_eq!(g.members["a"].may_commit(g.members["a"].epoch, t, p), Err(CommitRefusal::NotOwned));
    g.reconcile("b", Some(&Partitions::new()));
    assert_eq!(count(&g.members["b"].assigned), 2);
    assert_eq!(g.owner_of(t, p).map(|m| m.member_id.as_str()), Some("b"));
    assert_eq!(g.state_name(), "STABLE");
}

#[test]
fn an_unacknowledged_revocation_keeps_the_partition_from_everyone_else() {
    let m = meta(&[("t", 1, 2)]);
    let mut g = GroupState::default();
    g.members.insert("a".into(), member("a", &["t"]));
    g.reassign(&m);
    g.reconcile("a", Some(&Partitions::new()));
    g.members.insert("b".into(), member("b", &["t"]));
    g.reassign(&m);
    let owned = g.members["a"].assigned.clone();
    g.reconcile("a", Some(&owned));
    // Heartbeats that still report the revoked partition (or report nothing) do not release it.
    for report in [Some(&owned), None] {
        g.reconcile("a", report);
        g.reconcile("b", Some(&Partitions::new()));
        assert!(is_empty(&g.members["b"].assigned), "given away before the acknowledgement");
    }
    // Removing a (timeout) releases it at once.
    assert!(g.remove("a", &m));
    g.reconcile("b", Some(&Partitions::new()));
    assert_eq!(count(&g.members["b"].assigned), 2);
}

#[test]
fn commits_with_a_wrong_epoch_are_refused() {
    let mut a = member("a", &["t"]);
    a.epoch = 5;
    a.previous_epoch = 3;
    a.assigned = parts(1, &[0]);
    assert_eq!(a.may_commit(5, 1, 0), Ok(()));
    assert_eq!(a.may_commit(3, 1, 0), Ok(()), "the previous epoch, for a partition still owned");
    assert_eq!(a.may_commit(4, 1, 0), Err(CommitRefusal::Stale));
    assert_eq!(a.may_commit(6, 1, 0), Err(CommitRefusal::Fenced));
    assert_eq!(a.may_commit(5, 1, 1), Err(CommitRefusal::NotOwned));
}

#[test]
fn new_partitions_and_matching_topics_change_the_targets() {
    let mut g = GroupState::default();
    let mut a = member("a", &[]);
    a.subscribed_regex = Some("orders-.*".into());
    g.members.insert("a".into(), a);
    let before = meta(&[("orders-eu", 1, 2), ("payments", 2, 2)]);
    g.reassign(&before);
    assert_eq!(g.topics.keys().copied().collect::<Vec<_>>(), vec![1], "only matching topics");
    let after = meta(&[("orders-eu", 1, 3), ("orders-us", 3, 1), ("payments", 2, 2)]);
    assert!(g.topics_changed(&after));
    g.reassign(&after);
    g.reconcile("a", Some(&Partitions::new()));
    assert_eq!(count(&g.members["a"].assigned), 4);
    assert!(!g.topics_changed(&after));
    assert!(compile_regex("(unclosed").is_err());
}
