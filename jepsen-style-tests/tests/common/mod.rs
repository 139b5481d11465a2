//! Shared by the suite's own integration tests: run `cairn-jepsen` as a user would and read
//! what it stored.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

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

pub fn root_with_iptables() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let ipt = Command::new("iptables").arg("--version").output().is_ok_and(|o| o.status.success());
    root && ipt
}

/// What one `cairn-jepsen run` left behind.
pub struct Run {
    pub code: i32,
    /// Anomaly counts by checker, from results.json.
    pub anomalies: serde_json::Value,
    /// The run's directory (history.jsonl, results.json, ...).
    pub dir: PathBuf,
}

/// Runs one test with the workspace's node binary, storing under `store`.
pub fn run(store: &Path, args: &[&str]) -> Run {
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
    let dir = PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("cairn-jepsen: results in "))
            .unwrap_or_else(|| panic!("no results directory in the output"))
            .trim(),
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).expect("results.json")).expect("json");
    Run { code: out.status.code().unwrap_or(-1), anomalies: results["anomalies"].clone(), dir }
}
