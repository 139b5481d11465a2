//! `cairn-limits`: tries to grow a node's state from a client and prints that it stays flat.
//!
//! ```text
//!  3 nodes (ports 7831-7833, small [limits]) ─► topic "abuse"
//!  for --seconds, all at once:  random producer ids and epochs (raw Produce)
//!                               a new issued producer per batch (InitProducer + seq 0)
//!                               a new InitProducer name per call
//!                               one ProduceStream that writes and never reads its answers
//!  every 5 s: RSS per node, producers per partition (max over replicas), `sm` CF bytes per node
//! ```
//! `bench/limits.sh` builds and runs it. Exit code 1 if a partition ever holds more producers
//! than its limit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig, Record, RecordExt};
use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::DescribeGroupsRequest;
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::{ErrorDetail, InitProducerRequest, ProduceRequest, ProduceStreamRequest};
use clap::Parser;
use prost::Message;
use rand::{Rng, SeedableRng};

const PORTS: [u16; 3] = [7831, 7832, 7833];

#[derive(Parser, Debug)]
#[command(name = "cairn-limits", about = "Client-growable server state stays within [limits]")]
struct Args {
    #[arg(long)]
    cairn_node: PathBuf,
    #[arg(long, default_value = "/var/tmp/cairn-limits")]
    dir: PathBuf,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// producers_per_partition_max of the nodes.
    #[arg(long, default_value_t = 200)]
    producers_max: u32,
    /// named_producers_max of the nodes.
    #[arg(long, default_value_t = 200)]
    names_max: u64,
}

#[derive(Default)]
struct Counts {
    random_refused: AtomicU64,
    random_accepted: AtomicU64,
    issued_appended: AtomicU64,
    names_ok: AtomicU64,
    names_refused: AtomicU64,
    stream_sent: AtomicU64,
}

fn brokers() -> Vec<String> {
    PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let config = args.dir.join("limits.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nproducers_per_partition_max = {}\nnamed_producers_max = {}\n",
            args.producers_max, args.names_max
        ),
    )?;
    let cluster: Vec<String> = brokers().iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut children = Vec::new();
    for i in 1..=3 {
        let log = std::fs::File::create(args.dir.join(format!("node{i}.log")))?;
        children.push(
            Command::new(&args.cairn_node)
                .args(["--node-id", &i.to_string(), "--initial-cluster", &cluster.join(","), "--topic", "abuse:3"])
                .arg("--data-dir")
                .arg(args.dir.join(format!("node{i}")))
                .arg("--config")
                .arg(&config)
                .env("CAIRN_LOG_LEVEL", "warn")
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let result = load(&args, &pids).await;
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let over = result?;
    if over {
        eprintln!("cairn-limits: a partition held more producers than its limit");
        std::process::exit(1);
    }
    Ok(())
}

async fn load(args: &Args, pids: &[u32]) -> anyhow::Result<bool> {
    let mut cfg = ClientConfig::new(brokers());
    cfg.retry_deadline = Duration::from_secs(60);
    let client = Arc::new(Client::connect(cfg).await?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.partition_count("abuse").await.is_err()
        || client.list_offsets("abuse", 2, cairn_client::OffsetSpec::Latest).await.is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "topic abuse did not come up");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = client.refresh_metadata().await;
    }
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = vec![
        tokio::spawn(random_ids(client.clone(), counts.clone(), stop.clone())),
        tokio::spawn(issued_ids(client.clone(), counts.clone(), stop.clone())),
        tokio::spawn(names(client.clone(), counts.clone(), stop.clone())),
        tokio::spawn(write_only_stream(client.clone(), counts.clone(), stop.clone())),
    ];
    println!(
        "{:>5}  {:>26}  {:>19}  {:>28}  load so far",
        "t (s)", "RSS MiB (nodes 1,2,3)", "producers max/part", "sm CF KiB (nodes 1,2,3)"
    );
    let start = Instant::now();
    let mut over = false;
    while start.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss: Vec<String> = pids.iter().map(|p| format!("{:.0}", rss_mib(*p))).collect();
        let (producers, sm) = describe(&client).await;
        over |= producers > args.producers_max as usize;
        println!(
            "{:>5}  {:>26}  {:>19}  {:>28}  random ids refused {} (accepted {}), new issued producers {}, names ok {} refused {}, stream writes {}",
            start.elapsed().as_secs(),
            rss.join(", "),
            producers,
            sm.iter().map(|b| format!("{}", b / 1024)).collect::<Vec<_>>().join(", "),
            counts.random_refused.load(Ordering::Relaxed),
            counts.random_accepted.load(Ordering::Relaxed),
            counts.issued_appended.load(Ordering::Relaxed),
            counts.names_ok.load(Ordering::Relaxed),
            counts.names_refused.load(Ordering::Relaxed),
            counts.stream_sent.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.abort();
    }
    println!("limits: producers_per_partition_max {}, named_producers_max {}", args.producers_max, args.names_max);
    Ok(over)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The largest producer table of any replica, and each node's `sm` column family bytes.
async fn describe(client: &Client) -> (usize, Vec<u64>) {
    let mut most = 0usize;
    let mut sm = Vec::new();
    // Node-internal calls go to each node's peer listener (the client port + 1000).
    for port in PORTS.map(|p| p + 1000) {
        let Ok(mut c) = NodeInternalClient::connect(format!("http://127.0.0.1:{port}")).await else {
            sm.push(0);
            continue;
        };
        match c.describe_groups(DescribeGroupsRequest { group_ids: vec![] }).await {
            Ok(r) => {
                let r = r.into_inner();
                most = most.max(r.groups.iter().map(|g| g.producers as usize).max().unwrap_or(0));
                sm.push(r.column_family_bytes.get("sm").copied().unwrap_or(0));
            }
            Err(_) => sm.push(0),
        }
    }
    let _ = client;
    (most, sm)
}

async fn leader_broker(client: &Client, partition: u32) -> Option<BrokerClient<tonic::transport::Channel>> {
    let d = client.describe_cluster().await.ok()?;
    let p = d.topics.iter().find(|t| t.name == "abuse")?.partitions.get(partition as usize)?.clone();
    BrokerClient::connect(format!("http://{}", p.leader_address)).await.ok()
}

fn request(pid: u64, epoch: u32, seq: u32, partition: u32) -> ProduceRequest {
    ProduceRequest {
        topic: "abuse".into(),
        partition,
        records: vec![Record::from_value("x")],
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        topic_id: 0,
        ..ProduceRequest::default()
    }
}

/// Raw produces with random producer ids and epochs.
async fn random_ids(client: Arc<Client>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let brokers: Vec<_> = {
        let mut v = Vec::new();
        for p in 0..3 {
            v.extend(leader_broker(&client, p).await.map(|b| (p, b)));
        }
        v
    };
    let mut rng = rand::rngs::StdRng::from_os_rng();
    while !stop.load(Ordering::Relaxed) {
        for (p, b) in &brokers {
            let req = request(rng.random::<u64>() | 1, rng.random(), 0, *p);
            match b.clone().produce(req).await {
                Ok(_) => counts.random_accepted.fetch_add(1, Ordering::Relaxed),
                Err(_) => counts.random_refused.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

/// A new issued anonymous producer for every batch: each partition's table reaches its cap.
async fn issued_ids(client: Arc<Client>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut p = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Ok((pid, epoch)) = client.init_producer("").await else { continue };
        p = (p + 1) % 3;
        let Some(mut b) = leader_broker(&client, p).await else { continue };
        if b.produce(request(pid, epoch, 0, p)).await.is_ok() {
            counts.issued_appended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A new InitProducer name per call: the registry stops at its cap.
async fn names(client: Arc<Client>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    let Ok(d) = client.describe_cluster().await else { return };
    let Some(addr) = d.nodes.iter().find(|n| n.node_id == d.controller_leader_id).map(|n| n.address.clone()) else {
        return;
    };
    let Ok(mut b) = BrokerClient::connect(format!("http://{addr}")).await else { return };
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let req = InitProducerRequest { name: format!("abuser-{i}"), ..Default::default() };
        match b.init_producer(req).await {
            Ok(_) => counts.names_ok.fetch_add(1, Ordering::Relaxed),
            Err(s) => {
                let code = ErrorDetail::decode(s.details()).map(|d| d.code()).ok();
                if code != Some(cairn_proto::v1::ErrorCode::LimitExceeded) {
                    eprintln!("unexpected InitProducer refusal: {s}");
                }
                counts.names_refused.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// One ProduceStream that writes batches and never reads an answer.
async fn write_only_stream(client: Arc<Client>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let Some(mut b) = leader_broker(&client, 0).await else { return };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // The response stream is opened and then left unread.
    let Ok(_unread) = b.produce_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await else { return };
    let mut cid = 0u64;
    while !stop.load(Ordering::Relaxed) {
        cid += 1;
        let msg = ProduceStreamRequest { correlation_id: cid, request: Some(request(0, 0, 0, 0)) };
        match tokio::time::timeout(Duration::from_secs(1), tx.send(msg)).await {
            Ok(Ok(())) => {
                counts.stream_sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => return,
            Err(_) => {} // back-pressure: the server stopped reading
        }
    }
}
