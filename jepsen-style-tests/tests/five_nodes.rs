//! Five nodes with the default replication factor 3: each partition lives on three of them, and
//! the drain must read exactly those (the other two refuse the fetch). Reading all five once
//! spent a partition's whole drain deadline on a non-replica and failed every 5-node run with
//! incomplete-drain.

mod common;

use std::collections::{BTreeMap, BTreeSet};

#[test]
fn five_node_run_drains_every_replica_of_every_partition_and_checks_clean() {
    let store = tempfile::tempdir().expect("tempdir");
    let run = common::run(store.path(), &["--nodes", "5", "--nemesis", "kill", "--time-limit", "30"]);
    assert_eq!(run.code, 0, "a 5-node kill run must be valid: {}", run.anomalies);

    let params: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("params.json")).expect("params.json")).expect("json");
    let partitions = params["workload"]["partitions"].as_u64().expect("partitions");
    let history = std::fs::read_to_string(run.dir.join("history.jsonl")).expect("history.jsonl");
    let mut read_on: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for line in history.lines() {
        let op: serde_json::Value = serde_json::from_str(line).expect("history line");
        if op["f"] != "final-read" {
            continue;
        }
        assert_eq!(op["type"], "ok", "a final read did not converge: {line}");
        assert_eq!(op["value"]["complete"], true, "{line}");
        let (p, node) = (op["value"]["partition"].as_u64().expect("partition"), op["node"].as_u64().expect("node"));
        assert!(read_on.entry(p).or_default().insert(node), "partition {p} read twice on node {node}");
    }
    assert_eq!(read_on.len() as u64, partitions, "every partition drained: {read_on:?}");
    for (p, nodes) in &read_on {
        assert_eq!(nodes.len(), 3, "partition {p} drained on its three replicas, not {nodes:?}");
    }
}
