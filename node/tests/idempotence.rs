//! The idempotent producer, end to end: lost answers, leader kills with batches in flight, a
//! full restart between a send and its retry, fencing of a zombie instance.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, ErrorCode, OffsetSpec, Producer, ProducerConfig, Record, RecordExt};
use common::{connect, read_from_node, wait_for_topic, Cluster};

/// Every value of `topic` across all partitions, from one node, with (partition, offset).
async fn all_records(client: &Client, addr: &str, topic: &str) -> Vec<(u32, u64, String)> {
    let n = client.partition_count(topic).await.expect("partitions");
    let mut out = Vec::new();
    for p in 0..n {
        let hw = client.list_offsets(topic, p, OffsetSpec::Latest).await.expect("latest").offset;
        for r in read_from_node(client, addr, topic, p, hw).await {
            out.push((p, r.offset, String::from_utf8_lossy(&r.value).into_owned()));
        }
    }
    out
}

fn producer_config() -> ProducerConfig {
    ProducerConfig { request_timeout: Duration::from_secs(3), ..ProducerConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_dropped_after_commit_are_retried_and_every_record_appears_once() {
    let cluster = Cluster::start_with(3, "", &["--fault", "drop-produce-responses=0.3"]);
    let client = Arc::new(cluster.client().await);
    client.create_topic("lossy", 3, 3, None).await.expect("create");
    wait_for_topic(&client, "lossy").await;
    let producer = Producer::new(client.clone(), producer_config()).await.expect("producer");
    let mut futures = Vec::new();
    for i in 0..3000 {
        futures.push((
            format!("v{i}"),
            producer.send("lossy", None, Record::from_value(format!("v{i}"))).await.expect("send"),
        ));
    }
    let mut acked = BTreeMap::new();
    for (v, f) in futures {
        let ack = f.await.unwrap_or_else(|e| panic!("{v} not delivered: {e}"));
        acked.insert(v, (ack.partition, ack.offset));
    }
    let stored = all_records(&client, &cluster.addr(1), "lossy").await;
    assert_eq!(stored.len(), 3000, "every record exactly once (no duplicates from the retries)");
    for (p, offset, v) in stored {
        assert_eq!(acked.get(&v), Some(&(p, offset)), "{v} stored at {p}/{offset}, acknowledged elsewhere");
    }
    assert!(cluster.log_of(1).contains("FAULT INJECTION"), "the fault switch was active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_20_times_with_batches_in_flight_keeps_exactly_once_in_send_order() {
    let mut cluster = Cluster::start(3, "");
    let client = Arc::new(cluster.client().await);
    client.create_topic("seq", 1, 3, None).await.expect("create");
    wait_for_topic(&client, "seq").await;
    // Small batches, no linger: five batches in flight most of the time.
    let cfg = ProducerConfig { batch_records_max: 20, linger: Duration::ZERO, ..producer_config() };
    let producer = Arc::new(Producer::new(client.clone(), cfg).await.expect("producer"));

    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static ACKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            let mut acks = Vec::new();
            let mut i = 0u64;
            loop {
                while pending.len() < 200 {
                    let f = producer.send("seq", Some(0), Record::from_value(i.to_string())).await.expect("send");
                    pending.push_back((i, f));
                    i += 1;
                }
                let (v, f) = pending.pop_front().expect("pending");
                let ack = f.await.unwrap_or_else(|e| panic!("record {v} failed: {e}"));
                acks.push((v, ack.offset));
                ACKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if STOP.load(std::sync::atomic::Ordering::SeqCst) {
                    for (v, f) in pending {
                        acks.push((v, f.await.unwrap_or_else(|e| panic!("record {v} failed: {e}")).offset));
                    }
                    return acks;
                }
            }
        })
    };

    let group = client.describe_topic("seq").await.expect("describe").partitions[0].group_id;
    let mut killed = std::collections::BTreeSet::new();
    for round in 0..20 {
        // A leader that claims the group, and records flowing (five batches in flight) since
        // the previous kill.
        let before = ACKED.load(std::sync::atomic::Ordering::SeqCst);
        let leader = claimed_leader(&cluster, group).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ACKED.load(std::sync::atomic::Ordering::SeqCst) < before + 100 {
            assert!(Instant::now() < deadline, "round {round}: the producer made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.kill(leader);
        killed.insert(leader);
        eprintln!("round {round}: killed leader {leader} at {} acks", ACKED.load(std::sync::atomic::Ordering::SeqCst));
        // A survivor takes over before the old leader returns: every round is a real failover.
        let next = claimed_leader(&cluster, group).await;
        assert_ne!(next, leader);
        cluster.restart(leader);
    }
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    let acks =
        tokio::time::timeout(Duration::from_secs(120), sender).await.expect("producer finished").expect("sender");
    assert!(killed.len() >= 2, "leaders on several nodes were killed: {killed:?}");
    let n = acks.len() as u64;
    assert!(n > 1000, "enough records flowed through the kills: {n}");

    let end = client.list_offsets("seq", 0, OffsetSpec::Latest).await.expect("latest").offset;
    let stored = read_from_node(&client, &cluster.addr(1), "seq", 0, end).await;
    let values: Vec<u64> = stored.iter().map(|r| String::from_utf8_lossy(&r.value).parse().expect("number")).collect();
    // Exactly once and in send order: the partition holds 0, 1, 2, ... with no duplicate or gap.
    assert_eq!(values, (0..n).collect::<Vec<_>>(), "duplicates, gaps or reordering");
    for (v, offset) in acks {
        assert_eq!(offset, v, "record {v} acknowledged at {offset}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_restart_between_a_send_and_its_retry_is_recognised_as_a_duplicate() {
    // Every answer is lost: the batch commits but the producer cannot know.
    let mut cluster = Cluster::start_with(3, "", &["--fault", "drop-produce-responses=1.0"]);
    let client = Arc::new(cluster.client().await);
    client.create_topic("restart", 1, 3, None).await.expect("create");
    wait_for_topic(&client, "restart").await;
    let cfg = ProducerConfig {
        request_timeout: Duration::from_secs(2),
        delivery_timeout: Duration::from_secs(120),
        ..producer_config()
    };
    let producer = Producer::new(client.clone(), cfg).await.expect("producer");
    let delivery = producer.send("restart", Some(0), Record::from_value("once")).await.expect("send");
    // Wait until the batch is committed (visible to readers) although unanswered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.list_offsets("restart", 0, OffsetSpec::Latest).await.map(|r| r.offset).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "the batch never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill everything, restart without the fault: the producer's retry reaches a cluster that
    // knows the batch only from disk.
    for id in 1..=3 {
        cluster.kill(id);
    }
    cluster.set_extra_args(&[]);
    for id in 1..=3 {
        cluster.restart(id);
    }
    let ack =
        tokio::time::timeout(Duration::from_secs(90), delivery).await.expect("delivered in time").expect("delivered");
    assert_eq!(ack.offset, 0, "the retry got the original offset");
    let fresh = connect(cluster.brokers()).await;
    let stored = read_from_node(&fresh, &cluster.addr(2), "restart", 0, 1).await;
    assert_eq!(&stored[0].value[..], b"once");
    let end = fresh.list_offsets("restart", 0, OffsetSpec::Latest).await.expect("latest").offset;
    assert_eq!(end, 1, "the retry appended nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_producer_is_fenced_everywhere_once_its_successor_initialises() {
    let cluster = Cluster::start(3, "");
    let client = Arc::new(cluster.client().await);
    client.create_topic("fence", 3, 3, None).await.expect("create");
    wait_for_topic(&client, "fence").await;
    let named = || ProducerConfig { name: Some("billing-service".into()), ..producer_config() };
    let zombie = Producer::new(client.clone(), named()).await.expect("first instance");
    for p in 0..2 {
        zombie.send("fence", Some(p), Record::from_value("z")).await.expect("send").await.expect("delivered");
    }
    let before: Vec<u64> = futures_hw(&client).await;

    let successor = Producer::new(client.clone(), named()).await.expect("second instance");
    assert_eq!(successor.producer_id(), zombie.producer_id());
    assert_eq!(successor.epoch(), zombie.epoch() + 1);

    // Partition 2 the successor never wrote to (nor partitions 0 and 1, yet): the zombie is
    // refused there; the producer then knows it is fenced and fails later sends at once.
    for p in [2, 0, 1] {
        let e = match zombie.send("fence", Some(p), Record::from_value("zz")).await {
            Ok(delivery) => delivery.await.expect_err("fenced"),
            Err(e) => e,
        };
        assert_eq!(e.code(), Some(ErrorCode::Fenced), "partition {p}: {e}");
    }
    assert_eq!(futures_hw(&client).await, before, "the zombie appended nothing");

    successor.send("fence", Some(2), Record::from_value("s")).await.expect("send").await.expect("successor delivers");
}

/// The node whose replica of `group` reports itself leader (highest term), waiting for one.
async fn claimed_leader(cluster: &Cluster, group: u64) -> u64 {
    use cairn_proto::peer::node_internal_client::NodeInternalClient;
    use cairn_proto::peer::DescribeGroupsRequest;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut best: Option<(u64, u64)> = None;
        for (id, node) in &cluster.nodes {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", node.peer_addr))
                .expect("endpoint")
                .connect_lazy();
            let req = DescribeGroupsRequest { group_ids: vec![group] };
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(1), NodeInternalClient::new(ch).describe_groups(req)).await
            {
                for g in r.into_inner().groups.into_iter().filter(|g| g.is_leader) {
                    if best.is_none_or(|(t, _)| g.term > t) {
                        best = Some((g.term, *id));
                    }
                }
            }
        }
        if let Some((_, id)) = best {
            return id;
        }
        assert!(Instant::now() < deadline, "no replica of group {group} claims leadership");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn futures_hw(client: &Client) -> Vec<u64> {
    let mut out = Vec::new();
    for p in 0..3 {
        out.push(client.list_offsets("fence", p, OffsetSpec::Latest).await.expect("latest").offset);
    }
    out
}
