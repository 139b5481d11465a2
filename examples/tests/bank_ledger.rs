//! The event-sourced ledger against a real three-node cluster: concurrent writers transfer
//! between accounts (racing on the same keys) while the leader of one partition is killed;
//! money is conserved, no balance ever went below zero, and the state rebuilt from a snapshot
//! plus the tail equals the one replayed from offset 0.

mod common;

use cairn_testkit::Cluster;
use common::{run, spawn, wait_for_records};

const LEDGER: &str = env!("CARGO_BIN_EXE_bank-ledger");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_conserve_money_and_never_overdraw() {
    let mut cluster = Cluster::start(3).await.expect("cluster");
    let brokers = cluster.brokers_arg();
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(run(LEDGER, &brokers, &["open", "--accounts", "6", "--initial", "1000"]).status.success());
    let snapshot = dir.path().join("ledger.json");
    let snapshot = snapshot.to_str().expect("utf-8 path");
    // Four writers on six accounts, amounts up to 40% of a balance: they collide constantly.
    let mut writers: Vec<_> = (1..=4)
        .map(|seed| {
            let s = seed.to_string();
            let args = ["transfer", "--count", "80", "--seed", &s, "--max-amount", "400"];
            spawn(LEDGER, &brokers, &args, &dir.path().join(format!("writer{seed}.log")))
        })
        .collect();
    let leader = cluster.leader_of("accounts", 0).await.expect("leader");
    // The snapshot and the kill land while the writers are at work: 6 openings, then at least
    // 20 transfer events.
    let client = cluster.client().await.expect("client");
    wait_for_records(&client, "accounts", 26, std::time::Duration::from_secs(60)).await;
    assert!(run(LEDGER, &brokers, &["snapshot", "--file", snapshot]).status.success(), "mid-run snapshot");
    cluster.kill(leader);
    cluster.wait_for_leaders("accounts").await.expect("a new leader");
    cluster.restart(leader).expect("restart");
    for (i, w) in writers.iter_mut().enumerate() {
        let status = w.child.wait().expect("writer");
        let log = std::fs::read_to_string(dir.path().join(format!("writer{}.log", i + 1))).unwrap_or_default();
        assert!(status.success(), "writer {} failed:\n{log}", i + 1);
        assert!(log.contains("transfer(s) made"), "{log}");
        eprintln!("writer {}: {}", i + 1, log.lines().last().unwrap_or_default());
    }
    // No writer stopped half-way here, so nothing is pending; recover is a no-op then.
    assert!(run(LEDGER, &brokers, &["recover"]).status.success());
    let out = run(LEDGER, &brokers, &["audit", "--snapshot", snapshot, "--expect-total", "6000"]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit json");
    assert!(out.status.success(), "{audit}");
    assert_eq!(audit["total"], 6000, "{audit}");
    assert_eq!(audit["pending_deposits"], 0, "{audit}");
    assert_eq!(audit["overdrawn"], serde_json::json!([]), "{audit}");
    assert_eq!(audit["snapshot_matches_replay"], true, "{audit}");
    eprintln!("{audit}");
}
