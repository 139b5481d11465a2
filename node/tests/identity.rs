//! Cluster identity: every cluster draws a random id when it bootstraps, every data directory
//! records it, and a node started with another cluster's directory (here: a second cluster on
//! the very same addresses) refuses to start with a message naming both clusters, changing
//! nothing in the directory.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_client::{Record, RecordExt};
use common::{connect, wait_for_topic, Cluster};

const IDENTITY: &str = "cairn-node.json";

fn recorded_cluster_id(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join(IDENTITY)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("cluster_id")?.as_str().map(str::to_string)
}

/// The id every node of `cluster` recorded in its data directory, waiting until all did.
fn recorded_by_all(cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids: Vec<Option<String>> = cluster.nodes.values().map(|n| recorded_cluster_id(&n.data_dir)).collect();
        if let Some(Some(first)) = ids.first() {
            if ids.iter().all(|i| i.as_ref() == Some(first)) {
                return first.clone();
            }
        }
        assert!(Instant::now() < deadline, "not every node recorded one cluster id within 30 s: {ids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_cluster_on_the_same_addresses_is_refused() {
    let mut a = Cluster::start(3, "t:1");
    let client = a.client().await;
    wait_for_topic(&client, "t").await;
    client.produce("t", 0, vec![Record::from_value("of cluster a")]).await.expect("produce to a");
    let a_id = recorded_by_all(&a);
    assert_eq!(client.describe_cluster().await.expect("describe a").cluster_id, a_id);
    assert_eq!(a_id.len(), 32, "128 random bits in hex: {a_id}");
    drop(client);
    for id in 1..=3 {
        a.stop(id);
    }

    // The same members on the same addresses, bootstrapped anew: another cluster.
    let mut b = Cluster::start_on_addresses_of(&a, "t:1");
    let client = b.client().await;
    wait_for_topic(&client, "t").await;
    let b_id = recorded_by_all(&b);
    assert_ne!(a_id, b_id, "two clusters with the same members must not share an id");
    assert_eq!(client.describe_cluster().await.expect("describe b").cluster_id, b_id);

    // Node 2 of b started on node 2 of a's directory: refused, directory untouched.
    b.stop(2);
    let a2 = a.nodes[&2].data_dir.clone();
    let identity_before = std::fs::read(a2.join(IDENTITY)).expect("a's identity");
    let listing = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let files_before = listing(&a2);
    let b2 = std::mem::replace(&mut b.nodes.get_mut(&2).expect("node 2").data_dir, a2.clone());
    let log_start = b.log_of(2).len();
    b.restart(2);
    let status = b
        .wait_exit(2, Duration::from_secs(30))
        .expect("the node with another cluster's directory must refuse to start");
    assert!(!status.success(), "refused with a failure status: {status}");
    let log = b.log_of(2)[log_start..].to_string();
    assert!(
        log.contains(&format!("belongs to cluster {a_id}")) && log.contains(&format!("member of cluster {b_id}")),
        "the refusal names both clusters: {log}"
    );
    assert_eq!(std::fs::read(a2.join(IDENTITY)).expect("a's identity"), identity_before, "identity unchanged");
    assert_eq!(listing(&a2), files_before, "nothing added to or removed from the directory");

    // With its own directory node 2 restarts normally (no ERROR) and serves cluster b.
    b.nodes.get_mut(&2).expect("node 2").data_dir = b2;
    let log_start = b.log_of(2).len();
    b.restart(2);
    let node2 = connect(vec![b.addr(2)]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match node2.describe_cluster().await {
            Ok(d) if d.cluster_id == b_id && d.answering_node_id == 2 => break,
            other => assert!(Instant::now() < deadline, "node 2 did not serve cluster b within 30 s: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.produce("t", 0, vec![Record::from_value("of cluster b")]).await.expect("produce to b");
    let log = b.log_of(2)[log_start..].to_string();
    assert!(!log.contains("ERROR"), "a normal restart logs no ERROR: {log}");
}
