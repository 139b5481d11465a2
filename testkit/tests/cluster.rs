//! The test kit itself: clusters of 1 and 3 real nodes, topics, kills and restarts.

use cairn_client::{Record, RecordExt};
use cairn_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_cluster_takes_writes_and_survives_a_restart() {
    let mut cluster = Cluster::start(1).await.expect("cluster");
    assert_eq!(cluster.node_ids(), vec![1]);
    cluster.create_topic("events", 2).await.expect("topic");
    let client = cluster.client().await.expect("client");
    let ack = client.produce("events", 1, vec![Record::from_value("a")]).await.expect("produce");
    cluster.kill(1);
    assert!(!cluster.is_running(1));
    cluster.restart(1).expect("restart");
    cluster.wait_for_leaders("events").await.expect("leaders again");
    let client = cluster.client().await.expect("client");
    let page = client.fetch("events", 1, ack.base_offset, 1 << 20, 0).await.expect("fetch");
    assert_eq!(page.records.first().map(|r| r.value.to_vec()), Some(b"a".to_vec()), "acknowledged data survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_leader_of_three_elects_another_and_the_node_comes_back() {
    let mut cluster =
        Cluster::builder().nodes(3).config("[limits]\nrecord_bytes_max = 65536\n").start().await.expect("cluster");
    cluster.create_topic("orders", 1).await.expect("topic");
    let leader = cluster.leader_of("orders", 0).await.expect("leader");
    cluster.kill(leader);
    cluster.wait_for_leaders("orders").await.expect("a new leader among the running nodes");
    assert_ne!(cluster.leader_of("orders", 0).await.expect("leader"), leader);
    let client = cluster.client().await.expect("client");
    // The configuration reached the nodes: a record over 64 KiB is refused.
    let big = Record::from_value(vec![0u8; 70_000]);
    let e = client.produce("orders", 0, vec![big]).await.expect_err("over record_bytes_max");
    assert_eq!(e.code(), Some(cairn_client::ErrorCode::RecordTooLarge), "{e}");
    client.produce("orders", 0, vec![Record::from_value("ok")]).await.expect("produce with a node down");
    cluster.restart(leader).expect("restart");
    assert!(cluster.is_running(leader));
    assert!(cluster.log_of(leader).contains("cairn"), "the node's log is kept");
}
