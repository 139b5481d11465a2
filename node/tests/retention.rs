//! Retention with real node processes: the log start moves on every replica, what is below it
//! is out of range, a lagging follower catches up through a checkpoint snapshot, topic settings
//! change without a restart, and DeleteRecords moves the log start exactly.

mod common;

use std::time::{Duration, Instant};

use cairn_client::{Client, OffsetSpec, Record, RecordExt};
use cairn_proto::v1::{ErrorCode, FetchRequest, RetentionConfig};
use common::{cli, wait_for_topic, Cluster};

/// Small segments and a fast sweep, so retention acts within a test's time.
const RETENTION_CONFIG: &str = "[retention]\nsegment_bytes = 16384\ncheck_interval_ms = 100\n";

fn config_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(f.path(), RETENTION_CONFIG).expect("write config");
    f
}

fn start(n: u64, config: &tempfile::NamedTempFile) -> Cluster {
    let path = config.path().to_string_lossy().into_owned();
    Cluster::start_with(n, "", &["--config", &path])
}

async fn produce_kib(client: &Client, topic: &str, count: usize, tag: &str) {
    produce_paced(client, topic, count, tag, Duration::ZERO).await;
}

/// Records of ~1 KiB, with `pause` after each (segments are cut at the sweep after they are
/// full, so the pace sets how far past `segment_bytes` they get).
async fn produce_paced(client: &Client, topic: &str, count: usize, tag: &str, pause: Duration) {
    for i in 0..count {
        let value = format!("{tag}-{i:06}-{}", "x".repeat(1000));
        client.produce(topic, 0, vec![Record::from_value(value)]).await.expect("produce");
        tokio::time::sleep(pause).await;
    }
}

fn fetch_req(topic: &str, offset: u64) -> FetchRequest {
    FetchRequest { topic: topic.into(), partition: 0, offset, max_bytes: 1 << 20, max_wait_ms: 0, topic_id: 0 }
}

/// `(log start, high watermark)` of one node's replica.
async fn bounds_on(client: &Client, addr: &str, topic: &str) -> Option<(u64, u64)> {
    match client.fetch_from_node(addr, fetch_req(topic, u64::MAX / 2)).await {
        Ok(r) => Some((r.log_start_offset, r.high_watermark)),
        Err(e) => e.offset_bounds(),
    }
}

/// Sweeps (100 ms apart here) that must pass without a change before retention counts as
/// settled: with no new records each sweep is a function of the partition's state, so once one
/// round of sweeps changed nothing, none will (a segment filled by the last records is cut at
/// one sweep and truncated at the next).
const SETTLED_AFTER: Duration = Duration::from_millis(1_000);

/// Waits until every node's replica has log start ≥ `min_start` and the same bounds, and those
/// bounds stayed the same for [`SETTLED_AFTER`] (retention finished with what was produced).
async fn wait_for_truncation(cluster: &Cluster, client: &Client, topic: &str, min_start: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stable: Option<((u64, u64), Instant)> = None;
    loop {
        let mut seen = Vec::new();
        for addr in cluster.brokers() {
            seen.push(bounds_on(client, &addr, topic).await);
        }
        match seen.first() {
            Some(Some(first)) if first.0 >= min_start && seen.iter().all(|s| s.as_ref() == Some(first)) => match stable
            {
                Some((b, since)) if b == *first => {
                    if since.elapsed() >= SETTLED_AFTER {
                        return b;
                    }
                }
                _ => stable = Some((*first, Instant::now())),
            },
            _ => stable = None,
        }
        assert!(Instant::now() < deadline, "replicas did not truncate {topic} to ≥ {min_start}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record in `[from, until)` from one node, in order and dense.
async fn records_on(client: &Client, addr: &str, topic: &str, from: u64, until: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < until {
        let r = client.fetch_from_node(addr, fetch_req(topic, pos)).await.expect("fetch");
        assert!(!r.records.is_empty(), "{addr}: no records at {pos} below {until}");
        for rec in r.records.into_iter().take_while(|rec| rec.offset < until) {
            assert_eq!(rec.offset, pos, "{addr}: offsets must be dense");
            pos += 1;
            out.push((rec.offset, rec.value.to_vec()));
        }
    }
    out
}

async fn assert_replicas_agree(cluster: &Cluster, client: &Client, topic: &str, from: u64, until: u64) {
    let addrs = cluster.brokers();
    let first = records_on(client, &addrs[0], topic, from, until).await;
    assert_eq!(first.len() as u64, until - from);
    for addr in &addrs[1..] {
        assert_eq!(records_on(client, addr, topic, from, until).await, first, "{addr} differs from {}", addrs[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_truncates_every_replica_to_the_limit_and_below_it_is_out_of_range() {
    let config = config_file();
    let cluster = start(3, &config);
    let client = cluster.client().await;
    let retention = Some(RetentionConfig { retention_ms: -1, retention_bytes: 64 * 1024 });
    client.create_topic("r", 1, 3, retention).await.expect("create");
    wait_for_topic(&client, "r").await;
    let started_ms = now_ms();
    // About 100 records per second: segments of 16–26 KiB.
    produce_paced(&client, "r", 400, "a", Duration::from_millis(10)).await;

    // 400 KiB with a 64 KiB limit: at least 64 KiB stays, and at most one segment more.
    let (start, hw) = wait_for_truncation(&cluster, &client, "r", 400 - 64 - 30).await;
    assert_eq!(hw, 400);
    let kept = hw - start;
    assert!(kept >= 64, "kept {kept} records of ~1 KiB (log start {start}): below the limit");

    // Below the log start: OFFSET_OUT_OF_RANGE with the current bounds, from every replica.
    for addr in cluster.brokers() {
        let e = client.fetch_from_node(&addr, fetch_req("r", 0)).await.expect_err("offset 0 is gone");
        assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange), "{addr}: {e}");
        assert_eq!(e.offset_bounds(), Some((start, hw)), "{addr}");
    }
    let earliest = client.list_offsets("r", 0, OffsetSpec::Earliest).await.expect("earliest");
    assert_eq!(earliest.offset, start, "ListOffsets(earliest) is the log start");
    // A timestamp before everything resolves to the log start, not to a removed offset.
    let by_time = client.list_offsets("r", 0, OffsetSpec::Timestamp(started_ms - 60_000)).await.expect("by time");
    assert_eq!(by_time.offset, start);
    assert_replicas_agree(&cluster, &client, "r", start, hw).await;
    // The records kept are the newest ones.
    let last = records_on(&client, &cluster.brokers()[0], "r", hw - 1, hw).await;
    assert!(String::from_utf8_lossy(&last[0].1).starts_with("a-000399-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_log_start_catches_up_through_a_checkpoint_with_no_gap() {
    let config = config_file();
    let mut cluster = start(3, &config);
    let client = cluster.client().await;
    let retention = Some(RetentionConfig { retention_ms: -1, retention_bytes: 32 * 1024 });
    client.create_topic("lag", 1, 3, retention).await.expect("create");
    wait_for_topic(&client, "lag").await;
    produce_kib(&client, "lag", 20, "before").await;
    let stopped = 3;
    assert_eq!(cluster.stop(stopped).code(), Some(0), "node {stopped} stops cleanly");

    // Several truncations while node 3 is away, each followed by a purge of the log.
    let up = cluster.brokers().into_iter().take(2).collect::<Vec<_>>();
    let client_up = common::connect(up.clone()).await;
    produce_kib(&client_up, "lag", 300, "away").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b: Vec<_> = futures_bounds(&client_up, &up, "lag").await;
        if b.iter().all(|x| x.is_some_and(|(s, _)| s >= 200)) {
            break;
        }
        assert!(Instant::now() < deadline, "the live replicas did not truncate: {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let log_before = cluster.log_of(stopped);
    cluster.restart(stopped);
    let (start, hw) = wait_for_truncation(&cluster, &client, "lag", 200).await;
    assert_eq!(hw, 320);
    let log = cluster.log_of(stopped);
    if !log[log_before.len()..].contains("installed a checkpoint snapshot") {
        for n in 1..=3 {
            for l in cluster
                .log_of(n)
                .lines()
                .filter(|l| l.contains("snapshot") || l.contains("purge") || l.contains("etention"))
            {
                eprintln!("DEBUG node {n}: {l}");
            }
        }
    }
    assert!(
        log[log_before.len()..].contains("installed a checkpoint snapshot"),
        "node {stopped} caught up without a snapshot install: the purge did not reach what it needed"
    );
    assert_replicas_agree(&cluster, &client, "lag", start, hw).await;

    // And it keeps up afterwards through ordinary replication.
    produce_kib(&client, "lag", 30, "after").await;
    let (start, hw) = wait_for_truncation(&cluster, &client, "lag", start).await;
    assert_eq!(hw, 350);
    assert_replicas_agree(&cluster, &client, "lag", start, hw).await;
}

async fn futures_bounds(client: &Client, addrs: &[String], topic: &str) -> Vec<Option<(u64, u64)>> {
    let mut out = Vec::new();
    for a in addrs {
        out.push(bounds_on(client, a, topic).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_retention_applies_without_a_restart_and_describe_names_each_source() {
    let config = config_file();
    let cluster = start(3, &config);
    let client = cluster.client().await;
    client.create_topic("cfg", 1, 3, None).await.expect("create");
    wait_for_topic(&client, "cfg").await;
    let brokers = cluster.brokers();

    let (code, out, err) = cli(&brokers, &["topic", "describe", "cfg"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retention_ms=604800000 (default)"), "{out}");
    assert!(out.contains("retention_bytes=-1 (no limit) (default)"), "{out}");

    // A probe topic with a small limit shows the sweeps ran meanwhile; `cfg` must keep all.
    let probe = Some(RetentionConfig { retention_ms: -1, retention_bytes: 8 * 1024 });
    client.create_topic("probe", 1, 3, probe).await.expect("create probe");
    wait_for_topic(&client, "probe").await;
    produce_kib(&client, "cfg", 120, "c").await;
    produce_paced(&client, "probe", 80, "p", Duration::from_millis(10)).await;
    wait_for_truncation(&cluster, &client, "probe", 1).await;
    let (start, _) = bounds_on(&client, &brokers[0], "cfg").await.expect("bounds");
    assert_eq!(start, 0, "the default keeps everything");

    // Bad values are refused and change nothing.
    let (code, _, err) = cli(&brokers, &["topic", "alter", "cfg", "--retention-bytes", "-5"], None);
    assert_ne!(code, 0);
    assert!(err.contains("retention_bytes -5"), "{err}");
    let (code, _, err) = cli(&brokers, &["topic", "alter", "nope", "--retention-bytes", "100"], None);
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("unknown topic"), "{err}");

    let (code, out, err) = cli(&brokers, &["topic", "alter", "cfg", "--retention-bytes", "32768"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("retention_bytes=32768 (topic)"), "{out}");
    // Everything written before the change is past the new limit once 120 KiB more arrived.
    produce_kib(&client, "cfg", 120, "d").await;
    let (start, hw) = wait_for_truncation(&cluster, &client, "cfg", 120).await;
    assert!(hw - start >= 32, "at least the limit stays: {start}..{hw}");

    let (code, out, _) = cli(&brokers, &["--json", "topic", "describe", "cfg"], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["configs"]["retention_bytes"]["source"], "topic", "{v}");
    assert_eq!(v["configs"]["retention_ms"]["source"], "default", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_exactly_never_back_and_survives_a_restart() {
    let config = config_file();
    let mut cluster = start(3, &config);
    let client = cluster.client().await;
    client.create_topic("del", 1, 3, None).await.expect("create");
    wait_for_topic(&client, "del").await;
    for i in 0..100 {
        client.produce("del", 0, vec![Record::from_value(format!("v{i}"))]).await.expect("produce");
    }
    assert_eq!(client.delete_records("del", 0, Some(37)).await.expect("delete"), 37);
    let (start, hw) = wait_for_truncation(&cluster, &client, "del", 37).await;
    assert_eq!((start, hw), (37, 100));
    for addr in cluster.brokers() {
        let e = client.fetch_from_node(&addr, fetch_req("del", 36)).await.expect_err("36 is deleted");
        assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange));
        let r = client.fetch_from_node(&addr, fetch_req("del", 37)).await.expect("37 is kept");
        assert_eq!(&r.records[0].value[..], b"v37", "{addr}");
    }
    // Never backwards; never past the committed log.
    assert_eq!(client.delete_records("del", 0, Some(10)).await.expect("no-op"), 37);
    let e = client.delete_records("del", 0, Some(101)).await.expect_err("above the high watermark");
    assert_eq!(e.code(), Some(ErrorCode::OffsetOutOfRange));
    // Internal topics are not in the client's metadata; either refusal is definite.
    let e = client.delete_records("__consumer_offsets", 0, Some(1)).await.expect_err("internal");
    assert!(matches!(e.code(), Some(ErrorCode::InvalidArgument | ErrorCode::UnknownTopic)), "{e}");

    let (code, out, err) =
        cli(&cluster.brokers(), &["topic", "delete-records", "del", "-p", "0", "--before", "50"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("log start 50"), "{out}");
    // The CLI asked for a removed offset goes on from the log start and says so.
    let (code, out, err) = cli(&cluster.brokers(), &["consume", "del", "-p", "0", "--offset", "3", "-n", "2"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["del/0@50: v50", "del/0@51: v51"], "{out}");
    assert!(err.contains("continuing at 50"), "{err}");
    cluster.kill(2);
    cluster.restart(2);
    let (start, hw) = wait_for_truncation(&cluster, &client, "del", 50).await;
    assert_eq!((start, hw), (50, 100), "the log start survives a restart");
    assert_replicas_agree(&cluster, &client, "del", 50, 100).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}
