//! Storage faults made on real files of real node processes: damaged record bytes on one
//! replica are found, the replica stops serving and is rebuilt from the others; a write-ahead log
//! cut short makes its node replace itself; an operator can rebuild any replica by hand.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, ErrorCode, OffsetSpec, Producer, ProducerConfig, Record, RecordExt, ReplicaState};
use common::{cli, leader_of, read_from_node, wait_for_topic, Cluster};

/// Fast scrubbing and repair, so a test sees both within seconds.
fn config_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        f.path(),
        "[storage]\nscrub_bytes_per_second = 67108864\nrepair_stopped_after_ms = 5000\nrepairs_per_minute_max = 30\n",
    )
    .expect("write config");
    f
}

fn value(i: u64) -> String {
    format!("{i:08}-{}", "x".repeat(400))
}

async fn produce(client: &Arc<Client>, from: u64, n: u64) -> Vec<(u64, String)> {
    let cfg = ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), cfg).await.expect("producer");
    let mut pending = Vec::new();
    for i in from..from + n {
        pending.push((value(i), producer.send("t", Some(0), Record::from_value(value(i))).await.expect("send")));
    }
    let mut acked = Vec::new();
    for (v, f) in pending {
        acked.push((f.await.expect("acknowledged").offset, v));
    }
    acked
}

/// Every acknowledged record is on node `id`, unaltered, at its offset.
async fn assert_holds(cluster: &Cluster, client: &Client, id: u64, acked: &[(u64, String)]) {
    let until = acked.iter().map(|(o, _)| o + 1).max().unwrap_or(0);
    let got = read_from_node(client, &cluster.addr(id), "t", 0, until).await;
    for (offset, v) in acked {
        let r = &got[*offset as usize];
        assert_eq!(String::from_utf8_lossy(&r.value), *v, "node {id} offset {offset} altered");
    }
}

fn data_files(db: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(db)
        .expect("db dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// How many places of `file` hold record values (runs of `x`, see [`value`]).
fn record_spots(file: &Path) -> usize {
    let bytes = std::fs::read(file).expect("read");
    bytes.windows(64).filter(|w| w.iter().all(|b| *b == b'x')).count()
}

/// Flips `count` bytes spread over the record values of `file` (the runs of `x` that
/// [`value`] writes), so the damage hits partition records and not the controller's entries
/// that share the blob files (damage there makes the whole node replace itself instead).
fn flip(file: &Path, count: u64) {
    let bytes = std::fs::read(file).expect("read");
    let run = [b'x'; 64];
    let spots: Vec<u64> =
        bytes.windows(run.len()).enumerate().filter(|(_, w)| *w == run).map(|(i, _)| i as u64 + 32).collect();
    assert!(!spots.is_empty(), "{} holds no records of ours", file.display());
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file).expect("open");
    for i in 0..count {
        let at = spots[(spots.len() as u64 * i / count) as usize];
        let mut b = [0u8];
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.read_exact(&mut b).expect("read");
        b[0] ^= 0x04;
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&b).expect("write");
    }
    f.sync_all().expect("sync");
}

/// The state of node `id`'s replica of t/0, as `topic describe` reports it.
async fn replica_state(client: &Client, id: u64) -> Option<(ReplicaState, String)> {
    let d = client.describe_topic("t").await.ok()?;
    let r = d.partitions.first()?.replicas.iter().find(|r| r.node_id == id)?.clone();
    Some((r.state(), r.reason))
}

/// Waits until every replica of t/0 is in sync (or lagging) again.
async fn wait_serving(client: &Client, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(d) = client.describe_topic("t").await {
            let p = &d.partitions[0];
            if p.leader_node_id != 0
                && !p.reconfiguring
                && p.replicas.iter().all(|r| matches!(r.state(), ReplicaState::InSync | ReplicaState::Lagging))
            {
                return;
            }
            assert!(Instant::now() < deadline, "t/0 not repaired within {limit:?}: {:?}", p.replicas);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_record_bytes_stop_the_replica_which_is_reported_and_rebuilt() {
    let config = config_file();
    let path = config.path().to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with(3, "t:1", &["--config", &path]);
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let mut acked = produce(&client, 0, 300).await;
    let leader = leader_of(&client, "t", 0).await;
    let victim = (1..=3).find(|n| *n != leader).expect("a follower");

    // A restart replays the WAL into blob files (when RocksDB flushes during recovery; another
    // restart otherwise); then damage record bytes while it is down.
    let db = cluster.nodes[&victim].data_dir.join("db");
    let mut attempts = 0;
    let blobs = loop {
        cluster.stop(victim);
        cluster.restart(victim);
        assert_holds(&cluster, &client, victim, &acked).await;
        cluster.kill(victim);
        let with_records: Vec<PathBuf> = data_files(&db, "blob").into_iter().filter(|b| record_spots(b) > 0).collect();
        if !with_records.is_empty() {
            break with_records;
        }
        attempts += 1;
        assert!(attempts < 5, "no blob file of {} holds the records after {attempts} restarts", db.display());
        cluster.restart(victim);
    };
    for b in &blobs {
        flip(b, 40);
    }
    cluster.restart(victim);

    // Found (by a read or the scrubber), shown as stopped with its reason, then rebuilt.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_stopped = None;
    while seen_stopped.is_none() && Instant::now() < deadline {
        if let Some((ReplicaState::Stopped, reason)) = replica_state(&client, victim).await {
            seen_stopped = Some(reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = cluster.log_of(victim);
    // Found at start (openraft reads the log tail), by a read, or by the scrubber.
    assert!(log.contains("data is damaged") || log.contains("damaged data found"), "the damage went unnoticed:\n{log}");
    let reason = seen_stopped.expect("the stopped replica was never shown as stopped");
    assert!(reason.contains("damaged"), "the reason names the damage: {reason}");
    // A stopped replica does not answer as if healthy: a definite, retriable REPLICA_STOPPED
    // (unless its rebuild already replaced it).
    let req =
        cairn_proto::v1::FetchRequest { topic: "t".into(), partition: 0, max_bytes: 1 << 20, ..Default::default() };
    match client.fetch_from_node(&cluster.addr(victim), req).await {
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::ReplicaStopped), "{e}");
            assert!(e.is_retriable() && e.is_definite(), "{e}");
        }
        Ok(_) => assert_ne!(replica_state(&client, victim).await.map(|s| s.0), Some(ReplicaState::Stopped)),
    }
    wait_serving(&client, Duration::from_secs(90)).await;
    let controller_logs: String = (1..=3).map(|n| cluster.log_of(n)).collect();
    assert!(controller_logs.contains("repairing a stopped replica"), "the controller did not log the repair");
    // The damaged data was kept until the rebuilt replica was in sync, then deleted.
    assert!(
        cluster.log_of(victim).contains("damaged replica's data kept until its rebuilt replica is in sync"),
        "the damaged replica's data was not kept:\n{}",
        cluster.log_of(victim)
    );
    let kept = || {
        std::fs::read_dir(&cluster.nodes[&victim].data_dir)
            .expect("data dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("damaged-replica-"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.log_of(victim).contains("deleted the damaged replica's kept data") || kept() > 0 {
        assert!(Instant::now() < deadline, "the kept data was not deleted after the rebuild caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing acknowledged is lost or altered anywhere, the rebuilt replica included, and the
    // partition takes writes again.
    acked.extend(produce(&client, 300, 50).await);
    for n in 1..=3 {
        assert_holds(&cluster, &client, n, &acked).await;
    }

    // The scrubber reports its passes: one begun from now on reads the rebuilt replica too.
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, text) = common::http_get(cluster.nodes[&victim].metrics_addr, "/metrics");
        let started = common::metric_sum(&text, "cairn_scrub_last_pass_start_timestamp_seconds", &[]);
        if started >= since {
            assert!(common::metric_sum(&text, "cairn_scrub_passes_total", &[]) >= 1.0, "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no scrubber pass began after {since} within 40 s (last: {started})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_cut_short_makes_its_node_replace_itself_and_lose_nothing() {
    let config = config_file();
    let path = config.path().to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with(3, "t:1", &["--config", &path]);
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let mut acked = produce(&client, 0, 200).await;
    let victim = 3;
    assert_holds(&cluster, &client, victim, &acked).await;
    cluster.kill(victim);
    let db = cluster.nodes[&victim].data_dir.join("db");
    let wal = data_files(&db, "log").into_iter().max().expect("a WAL file");
    let len = wal.metadata().expect("metadata").len();
    std::fs::OpenOptions::new().write(true).open(&wal).expect("open").set_len(len - len.min(4096)).expect("cut");
    cluster.restart(victim);

    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.log_of(victim).contains("marked this node for replacement") {
        assert!(
            Instant::now() < deadline,
            "node {victim} did not ask for its replacement:\n{}",
            cluster.log_of(victim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.log_of(victim).contains("lost writes this node had fsynced"), "the cause is named");
    let aside: Vec<_> = std::fs::read_dir(&cluster.nodes[&victim].data_dir)
        .expect("data dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged data is set aside, not deleted");
    wait_serving(&client, Duration::from_secs(90)).await;
    acked.extend(produce(&client, 200, 50).await);
    for n in 1..=3 {
        assert_holds(&cluster, &client, n, &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rebuilds_a_replica_by_hand_and_bad_requests_change_nothing() {
    let cluster = Cluster::start(3, "t:1");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    client.create_topic("single", 1, 1, None).await.expect("create a single-replica topic");
    wait_for_topic(&client, "single").await;
    let acked = produce(&client, 0, 100).await;
    let leader = leader_of(&client, "t", 0).await;
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");

    let brokers = cluster.brokers();
    let node = follower.to_string();
    let (code, out, err) = cli(&brokers, &["replica", "repair", "t", "-p", "0", "--node", &node], None);
    assert_eq!(code, 0, "repair refused: {out}{err}");
    assert!(out.contains("rebuilding"), "{out}");
    wait_serving(&client, Duration::from_secs(60)).await;
    for n in 1..=3 {
        assert_holds(&cluster, &client, n, &acked).await;
    }
    assert_eq!(client.list_offsets("t", 0, OffsetSpec::Latest).await.expect("latest").offset, 100);

    // Bad requests: a clear error each, nothing changes.
    let e = client.repair_replica("nope", 0, follower).await.expect_err("unknown topic");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    let e = client.repair_replica("t", 7, follower).await.expect_err("unknown partition");
    assert_eq!(e.code(), Some(ErrorCode::UnknownPartition), "{e}");
    let e = client.repair_replica("t", 0, 99).await.expect_err("no replica there");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let d = client.describe_topic("single").await.expect("describe");
    let only = d.partitions[0].replica_node_ids[0];
    let e = client.repair_replica("single", 0, only).await.expect_err("single replica");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let (code, out, err) = cli(&brokers, &["cluster", "health"], None);
    // Its verdict (exit 1 when unhealthy) is tested in metrics.rs; here: it answers.
    assert!(out.contains("healthy:") && (code == 0 || err.contains("not healthy")), "{out}{err}");
}
