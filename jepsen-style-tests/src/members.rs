//! The `group` workload's members: consumer group members as processes of their own
//! ([`crate::member`]), started, killed with SIGKILL, paused past their session timeout and
//! stopped cleanly on a seeded schedule while the node nemesis runs; and a monitor that reads the
//! group's committed offsets twice a second (the commit checkers' observations).
//!
//! ```text
//!  churn (every 2–6 s): kill -9 + restart │ pause 4–8 s (past the 3 s session) │ SIGTERM + restart
//!  member stdout ─► history (each op stamped by the member with the run's clock)
//!  monitor: OffsetFetch every 500 ms ─► committed-read ops; at the end ─► final-committed
//! ```

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::history::{Op, OpType, Recorder};

/// The consumer group every member joins.
pub const GROUP: &str = "jepsen-group";
/// Members' session timeout (ms): short, so pauses past it happen within a run.
pub const SESSION_MS: u64 = 3_000;
/// History process ids of members start here (member k is process `MEMBER_BASE + k`).
pub const MEMBER_BASE: i64 = 1_000;
/// Members running at once.
const MEMBERS: usize = 3;

/// How members are started.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub exe: PathBuf,
    pub brokers: String,
    pub topic: String,
    pub dir: PathBuf,
    pub commit_before_processing: bool,
    /// The CA of a TLS run.
    pub ca: Option<PathBuf>,
    /// The client certificate and key members authenticate with (a secured run).
    pub cert: Option<(PathBuf, PathBuf)>,
}

struct Running {
    child: Child,
    paused: bool,
}

/// The member processes of a run.
pub struct Members {
    spec: MemberSpec,
    rec: Recorder,
    running: Mutex<BTreeMap<i64, Running>>,
    next: Mutex<i64>,
}

impl Members {
    pub fn new(spec: MemberSpec, rec: Recorder) -> Arc<Members> {
        Arc::new(Members { spec, rec, running: Mutex::default(), next: Mutex::new(MEMBER_BASE) })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a new member process; its ops go to the history.
    ///
    /// # Errors
    /// The process cannot be spawned.
    pub fn spawn(&self) -> anyhow::Result<i64> {
        let process = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let p = *n;
            *n += 1;
            p
        };
        let log = std::fs::File::create(self.spec.dir.join(format!("member-{process}.log")))?;
        let mut cmd = Command::new(&self.spec.exe);
        cmd.args(["member", "--brokers", &self.spec.brokers, "--group", GROUP, "--topic", &self.spec.topic])
            .args(["--process", &process.to_string(), "--time-base", &self.rec.base().to_string()])
            .args(["--session-timeout-ms", &SESSION_MS.to_string()]);
        if self.spec.commit_before_processing {
            cmd.arg("--commit-before-processing");
        }
        if let Some((cert, key)) = &self.spec.cert {
            cmd.arg("--cert").arg(cert).arg("--cert-key").arg(key);
        }
        if let Some(ca) = &self.spec.ca {
            cmd.arg("--ca").arg(ca);
        }
        let mut child = cmd
            .env("CAIRN_JEPSEN_LOG", "warn,cairn_client=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("member stdout"))?;
        let rec = self.rec.clone();
        // A thread per member: its lines are read as they come (they carry their own times).
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(op) = serde_json::from_str::<Op>(&line) {
                    rec.record_op(op);
                }
            }
        });
        self.rec.nemesis("member-start", json!({"member": process}));
        self.running().insert(process, Running { child, paused: false });
        Ok(process)
    }

    fn signal(pid: u32, sig: &str) {
        let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
    }

    /// SIGKILL: no leave, no final commit; the group notices after the session timeout.
    pub fn kill(&self, process: i64) {
        if let Some(mut r) = self.running().remove(&process) {
            let _ = r.child.kill();
            let _ = r.child.wait();
            self.rec.nemesis("member-kill", json!({"member": process}));
        }
    }

    pub fn pause(&self, process: i64) {
        if let Some(r) = self.running().get_mut(&process) {
            Members::signal(r.child.id(), "-STOP");
            r.paused = true;
            self.rec.nemesis("start-member-pause", json!({"member": process}));
        }
    }

    pub fn resume(&self, process: i64) {
        if let Some(r) = self.running().get_mut(&process) {
            Members::signal(r.child.id(), "-CONT");
            r.paused = false;
            self.rec.nemesis("stop-member-pause", json!({"member": process}));
        }
    }

    /// SIGTERM: the member commits, leaves the group and exits (waited for, 15 s at most).
    pub fn stop(&self, process: i64) {
        let Some(mut r) = self.running().remove(&process) else { return };
        if r.paused {
            Members::signal(r.child.id(), "-CONT");
        }
        Members::signal(r.child.id(), "-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline && matches!(r.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = r.child.kill();
        let _ = r.child.wait();
        self.rec.nemesis("member-stop", json!({"member": process}));
    }

    pub fn ids(&self) -> Vec<i64> {
        self.running().keys().copied().collect()
    }

    /// Stops every member cleanly.
    pub fn stop_all(&self) {
        for p in self.ids() {
            self.stop(p);
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for (_, mut r) in std::mem::take(&mut *self.running()) {
            Members::signal(r.child.id(), "-CONT");
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Starts the members, then churns them until `stop`.
pub async fn churn(members: Arc<Members>, stop: Arc<AtomicBool>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..MEMBERS {
        if let Err(e) = members.spawn() {
            members.rec.nemesis("error", json!({"error": format!("starting a member: {e}")}));
        }
    }
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..6_000))).await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let ids = members.ids();
        let Some(&victim) = ids.get(rng.random_range(0..ids.len().max(1))) else { continue };
        let m = members.clone();
        match rng.random_range(0..3) {
            0 => {
                let down = Duration::from_millis(rng.random_range(0..3_000));
                tokio::task::spawn_blocking(move || m.kill(victim)).await.ok();
                tokio::time::sleep(down).await;
            }
            1 => {
                // Past the session timeout: the group removes it and gives its partitions away.
                let paused = Duration::from_millis(rng.random_range(SESSION_MS + 1_000..SESSION_MS + 5_000));
                m.pause(victim);
                tokio::time::sleep(paused).await;
                members.resume(victim);
                continue; // it stays a process; it finds out it was fenced
            }
            _ => {
                tokio::task::spawn_blocking(move || m.stop(victim)).await.ok();
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Err(e) = members.spawn() {
            members.rec.nemesis("error", json!({"error": format!("restarting a member: {e}")}));
        }
    }
}

/// Reads the group's committed offsets once and records them as `f` (the read's invocation time
/// with them). Whether the read succeeded.
async fn read_committed(client: &Client, rec: &Recorder, f: &str) -> bool {
    let invoked = rec.now();
    let Ok(list) = client.committed_offsets(GROUP, &[]).await else { return false };
    let offsets: BTreeMap<String, u64> = list.iter().map(|o| (o.partition.to_string(), o.offset)).collect();
    let value = json!({"invoked": invoked, "offsets": offsets});
    rec.record(OpType::Ok, crate::history::MONITOR, None, f, value, None, None);
    true
}

/// Reads the group's committed offsets every 500 ms until `stop` (committed-read ops).
pub async fn monitor(client: Arc<Client>, rec: Recorder, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        read_committed(&client, &rec, "committed-read").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The group's committed offsets once everything settled (final-committed op).
pub async fn final_read(client: &Client, rec: &Recorder) -> bool {
    for _ in 0..30 {
        if read_committed(client, rec, "final-committed").await {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}
