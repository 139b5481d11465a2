//! The metrics and health endpoints of real nodes: request counters and latency rise with
//! traffic, replica gauges show the log, `promtool check metrics` finds nothing wrong, and a
//! leader kill shows as an election and as under-replication that clears once the node is back.

mod common;

use std::time::{Duration, Instant};

use cairn_client::{Record, RecordExt};
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::ProduceRequest;
use common::{http_get, metric_samples, metric_sum, wait_for_leaders, wait_for_topic, Cluster};

fn scrape(cluster: &Cluster, id: u64) -> String {
    let (status, body) = http_get(cluster.nodes[&id].metrics_addr, "/metrics");
    assert_eq!(status, 200, "node {id} /metrics: {body}");
    body
}

/// Sum of `name` (samples with the labels in `with`) over the nodes in `ids`.
fn cluster_sum(cluster: &Cluster, ids: &[u64], name: &str, with: &[(&str, &str)]) -> f64 {
    ids.iter().map(|id| metric_sum(&scrape(cluster, *id), name, with)).sum()
}

/// Polls until `check` holds (30 s at most): metrics move with the node's own loops.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_counters_replica_gauges_and_health_endpoints_are_served_and_pass_promtool() {
    let cluster = Cluster::start(3, "t:2");
    let client = cluster.client().await;
    wait_for_topic(&client, "t").await;
    wait_for_leaders(&client).await;
    let ids = [1, 2, 3];
    for id in ids {
        assert_eq!(http_get(cluster.nodes[&id].metrics_addr, "/health/live").0, 200);
        eventually(&format!("node {id} ready"), || http_get(cluster.nodes[&id].metrics_addr, "/health/ready").0 == 200);
    }

    let mut bytes = 0u64;
    for i in 0..20u32 {
        let records: Vec<Record> = (0..5).map(|j| Record::from_value(format!("event-{i}-{j}"))).collect();
        bytes += records.iter().map(|r| r.value.len() as u64).sum::<u64>();
        client.produce("t", i % 2, records).await.expect("produce");
    }
    // Sent raw: the client itself refuses a topic it has no metadata for.
    let mut raw = BrokerClient::connect(format!("http://{}", cluster.addr(1))).await.expect("connect");
    let unknown = ProduceRequest {
        topic: "no-such-topic".into(),
        records: vec![Record::from_value("x")],
        ..ProduceRequest::default()
    };
    assert!(raw.produce(unknown).await.is_err());
    let fetched = client.fetch("t", 0, 0, 1 << 20, 0).await.expect("fetch").records.len() as f64;
    assert!(fetched > 0.0);

    let ok = [("topic", "t"), ("code", "OK")];
    assert_eq!(cluster_sum(&cluster, &ids, "cairn_produce_requests_total", &ok), 20.0);
    assert_eq!(cluster_sum(&cluster, &ids, "cairn_produce_records_total", &[("topic", "t")]), 100.0);
    assert_eq!(cluster_sum(&cluster, &ids, "cairn_produce_bytes_total", &[("topic", "t")]), bytes as f64);
    assert!(cluster_sum(&cluster, &ids, "cairn_produce_latency_seconds_count", &[]) >= 20.0);
    assert!(
        cluster_sum(&cluster, &ids, "cairn_produce_requests_total", &[("topic", ""), ("code", "UNKNOWN_TOPIC")]) >= 1.0,
        "an unknown topic counts under an empty topic label with its error code"
    );
    assert!(cluster_sum(&cluster, &ids, "cairn_fetch_records_total", &[("topic", "t")]) >= fetched);
    assert!(cluster_sum(&cluster, &ids, "cairn_fsync_duration_seconds_count", &[]) > 0.0);
    let p0 = [("topic", "t"), ("partition", "0")];
    assert_eq!(cluster_sum(&cluster, &ids, "cairn_partition_leader", &p0), 1.0, "one leader");
    eventually("every replica of t/0 shows the high watermark 50", || {
        ids.iter().all(|id| metric_sum(&scrape(&cluster, *id), "cairn_partition_high_watermark", &p0) == 50.0)
    });
    let text = scrape(&cluster, 1);
    assert_eq!(metric_sum(&text, "cairn_limit", &[("limit", "record_bytes_max")]), 1_048_576.0);
    for present in
        ["process_cpu_seconds_total", "process_open_fds", "process_resident_memory_bytes", "cairn_disk_free_bytes"]
    {
        assert!(!metric_samples(&text, present).is_empty(), "{present} is exported");
    }
    let controller_leaders: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !metric_samples(&scrape(&cluster, *id), "cairn_cluster_partitions").is_empty())
        .collect();
    assert!(
        controller_leaders.len() <= 1,
        "cluster-wide gauges come from the controller leader only: {controller_leaders:?}"
    );

    // Prometheus's own linter on every node's output.
    match std::process::Command::new("promtool").arg("--version").output() {
        Ok(_) => {
            for id in ids {
                let mut child = std::process::Command::new("promtool")
                    .args(["check", "metrics"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("promtool");
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(scrape(&cluster, id).as_bytes()).expect("feed promtool");
                let out = child.wait_with_output().expect("promtool runs");
                let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(out.status.success() && said.trim().is_empty(), "promtool on node {id}: {said}");
            }
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("promtool is missing (scripts/ensure-deps.sh installs it)")
        }
        Err(_) => eprintln!("promtool not installed: skipping its check (CI runs it)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_kill_counts_an_election_and_under_replication_that_clears_when_the_node_returns() {
    let mut cluster = Cluster::start(3, "t:1");
    let client = cluster.client().await;
    wait_for_topic(&client, "t").await;
    wait_for_leaders(&client).await;
    client.produce("t", 0, vec![Record::from_value("before")]).await.expect("produce");
    eventually("no partition under-replicated at the start", || {
        cluster_sum(&cluster, &[1, 2, 3], "cairn_partitions_under_replicated", &[]) == 0.0
    });
    let leader = common::leader_of(&client, "t", 0).await;
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|n| *n != leader).collect();
    let elections_before = cluster_sum(&cluster, &survivors, "cairn_leader_elections_total", &[]);

    cluster.kill(leader);
    client.produce("t", 0, vec![Record::from_value("after")]).await.expect("produce after the kill");
    eventually("a survivor won an election", || {
        cluster_sum(&cluster, &survivors, "cairn_leader_elections_total", &[]) > elections_before
    });
    eventually("the new leader reports the partition under-replicated", || {
        cluster_sum(&cluster, &survivors, "cairn_partitions_under_replicated", &[]) >= 1.0
    });

    cluster.restart(leader);
    eventually("under-replication back to 0 once the node returned", || {
        cluster_sum(&cluster, &[1, 2, 3], "cairn_partitions_under_replicated", &[]) == 0.0
    });
}
