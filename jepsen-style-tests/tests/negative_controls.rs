//! The suite must be able to fail: nodes broken on purpose (hidden fault switches) must be
//! reported with the matching anomaly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn jepsen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn-jepsen"))
}

fn node() -> PathBuf {
    let p = jepsen().with_file_name("cairn-node");
    assert!(p.exists(), "{} missing: run with `cargo test --workspace`", p.display());
    p
}

fn root_with_iptables() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let ipt = Command::new("iptables").arg("--version").output().is_ok_and(|o| o.status.success());
    root && ipt
}

/// Runs one test; returns (exit code, anomaly counts).
fn run(store: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(jepsen())
        .arg("run")
        .args(args)
        .arg("--node-bin")
        .arg(node())
        .arg("--store")
        .arg(store)
        .output()
        .expect("run cairn-jepsen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cairn-jepsen: results in "))
        .unwrap_or_else(|| panic!("no results directory in the output"));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(dir.trim()).join("results.json")).expect("results.json"))
            .expect("json");
    (out.status.code().unwrap_or(-1), results["anomalies"].clone())
}

fn count(anomalies: &serde_json::Value, kinds: &[&str]) -> u64 {
    kinds.iter().map(|k| anomalies[k].as_u64().unwrap_or(0)).sum()
}

#[test]
fn disabled_deduplication_is_reported_as_duplicates() {
    let store = tempfile::tempdir().expect("tempdir");
    let (code, a) = run(
        store.path(),
        &["--nemesis", "none", "--workload", "idempotent", "--time-limit", "25", "--fault", "no-dedup"],
    );
    assert_eq!(code, 1, "the run must be invalid");
    assert!(count(&a, &["duplicate"]) > 0, "{a}");
}

#[test]
fn acknowledging_before_commit_is_reported_as_lost_writes() {
    if !root_with_iptables() {
        eprintln!("SKIPPED: this control isolates leaders with iptables (needs root)");
        return;
    }
    let store = tempfile::tempdir().expect("tempdir");
    let (code, a) =
        run(store.path(), &["--nemesis", "partition", "--time-limit", "45", "--fault", "ack-before-commit"]);
    assert_eq!(code, 1, "the run must be invalid");
    assert!(count(&a, &["lost-write", "unseen"]) > 0, "{a}");
}

#[test]
fn serving_fetches_above_the_high_watermark_is_reported() {
    if !root_with_iptables() {
        eprintln!("SKIPPED: this control isolates leaders with iptables (needs root)");
        return;
    }
    let store = tempfile::tempdir().expect("tempdir");
    let (code, a) = run(store.path(), &["--nemesis", "partition", "--time-limit", "45", "--fault", "fetch-above-hw"]);
    assert_eq!(code, 1, "the run must be invalid");
    // Readers saw records the isolated leader never committed; other records later took
    // those offsets.
    assert!(count(&a, &["inconsistent-offsets", "aborted-read", "duplicate", "unexpected"]) > 0, "{a}");
}
