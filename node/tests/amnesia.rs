//! A node restarted with a wiped data directory under its old id has forgotten its votes and
//! what it acknowledged (Raft amnesia). It must be refused, lose nothing, and come back only
//! through the replace procedure: as a learner that catches up before it votes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, OffsetSpec, Producer, ProducerConfig, Record, RecordExt};
use common::{read_from_node, wait_for_topic, Cluster};

/// The registered data directory of every node, waiting (up to 30 s) until all three are
/// registered; 0 for one that is not by then (asserted by the caller where it matters).
async fn registered_directories(client: &Client) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dirs: Vec<u64> = match client.describe_cluster().await {
            Ok(d) => d.nodes.iter().map(|n| n.directory_id).collect(),
            Err(_) => Vec::new(),
        };
        if (dirs.len() == 3 && dirs.iter().all(|d| *d != 0)) || Instant::now() >= deadline {
            return dirs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn send_all(producer: &Producer, topic: &str, from: u64, n: u64) -> Vec<(u32, u64, String)> {
    let mut futures = Vec::new();
    for i in from..from + n {
        let v = format!("v{i}");
        futures.push((v.clone(), producer.send(topic, None, Record::from_value(v)).await.expect("send")));
    }
    let mut acked = Vec::new();
    for (v, f) in futures {
        let ack = f.await.unwrap_or_else(|e| panic!("{v} not acknowledged: {e}"));
        acked.push((ack.partition, ack.offset, v));
    }
    acked
}

/// Waits until every group counts node 3's new replica as a voter (the replacement is over).
async fn wait_reconfigured(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_cluster().await {
            let partitions =
                d.topics.iter().flat_map(|t| &t.partitions).all(|p| !p.reconfiguring && p.leader_node_id != 0);
            if partitions && !d.controller_reconfiguring {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the replaced node did not become a voter everywhere within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every acknowledged record is on the node at `addr`, at its offset.
async fn assert_holds(client: &Client, addr: &str, topic: &str, acked: &[(u32, u64, String)]) {
    for p in 0..3 {
        let hw = client.list_offsets(topic, p, OffsetSpec::Latest).await.expect("latest").offset;
        let stored = read_from_node(client, addr, topic, p, hw).await;
        for (_, offset, v) in acked.iter().filter(|(ap, _, _)| *ap == p) {
            let got = stored.get(*offset as usize).map(|r| String::from_utf8_lossy(&r.value).into_owned());
            assert_eq!(got.as_deref(), Some(v.as_str()), "{addr}: {topic}/{p}@{offset}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_refused_and_the_replace_procedure_brings_it_back_with_all_data() {
    let mut cluster = Cluster::start(3, "events:3");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "events").await;
    let before = registered_directories(&client).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).await.expect("producer");
    let mut acked = send_all(&producer, "events", 0, 300).await;

    // Node 3 loses its disk and comes back under the same id.
    cluster.kill(3);
    std::fs::remove_dir_all(&cluster.nodes[&3].data_dir).expect("wipe node 3");
    assert!(!cluster.log_of(3).contains("refusing"), "no refusal before the wipe");
    cluster.restart(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.is_running(3) {
        assert!(Instant::now() < deadline, "the wiped node was not refused within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cluster.log_of(3);
    assert!(log.contains("cairn node replace 3"), "the refusal names the fix:\n{log}");
    // Nothing acknowledged is lost, and the two others still take writes.
    acked.extend(send_all(&producer, "events", 300, 100).await);
    assert_holds(&client, &cluster.addr(1), "events", &acked).await;
    assert_holds(&client, &cluster.addr(2), "events", &acked).await;

    // The replace procedure: mark it, start it empty.
    let hosted: usize = client
        .describe_cluster()
        .await
        .expect("describe")
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.replica_node_ids.contains(&3))
        .count();
    assert!(hosted > 3, "node 3 holds the events partitions and __consumer_offsets ones");
    let rebuilt = client.replace_node(3).await.expect("replace node 3");
    assert_eq!(rebuilt as usize, hosted, "every partition replica of node 3 is rebuilt");
    cluster.kill(3); // reaps the refused process
    let _ = std::fs::remove_dir_all(&cluster.nodes[&3].data_dir);
    cluster.restart(3);
    assert_holds(&client, &cluster.addr(3), "events", &acked).await;
    let after = registered_directories(&client).await;
    assert!(before.iter().all(|d| *d != 0), "every node's directory was registered: {before:?}");
    assert_eq!(after[..2], before[..2]);
    assert!(after[2] != 0 && after[2] != before[2], "node 3 registered its new directory: {after:?}");

    // Node 3 votes again, in the partitions and in the controller: with node 1 down, writes
    // and a metadata change need it.
    wait_reconfigured(&client).await;
    cluster.kill(1);
    acked.extend(send_all(&producer, "events", 400, 100).await);
    client.create_topic("after-replace", 1, 2, None).await.expect("a metadata change without node 1");
    assert_holds(&client, &cluster.addr(3), "events", &acked).await;
    assert_holds(&client, &cluster.addr(2), "events", &acked).await;
}
