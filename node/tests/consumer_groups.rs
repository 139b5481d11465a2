//! The group consumer against real nodes: a member joining a running group takes only the
//! partitions that move (the others never stop), a static member restarted within its session
//! gets its partitions back without a rebalance, and commits acknowledged while the
//! coordinator's node is killed are not lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::consumer::{Commits, Consumer, ConsumerConfig, RebalanceListener, Subscription, TopicPartition};
use cairn_client::{Client, OffsetCommitPartition, Record, RecordExt};
use common::{wait_for_topic, Cluster};

/// Records every revocation and assignment a consumer sees.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(char, TopicPartition)>>>);

impl RebalanceListener for Log {
    fn on_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(p.iter().map(|tp| ('+', tp.clone())));
    }

    fn on_revoked(&mut self, p: &[TopicPartition], _: &mut Commits) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(p.iter().map(|tp| ('-', tp.clone())));
    }

    fn on_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(p.iter().map(|tp| ('!', tp.clone())));
    }
}

impl Log {
    fn events(&self) -> Vec<(char, TopicPartition)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn cfg(group: &str, instance: Option<&str>) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(group);
    c.instance_id = instance.map(String::from);
    c.auto_commit_interval = Duration::from_millis(200);
    c.session_timeout = Duration::from_secs(6);
    c
}

async fn consumer(client: &Arc<Client>, group: &str, instance: Option<&str>) -> (Consumer, Log) {
    let mut c = Consumer::subscribe(client.clone(), cfg(group, instance), Subscription::Topics(vec!["t".into()]))
        .await
        .expect("subscribe");
    let log = Log::default();
    c.set_listener(log.clone());
    (c, log)
}

/// Polls `c` until `done` says so (or 30 s), collecting (partition, offset).
async fn poll_until(c: &mut Consumer, seen: &mut Vec<(u32, u64)>, done: impl Fn(&Consumer, &[(u32, u64)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(c, seen) {
        assert!(
            Instant::now() < deadline,
            "condition not reached; seen {} records, owns {:?}",
            seen.len(),
            c.assignment()
        );
        for r in c.poll(Duration::from_millis(100)).await.expect("poll") {
            seen.push((r.partition, r.offset));
        }
    }
}

async fn produce_round(client: &Client, round: u64) {
    for p in 0..6 {
        client.produce("t", p, vec![Record::from_value(format!("r{round}"))]).await.expect("produce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_takes_only_the_partitions_that_move_and_nothing_is_skipped() {
    let cluster = Cluster::start(3, "t:6");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    produce_round(&client, 0).await;
    let (mut a, a_log) = consumer(&client, "g", None).await;
    let mut a_seen = Vec::new();
    poll_until(&mut a, &mut a_seen, |c, s| c.assignment().len() == 6 && s.len() >= 6).await;

    let (mut b, b_log) = consumer(&client, "g", None).await;
    let mut b_seen = Vec::new();
    // Both poll (a revokes in its poll, b gets them in its poll) while records keep coming.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 1;
    while a.assignment().len() + b.assignment().len() != 6 || b.assignment().len() != 3 {
        assert!(Instant::now() < deadline, "no balanced split: a {:?} b {:?}", a.assignment(), b.assignment());
        produce_round(&client, round).await;
        round += 1;
        for r in a.poll(Duration::from_millis(50)).await.expect("poll a") {
            a_seen.push((r.partition, r.offset));
        }
        for r in b.poll(Duration::from_millis(50)).await.expect("poll b") {
            b_seen.push((r.partition, r.offset));
        }
    }
    // a gave up exactly what b got, and nothing else: the partitions a kept never stopped.
    let revoked: BTreeSet<u32> = a_log.events().iter().filter(|(k, _)| *k == '-').map(|(_, tp)| tp.partition).collect();
    let b_got: BTreeSet<u32> = b.assignment().iter().map(|tp| tp.partition).collect();
    assert_eq!(revoked, b_got, "a revoked more (or other) partitions than moved to b");
    assert!(a_log.events().iter().all(|(k, _)| *k != '!'), "nothing was lost");
    let kept: BTreeSet<u32> = a.assignment().iter().map(|tp| tp.partition).collect();
    assert_eq!(kept.len(), 3);
    assert!(kept.is_disjoint(&b_got));
    assert_eq!(b_log.events().iter().filter(|(k, _)| *k == '+').count(), 3);

    // Every record up to the end is delivered to someone, none skipped.
    let ends: BTreeMap<u32, u64> = {
        let mut m = BTreeMap::new();
        for p in 0..6 {
            m.insert(p, client.list_offsets("t", p, cairn_client::OffsetSpec::Latest).await.expect("end").offset);
        }
        m
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all: BTreeSet<(u32, u64)> = a_seen.iter().chain(&b_seen).copied().collect();
        if ends.iter().all(|(p, e)| (0..*e).all(|o| all.contains(&(*p, o)))) {
            break;
        }
        assert!(Instant::now() < deadline, "records were skipped");
        for r in a.poll(Duration::from_millis(50)).await.expect("poll a") {
            a_seen.push((r.partition, r.offset));
        }
        for r in b.poll(Duration::from_millis(50)).await.expect("poll b") {
            b_seen.push((r.partition, r.offset));
        }
    }
    a.close().await.expect("close a");
    b.close().await.expect("close b");
    let d = client.describe_group("g").await.expect("describe");
    assert_eq!(d.state, "EMPTY", "both left: {d:?}");
    assert!(d.partitions.iter().all(|p| p.has_committed && p.lag == 0), "everything committed: {:?}", d.partitions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarted_within_its_session_gets_its_partitions_back_without_a_rebalance() {
    let cluster = Cluster::start(3, "t:6");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let (mut a, _) = consumer(&client, "s", Some("instance-a")).await;
    let (mut b, b_log) = consumer(&client, "s", Some("instance-b")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.assignment().len() != 3 || b.assignment().len() != 3 {
        assert!(Instant::now() < deadline, "no split: a {:?} b {:?}", a.assignment(), b.assignment());
        a.poll(Duration::from_millis(50)).await.expect("poll a");
        b.poll(Duration::from_millis(50)).await.expect("poll b");
    }
    let before = client.describe_group("s").await.expect("describe");
    let a_had: BTreeSet<TopicPartition> = a.assignment().into_iter().collect();
    let b_events = b_log.events().len();
    // Instance a crashes (no leave) and comes back within its session timeout.
    drop(a);
    let (mut a2, a2_log) = consumer(&client, "s", Some("instance-a")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while a2.assignment().len() != 3 {
        assert!(Instant::now() < deadline, "the restarted instance did not get its partitions back");
        a2.poll(Duration::from_millis(50)).await.expect("poll a2");
        b.poll(Duration::from_millis(50)).await.expect("poll b");
    }
    let a2_has: BTreeSet<TopicPartition> = a2.assignment().into_iter().collect();
    assert_eq!(a2_has, a_had, "the same partitions");
    let after = client.describe_group("s").await.expect("describe");
    assert_eq!(after.group_epoch, before.group_epoch, "no rebalance: the group epoch did not move");
    assert_eq!(b_log.events().len(), b_events, "b saw no revocation or assignment");
    assert_eq!(a2_log.events().iter().filter(|(k, _)| *k == '+').count(), 3);
    a2.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_acknowledged_while_the_coordinator_is_killed_are_not_lost() {
    let mut cluster = Cluster::start(3, "t:2");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    for _ in 0..50 {
        client.produce("t", 0, vec![Record::from_value("x")]).await.expect("produce");
    }
    let coordinator = loop {
        if let Ok(c) = client.find_coordinator("k").await {
            if c.node_id != 0 {
                break c.node_id;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The coordinator is up (a first commit went through); then a committer advances the offset
    // one by one while the coordinator's node is killed.
    let first = OffsetCommitPartition { topic: "t".into(), partition: 0, offset: 1, ..Default::default() };
    client.commit_offsets("k", "", -1, vec![first]).await.expect("first commit");
    let acked = Arc::new(Mutex::new(1u64));
    let committer = {
        let (client, acked) = (client.clone(), acked.clone());
        tokio::spawn(async move {
            for o in 2..=50u64 {
                let c = OffsetCommitPartition { topic: "t".into(), partition: 0, offset: o, ..Default::default() };
                if client.commit_offsets("k", "", -1, vec![c]).await.is_ok() {
                    *acked.lock().unwrap_or_else(|e| e.into_inner()) = o;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_kill = *acked.lock().unwrap_or_else(|e| e.into_inner());
    cluster.kill(coordinator);
    committer.await.expect("committer");
    let last = *acked.lock().unwrap_or_else(|e| e.into_inner());
    assert!(at_kill > 0 && last > at_kill, "commits before ({at_kill}) and after ({last}) the kill");
    let survivor = (1..=3).find(|n| *n != coordinator).expect("another node");
    let other = common::connect(vec![cluster.addr(survivor)]).await;
    let got = other.committed_offsets("k", &[]).await.expect("fetch");
    let committed = got.iter().find(|o| o.partition == 0).map(|o| o.offset).expect("an offset");
    assert!(committed >= last, "acknowledged commit {last} lost: the coordinator holds {committed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_subscription_picks_up_new_matching_topics_without_a_restart() {
    let cluster = Cluster::start(3, "orders-eu:2,payments:2");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "orders-eu").await;
    wait_for_topic(&client, "payments").await;
    let mut c = Consumer::subscribe(client.clone(), cfg("p", None), Subscription::Pattern("orders-.*".into()))
        .await
        .expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "the matching topic was not assigned: {:?}", c.assignment());
        c.poll(Duration::from_millis(100)).await.expect("poll");
    }
    assert!(c.assignment().iter().all(|tp| tp.topic == "orders-eu"), "only matching topics: {:?}", c.assignment());
    client.create_topic("orders-us", 3, 3, None).await.expect("create");
    wait_for_topic(&client, "orders-us").await;
    client.produce("orders-us", 1, vec![Record::from_value("first")]).await.expect("produce");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline, "the new topic was never consumed: {:?}", c.assignment());
        got = c.poll(Duration::from_millis(100)).await.expect("poll");
    }
    assert_eq!(c.assignment().len(), 5);
    assert_eq!((got[0].topic.as_str(), &got[0].value[..]), ("orders-us", &b"first"[..]));
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_offset_out_of_range_follows_the_reset_policy_and_none_is_an_error() {
    let cluster = Cluster::start(3, "t:1");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    for i in 0..5 {
        client.produce("t", 0, vec![Record::from_value(format!("r{i}"))]).await.expect("produce");
    }
    // A commit past the end (a client outside the group may commit any offset).
    let past = OffsetCommitPartition { topic: "t".into(), partition: 0, offset: 1_000, ..Default::default() };
    client.commit_offsets("oor", "", -1, vec![past.clone()]).await.expect("commit");
    let mut c = Consumer::subscribe(client.clone(), cfg("oor", None), Subscription::Topics(vec!["t".into()]))
        .await
        .expect("subscribe");
    let mut seen = Vec::new();
    poll_until(&mut c, &mut seen, |_, s| s.len() >= 5).await;
    assert_eq!(
        seen.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "reset to earliest, nothing skipped"
    );
    c.close().await.expect("close");

    // With the policy `none`, an out-of-range committed offset is an error, not a silent skip.
    client.commit_offsets("oor-none", "", -1, vec![past]).await.expect("commit");
    let mut strict = cfg("oor-none", None);
    strict.auto_offset_reset = cairn_client::consumer::OffsetReset::None;
    let mut c =
        Consumer::subscribe(client.clone(), strict, Subscription::Topics(vec!["t".into()])).await.expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.poll(Duration::from_millis(100)).await {
            Err(e) => {
                assert_eq!(e.code(), Some(cairn_client::ErrorCode::OffsetOutOfRange), "{e}");
                break;
            }
            Ok(r) => assert!(r.is_empty(), "records delivered from an offset out of range: {r:?}"),
        }
        assert!(Instant::now() < deadline, "no error with auto_offset_reset none");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_pushes_records_within_the_granted_window_and_ends_with_a_definite_error() {
    let cluster = Cluster::start(3, "t:1");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    let kib = "x".repeat(1024);
    for i in 0..20 {
        client.produce("t", 0, vec![Record::from_value(format!("{i:04}{kib}"))]).await.expect("produce");
    }
    // A 3 KiB window and no credit: the replica stops after about 3 KiB (plus the record that
    // crosses the window), however much more there is.
    let mut s = client.subscribe("t", 0, 0, 3 * 1024).await.expect("subscribe");
    let mut got: Vec<u64> = Vec::new();
    while got.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(10), s.recv())
            .await
            .expect("a batch")
            .expect("open")
            .expect("records");
        got.extend(batch.iter().map(|r| r.offset));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), s.recv()).await.is_err(),
        "the server sent beyond the window without credit (had {got:?})"
    );
    assert!(got.len() <= 4, "{got:?}");
    // Credit lets the rest through, in order, and new records arrive as they are written.
    s.grant(1 << 20).await;
    while got.len() < 20 {
        let batch = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("a batch")
            .expect("open")
            .expect("records");
        got.extend(batch.iter().map(|r| r.offset));
    }
    client.produce("t", 0, vec![Record::from_value("live")]).await.expect("produce");
    let live =
        tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("pushed").expect("open").expect("records");
    assert_eq!(live[0].offset, 20);
    assert_eq!(got, (0..20).collect::<Vec<u64>>());
    // The topic goes: the stream ends with a definite error, not silence.
    client.delete_topic("t").await.expect("delete");
    let end = tokio::time::timeout(Duration::from_secs(15), s.next()).await.expect("the stream ended");
    let e = end.expect("an error message").expect_err("an error");
    assert!(e.is_definite(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_as_a_stream_yields_every_record_in_offset_order() {
    use futures::StreamExt;
    let cluster = Cluster::start(3, "t:1");
    let client = Arc::new(cluster.client().await);
    wait_for_topic(&client, "t").await;
    for i in 0..30 {
        client.produce("t", 0, vec![Record::from_value(format!("r{i}"))]).await.expect("produce");
    }
    let c = Consumer::subscribe(client.clone(), cfg("st", None), Subscription::Topics(vec!["t".into()]))
        .await
        .expect("subscribe");
    let got: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(30),
        c.into_stream().take(30).map(|r| r.expect("record").offset).collect::<Vec<_>>(),
    )
    .await
    .expect("30 records within 30 s");
    assert_eq!(got, (0..30).collect::<Vec<u64>>());
}
