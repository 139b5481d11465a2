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

/// Retries `f` until it returns true or `within` passes.
pub fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
