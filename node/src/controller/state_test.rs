use super::*;

fn three_nodes() -> ClusterState {
    let mut s = ClusterState::default();
    let nodes =
        (1..=3).map(|n| (n, NodeAddress::parse(&format!("127.0.0.1:{}", 7700 + n)).expect("address"))).collect();
    assert_eq!(s.apply(1, &MetaCommand::Bootstrap { nodes, cluster_id: "c1".into() }), MetaAnswer::Done);
    s
}

fn create(name: &str, partitions: u32, rf: u32, live: &[NodeId]) -> MetaCommand {
    MetaCommand::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        retention: Retention { retention_ms: 60_000, retention_bytes: 0 },
        live: live.to_vec(),
        limits: PartitionLimits { per_node_max: 100_000, total_max: 100_000 },
    }
}

#[test]
fn thirty_partitions_rf3_spread_preferred_leaders_evenly() {
    let mut s = three_nodes();
    assert!(matches!(s.apply(2, &create("orders", 30, 3, &[1, 2, 3])), MetaAnswer::Created { .. }));
    let t = &s.topics["orders"];
    let mut leads = BTreeMap::new();
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 3);
        let nodes: BTreeSet<_> = p.replicas.iter().map(|r| r.node).collect();
        assert_eq!(nodes.len(), 3, "replicas on distinct nodes");
        *leads.entry(p.replicas[0].node).or_insert(0) += 1;
    }
    assert_eq!(leads, BTreeMap::from([(1, 10), (2, 10), (3, 10)]));
    assert_eq!(t.retention.retention_ms, 60_000, "retention settings are stored");
}

#[test]
fn replicas_spread_across_topics_when_rf_is_below_the_node_count() {
    let mut s = three_nodes();
    s.apply(2, &create("a", 4, 1, &[1, 2, 3]));
    s.apply(3, &create("b", 5, 2, &[1, 2, 3]));
    let mut holds = BTreeMap::new();
    for p in s.topics.values().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            *holds.entry(r.node).or_insert(0) += 1;
        }
    }
    let (min, max) = (holds.values().min().copied(), holds.values().max().copied());
    assert_eq!(holds.values().sum::<i32>(), 4 + 10);
    assert!(max.unwrap_or(0) - min.unwrap_or(0) <= 1, "{holds:?}");
}

#[test]
fn invalid_requests_change_nothing() {
    let mut s = three_nodes();
    let before = s.clone();
    assert!(matches!(s.apply(2, &create("t", 1, 3, &[1, 2])), MetaAnswer::Invalid(m) if m.contains("live")));
    assert!(matches!(s.apply(3, &create("t", 1, 4, &[1, 2, 3])), MetaAnswer::Invalid(_)));
    assert!(matches!(s.apply(4, &create("t", 1, 0, &[1, 2, 3])), MetaAnswer::Invalid(_)));
    assert!(matches!(s.apply(5, &create("t", 0, 1, &[1, 2, 3])), MetaAnswer::Invalid(m) if m.contains("partitions")));
    assert!(matches!(s.apply(6, &create("bad/name", 1, 1, &[1, 2, 3])), MetaAnswer::Invalid(_)));
    // A live node the cluster does not know does not count.
    assert!(matches!(s.apply(7, &create("t", 1, 3, &[1, 2, 9])), MetaAnswer::Invalid(_)));
    assert_eq!(s, before);
    assert!(matches!(s.apply(8, &create("t", 2, 3, &[1, 2, 3])), MetaAnswer::Created { .. }));
    let after_create = s.clone();
    assert_eq!(s.apply(9, &create("t", 5, 1, &[1, 2, 3])), MetaAnswer::AlreadyExists);
    assert_eq!(s.apply(10, &MetaCommand::DeleteTopic { name: "nope".into() }), MetaAnswer::NotFound);
    assert_eq!(s, after_create);
}

#[test]
fn deleted_and_recreated_topic_never_reuses_group_ids_or_incarnations() {
    let mut s = three_nodes();
    s.apply(2, &create("t", 3, 3, &[1, 2, 3]));
    let old: Vec<GroupId> = s.topics["t"].partitions.iter().map(|p| p.group_id).collect();
    let old_inc: BTreeSet<u32> =
        s.topics["t"].partitions.iter().flat_map(|p| p.replicas.iter().map(|r| r.incarnation)).collect();
    let old_id = s.topics["t"].id;
    assert_eq!(s.apply(3, &MetaCommand::DeleteTopic { name: "t".into() }), MetaAnswer::Done);
    assert!(s.topics.is_empty());
    s.apply(4, &create("t", 3, 3, &[1, 2, 3]));
    let new: Vec<GroupId> = s.topics["t"].partitions.iter().map(|p| p.group_id).collect();
    assert!(new.iter().all(|g| !old.contains(g)), "{old:?} vs {new:?}");
    assert!(new.iter().all(|g| *g != CONTROLLER_GROUP));
    let new_inc: BTreeSet<u32> =
        s.topics["t"].partitions.iter().flat_map(|p| p.replicas.iter().map(|r| r.incarnation)).collect();
    assert!(old_inc.is_disjoint(&new_inc));
    assert_ne!(s.topics["t"].id, old_id);
}

#[test]
fn bootstrap_happens_once_and_replicas_on_lists_local_partitions() {
    let mut s = three_nodes();
    let other = BTreeMap::from([(9, NodeAddress::parse("x:1").expect("address"))]);
    s.apply(2, &MetaCommand::Bootstrap { nodes: other, cluster_id: "c2".into() });
    assert_eq!(s.nodes.len(), 3, "a second bootstrap changes nothing");
    assert_eq!(s.cluster_id, "c1", "nor the cluster id");
    s.apply(3, &create("t", 6, 1, &[1, 2, 3]));
    let on1: Vec<u32> = s.replicas_on(1).map(|(_, p, _)| p).collect();
    assert_eq!(on1.len(), 2);
    assert!(s.replicas_on(1).all(|(t, _, _)| t == "t"));
}

#[test]
fn same_commands_same_state() {
    let cmds =
        [create("a", 7, 2, &[1, 2, 3]), create("b", 3, 3, &[1, 2, 3]), MetaCommand::DeleteTopic { name: "a".into() }];
    let (mut x, mut y) = (three_nodes(), three_nodes());
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(x.apply(10 + i as u64, c), y.apply(10 + i as u64, c));
    }
    assert_eq!(x, y);
}

#[test]
fn producer_ids_are_unique_and_named_producers_bump_their_epoch() {
    let mut s = three_nodes();
    let MetaAnswer::ProducerIds { first: a, count: n } = s.apply(2, &MetaCommand::AllocateProducerIds { count: 100 })
    else {
        panic!("expected ids");
    };
    assert!(a >= 1 && n == 100);
    let MetaAnswer::Producer { id, epoch: 0 } = s.apply(3, &named("billing", None, 0)) else { panic!("first init") };
    assert!(id >= a + n, "named id {id} outside the allocated block");
    assert_eq!(s.apply(4, &named("billing", None, 1)), MetaAnswer::Producer { id, epoch: 1 });
    assert_eq!(s.check_producer(id, 1), ProducerCheck::Issued);
    assert_eq!(s.check_producer(id, 0), ProducerCheck::Fenced { fenced_below: 1 }, "the old instance is fenced");
    let MetaAnswer::ProducerIds { first: b, .. } = s.apply(5, &MetaCommand::AllocateProducerIds { count: 10 }) else {
        panic!("expected ids");
    };
    assert!(b > id, "blocks never overlap earlier ids");
    assert!(matches!(s.apply(6, &named("", None, 2)), MetaAnswer::Invalid(_)));
}

fn named(name: &str, instance: Option<(u64, u32)>, now_ms: i64) -> MetaCommand {
    MetaCommand::InitNamedProducer {
        name: name.into(),
        instance,
        now_ms,
        limits: NamedProducerLimits { max: 3, expiry_ms: 1_000 },
    }
}

#[test]
fn an_instance_bumps_its_own_epoch_without_fencing_itself_and_a_zombie_cannot() {
    let mut s = three_nodes();
    let MetaAnswer::Producer { id, epoch: 0 } = s.apply(2, &named("orders", None, 0)) else { panic!("init") };
    // The instance (epoch 0) bumps itself twice: epochs 1 and 2, all still its own.
    assert_eq!(s.apply(3, &named("orders", Some((id, 0)), 1)), MetaAnswer::Producer { id, epoch: 1 });
    assert_eq!(s.apply(4, &named("orders", Some((id, 0)), 2)), MetaAnswer::Producer { id, epoch: 2 });
    for e in 0..=2 {
        assert_eq!(s.check_producer(id, e), ProducerCheck::Issued, "epoch {e}");
    }
    assert!(matches!(s.check_producer(id, 3), ProducerCheck::NotIssued(_)), "never issued");
    // A new instance fences all of them; the old instance can no longer bump.
    assert_eq!(s.apply(5, &named("orders", None, 3)), MetaAnswer::Producer { id, epoch: 3 });
    assert_eq!(s.check_producer(id, 2), ProducerCheck::Fenced { fenced_below: 3 });
    let before = s.clone();
    assert_eq!(s.apply(6, &named("orders", Some((id, 2)), 4)), MetaAnswer::Fenced { current_epoch: 3 });
    assert_eq!(s.named_producers, before.named_producers, "a refused bump changes nothing");
}

#[test]
fn forged_producer_ids_and_epochs_are_not_issued() {
    let mut s = three_nodes();
    let MetaAnswer::ProducerIds { first, count } = s.apply(2, &MetaCommand::AllocateProducerIds { count: 10 }) else {
        panic!("ids");
    };
    assert_eq!(s.check_producer(first, 0), ProducerCheck::Issued, "an anonymous id of an allocated block");
    assert!(matches!(s.check_producer(first + count, 0), ProducerCheck::NotIssued(_)), "beyond every block");
    assert!(matches!(s.check_producer(u64::MAX, 0), ProducerCheck::NotIssued(_)));
    assert_eq!(s.check_producer(first, u32::MAX), ProducerCheck::Unregistered, "anonymous producers have epoch 0");
}

#[test]
fn the_named_registry_is_bounded_and_forgets_unused_names() {
    let mut s = three_nodes();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        assert!(matches!(s.apply(2 + i as u64, &named(name, None, 0)), MetaAnswer::Producer { .. }));
    }
    let before = s.clone();
    assert!(
        matches!(s.apply(5, &named("d", None, 500)), MetaAnswer::LimitExceeded(m) if m.contains("named_producers_max"))
    );
    assert_eq!(s.named_producers, before.named_producers);
    // A known name is still served at the cap.
    assert!(matches!(s.apply(6, &named("a", None, 600)), MetaAnswer::Producer { epoch: 1, .. }));
    // After the expiry (1 s here) b and c are forgotten; a was used at 600.
    assert!(matches!(s.apply(7, &named("d", None, 1_500)), MetaAnswer::Producer { .. }));
    let names: Vec<&str> = s.producer_names.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["a", "d"]);
    assert_eq!(s.named_producers.len(), 2, "the index and the registry agree");
}

#[test]
fn partition_limits_refuse_a_topic_and_change_nothing() {
    let mut s = three_nodes();
    let limited = |name: &str, partitions, per_node_max, total_max| MetaCommand::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: 3,
        retention: Retention::default(),
        live: vec![1, 2, 3],
        limits: PartitionLimits { per_node_max, total_max },
    };
    assert!(matches!(s.apply(2, &limited("a", 10, 10, 100)), MetaAnswer::Created { .. }));
    let before = s.clone();
    assert!(matches!(s.apply(3, &limited("b", 1, 10, 100)), MetaAnswer::LimitExceeded(m) if m.contains("per_node")));
    assert!(
        matches!(s.apply(4, &limited("b", 91, 1_000, 100)), MetaAnswer::LimitExceeded(m) if m.contains("partitions_max"))
    );
    assert_eq!(s, before);
    assert!(matches!(s.apply(5, &limited("b", 90, 1_000, 100)), MetaAnswer::Created { .. }));
}

#[test]
fn replacing_a_node_gives_its_replicas_new_incarnations_and_awaits_its_new_directory() {
    let mut s = three_nodes();
    s.apply(2, &create("t", 2, 3, &[1, 2, 3]));
    assert_eq!(s.apply(3, &MetaCommand::RegisterDirectory { node: 3, directory: 0xd1 }), MetaAnswer::Done);
    assert_eq!(s.apply(4, &MetaCommand::RegisterDirectory { node: 3, directory: 0xd1 }), MetaAnswer::AlreadyExists);
    let before = s.clone();
    assert!(matches!(
        s.apply(5, &MetaCommand::RegisterDirectory { node: 3, directory: 0xd2 }),
        MetaAnswer::Invalid(m) if m.contains("replace the node first")
    ));
    assert!(matches!(s.apply(6, &MetaCommand::ReplaceNode { node: 2 }), MetaAnswer::Invalid(_)), "never registered");
    assert_eq!(s, before, "refusals change nothing");

    assert_eq!(s.apply(7, &MetaCommand::ReplaceNode { node: 3 }), MetaAnswer::Replaced { replicas: 2 });
    assert!(s.awaiting_replacement(3));
    assert_ne!(s.controller_incarnation(3), CONTROLLER_INCARNATION);
    for (p, old) in s.topics["t"].partitions.iter().zip(&before.topics["t"].partitions) {
        let new3 = p.replicas.iter().find(|r| r.node == 3).expect("still on node 3");
        let old3 = old.replicas.iter().find(|r| r.node == 3).expect("was on node 3");
        assert_ne!(new3.incarnation, old3.incarnation, "a new replica, not the lost one");
        assert_eq!(p.founders, old.founders, "the group's first membership is unchanged");
        assert_eq!(
            p.replicas.iter().filter(|r| r.node != 3).collect::<Vec<_>>(),
            old.replicas.iter().filter(|r| r.node != 3).collect::<Vec<_>>()
        );
    }
    assert!(matches!(s.apply(8, &MetaCommand::ReplaceNode { node: 3 }), MetaAnswer::Invalid(_)), "already awaiting");
    // A late report of the replaced directory (the node's previous process) is never taken.
    assert!(matches!(
        s.apply(9, &MetaCommand::RegisterDirectory { node: 3, directory: 0xd1 }),
        MetaAnswer::Invalid(m) if m.contains("was replaced")
    ));
    assert!(s.awaiting_replacement(3));
    assert_eq!(s.apply(10, &MetaCommand::RegisterDirectory { node: 3, directory: 0xd2 }), MetaAnswer::Done);
    assert!(!s.awaiting_replacement(3));
}

#[test]
fn repairing_a_replica_gives_it_a_new_incarnation_once() {
    let mut s = three_nodes();
    s.apply(2, &create("t", 1, 3, &[1, 2, 3]));
    let p = s.topics["t"].partitions[0].clone();
    let r2 = p.replicas.iter().find(|r| r.node == 2).copied().expect("on node 2");
    let old = cairn_raft::ids::replica_id(2, r2.incarnation);
    let MetaAnswer::Repaired { replica: new } =
        s.apply(3, &MetaCommand::RepairReplica { group: p.group_id, replica: old })
    else {
        panic!("not repaired");
    };
    assert_ne!(new, old);
    assert_eq!(cairn_raft::ids::node_of(new), 2, "rebuilt on the same node");
    let after = s.clone();
    assert_eq!(
        s.apply(4, &MetaCommand::RepairReplica { group: p.group_id, replica: old }),
        MetaAnswer::AlreadyExists,
        "a repeat of the same repair changes nothing"
    );
    assert_eq!(s.apply(5, &MetaCommand::RepairReplica { group: 999, replica: old }), MetaAnswer::NotFound);
    assert_eq!(s, after);
    assert_eq!(s.topics["t"].partitions[0].founders, p.founders, "the first membership is unchanged");
}

#[test]
fn altering_a_topic_config_changes_only_the_settings_given_and_refuses_bad_values() {
    let mut s = three_nodes();
    s.apply(2, &create("orders", 1, 3, &[1, 2, 3]));
    let alter =
        |ms, bytes| MetaCommand::AlterTopicConfig { name: "orders".into(), retention_ms: ms, retention_bytes: bytes };
    assert_eq!(s.apply(3, &alter(None, Some(4_096))), MetaAnswer::Done);
    assert_eq!(s.topics["orders"].retention, Retention { retention_ms: 60_000, retention_bytes: 4_096 });
    assert_eq!(s.version, 3);
    assert!(matches!(s.apply(4, &alter(Some(-2), None)), MetaAnswer::Invalid(_)));
    assert_eq!(s.topics["orders"].retention, Retention { retention_ms: 60_000, retention_bytes: 4_096 }, "unchanged");
    assert_eq!(s.version, 3, "a refusal changes nothing");
    assert_eq!(s.apply(5, &alter(Some(0), Some(-1))), MetaAnswer::Done);
    assert_eq!(s.topics["orders"].retention, Retention { retention_ms: 0, retention_bytes: -1 });
    let missing = MetaCommand::AlterTopicConfig { name: "nope".into(), retention_ms: Some(1), retention_bytes: None };
    assert_eq!(s.apply(6, &missing), MetaAnswer::NotFound);
}

#[test]
fn adding_partitions_places_new_groups_keeps_the_old_ones_and_never_shrinks() {
    let mut s = three_nodes();
    s.apply(2, &create("orders", 3, 3, &[1, 2, 3]));
    let before = s.topics["orders"].clone();
    let grow = |partitions, live: &[NodeId], total_max| MetaCommand::CreatePartitions {
        name: "orders".into(),
        partitions,
        live: live.to_vec(),
        limits: PartitionLimits { per_node_max: 100_000, total_max },
    };
    assert_eq!(s.apply(3, &grow(6, &[1, 2, 3], 100)), MetaAnswer::Done);
    let t = &s.topics["orders"];
    assert_eq!(t.partitions.len(), 6);
    assert_eq!(t.partitions[..3], before.partitions[..], "existing partitions are untouched");
    assert_eq!(t.id, before.id, "same topic incarnation");
    let groups: BTreeSet<_> = t.partitions.iter().map(|p| p.group_id).collect();
    assert_eq!(groups.len(), 6, "each new partition is its own group");
    let leaders: BTreeSet<_> = t.partitions[3..].iter().map(|p| p.replicas[0].node).collect();
    assert_eq!(leaders.len(), 3, "the new partitions' preferred leaders are spread");
    for p in &t.partitions[3..] {
        assert_eq!(p.replicas.len(), 3, "the topic's replication factor");
        assert_eq!(p.founders, p.replicas);
    }
    assert_eq!(s.version, 3);

    let after = s.clone();
    assert_eq!(s.apply(4, &grow(6, &[1, 2, 3], 100)), MetaAnswer::AlreadyExists, "a repeat is not an error");
    for (i, cmd) in [grow(5, &[1, 2, 3], 100), grow(2, &[1, 2, 3], 100), grow(PARTITIONS_MAX + 1, &[1, 2, 3], u64::MAX)]
        .iter()
        .enumerate()
    {
        assert!(matches!(s.apply(4 + i as u64, cmd), MetaAnswer::Invalid(_)), "{cmd:?}");
    }
    assert!(matches!(s.apply(7, &grow(7, &[1, 2], 100)), MetaAnswer::Invalid(m) if m.contains("live nodes")));
    assert!(matches!(s.apply(8, &grow(200, &[1, 2, 3], 100)), MetaAnswer::LimitExceeded(_)));
    let missing = MetaCommand::CreatePartitions {
        name: "nope".into(),
        partitions: 9,
        live: vec![1, 2, 3],
        limits: PartitionLimits { per_node_max: 100, total_max: 100 },
    };
    assert_eq!(s.apply(9, &missing), MetaAnswer::NotFound);
    assert_eq!(s, after, "refusals change nothing");
}
