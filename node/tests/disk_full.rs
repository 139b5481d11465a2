//! A node below its free-space floor refuses writes before making them and keeps everything
//! else going; when space returns, writes resume by themselves. The free space is faked through
//! the `fake-free-space` switch (a file in the data directory), so the test needs no filesystem
//! of its own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig, ErrorCode, Producer, ProducerConfig, Record, RecordExt};
use common::{leader_of, read_from_node, wait_for_topic, Cluster};

fn set_free(cluster: &Cluster, node: u64, bytes: Option<u64>) {
    let f = cluster.nodes[&node].data_dir.join("cairn-fake-free-bytes");
    match bytes {
        Some(b) => std::fs::write(&f, b.to_string()).expect("write fake free space"),
        None => {
            let _ = std::fs::remove_file(&f);
        }
    }
}

/// Waits until node `node`'s log says `needle` (its free-space measurement took the change).
async fn wait_for_log(cluster: &Cluster, node: u64, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.log_of(node).contains(needle) {
        assert!(Instant::now() < deadline, "node {node} never logged {needle:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn produce(client: &Arc<Client>, from: u64, n: u64) -> Vec<(u64, String)> {
    let cfg = ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), cfg).await.expect("producer");
    let mut out = Vec::new();
    for i in from..from + n {
        let v = format!("v{i}");
        let f = producer.send("t", Some(0), Record::from_value(v.clone())).await.expect("send");
        out.push((f.await.expect("acknowledged").offset, v));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_floor_writes_are_refused_reads_served_and_everything_resumes() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "[storage]\nfree_space_min_bytes = 1000000\n").expect("write config");
    let path = config.path().to_string_lossy().into_owned();
    let cluster = Cluster::start_with(3, "t:1", &["--config", &path, "--fault", "fake-free-space"]);
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let mut acked = produce(&client, 0, 20).await;
    let leader = leader_of(&client, "t", 0).await;
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");

    // A follower out of space: the leader commits with the other one; the follower's group
    // does not stop.
    set_free(&cluster, follower, Some(10));
    wait_for_log(&cluster, follower, "free space below the floor").await;
    acked.extend(produce(&client, 20, 30).await);
    assert!(!cluster.log_of(follower).contains("raft group stopped"), "the follower's group stopped");

    // The leader out of space: produce is refused before anything is written, naming the node
    // and its free space; reads are still served.
    set_free(&cluster, leader, Some(10));
    wait_for_log(&cluster, leader, "free space below the floor").await;
    let mut cfg = ClientConfig::new(vec![cluster.addr(leader)]);
    cfg.retry_deadline = Duration::from_secs(2);
    let impatient = Client::connect(cfg).await.expect("connect");
    let e = impatient.produce("t", 0, vec![Record::from_value("refused")]).await.expect_err("refused");
    assert_eq!(e.code(), Some(ErrorCode::StorageFull), "{e}");
    assert!(e.to_string().contains(&format!("node {leader} has 10 bytes free")), "{e}");
    let end = acked.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
    let got = read_from_node(&client, &cluster.addr(leader), "t", 0, end).await;
    assert_eq!(got.len() as u64, end, "reads are served while writes are refused");

    // Space comes back: writes resume and the follower catches up, with no restart.
    set_free(&cluster, leader, None);
    set_free(&cluster, follower, None);
    let start = Instant::now();
    acked.extend(produce(&client, 50, 10).await);
    eprintln!("writes resumed {:?} after space came back", start.elapsed());
    for n in 1..=3 {
        let end = acked.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
        let got = read_from_node(&client, &cluster.addr(n), "t", 0, end).await;
        for (offset, v) in &acked {
            assert_eq!(String::from_utf8_lossy(&got[*offset as usize].value), *v, "node {n} offset {offset}");
        }
    }
    for n in 1..=3 {
        assert!(!cluster.log_of(n).contains("raft group stopped"), "node {n}: a group stopped");
    }
}
