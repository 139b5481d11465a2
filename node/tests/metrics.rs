//! The metrics and health endpoints of real nodes: request counters and latency rise with
//! traffic, replica gauges show the log, `promtool check metrics` finds nothing wrong, and a
//! leader kill shows as an election and as under-replication that clears once the node is back.

mod common;

use std::time::{Duration, Instant};

use cairn_client::{Record, RecordExt};
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::{OffsetCommitPartition, ProduceRequest};
use common::{cli, http_get, metric_samples, metric_sum, try_http_get, wait_for_leaders, wait_for_topic, Cluster};

fn scrape(cluster: &Cluster, id: u64) -> String {
    let (status, body) = http_get(cluster.nodes[&id].metrics_addr, "/metrics");
    assert_eq!(status, 200, "node {id} /metrics: {body}");
    body
}

/// Sum of `name` (samples with the labels in `with`) over the nodes in `ids`.
fn cluster_sum(cluster: &Cluster, ids: &[u64], name: &str, with: &[(&str, &str)]) -> f64 {
    ids.iter().map(|id| metric_sum(&scrape(cluster, *id), name, with)).sum()
}

/// The samples of `name` whose labels include `with`.
fn metric_samples_with(text: &str, name: &str, with: &[(&str, &str)]) -> Vec<f64> {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .collect()
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
    for stage in ["queue", "raft", "apply"] {
        let n = cluster_sum(&cluster, &ids, "cairn_produce_stage_seconds_count", &[("stage", stage)]);
        assert!(n >= 1.0, "produce stage {stage} measured ({n})");
    }
    let p0 = [("topic", "t"), ("partition", "0")];
    // Scrapes of three nodes one after the other: a leader change in between reads 0 or 2.
    eventually("exactly one node leads t/0 and reports its proposals in flight", || {
        let texts: Vec<String> = ids.iter().map(|id| scrape(&cluster, *id)).collect();
        let leaders: f64 = texts.iter().map(|t| metric_sum(t, "cairn_partition_leader", &p0)).sum();
        let in_flight = texts
            .iter()
            .filter(|t| !metric_samples_with(t, "cairn_partition_proposals_in_flight", &p0).is_empty())
            .count();
        leaders == 1.0 && in_flight == 1
    });
    eventually("every replica of t/0 shows the high watermark 50", || {
        ids.iter().all(|id| metric_sum(&scrape(&cluster, *id), "cairn_partition_high_watermark", &p0) == 50.0)
    });
    // A group's lag comes from its coordinator alone: one node exports it.
    let committed = OffsetCommitPartition { topic: "t".into(), partition: 0, offset: 20, ..Default::default() };
    client.alter_offsets("billing", vec![committed]).await.expect("commit an offset for a group");
    let lag = [("group", "billing"), ("topic", "t"), ("partition", "0")];
    eventually("the coordinator exports the group's lag (50 - 20) and committed offset", || {
        let texts: Vec<String> = ids.iter().map(|id| scrape(&cluster, *id)).collect();
        let exporting = texts.iter().filter(|t| !metric_samples(t, "cairn_group_lag").is_empty()).count();
        let sum = |name: &str| texts.iter().map(|t| metric_sum(t, name, &lag)).sum::<f64>();
        exporting == 1 && sum("cairn_group_lag") == 30.0 && sum("cairn_group_committed_offset") == 20.0
    });
    // Every metric the shipped dashboard queries is one the nodes export.
    let all: String = ids.iter().map(|id| scrape(&cluster, *id)).collect();
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from);
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("../deploy/grafana/cairn.json")).expect("dashboard"))
            .expect("dashboard JSON");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if name.starts_with("cairn_") || name.starts_with("process_") {
                    queried += 1;
                    assert!(
                        !metric_samples(&all, name).is_empty(),
                        "dashboard panel {:?} queries {name}, which no node exports",
                        panel["title"]
                    );
                }
            }
        }
    }
    assert!(queried >= 10, "the dashboard queries the cluster's metrics ({queried})");
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
    let brokers: Vec<String> = survivors.iter().map(|id| cluster.addr(*id)).collect();
    let (code, out, err) = cli(&brokers, &["cluster", "health"], None);
    assert_eq!(code, 1, "`cluster health` fails while a node is down: {out}{err}");
    assert!(out.contains("healthy: no") && out.contains("nodes down: 1"), "{out}");

    cluster.restart(leader);
    eventually("under-replication back to 0 once the node returned", || {
        cluster_sum(&cluster, &[1, 2, 3], "cairn_partitions_under_replicated", &[]) == 0.0
    });
    let brokers = cluster.brokers();
    eventually("`cluster health` passes again", || cli(&brokers, &["cluster", "health"], None).0 == 0);
    let (_, out, _) = cli(&brokers, &["cluster", "health"], None);
    assert!(out.contains("healthy: yes") && out.contains("disk free: node 1 ") && !out.contains("unknown"), "{out}");
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query with one result, from the Prometheus server at `addr`.
fn query(addr: std::net::SocketAddr, promql: &str) -> Option<f64> {
    let (status, body) = try_http_get(addr, &format!("/api/v1/query?query={}", encode(promql))).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A Prometheus server, killed when dropped.
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scraping_the_cluster_sees_produce_counters_rise_and_a_high_watermark() {
    if std::process::Command::new("prometheus").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "prometheus is missing (scripts/ensure-deps.sh installs it)");
        eprintln!("prometheus not installed: skipping (CI runs it)");
        return;
    }
    let cluster = Cluster::start(3, "t:1");
    let client = cluster.client().await;
    wait_for_topic(&client, "t").await;
    wait_for_leaders(&client).await;
    for i in 0..10 {
        client.produce("t", 0, vec![Record::from_value(format!("first-{i}"))]).await.expect("produce");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = cluster.nodes.values().map(|n| format!("'{}'", n.metrics_addr)).collect();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("write prometheus.yml");
    // Prometheus cannot adopt a socket: take a free port and hand it over (a tiny window).
    let web = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _server = Prometheus(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );

    let produced = r#"sum(cairn_produce_requests_total{topic="t",code="OK"})"#;
    let mut first = 0.0;
    eventually("Prometheus scraped the produce counters", || {
        first = query(web, produced).unwrap_or(0.0);
        first >= 10.0
    });
    for i in 0..10 {
        client.produce("t", 0, vec![Record::from_value(format!("second-{i}"))]).await.expect("produce");
    }
    eventually("the produce counters rose in Prometheus", || query(web, produced).unwrap_or(0.0) >= first + 10.0);
    eventually("Prometheus shows partition t/0's high watermark at 20", || {
        query(web, r#"max(cairn_partition_high_watermark{topic="t",partition="0"})"#) == Some(20.0)
    });
    // `up` is per scrape: a scrape slower than its 1 s timeout on a loaded machine reads 0 once.
    eventually("every node scraped", || query(web, r#"count(up{job="cairn"} == 1)"#) == Some(3.0));
}
