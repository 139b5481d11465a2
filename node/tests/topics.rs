//! Dynamic topics through the controller: admin API and CLI, placement and rebalancing,
//! failures of nodes and of the controller leader, full restarts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::partitioner::partition_for_key;
use cairn_client::{ErrorCode, Record, RecordExt, RetentionConfig};
use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::DescribeGroupsRequest;
use common::{cli, connect, read_from_node, wait_for_topic, Cluster};

/// Group ids a node still hosts among `ids`.
async fn hosted(addr: &str, ids: &[u64]) -> Vec<u64> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
    let resp = NodeInternalClient::new(ch)
        .describe_groups(DescribeGroupsRequest { group_ids: ids.to_vec() })
        .await
        .expect("describe groups");
    resp.into_inner().groups.into_iter().map(|g| g.group_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_delete_and_recreate_a_topic_without_old_data() {
    let cluster = Cluster::start(3, "");
    let client = cluster.client().await;

    let retention = Some(RetentionConfig { retention_ms: 3_600_000, retention_bytes: 0 });
    let t = client.create_topic("orders", 3, 3, retention).await.expect("create");
    assert_eq!((t.partitions, t.replication_factor), (3, 3));
    wait_for_topic(&client, "orders").await;
    for p in 0..3 {
        client.produce("orders", p, vec![Record::from_value(format!("old-{p}"))]).await.expect("produce");
    }
    let d = client.describe_topic("orders").await.expect("describe");
    assert_eq!(d.topic.as_ref().and_then(|t| t.retention).map(|r| r.retention_ms), Some(3_600_000), "retention stored");
    let old_groups: Vec<u64> = d.partitions.iter().map(|p| p.group_id).collect();
    for p in &d.partitions {
        assert_ne!(p.leader_node_id, 0);
        assert_eq!(p.replica_node_ids.len(), 3);
        assert_eq!(p.high_watermark, 1);
    }
    assert!(client.list_topics().await.expect("list").iter().any(|t| t.name == "orders"));

    // Bad requests: clear errors, nothing created.
    let e = client.create_topic("orders", 3, 3, None).await.expect_err("duplicate");
    assert_eq!(e.code(), Some(ErrorCode::TopicAlreadyExists), "{e}");
    let e = client.create_topic("bad name", 1, 1, None).await.expect_err("bad name");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let e = client.create_topic("zero", 0, 1, None).await.expect_err("zero partitions");
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    let e = client.create_topic("wide", 1, 4, None).await.expect_err("rf above node count");
    assert_eq!(e.code(), Some(ErrorCode::InvalidReplicationFactor), "{e}");
    let names: BTreeSet<String> = client.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, BTreeSet::from(["orders".to_string()]));

    client.delete_topic("orders").await.expect("delete");
    let e = client.delete_topic("orders").await.expect_err("delete twice");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    // Every node drops the replicas (and their data).
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in cluster.nodes.values().map(|n| n.peer_addr.to_string()) {
        while !hosted(&addr, &old_groups).await.is_empty() {
            assert!(Instant::now() < deadline, "{addr} still hosts deleted groups");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let e = client.produce("orders", 0, vec![Record::from_value("x")]).await.expect_err("deleted topic");
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");

    // Recreated: new groups, no old data comes back.
    client.create_topic("orders", 3, 3, None).await.expect("recreate");
    wait_for_topic(&client, "orders").await;
    let d = client.describe_topic("orders").await.expect("describe");
    assert!(d.partitions.iter().all(|p| !old_groups.contains(&p.group_id) && p.high_watermark == 0));
    let ack = client.produce("orders", 0, vec![Record::from_value("new")]).await.expect("produce");
    assert_eq!(ack.base_offset, 0);
    let recs = read_from_node(&client, &cluster.addr(1), "orders", 0, 1).await;
    assert_eq!(&recs[0].value[..], b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_keep_per_key_order_on_one_partition() {
    let cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    client.create_topic("keyed", 6, 3, None).await.expect("create");
    wait_for_topic(&client, "keyed").await;
    let keys: Vec<String> = (0..12).map(|k| format!("customer-{k}")).collect();
    for seq in 0..20 {
        for k in &keys {
            let p = partition_for_key(k.as_bytes(), 6);
            client.produce("keyed", p, vec![Record::keyed(k.clone(), format!("{seq}"))]).await.expect("produce");
        }
    }
    let mut seen: BTreeMap<String, (u32, Vec<u32>)> = BTreeMap::new();
    for p in 0..6 {
        let hw = client.list_offsets("keyed", p, cairn_client::OffsetSpec::Latest).await.expect("latest").offset;
        for r in read_from_node(&client, &cluster.addr(2), "keyed", p, hw).await {
            let key = String::from_utf8_lossy(&r.key).into_owned();
            let seq: u32 = String::from_utf8_lossy(&r.value).parse().expect("seq");
            let entry = seen.entry(key.clone()).or_insert((p, Vec::new()));
            assert_eq!(entry.0, p, "key {key} appeared on two partitions");
            entry.1.push(seq);
        }
    }
    assert_eq!(seen.len(), keys.len());
    for (k, (_, seqs)) in seen {
        assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "key {k} out of order");
    }
}

/// Partitions of topic `spread` each node leads (internal topics lead elsewhere too).
fn leads(d: &cairn_client::DescribeClusterResponse) -> BTreeMap<u64, u32> {
    let mut out: BTreeMap<u64, u32> = d.nodes.iter().map(|n| (n.node_id, 0)).collect();
    for p in d.topics.iter().filter(|t| t.name == "spread").flat_map(|t| &t.partitions) {
        if let Some(c) = out.get_mut(&p.leader_node_id) {
            *c += 1;
        }
    }
    out
}

/// Waits until every node leads 10 ± 2 of the 30 partitions; returns the counts.
async fn settle(client: &cairn_client::Client) -> BTreeMap<u64, u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = leads(&client.describe_cluster().await.expect("describe"));
        if l.len() == 3 && l.values().all(|c| (8..=12).contains(c)) {
            return l;
        }
        assert!(Instant::now() < deadline, "leadership never balanced: {l:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_spreads_evenly_and_returns_after_a_node_comes_back() {
    let mut cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    client.create_topic("spread", 30, 3, None).await.expect("create");
    wait_for_topic(&client, "spread").await;
    settle(&client).await;

    cluster.kill(1);
    // Node 1's partitions move to the survivors.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = client.describe_cluster().await.expect("describe");
        let topic = d.topics.iter().find(|t| t.name == "spread").expect("topic");
        if topic.partitions.iter().all(|p| p.leader_node_id == 2 || p.leader_node_id == 3) {
            break;
        }
        assert!(Instant::now() < deadline, "node 1's partitions did not fail over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.restart(1);
    let l = settle(&client).await;
    assert!(l[&1] >= 8, "node 1 took its share back: {l:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_leaves_all_100_partitions_writable_and_readable() {
    let mut cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    client.create_topic("hundred", 100, 3, None).await.expect("create");
    wait_for_topic(&client, "hundred").await;
    for p in 0..100 {
        client.produce("hundred", p, vec![Record::from_value("before")]).await.expect("produce before");
    }
    cluster.kill(2);
    let start = Instant::now();
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for p in 0..100u32 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let ack = c.produce("hundred", p, vec![Record::from_value("after")]).await.expect("produce after kill");
            let r = c.fetch("hundred", p, 0, 0, 0).await.expect("fetch after kill");
            assert_eq!(&r.records[0].value[..], b"before");
            ack.base_offset
        }));
    }
    for t in tasks {
        assert!(t.await.expect("join") >= 1);
    }
    let took = start.elapsed();
    eprintln!("all 100 partitions writable and readable {took:?} after the kill");
    assert!(took < Duration::from_secs(20), "recovery took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_leader_killed_during_topic_creation_leaves_no_half_created_topic() {
    let mut cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    let d = client.describe_cluster().await.expect("describe");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut controller = d.controller_leader_id;
    while controller == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
        controller = client.describe_cluster().await.expect("describe").controller_leader_id;
    }
    let survivors: Vec<String> = (1..=3).filter(|n| *n != controller).map(|n| cluster.addr(n)).collect();
    let client = Arc::new(connect(survivors.clone()).await);
    let creator = {
        let c = client.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..12 {
                let name = format!("t{i}");
                outcomes.push((name.clone(), c.create_topic(&name, 8, 2, None).await.map(|t| t.partitions)));
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(controller);
    let outcomes = creator.await.expect("join");
    let listed: BTreeMap<String, u32> =
        client.list_topics().await.expect("list").into_iter().map(|t| (t.name, t.partitions)).collect();
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(n) => assert_eq!(listed.get(name), Some(n), "{name} acknowledged but not listed"),
            // A failed creation may still have committed (unknown outcome), but never partially.
            Err(e) => assert!(listed.get(name).is_none_or(|n| *n == 8), "{name}: {e}"),
        }
    }
    // Every listed topic is whole: all partitions exist and get leaders. A partition created
    // just before the kill may have a replica on the killed node and (replication factor 2) no
    // majority without it, so the node comes back first.
    cluster.restart(controller);
    for name in listed.keys() {
        wait_for_topic(&client, name).await;
        let d = client.describe_topic(name).await.expect("describe");
        assert_eq!(d.partitions.len(), 8, "{name}");
    }
    assert!(
        outcomes.iter().filter(|(_, o)| o.is_ok()).count() >= 6,
        "creation carried on after failover: {outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_every_topic_and_record() {
    let mut cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    client.create_topic("a", 4, 3, None).await.expect("create a");
    client.create_topic("b", 2, 2, None).await.expect("create b");
    wait_for_topic(&client, "a").await;
    wait_for_topic(&client, "b").await;
    let mut acked = Vec::new();
    for i in 0..40u32 {
        let (t, p) = if i % 2 == 0 { ("a", i % 4) } else { ("b", i % 2) };
        let v = format!("{t}{i}");
        let ack = client.produce(t, p, vec![Record::from_value(v.clone())]).await.expect("produce");
        acked.push((t, p, ack.base_offset, v));
    }
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    let client = cluster.client().await;
    wait_for_topic(&client, "a").await;
    wait_for_topic(&client, "b").await;
    let names: BTreeSet<String> = client.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, BTreeSet::from(["a".to_string(), "b".to_string()]));
    for (t, p, offset, v) in acked {
        let r = client.fetch(t, p, offset, 0, 0).await.expect("fetch");
        assert_eq!(String::from_utf8_lossy(&r.records[0].value), v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_topics_and_moves_records() {
    let cluster = Cluster::start(3, "");
    let b = cluster.brokers();
    let (code, out, err) = cli(&b, &["--json", "topic", "create", "cli-t", "-p", "2", "-r", "3"], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["partitions"], 2);
    let (code, out, _) = cli(&b, &["topic", "list"], None);
    assert_eq!(code, 0);
    assert!(out.contains("cli-t"));
    let (code, _, err) = cli(&b, &["produce", "cli-t", "--key", "k"], Some("one\ntwo\nthree\n"));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&b, &["--json", "consume", "cli-t"], None);
    assert_eq!(code, 0, "{err}");
    let values: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["value"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(values, vec!["one", "two", "three"]);
    let (code, out, _) = cli(&b, &["topic", "describe", "cli-t"], None);
    assert_eq!(code, 0);
    assert!(out.contains("PARTITION"));
    let (code, _, err) = cli(&b, &["topic", "create", "cli-t", "-p", "1"], None);
    assert_ne!(code, 0);
    assert!(err.contains("TOPIC_ALREADY_EXISTS"), "{err}");
    let (code, out, err) = cli(&b, &["topic", "create", "cli-t", "-p", "1", "--if-not-exists"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already exists: 2 partitions"), "the existing topic is left as it is: {out}");
    let (code, out, _) = cli(&b, &["topic", "create", "--help"], None);
    assert_eq!(code, 0);
    assert!(!out.contains("[default: 0]"), "0 is not what a user would read as the default: {out}");
    let (code, _, _) = cli(&b, &["topic", "delete", "cli-t"], None);
    assert_eq!(code, 0);
    let (code, _, err) = cli(&b, &["consume", "cli-t"], None);
    assert_ne!(code, 0);
    assert!(err.contains("UNKNOWN_TOPIC"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_sent_to_a_node_that_is_not_the_controller_leader_are_forwarded() {
    use cairn_proto::v1::admin_client::AdminClient;
    use cairn_proto::v1::{CreatePartitionsRequest, CreateTopicRequest, DeleteTopicRequest};
    let cluster = Cluster::start(3, "");
    let client = cluster.client().await;
    let leader = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = client.describe_cluster().await.expect("describe");
            if d.controller_leader_id != 0 {
                break d.controller_leader_id;
            }
            assert!(Instant::now() < deadline, "no controller leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let other = (1..=3).find(|n| *n != leader).expect("a follower");
    // A plain gRPC client (not Cairn's, which finds the leader itself) talking to a follower.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(other)))
        .expect("endpoint")
        .connect_lazy();
    let mut admin = AdminClient::new(ch);
    let created = admin
        .create_topic(CreateTopicRequest { name: "fwd".into(), partitions: 2, ..Default::default() })
        .await
        .expect("a follower forwards CreateTopic to the controller leader");
    assert_eq!(created.into_inner().topic.map(|t| t.partitions), Some(2));
    let grown = admin
        .create_partitions(CreatePartitionsRequest { name: "fwd".into(), partitions: 3 })
        .await
        .expect("CreatePartitions forwarded");
    assert_eq!(grown.into_inner().topic.map(|t| t.partitions), Some(3));
    // The leader's refusals come back as they are.
    let e = admin
        .create_topic(CreateTopicRequest { name: "fwd".into(), partitions: 1, ..Default::default() })
        .await
        .expect_err("exists");
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    // The CLI given only that node.
    let (code, _, err) = cli(&[cluster.addr(other)], &["topic", "delete", "fwd"], None);
    assert_eq!(code, 0, "{err}");
    let e = admin.delete_topic(DeleteTopicRequest { name: "fwd".into() }).await.expect_err("deleted");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
}
