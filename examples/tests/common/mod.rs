//! Running the examples' binaries against a testkit cluster.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped (a test that fails leaves nothing running).
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// SIGKILL (a crash), then wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `cairn` CLI of this build (next to the test executable's directory).
pub fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let found = exe.ancestors().skip(1).take(2).map(|d| d.join("cairn")).find(|p| p.exists());
    found.expect("the cairn CLI is built by `cargo test --workspace` (or `cargo build -p cairn-client`)")
}

/// Runs `bin` with `args` to completion.
pub fn run(bin: &str, brokers: &str, args: &[&str]) -> Output {
    let out = Command::new(bin).arg("--brokers").arg(brokers).args(args).output().expect("run example");
    if !out.status.success() {
        eprintln!(
            "{bin} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Starts `bin` with `args` in the background, its output in `log`.
pub fn spawn(bin: &str, brokers: &str, args: &[&str], log: &std::path::Path) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let child = Command::new(bin)
        .arg("--brokers")
        .arg(brokers)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log fd"))
        .stderr(file)
        .spawn()
        .expect("spawn example");
    Proc { child, name: format!("{bin} {args:?}") }
}

/// Records in every partition of `topic` together (the sum of the end offsets).
pub async fn records_in(client: &cairn_client::Client, topic: &str) -> u64 {
    let Ok(n) = client.partition_count(topic).await else { return 0 };
    let mut total = 0;
    for p in 0..n {
        total += client.list_offsets(topic, p, cairn_client::OffsetSpec::Latest).await.map_or(0, |o| o.offset);
    }
    total
}

/// Waits until `topic` holds at least `n` records (the workload under test made progress).
pub async fn wait_for_records(client: &cairn_client::Client, topic: &str, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let have = records_in(client, topic).await;
        if have >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} holds {have} records, not {n}, after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retries `f` until it returns true or `within` passes.
pub fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
