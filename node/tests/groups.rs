//! Consumer groups on real nodes: committed offsets survive the coordinator's failover; the
//! KIP-848 protocol moves partitions in two steps and fences stale members; resets need an
//! empty group.

mod common;

use std::time::{Duration, Instant};

use cairn_client::{Client, ErrorCode, OffsetCommitPartition};
use cairn_proto::v1::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicPartitions};
use common::{wait_for_topic, Cluster};

fn offset(topic: &str, partition: u32, offset: u64) -> OffsetCommitPartition {
    OffsetCommitPartition { topic: topic.into(), partition, offset, ..Default::default() }
}

/// Waits until the cluster has a coordinator for `group`.
async fn coordinator_of(client: &Client, group: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = client.find_coordinator(group).await {
            if c.node_id != 0 {
                return c.node_id;
            }
        }
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn committed(list: &[cairn_client::CommittedOffset]) -> Vec<(String, u32, u64)> {
    let mut v: Vec<_> = list.iter().map(|o| (o.topic.clone(), o.partition, o.offset)).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_coordinators_failover() {
    let mut cluster = Cluster::start(3, "t:3");
    let client = cluster.client().await;
    wait_for_topic(&client, "t").await;
    coordinator_of(&client, "billing").await;
    client.commit_offsets("billing", "", -1, vec![offset("t", 0, 5), offset("t", 1, 7)]).await.expect("commit");
    let got = client.committed_offsets("billing", &[]).await.expect("fetch");
    assert_eq!(committed(&got), vec![("t".into(), 0, 5), ("t".into(), 1, 7)]);

    // The coordinator's node dies: another replica of its __consumer_offsets partition takes
    // over with every acknowledged commit.
    let coordinator = coordinator_of(&client, "billing").await;
    cluster.kill(coordinator);
    let survivor = (1..=3).find(|n| *n != coordinator).expect("another node");
    let other = common::connect(vec![cluster.addr(survivor)]).await;
    let got = other.committed_offsets("billing", &[]).await.expect("fetch after failover");
    assert_eq!(committed(&got), vec![("t".into(), 0, 5), ("t".into(), 1, 7)], "a commit was lost in the failover");
    other.commit_offsets("billing", "", -1, vec![offset("t", 2, 1)]).await.expect("commit after failover");
    cluster.restart(coordinator);
    let got = client.committed_offsets("billing", &[]).await.expect("fetch");
    assert_eq!(committed(&got).len(), 3);

    // Bad input changes nothing.
    let e = client.commit_offsets("billing", "", -1, vec![offset("t", 9, 1)]).await.expect_err("no partition 9");
    assert_eq!(e.code(), Some(ErrorCode::UnknownPartition), "{e}");
    let e = client.commit_offsets("billing", "", -1, vec![offset("nope", 0, 1)]).await.expect_err("no topic");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    let e = client.commit_offsets("", "", -1, vec![offset("t", 0, 1)]).await.expect_err("empty group id");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    assert_eq!(committed(&client.committed_offsets("billing", &[]).await.expect("fetch")).len(), 3);
}

fn join(group: &str, instance: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        group_id: group.into(),
        member_epoch: 0,
        instance_id: instance.into(),
        subscribed_topics: vec!["t".into()],
        ..Default::default()
    }
}

fn next(
    prev: &ConsumerGroupHeartbeatResponse,
    group: &str,
    owned: Vec<TopicPartitions>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest {
        group_id: group.into(),
        member_id: prev.member_id.clone(),
        member_epoch: prev.member_epoch,
        subscribed_topics: vec!["t".into()],
        owned,
        ..Default::default()
    }
}

fn count(a: &[TopicPartitions]) -> usize {
    a.iter().map(|t| t.partitions.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_in_two_steps_and_stale_members_are_fenced() {
    let cluster = Cluster::start(3, "t:4");
    let client = cluster.client().await;
    wait_for_topic(&client, "t").await;
    coordinator_of(&client, "g").await;
    let budget = Duration::from_secs(10);
    let a = client.group_heartbeat(join("g", ""), budget).await.expect("a joins");
    assert_eq!(count(&a.assignment), 4, "the only member gets every partition");
    let a_owned = a.assignment.clone();

    let b = client.group_heartbeat(join("g", ""), budget).await.expect("b joins");
    assert_eq!(count(&b.assignment), 0, "b gets nothing while a owns everything");
    // a learns of the new target: it keeps two and must give up two.
    let a2 = client.group_heartbeat(next(&a, "g", a_owned.clone()), budget).await.expect("a heartbeat");
    assert_eq!(count(&a2.assignment), 2);
    // a has not acknowledged yet: b still gets nothing.
    let b2 = client.group_heartbeat(next(&b, "g", vec![]), budget).await.expect("b heartbeat");
    assert_eq!(count(&b2.assignment), 0, "a partition was given away before its revocation was acknowledged");
    // a may still commit the partitions being revoked (it is finishing them).
    let revoked: Vec<u32> = a_owned[0]
        .partitions
        .iter()
        .copied()
        .filter(|p| !a2.assignment.iter().any(|t| t.partitions.contains(p)))
        .collect();
    client
        .commit_offsets("g", &a2.member_id, a2.member_epoch, vec![offset("t", revoked[0], 3)])
        .await
        .expect("commit while revoking");
    // a acknowledges; then b gets them and a's commits for them are refused.
    let a3 = client.group_heartbeat(next(&a2, "g", a2.assignment.clone()), budget).await.expect("a acks");
    let b3 = client.group_heartbeat(next(&b2, "g", vec![]), budget).await.expect("b heartbeat");
    assert_eq!(count(&b3.assignment), 2);
    let e = client
        .commit_offsets("g", &a3.member_id, a3.member_epoch, vec![offset("t", revoked[0], 4)])
        .await
        .expect_err("a no longer owns it");
    assert_eq!(e.code(), Some(ErrorCode::StaleMemberEpoch), "{e}");
    client
        .commit_offsets("g", &b3.member_id, b3.member_epoch, vec![offset("t", revoked[0], 4)])
        .await
        .expect("the new owner commits");
    // A made-up epoch is fenced; an unknown member is refused; a reset of a live group too.
    let mut bad = next(&a3, "g", a3.assignment.clone());
    bad.member_epoch += 10;
    let e = client.group_heartbeat(bad, budget).await.expect_err("future epoch");
    assert_eq!(e.code(), Some(ErrorCode::FencedMemberEpoch), "{e}");
    let e = client.commit_offsets("g", "nobody", 1, vec![offset("t", 0, 1)]).await.expect_err("unknown member");
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    let e = client.alter_offsets("g", vec![offset("t", 0, 0)]).await.expect_err("reset of a live group");
    assert_eq!(e.code(), Some(ErrorCode::GroupNotEmpty), "{e}");
    let e = client.delete_group("g").await.expect_err("delete a live group");
    assert_eq!(e.code(), Some(ErrorCode::GroupNotEmpty), "{e}");

    let d = client.describe_group("g").await.expect("describe");
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.state, "STABLE", "{d:?}");
    let lag = d.partitions.iter().find(|p| p.partition == revoked[0]).expect("lag row");
    assert!(lag.has_committed && lag.committed_offset == 4 && lag.log_end_known, "{lag:?}");

    // Both leave; then the group can be reset and deleted.
    for m in [&a3, &b3] {
        let mut leave = next(m, "g", vec![]);
        leave.member_epoch = -1;
        client.group_heartbeat(leave, budget).await.expect("leave");
    }
    let e = client.alter_offsets("g", vec![offset("t", 0, 99)]).await.expect_err("past the end");
    assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange), "{e}");
    client.alter_offsets("g", vec![offset("t", 0, 0)]).await.expect("reset an empty group");
    assert!(client.list_groups().await.expect("list").groups.iter().any(|g| g.group_id == "g" && g.state == "EMPTY"));
    client.delete_group("g").await.expect("delete");
    assert_eq!(client.describe_group("g").await.expect("describe").state, "DEAD");
}
