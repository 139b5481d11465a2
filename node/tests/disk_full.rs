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
    std::fs::write(config.path(), "[storage]\nfree_space_min_bytes = 4194304\nwrite_buffer_bytes = 1048576\n")
        .expect("write config");
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

/// Small ext4 filesystems mounted through loop devices on the nodes' data directories,
/// unmounted (and their images deleted) when dropped.
struct SmallDisks {
    mounts: std::sync::Mutex<Vec<(std::path::PathBuf, std::path::PathBuf)>>,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl SmallDisks {
    /// Why small filesystems cannot be made here, if they cannot.
    fn unavailable() -> Option<String> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            return Some("not root".into());
        }
        run("mkfs.ext4", &["-V"]).err().or_else(|| run("losetup", &["-f"]).err())
    }

    fn mount(&self, dir: &std::path::Path, bytes: u64) {
        std::fs::create_dir_all(dir).expect("data dir");
        let image = dir.with_extension("img");
        std::fs::File::create(&image).expect("image").set_len(bytes).expect("size image");
        let (img, d) = (image.display().to_string(), dir.display().to_string());
        run("mkfs.ext4", &["-q", "-F", "-m", "0", &img]).expect("mkfs");
        run("mount", &["-o", "loop", &img, &d]).expect("mount");
        // The node takes anything in a new data directory for another node's data.
        std::fs::remove_dir(dir.join("lost+found")).expect("remove lost+found");
        self.mounts.lock().expect("lock").push((dir.to_path_buf(), image));
    }

    /// Fills `dir`'s filesystem to the last byte.
    fn fill(dir: &std::path::Path) {
        let f = dir.join("filler");
        let _ = run("fallocate", &["-l", "1G", &f.display().to_string()]);
        let _ = run("sh", &["-c", &format!("cat /dev/zero >> {} 2>/dev/null; sync", f.display())]);
    }

    fn free(dir: &std::path::Path) {
        std::fs::remove_file(dir.join("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisks {
    fn drop(&mut self) {
        for (dir, image) in self.mounts.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let d = dir.display().to_string();
            if run("umount", &[&d]).is_err() {
                let _ = run("umount", &["-l", &d]);
            }
            let _ = std::fs::remove_file(image);
        }
    }
}

/// With no floor (as if the check were too slow), a disk filled to the last byte makes
/// RocksDB's own writes fail: writes stop with errors, no node exits, reads go on, and once
/// space returns everything resumes by itself with nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_to_the_last_byte_stops_writes_and_everything_resumes_when_space_returns() {
    if let Some(why) = SmallDisks::unavailable() {
        eprintln!("SKIPPED: needs small loop-mounted filesystems ({why})");
        return;
    }
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "[storage]\nfree_space_min_bytes = 0\nwrite_buffer_bytes = 262144\n")
        .expect("write config");
    let path = config.path().to_string_lossy().into_owned();
    let disks = SmallDisks { mounts: std::sync::Mutex::default() };
    let mut cluster = Cluster::start_prepared(3, "t:1", &["--config", &path], |d| disks.mount(d, 256 << 20));
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let mut acked = produce(&client, 0, 50).await;

    for n in 1..=3 {
        SmallDisks::fill(&cluster.nodes[&n].data_dir);
    }
    // Write until the full disks refuse: each attempt is bounded, so a stall shows as an error.
    let mut cfg = ClientConfig::new(cluster.brokers());
    cfg.retry_deadline = Duration::from_secs(3);
    cfg.request_timeout = Duration::from_secs(3);
    let impatient = Client::connect(cfg).await.expect("connect");
    let big = "x".repeat(64 << 10);
    let mut refused = None;
    for i in 0..2_000u64 {
        match impatient.produce("t", 0, vec![Record::from_value(format!("{i}:{big}"))]).await {
            Ok(ack) => acked.push((ack.base_offset, format!("{i}:{big}"))),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("writes into full disks never failed");
    eprintln!("writes stopped: {refused}");
    for n in 1..=3 {
        assert!(cluster.is_running(n), "node {n} exited on a full disk:\n{}", cluster.log_of(n));
    }
    let logs: String = (1..=3).map(|n| cluster.log_of(n)).collect();
    assert!(logs.contains("No space left on device"), "RocksDB never met the full disk");

    // Space returns: writes resume without any restart, and nothing acknowledged is lost.
    for n in 1..=3 {
        SmallDisks::free(&cluster.nodes[&n].data_dir);
    }
    let start = Instant::now();
    acked.extend(produce(&client, 1_000_000, 10).await);
    eprintln!("writes resumed {:?} after space came back", start.elapsed());
    let end = acked.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
    for n in 1..=3 {
        assert!(cluster.is_running(n), "node {n} exited");
        let got = read_from_node(&client, &cluster.addr(n), "t", 0, end).await;
        for (offset, v) in &acked {
            assert_eq!(String::from_utf8_lossy(&got[*offset as usize].value), *v, "node {n} offset {offset}");
        }
    }
    drop(cluster);
}
