//! Server state a client can grow is bounded, and forged producer identities change nothing:
//! producer ids and epochs must be issued by the controller, each partition remembers at most
//! `producers_per_partition_max` producers, named producers and partitions are capped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ErrorCode, Producer, ProducerConfig, Record, RecordExt};
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::{ErrorDetail, InitProducerRequest, ProduceRequest};
use common::{leader_of, wait_for_topic, Cluster};
use prost::Message;

/// A raw produce of one record to `topic`/0 on its leader, as any gRPC client could send it.
async fn raw_produce(cluster: &Cluster, client: &Client, pid: u64, epoch: u32, seq: u32) -> Result<u64, ErrorDetail> {
    let leader = leader_of(client, "t", 0).await;
    let mut broker = BrokerClient::connect(format!("http://{}", cluster.addr(leader))).await.expect("connect");
    let req = ProduceRequest {
        topic: "t".into(),
        partition: 0,
        records: vec![Record::from_value(format!("{pid}/{epoch}/{seq}"))],
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        topic_id: 0,
    };
    match broker.produce(req).await {
        Ok(r) => Ok(r.into_inner().base_offset),
        Err(status) => Err(ErrorDetail::decode(status.details()).expect("structured error detail")),
    }
}

async fn init(cluster: &Cluster, client: &Client, name: &str) -> Result<(u64, u32), ErrorDetail> {
    let d = client.describe_cluster().await.expect("describe");
    let mut broker =
        BrokerClient::connect(format!("http://{}", cluster.addr(d.controller_leader_id))).await.expect("connect");
    match broker.init_producer(InitProducerRequest { name: name.into(), ..Default::default() }).await {
        Ok(r) => Ok((r.get_ref().producer_id, r.get_ref().epoch)),
        Err(status) => Err(ErrorDetail::decode(status.details()).expect("structured error detail")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_producer_ids_and_epochs_are_refused_and_fence_nobody() {
    let cluster = Cluster::start(3, "t:1");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let cfg = ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), cfg).await.expect("producer");
    let first = producer.send("t", Some(0), Record::from_value("a")).await.expect("send").await.expect("a");

    // A forged epoch for the real producer id: refused, and the real producer is not fenced.
    let e = raw_produce(&cluster, &client, first.producer_id, u32::MAX, 0).await.expect_err("forged epoch");
    assert_eq!(e.code(), ErrorCode::UnknownProducerEpoch, "{}", e.message);
    assert!(e.definite && e.retriable, "nothing applied; a lagging node may not know a real epoch yet");
    let second = producer.send("t", Some(0), Record::from_value("b")).await.expect("send").await.expect("b");
    assert_eq!(second.offset, first.offset + 1, "the real producer goes on");

    // An id the controller never issued.
    let e = raw_produce(&cluster, &client, u64::MAX / 2, 0, 0).await.expect_err("forged id");
    assert_eq!(e.code(), ErrorCode::UnknownProducerEpoch, "{}", e.message);
    assert!(e.message.contains("never issued"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_tables_named_producers_and_partitions_stay_within_their_limits() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        "[limits]\nproducers_per_partition_max = 20\nnamed_producers_max = 5\npartitions_max = 4\n",
    )
    .expect("write config");
    let path = config.path().to_string_lossy().into_owned();
    let cluster = Cluster::start_with(3, "t:1", &["--config", &path]);
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;

    // 60 issued anonymous producers each append once: the partition keeps the last 20.
    let mut ids = Vec::new();
    for _ in 0..60 {
        let (pid, epoch) = init(&cluster, &client, "").await.expect("anonymous id");
        raw_produce(&cluster, &client, pid, epoch, 0).await.expect("first batch of a new producer");
        ids.push(pid);
    }
    let evicted = raw_produce(&cluster, &client, ids[0], 0, 1).await.expect_err("the oldest was evicted");
    assert_eq!(evicted.code(), ErrorCode::UnknownProducer, "{}", evicted.message);
    raw_produce(&cluster, &client, ids[59], 0, 1).await.expect("the newest is remembered");

    // The named registry: 5 names, then LIMIT_EXCEEDED; a known name is still served.
    for i in 0..5 {
        init(&cluster, &client, &format!("svc-{i}")).await.expect("named producer");
    }
    let e = init(&cluster, &client, "svc-5").await.expect_err("over the cap");
    assert_eq!(e.code(), ErrorCode::LimitExceeded, "{}", e.message);
    assert!(!e.retriable && e.definite);
    assert!(e.message.contains("named_producers_max"), "{}", e.message);
    init(&cluster, &client, "svc-0").await.expect("a registered name re-initialises at the cap");
    let long = "x".repeat(300);
    let e = init(&cluster, &client, &long).await.expect_err("name too long");
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{}", e.message);

    // Partitions: t has 1; 3 more fit, a 4th does not, and nothing is created.
    client.create_topic("u", 3, 3, None).await.expect("within the limit");
    let e = client.create_topic("v", 1, 3, None).await.expect_err("over partitions_max");
    assert_eq!(e.code(), Some(ErrorCode::LimitExceeded), "{e}");
    assert!(e.to_string().contains("partitions_max"), "{e}");
    assert!(client.list_topics().await.expect("list").iter().all(|t| t.name != "v"));
}
