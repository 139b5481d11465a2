//! Conditional appends end to end: the partition condition (`expected_offset`), the key
//! condition (`expected_key_offset`), the idempotent retry of a conditional batch across lost
//! answers and a leader kill, the key index's bound, bad conditions, and the CLI.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, Condition, ErrorCode, KeyState, Mismatch, Producer, ProducerConfig, Record, RecordExt};
use common::{cli, leader_of, read_from_node, wait_for_topic, Cluster};

async fn mismatch_of(r: Result<cairn_client::ProduceResponse, cairn_client::ClientError>) -> Mismatch {
    let e = r.expect_err("the condition must not hold");
    assert_eq!(e.code(), Some(ErrorCode::OffsetMismatch), "{e}");
    assert!(e.is_definite() && !e.is_retriable(), "{e}");
    e.mismatch().expect("a mismatch carries the partition's state")
}

async fn end_offset(client: &Client, topic: &str, partition: u32) -> u64 {
    client.list_offsets(topic, partition, cairn_client::OffsetSpec::Latest).await.expect("latest").offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_appends_land_only_where_expected_and_a_mismatch_changes_nothing() {
    let cluster = Cluster::start(3, "ledger:1");
    let client = cluster.client().await;
    wait_for_topic(&client, "ledger").await;
    let key = |v: &str| Record::keyed("acct-1", v.to_string());

    // Partition condition: appended at the expected end offset, refused elsewhere.
    let ack = client.produce_conditional("ledger", 0, vec![key("opened")], Condition::at_offset(0)).await;
    assert_eq!(ack.expect("expected end offset 0").base_offset, 0);
    let m =
        mismatch_of(client.produce_conditional("ledger", 0, vec![key("again")], Condition::at_offset(0)).await).await;
    assert_eq!(m, Mismatch { end_offset: 1, key_offset: None });
    let m =
        mismatch_of(client.produce_conditional("ledger", 0, vec![key("ahead")], Condition::at_offset(7)).await).await;
    assert_eq!(m.end_offset, 1);

    // Key condition: the key's last record is at 0; another key has none.
    let ack = client
        .produce_conditional("ledger", 0, vec![key("deposit 5"), key("deposit 7")], Condition::key_at(Some(0)))
        .await
        .expect("the key's last record is at 0");
    assert_eq!(ack.base_offset, 1);
    let m = mismatch_of(client.produce_conditional("ledger", 0, vec![key("stale")], Condition::key_at(Some(0))).await)
        .await;
    assert_eq!(m, Mismatch { end_offset: 3, key_offset: Some(KeyState::At(2)) });
    let m = mismatch_of(client.produce_conditional("ledger", 0, vec![key("new")], Condition::key_at(None)).await).await;
    assert_eq!(m.key_offset, Some(KeyState::At(2)));
    let other = Record::keyed("acct-2", "opened");
    let m = mismatch_of(client.produce_conditional("ledger", 0, vec![other.clone()], Condition::key_at(Some(1))).await)
        .await;
    assert_eq!(m.key_offset, Some(KeyState::NoRecord));
    let ack = client.produce_conditional("ledger", 0, vec![other], Condition::key_at(None)).await;
    assert_eq!(ack.expect("acct-2 has no record yet").base_offset, 3);
    // Both conditions at once: both must hold.
    let both = Condition { expected_offset: Some(4), expected_key_offset: Some(Some(1)) };
    let m = mismatch_of(client.produce_conditional("ledger", 0, vec![key("x")], both).await).await;
    assert_eq!(m, Mismatch { end_offset: 4, key_offset: Some(KeyState::At(2)) });
    let both = Condition { expected_offset: Some(4), expected_key_offset: Some(Some(2)) };
    assert_eq!(
        client.produce_conditional("ledger", 0, vec![key("withdraw 3")], both).await.expect("both").base_offset,
        4
    );

    // Bad conditions are refused before anything is proposed.
    let mixed = vec![Record::keyed("acct-1", "a"), Record::keyed("acct-2", "b")];
    let e = client.produce_conditional("ledger", 0, mixed, Condition::key_at(None)).await.expect_err("two keys");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let e = client
        .produce_conditional("ledger", 0, vec![Record::from_value("no key")], Condition::key_at(None))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");

    // Nothing refused was appended: five records, on every replica.
    assert_eq!(end_offset(&client, "ledger", 0).await, 5);
    for id in 1..=3 {
        let values: Vec<String> = read_from_node(&client, &cluster.addr(id), "ledger", 0, 5)
            .await
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect();
        assert_eq!(values, ["opened", "deposit 5", "deposit 7", "opened", "withdraw 3"], "node {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_conditional_chain_survives_lost_answers_and_a_leader_kill_exactly_once() {
    let mut cluster = Cluster::start_with(3, "", &["--fault", "drop-produce-responses=0.3"]);
    let client = Arc::new(cluster.client().await);
    client.create_topic("chain", 1, 3, None).await.expect("create");
    wait_for_topic(&client, "chain").await;
    let cfg = ProducerConfig { request_timeout: Duration::from_secs(1), ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), cfg).await.expect("producer");
    // Each record expects the previous one's offset: a retried duplicate must answer with its
    // original offset (not OFFSET_MISMATCH, though the key has moved on by then).
    let mut last = None;
    for i in 0..40u64 {
        if i == 20 {
            let leader = leader_of(&client, "chain", 0).await;
            cluster.kill(leader);
            cluster.restart(leader);
        }
        let d = producer
            .send_conditional("chain", Some(0), Record::keyed("k", i.to_string()), Condition::key_at(last))
            .await
            .expect("send");
        let ack = d.await.unwrap_or_else(|e| panic!("record {i} (expecting {last:?}) not appended: {e}"));
        assert_eq!(ack.offset, i, "record {i}");
        last = Some(ack.offset);
    }
    // A stale condition fails the record and does not hold back the ones after it.
    let stale = producer.send_conditional("chain", Some(0), Record::keyed("k", "stale"), Condition::key_at(Some(3)));
    let e = stale.await.expect("send").await.expect_err("a stale expectation");
    assert_eq!(e.mismatch().and_then(|m| m.key_offset), Some(KeyState::At(39)), "{e}");
    let next = producer.send_conditional("chain", Some(0), Record::keyed("k", "40"), Condition::key_at(Some(39)));
    assert_eq!(next.await.expect("send").await.expect("appended after a refusal").offset, 40);
    producer.send("chain", Some(0), Record::from_value("unconditional")).await.expect("send").await.expect("ack");
    let stored = read_from_node(&client, &cluster.addr(1), "chain", 0, 42).await;
    let values: Vec<String> = stored.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    let expected: Vec<String> = (0..=40).map(|i| i.to_string()).chain(["unconditional".to_string()]).collect();
    assert_eq!(values, expected, "each record exactly once, in order");
    assert!(cluster.log_of(1).contains("FAULT INJECTION"), "answers were being dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_index_holds_its_bound_and_refuses_conditions_on_keys_it_forgot() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(config.path(), "[limits]\nkey_index_keys_per_partition_max = 3\n").expect("write config");
    let path = config.path().to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with(3, "accounts:1", &["--config", &path]);
    let client = cluster.client().await;
    wait_for_topic(&client, "accounts").await;
    for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let ack = client.produce_conditional("accounts", 0, vec![Record::keyed(k, "x")], Condition::key_at(None)).await;
        assert_eq!(ack.unwrap_or_else(|e| panic!("{k}: {e}")).base_offset, i as u64);
    }
    // "a" (the oldest) was forgotten: its absence can no longer be proven, nor its offset.
    for c in [Condition::key_at(Some(0)), Condition::key_at(None)] {
        let m = mismatch_of(client.produce_conditional("accounts", 0, vec![Record::keyed("a", "y")], c).await).await;
        assert_eq!(m.key_offset, Some(KeyState::Forgotten { upto: 0 }));
    }
    // A key never written is not provably absent either, once anything was forgotten.
    let m = mismatch_of(
        client.produce_conditional("accounts", 0, vec![Record::keyed("zz", "y")], Condition::key_at(None)).await,
    )
    .await;
    assert_eq!(m.key_offset, Some(KeyState::Forgotten { upto: 0 }));
    // The partition condition indexes "a" again; then key conditions work for it.
    let ack = client.produce_conditional("accounts", 0, vec![Record::keyed("a", "y")], Condition::at_offset(4)).await;
    assert_eq!(ack.expect("at the end offset").base_offset, 4);
    // The index and its bound survive a full restart (persisted with apply).
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    let client = cluster.client().await;
    wait_for_topic(&client, "accounts").await;
    let ack =
        client.produce_conditional("accounts", 0, vec![Record::keyed("a", "z")], Condition::key_at(Some(4))).await;
    assert_eq!(ack.expect("a is indexed at 4").base_offset, 5);
    // "b" was forgotten when "a" came back (c, d, a are the newest three).
    let m = mismatch_of(
        client.produce_conditional("accounts", 0, vec![Record::keyed("b", "y")], Condition::key_at(Some(1))).await,
    )
    .await;
    assert_eq!(m.key_offset, Some(KeyState::Forgotten { upto: 1 }));
    let text = common::http_get(cluster.nodes[&1].metrics_addr, "/metrics").1;
    assert_eq!(common::metric_sum(&text, "cairn_partition_key_index_keys", &[("topic", "accounts")]), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_appends_conditionally_and_explains_a_mismatch() {
    let cluster = Cluster::start(3, "orders:2");
    let client = cluster.client().await;
    wait_for_topic(&client, "orders").await;
    let brokers = cluster.brokers();
    let (code, out, err) =
        cli(&brokers, &["produce", "orders", "-p", "1", "--expect-offset", "0"], Some("placed\npaid\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("orders/1: 2 record(s) at offsets 0 to 1"), "{out}");
    let (code, _, err) = cli(&brokers, &["produce", "orders", "-p", "1", "--expect-offset", "0", "--value", "x"], None);
    assert_eq!(code, 1);
    assert!(err.contains("end offset 2") && err.contains("OFFSET_MISMATCH"), "{err}");
    let args = ["produce", "orders", "-p", "0", "-k", "order-9", "--expect-key-offset", "none", "--value", "placed"];
    let (code, _, err) = cli(&brokers, &args, None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&brokers, &args, None);
    assert_eq!(code, 1);
    assert!(err.contains("last record is at offset 0") && err.contains("--expect-key-offset 0"), "{err}");
    let (code, _, err) = cli(&brokers, &["produce", "orders", "--expect-key-offset", "soon", "--value", "x"], None);
    assert_ne!(code, 0);
    assert!(err.contains("neither an offset nor"), "{err}");
    assert_eq!(end_offset(&client, "orders", 1).await, 2, "refusals appended nothing");
}
