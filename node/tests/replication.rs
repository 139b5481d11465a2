//! Three real nodes: produce/fetch through leaders, majority commit, a lagging follower.

mod common;

use std::time::Duration;

use cairn_client::{Record, RecordExt};
use common::{leader_of, read_from_node, wait_for_leaders, Cluster};

fn values(prefix: &str, n: usize) -> Vec<Record> {
    (0..n).map(|i| Record::from_value(format!("{prefix}-{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_every_partition_and_serve_reads_from_any_replica() {
    let cluster = Cluster::start(3, "events:3");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;

    let d = client.describe_cluster().await.expect("describe");
    assert_eq!(d.nodes.len(), 3);
    let topic = d.topics.iter().find(|t| t.name == "events").expect("bootstrap topic");
    assert_eq!(topic.partitions.len(), 3);
    for p in &topic.partitions {
        let replicas: std::collections::BTreeSet<u64> = p.replica_node_ids.iter().copied().collect();
        assert_eq!(replicas, [1, 2, 3].into(), "every partition is replicated on all three nodes");
    }
    // Distinct group ids: every partition is its own Raft group.
    let groups: std::collections::BTreeSet<u64> = topic.partitions.iter().map(|p| p.group_id).collect();
    assert_eq!(groups.len(), 3);

    for p in 0..3u32 {
        let a = client.produce("events", p, values(&format!("p{p}a"), 3)).await.expect("produce a");
        let b = client.produce("events", p, values(&format!("p{p}b"), 2)).await.expect("produce b");
        assert_eq!(a.base_offset, 0, "offsets start at 0");
        assert_eq!(b.base_offset, 3, "offsets are dense");
    }
    for p in 0..3u32 {
        let expected: Vec<String> =
            (0..3).map(|i| format!("p{p}a-{i}")).chain((0..2).map(|i| format!("p{p}b-{i}"))).collect();
        for addr in cluster.brokers() {
            let got = read_from_node(&client, &addr, "events", p, 5).await;
            let got: Vec<String> = got.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
            assert_eq!(got, expected, "node {addr} partition {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_is_acknowledged_only_with_a_majority() {
    let mut cluster = Cluster::start(3, "events:1");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    let ack = client.produce("events", 0, values("before", 1)).await.expect("produce with all up");
    assert_eq!(ack.base_offset, 0);

    // Two of three down: no majority, so nothing may be acknowledged.
    let leader = leader_of(&client, "events", 0).await;
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    cluster.kill(others[0]);
    cluster.kill(others[1]);
    let mut cfg = client.config().clone();
    cfg.brokers = vec![cluster.addr(leader)];
    cfg.retry_deadline = Duration::from_secs(4);
    cfg.request_timeout = Duration::from_secs(2);
    let lonely = cairn_client::Client::connect(cfg).await.expect("connect to the survivor");
    let err = lonely.produce("events", 0, values("minority", 1)).await.expect_err("a minority must not acknowledge");
    assert!(err.is_retriable(), "losing the majority is retriable: {err}");

    // One node back: a majority again, produce succeeds, and the survivor's data is intact.
    cluster.restart(others[0]);
    let ack = client.produce("events", 0, values("after", 1)).await.expect("produce with a majority back");
    assert!(ack.base_offset >= 1);
    let recs = read_from_node(&client, &cluster.addr(others[0]), "events", 0, ack.base_offset + 1).await;
    assert_eq!(&recs[0].value[..], b"before-0");
    assert_eq!(&recs[ack.base_offset as usize].value[..], b"after-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_down_for_thousands_of_records_catches_up_and_serves_the_same_data() {
    let mut cluster = Cluster::start(3, "events:1");
    let client = cluster.client().await;
    wait_for_leaders(&client).await;
    let leader = leader_of(&client, "events", 0).await;
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    cluster.kill(follower);

    let mut acked = Vec::new();
    for batch in 0..60 {
        let recs = values(&format!("lag{batch}"), 50);
        let ack = client.produce("events", 0, recs).await.expect("produce while a follower is down");
        acked.push(ack.base_offset);
    }
    let end = 60 * 50;
    cluster.restart(follower);

    let from_follower = read_from_node(&client, &cluster.addr(follower), "events", 0, end).await;
    let from_leader = read_from_node(&client, &cluster.addr(leader), "events", 0, end).await;
    assert_eq!(from_follower.len(), end as usize);
    assert_eq!(from_follower, from_leader, "the caught-up follower serves byte-identical records");
    for (batch, base) in acked.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(&from_follower[*base as usize].value), format!("lag{batch}-0"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_at_the_end_long_polls_and_returns_new_records() {
    let cluster = Cluster::start(3, "events:1");
    let client = std::sync::Arc::new(cluster.client().await);
    wait_for_leaders(&client).await;
    let c2 = client.clone();
    let mut waiter = tokio::spawn(async move { c2.fetch("events", 0, 0, 0, 20_000).await });
    // Nothing to read yet: the fetch must stay parked rather than return empty at once.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiter).await.is_err(),
        "fetch at the end returned early"
    );
    client.produce("events", 0, values("late", 1)).await.expect("produce");
    let resp = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by the produce")
        .expect("join")
        .expect("fetch");
    assert_eq!(resp.records.len(), 1);
    assert_eq!(&resp.records[0].value[..], b"late-0");
}
