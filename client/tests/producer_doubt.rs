//! The idempotent producer's state machine against a scripted broker: a batch whose earlier
//! attempt may have been applied is resolved only by the partition leader's answer, never by
//! a definite refusal of a retry, and sequence numbers are never given to other records within
//! one producer identity.

#[path = "common/fake_broker.rs"]
mod fake_broker;

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientConfig, ErrorCode, Producer, ProducerConfig, Record, RecordExt};
use fake_broker::{error, Action, Attempt, FakeBroker, TOPIC_ID};

async fn producer(broker: &FakeBroker, delivery_timeout: Duration) -> Producer {
    let mut cfg = ClientConfig::new([broker.addr()]);
    cfg.retry_deadline = Duration::from_secs(5);
    let client = Arc::new(Client::connect(cfg).await.expect("connect"));
    let pcfg = ProducerConfig {
        linger: Duration::ZERO,
        batch_records_max: 1,
        request_timeout: Duration::from_millis(300),
        delivery_timeout,
        ..ProducerConfig::default()
    };
    Producer::new(client, pcfg).await.expect("producer")
}

fn stale_unknown_topic() -> Action {
    // What a broker that has not learned of the topic yet answers: definite, not retriable.
    Action::Refuse(error(ErrorCode::UnknownTopic, false, true))
}

/// (producer id, epoch, sequence) of every attempt carrying `value`.
fn identities(attempts: &[Attempt], value: &str) -> Vec<(u64, u32, u32)> {
    attempts
        .iter()
        .filter(|a| a.values.iter().any(|v| v == value))
        .map(|a| (a.producer_id, a.epoch, a.base_sequence))
        .collect()
}

#[tokio::test]
async fn a_stale_brokers_refusal_does_not_fail_a_batch_whose_first_attempt_may_have_landed() {
    // "a": applied but its answer lost; the retry meets a broker that lags (UNKNOWN_TOPIC);
    // the next retry reaches the leader, which recognises the duplicate.
    let broker = FakeBroker::start(|a: &Attempt| match (a.values[0].as_str(), a.retry) {
        ("a", 0) => Action::ApplyAndLoseAnswer,
        ("a", 1) => stale_unknown_topic(),
        _ => Action::Normal,
    })
    .await;
    let p = producer(&broker, Duration::from_secs(20)).await;
    let a = p.send("t", Some(0), Record::from_value("a")).await.expect("queue a").await;
    let a = a.expect("a is in the log: it must be acknowledged, not failed");
    assert_eq!(a.offset, 0);
    assert_eq!(a.topic_id, TOPIC_ID);
    let b = p.send("t", Some(0), Record::from_value("b")).await.expect("queue b").await.expect("b delivered");
    assert_eq!(b.offset, 1, "b has its own offset, not a's");
    assert_eq!(broker.log_values(), vec!["a", "b"], "each record stored once, b not lost");
    let (ia, ib) = (identities(&broker.attempts(), "a"), identities(&broker.attempts(), "b"));
    assert!(ia.iter().all(|x| !ib.contains(x)), "b reused a's sequence numbers: {ia:?} {ib:?}");
}

#[tokio::test]
async fn a_doubt_unresolved_at_the_delivery_timeout_is_reported_unknown_and_a_new_identity_follows() {
    // "a" lands, its answer is lost, and every retry meets a lagging broker until the delivery
    // timeout: whether it landed cannot be known.
    let broker = FakeBroker::start(|a: &Attempt| match (a.values[0].as_str(), a.retry) {
        ("a", 0) => Action::ApplyAndLoseAnswer,
        ("a", _) => stale_unknown_topic(),
        _ => Action::Normal,
    })
    .await;
    let p = producer(&broker, Duration::from_secs(2)).await;
    let err =
        p.send("t", Some(0), Record::from_value("a")).await.expect("queue a").await.expect_err("a cannot be confirmed");
    assert!(!err.is_definite(), "a may be in the log: its outcome must be unknown, not failed: {err}");
    // The producer carries on, under an identity whose sequences are fresh.
    let b = p.send("t", Some(0), Record::from_value("b")).await.expect("queue b").await.expect("b delivered");
    assert_eq!(broker.log_values(), vec!["a", "b"]);
    assert_eq!(broker.inits(), 2, "a new identity was taken before b");
    let ia = identities(&broker.attempts(), "a");
    assert!(ia.iter().all(|x| (x.0, x.1) != (b.producer_id, b.epoch)), "b was sent under a's identity: {ia:?} {b:?}");
    assert_eq!(b.sequence, 0);
}

#[tokio::test]
async fn a_definitely_refused_batch_fails_and_its_sequence_numbers_are_never_reused() {
    let broker = FakeBroker::start(|a: &Attempt| match a.values[0].as_str() {
        "big" => Action::Refuse(error(ErrorCode::RecordTooLarge, false, true)),
        _ => Action::Normal,
    })
    .await;
    let p = producer(&broker, Duration::from_secs(20)).await;
    let err = p.send("t", Some(0), Record::from_value("big")).await.expect("queue").await.expect_err("refused");
    assert!(err.is_definite(), "never appended: {err}");
    assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge));
    let c = p.send("t", Some(0), Record::from_value("c")).await.expect("queue c").await.expect("c delivered");
    assert_eq!(c.offset, 0);
    let big = identities(&broker.attempts(), "big");
    assert!(!big.contains(&(c.producer_id, c.epoch, c.sequence)), "c reused big's sequence: {big:?} {c:?}");
    assert_eq!(broker.log_values(), vec!["c"]);
}

#[tokio::test]
async fn batches_behind_a_refused_one_are_delivered_once_under_a_new_identity() {
    // r1 is refused definitely while r2..r4 are in flight behind it.
    let broker = FakeBroker::start(|a: &Attempt| match a.values[0].as_str() {
        "r1" => Action::Refuse(error(ErrorCode::InvalidArgument, false, true)),
        _ => Action::Normal,
    })
    .await;
    let p = producer(&broker, Duration::from_secs(20)).await;
    let mut futures = Vec::new();
    for i in 0..5 {
        let v = format!("r{i}");
        futures.push((v.clone(), p.send("t", Some(0), Record::from_value(v)).await.expect("queue")));
    }
    let mut acked = Vec::new();
    for (v, f) in futures {
        match f.await {
            Ok(ack) => acked.push((v, ack.offset)),
            Err(e) => {
                assert_eq!(v, "r1", "only r1 fails: {v}: {e}");
                assert!(e.is_definite());
            }
        }
    }
    assert_eq!(broker.log_values(), vec!["r0", "r2", "r3", "r4"], "each delivered once, in send order");
    let stored: Vec<(String, u64)> = broker.log_values().into_iter().enumerate().map(|(o, v)| (v, o as u64)).collect();
    assert_eq!(acked, stored, "every acknowledgement names the record's offset");
    let log = broker.log();
    let mut ids: Vec<(u64, u32, u32)> = log.iter().map(|r| (r.0, r.1, r.2)).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), log.len(), "no (producer, epoch, sequence) names two records");
}

#[tokio::test]
async fn a_fenced_producer_reports_batches_in_doubt_as_unknown() {
    // "a" lands, its answer is lost, then a newer instance fences this one.
    let broker = FakeBroker::start(|a: &Attempt| match (a.values[0].as_str(), a.retry) {
        ("a", 0) => Action::ApplyAndLoseAnswer,
        _ => Action::Refuse(error(ErrorCode::Fenced, false, true)),
    })
    .await;
    let p = producer(&broker, Duration::from_secs(20)).await;
    let err = p.send("t", Some(0), Record::from_value("a")).await.expect("queue").await.expect_err("fenced");
    assert_eq!(err.code(), Some(ErrorCode::Fenced));
    assert!(!err.is_definite(), "a may be in the log: {err}");
    let later = p.send("t", Some(0), Record::from_value("z")).await;
    assert!(later.is_err_and(|e| e.code() == Some(ErrorCode::Fenced)), "a fenced producer refuses new sends");
}
