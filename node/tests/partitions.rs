//! More partitions for a live topic (CreatePartitions / `cairn topic add-partitions`) with real
//! node processes: bad requests change nothing; the new partitions are replicated groups of
//! their own; a running producer, a running group consumer and `cairn consume --follow` pick
//! them up without a restart; the old partitions keep their records.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::consumer::{Consumer, ConsumerConfig, Subscription};
use cairn_client::partitioner::partition_for_key;
use cairn_client::producer::{Producer, ProducerConfig};
use cairn_client::{Client, ClientConfig, ErrorCode, Record, RecordExt};
use common::{cli, wait_for_topic, Cluster};

/// A second client as a long-running service would hold it, with a short metadata age so the
/// test sees the refresh within seconds (the default is 30 s).
async fn service_client(cluster: &Cluster) -> Arc<Client> {
    let mut cfg = ClientConfig::new(cluster.brokers());
    cfg.retry_deadline = Duration::from_secs(30);
    cfg.metadata_max_age = Duration::from_secs(1);
    Arc::new(Client::connect(cfg).await.expect("client connects"))
}

fn keyed(i: usize) -> Record {
    Record { key: format!("order-{i}").into_bytes().into(), ..Record::from_value(format!("v{i}")) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_reach_running_producers_consumers_and_the_cli_without_a_restart() {
    let cluster = Cluster::start(3, "t:2");
    let admin = cluster.client().await;
    wait_for_topic(&admin, "t").await;
    let brokers = cluster.brokers();

    // Bad requests: a clear error each, and the topic is unchanged.
    let (code, _, err) = cli(&brokers, &["topic", "add-partitions", "t", "--to", "1"], None);
    assert_ne!(code, 0);
    assert!(err.contains("has 2 partitions") && err.contains("only grow"), "{err}");
    let e = admin.create_partitions("__consumer_offsets", 100).await.expect_err("internal topic");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let e = admin.create_partitions("nope", 4).await.expect_err("unknown topic");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    let e = admin.create_partitions("t", 0).await.expect_err("zero");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let (code, out, _) = cli(&brokers, &["topic", "add-partitions", "t", "--to", "2"], None);
    assert_eq!(code, 0, "the same count is not an error");
    assert!(out.contains("already has 2 partitions"), "{out}");
    assert_eq!(admin.describe_topic("t").await.expect("describe").partitions.len(), 2);

    // A running producer, group consumer and CLI follower, all started before the change.
    let service = service_client(&cluster).await;
    let producer = Producer::new(service.clone(), ProducerConfig::default()).await.expect("producer");
    let mut sent = 0usize;
    let mut before: BTreeMap<u32, u64> = BTreeMap::new();
    for _ in 0..20 {
        let ack = producer.send("t", None, keyed(sent)).await.expect("send").await.expect("ack");
        assert!(ack.partition < 2);
        *before.entry(ack.partition).or_default() += 1;
        sent += 1;
    }
    let mut group_cfg = ConsumerConfig::new("readers");
    group_cfg.auto_commit_interval = Duration::from_millis(200);
    let mut consumer =
        Consumer::subscribe(service.clone(), group_cfg, Subscription::Topics(vec!["t".into()])).await.expect("join");
    let mut follower = std::process::Command::new(common::cli_binary())
        .args(["--brokers", &brokers.join(","), "--json", "consume", "t", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cairn consume --follow");
    // Partitions of the records it printed, as they come.
    let (tx, printed) = std::sync::mpsc::channel::<u64>();
    let stdout = follower.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(p) = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["partition"].as_u64())
            {
                let _ = tx.send(p);
            }
        }
    });

    let (code, out, err) = cli(&brokers, &["topic", "add-partitions", "t", "--to", "4"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 → 4 partitions"), "{out}");
    assert!(err.contains("warning: keyed records of t now hash over 4 partitions"), "{err}");

    // The CLI saw every leader through one node; others may learn of them a moment later.
    wait_for_topic(&admin, "t").await;
    let d = admin.describe_topic("t").await.expect("describe");
    assert_eq!(d.partitions.len(), 4);
    let groups: BTreeSet<u64> = d.partitions.iter().map(|p| p.group_id).collect();
    assert_eq!(groups.len(), 4, "every partition is its own group");
    for p in &d.partitions {
        assert_eq!(p.replica_node_ids.len(), 3, "the topic's replication factor");
        let had = before.get(&p.partition).copied().unwrap_or(0);
        assert_eq!(p.high_watermark, had, "partition {}: old partitions keep their records", p.partition);
    }

    // The producer sees the new count within its metadata age: keyed records follow the new
    // mapping, and the new partitions receive some.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut on_new = 0;
    while on_new < 40 {
        assert!(Instant::now() < deadline, "the producer never wrote to a new partition ({on_new} so far)");
        let ack = producer.send("t", None, keyed(sent)).await.expect("send").await.expect("ack");
        let key = format!("order-{sent}");
        sent += 1;
        if ack.partition >= 2 {
            assert_eq!(ack.partition, partition_for_key(key.as_bytes(), 4), "keys hash over 4 partitions");
            on_new += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // The group member is assigned the new partitions and reads everything in them.
    let ends: BTreeMap<u32, u64> = {
        let mut m = BTreeMap::new();
        for p in 0..4 {
            m.insert(p, admin.list_offsets("t", p, cairn_client::OffsetSpec::Latest).await.expect("end").offset);
        }
        m
    };
    let mut seen: BTreeSet<(u32, u64)> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.iter().all(|(p, e)| (0..*e).all(|o| seen.contains(&(*p, o)))) {
        assert!(
            Instant::now() < deadline,
            "the group did not read every record: owns {:?}, read {}",
            consumer.assignment(),
            seen.len()
        );
        for r in consumer.poll(Duration::from_millis(100)).await.expect("poll") {
            seen.insert((r.partition, r.offset));
        }
    }
    assert_eq!(consumer.assignment().len(), 4, "the only member owns all four partitions");
    consumer.close().await.expect("close");

    // The follower, started before the change, reads the new partitions too (within its
    // 5 s look for new partitions).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut follower_partitions = BTreeSet::new();
    while !follower_partitions.iter().any(|p| *p >= 2) {
        let left = deadline.saturating_duration_since(Instant::now());
        match printed.recv_timeout(left) {
            Ok(p) => {
                follower_partitions.insert(p);
            }
            Err(_) => {
                panic!("cairn consume --follow never printed a record of a new partition: {follower_partitions:?}")
            }
        }
    }
    let _ = follower.kill();
    let out = follower.wait_with_output().expect("follower output");
    reader.join().expect("reader");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was added to t"), "{err}");
}
