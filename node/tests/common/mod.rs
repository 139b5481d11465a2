//! Test harness: real `cairn-node` processes on ephemeral loopback ports with temp data dirs.
//!
//! Each node's listening sockets (client, metrics, peer) are bound here on port 0 and handed to
//! the child as fds 3, 4 and 5 (`--listen-fd 3`, ...), so no port is ever guessed. The harness's own copy is closed right after
//! the spawn, so a killed node's port refuses connections like a real dead host. A restart
//! binds the same port again.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig};
use command_fds::{CommandFdExt, FdMapping};
use tempfile::TempDir;

pub struct Node {
    pub id: u64,
    pub addr: SocketAddr,
    /// The node's peer listener (Raft transport, node-internal calls).
    pub peer_addr: SocketAddr,
    /// Where the node serves /metrics and /health/* (its own HTTP listener).
    pub metrics_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub topics: String,
    initial_cluster: String,
    extra_args: Vec<String>,
    /// Flags of single nodes, after `extra_args` (a certificate of its own, say).
    node_args: BTreeMap<u64, Vec<String>>,
    dir: TempDir,
}

/// The node binary under test: this build's, or `CAIRN_TEST_NODE_BIN` (to run a test against
/// another build, e.g. the commit before a fix).
pub fn node_binary() -> PathBuf {
    std::env::var_os("CAIRN_TEST_NODE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cairn-node")), PathBuf::from)
}

/// The `cairn` CLI built next to `cairn-node` by `cargo test --workspace`.
pub fn cli_binary() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_cairn-node")).with_file_name("cairn");
    assert!(p.exists(), "{} is missing: run the tests with `cargo test --workspace`", p.display());
    p
}

fn bind(addr: SocketAddr) -> TcpListener {
    // A just-killed node's port can be briefly busy (e.g. taken as an ephemeral source port).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

impl Cluster {
    /// Starts `n` nodes with bootstrap topics `topics` (`name:partitions,...`).
    pub fn start(n: u64, topics: &str) -> Cluster {
        Cluster::start_with(n, topics, &[])
    }

    pub fn start_with(n: u64, topics: &str, extra_args: &[&str]) -> Cluster {
        Cluster::start_prepared(n, topics, extra_args, |_| {})
    }

    /// Like [`Cluster::start_with`], calling `prepare` with each node's data directory before
    /// the node first starts (to mount a filesystem there, say).
    /// Like [`Cluster::start_with`], with flags of each node's own from `node_args`.
    pub fn start_per_node(
        n: u64,
        topics: &str,
        extra_args: &[&str],
        node_args: impl Fn(u64) -> Vec<String>,
    ) -> Cluster {
        let listeners: Vec<(u64, TcpListener, TcpListener)> = (1..=n)
            .map(|id| {
                let bind0 = || TcpListener::bind("127.0.0.1:0").expect("bind port 0");
                (id, bind0(), bind0())
            })
            .collect();
        let per_node = (1..=n).map(|id| (id, node_args(id))).collect();
        Cluster::start_listening_with(listeners, topics, extra_args, per_node, |_| {})
    }

    pub fn start_prepared(n: u64, topics: &str, extra_args: &[&str], prepare: impl Fn(&std::path::Path)) -> Cluster {
        let listeners: Vec<(u64, TcpListener, TcpListener)> = (1..=n)
            .map(|id| {
                let bind0 = || TcpListener::bind("127.0.0.1:0").expect("bind port 0");
                (id, bind0(), bind0())
            })
            .collect();
        Cluster::start_listening(listeners, topics, extra_args, prepare)
    }

    /// A second, new cluster (empty data directories) on the addresses of `other`, whose nodes
    /// must all be stopped: the same members, as on another machine or after a re-install.
    pub fn start_on_addresses_of(other: &Cluster, topics: &str) -> Cluster {
        let listeners = other.nodes.values().map(|n| (n.id, bind(n.addr), bind(n.peer_addr))).collect();
        Cluster::start_listening(listeners, topics, &[], |_| {})
    }

    fn start_listening(
        listeners: Vec<(u64, TcpListener, TcpListener)>,
        topics: &str,
        extra_args: &[&str],
        prepare: impl Fn(&std::path::Path),
    ) -> Cluster {
        Cluster::start_listening_with(listeners, topics, extra_args, BTreeMap::new(), prepare)
    }

    fn start_listening_with(
        listeners: Vec<(u64, TcpListener, TcpListener)>,
        topics: &str,
        extra_args: &[&str],
        node_args: BTreeMap<u64, Vec<String>>,
        prepare: impl Fn(&std::path::Path),
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let initial_cluster = listeners
            .iter()
            .map(|(id, l, p)| format!("{id}={}/{}", l.local_addr().expect("addr"), p.local_addr().expect("addr")))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            topics: topics.to_string(),
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            node_args,
            dir,
        };
        for (id, l, peer) in listeners {
            let metrics = TcpListener::bind("127.0.0.1:0").expect("bind metrics port 0");
            let node = Node {
                id,
                addr: l.local_addr().expect("addr"),
                peer_addr: peer.local_addr().expect("peer addr"),
                metrics_addr: metrics.local_addr().expect("metrics addr"),
                data_dir: cluster.dir.path().join(format!("node{id}")),
                log: cluster.dir.path().join(format!("node{id}.log")),
                child: None,
            };
            prepare(&node.data_dir);
            cluster.nodes.insert(id, node);
            cluster.spawn(id, l, metrics, peer);
        }
        cluster
    }

    fn spawn(&mut self, id: u64, listener: TcpListener, metrics: TcpListener, peer: TcpListener) {
        let node_args = self.node_args.get(&id).cloned().unwrap_or_default();
        let node = self.nodes.get_mut(&id).expect("node exists");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut cmd = Command::new(node_binary());
        cmd.arg("--node-id")
            .arg(id.to_string())
            .arg("--listen-fd")
            .arg("3")
            .arg("--metrics-listen-fd")
            .arg("4")
            .arg("--peer-listen-fd")
            .arg("5")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .args(if self.topics.is_empty() { vec![] } else { vec!["--topic".to_string(), self.topics.clone()] })
            .args(&self.extra_args)
            .args(node_args)
            .env(
                "RUST_LOG",
                std::env::var("CAIRN_TEST_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn,openraft::replication=off".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        cmd.fd_mappings(vec![
            FdMapping { parent_fd: OwnedFd::from(listener), child_fd: 3 },
            FdMapping { parent_fd: OwnedFd::from(metrics), child_fd: 4 },
            FdMapping { parent_fd: OwnedFd::from(peer), child_fd: 5 },
        ])
        .expect("fd mapping");
        let child = cmd.spawn().expect("spawn cairn-node");
        // `cmd` (and with it the parent's copy of the socket) is dropped here.
        drop(cmd);
        node.child = Some(child);
    }

    /// Flags added to every node started from now on (restarts included).
    pub fn set_extra_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.to_string()
    }

    /// Sends `signal` (e.g. `-HUP`) to node `id`.
    pub fn signal(&self, id: u64, signal: &str) {
        let pid = self.nodes[&id].child.as_ref().expect("node is running").id();
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Node `id`'s peer listener (for node-internal calls).
    pub fn peer_addr(&self, id: u64) -> String {
        self.nodes[&id].peer_addr.to_string()
    }

    pub fn brokers(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.to_string()).collect()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        let node = self.nodes.get_mut(&id).expect("node exists");
        let mut c = node.child.take().expect("node is running");
        let status = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "node {id} did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a stopped node again on its port and data directory.
    pub fn restart(&mut self, id: u64) {
        assert!(self.nodes[&id].child.is_none(), "node {id} is still running");
        let l = bind(self.nodes[&id].addr);
        let m = bind(self.nodes[&id].metrics_addr);
        let p = bind(self.nodes[&id].peer_addr);
        self.spawn(id, l, m, p);
    }

    /// Waits up to `within` for node `id` to exit by itself; its exit status, None if it is
    /// still running then.
    pub fn wait_exit(&mut self, id: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        let node = self.nodes.get_mut(&id).expect("node exists");
        loop {
            let c = node.child.as_mut()?;
            if let Some(s) = c.try_wait().expect("wait") {
                node.child = None;
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self, id: u64) -> bool {
        match self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.nodes[&id].log).unwrap_or_default()
    }

    /// A client bootstrapped from every node, with a generous retry budget.
    pub async fn client(&self) -> Client {
        connect(self.brokers()).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.kill(*id);
        }
        if std::thread::panicking() {
            // CAIRN_TEST_KEEP_LOGS=DIR keeps every node's whole log of a failed test there.
            if let Some(keep) = std::env::var_os("CAIRN_TEST_KEEP_LOGS") {
                let _ = std::fs::create_dir_all(&keep);
                for id in &ids {
                    let _ = std::fs::write(std::path::Path::new(&keep).join(format!("node{id}.log")), self.log_of(*id));
                }
            }
            for id in ids {
                let log = self.log_of(id);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- node {id} log (last 40 lines) ----");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A client bootstrapped from `brokers`, with a generous retry budget (elections take seconds).
pub async fn connect(brokers: Vec<String>) -> Client {
    let mut cfg = ClientConfig::new(brokers);
    cfg.retry_deadline = Duration::from_secs(30);
    cfg.request_timeout = Duration::from_secs(15);
    Client::connect(cfg).await.expect("client connects")
}

/// Reads all records of `topic`/`partition` in `[0, until)` from one node's replica,
/// waiting (bounded) for that replica to reach `until`.
pub async fn read_from_node(
    client: &Client,
    addr: &str,
    topic: &str,
    partition: u32,
    until: u64,
) -> Vec<cairn_client::FetchedRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < until {
        let req = cairn_proto::v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset: pos,
            max_bytes: 1 << 20,
            max_wait_ms: 500,
            topic_id: 0,
        };
        match client.fetch_from_node(addr, req).await {
            Ok(resp) => {
                for r in resp.records {
                    assert_eq!(r.offset, pos, "offsets must be dense");
                    pos += 1;
                    out.push(r);
                }
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "node {addr} could not serve {topic}/{partition}@{pos}: {e}");
                // Poll again shortly: the node may still be starting.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {addr} did not reach offset {until} of {topic}/{partition} (at {pos})"
        );
    }
    out
}

/// Waits until every partition of `topic` has a leader.
pub async fn wait_for_topic(client: &Client, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_topic(topic).await {
            if !d.partitions.is_empty() && d.partitions.iter().all(|p| p.leader_node_id != 0) {
                let _ = client.refresh_metadata().await;
                return;
            }
        }
        assert!(Instant::now() < deadline, "{topic}: not every partition has a leader within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the `cairn` CLI against `brokers`; returns (exit code, stdout, stderr).
pub fn cli(brokers: &[String], args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let (code, out, err) = cli_bytes(brokers, args, stdin.map(str::as_bytes).unwrap_or_default());
    (code, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Like [`cli`] with binary stdin and stdout.
pub fn cli_bytes(brokers: &[String], args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(cli_binary())
        .arg("--brokers")
        .arg(brokers.join(","))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Written from a thread: a large input would otherwise fill the pipe while the CLI waits
    // for us to read its output.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("cairn output");
    let _ = writer.join();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits until every partition of every topic has a leader known to a node that answers.
pub async fn wait_for_leaders(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_cluster().await {
            let all = d.topics.iter().flat_map(|t| &t.partitions).all(|p| p.leader_node_id != 0);
            if all && !d.topics.is_empty() {
                let _ = client.refresh_metadata().await;
                return;
            }
        }
        assert!(Instant::now() < deadline, "partitions did not all elect leaders within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node id currently leading `topic`/`partition` according to the cluster.
pub async fn leader_of(client: &Client, topic: &str, partition: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(d) = client.describe_cluster().await {
            if let Some(p) =
                d.topics.iter().find(|t| t.name == topic).and_then(|t| t.partitions.get(partition as usize))
            {
                if p.leader_node_id != 0 {
                    return p.leader_node_id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader for {topic}/{partition} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `path` from a node's HTTP (metrics) listener: the status code and body. Plain HTTP/1.0
/// over a TCP stream, so the tests need no HTTP client.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// [`http_get`], with connection and read errors returned (a server still starting).
pub fn try_http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// One HTTP/1.0 request with a JSON body (or none) to a node's HTTP listener: the status code
/// and body; connection and read errors returned (a server still starting).
pub fn http_request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The samples of metric `name` in a Prometheus text exposition whose labels include every
/// `(label, value)` of `with`, summed (0 when there are none).
pub fn metric_sum(text: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

/// Every sample of metric `name`: its labels and value.
pub fn metric_samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// `cairn certs init DIR --nodes 3`: a development CA, node certificates and a client one.
pub fn certs_init(dir: &std::path::Path) {
    let out = Command::new(cli_binary())
        .args(["certs", "init"])
        .arg(dir)
        .args(["--nodes", "3"])
        .output()
        .expect("run cairn certs init");
    assert!(out.status.success(), "certs init: {}", String::from_utf8_lossy(&out.stderr));
}

/// Node `id`'s TLS flags for the certificates [`certs_init`] made in `dir`.
pub fn tls_args(dir: &std::path::Path, id: u64) -> Vec<String> {
    let p = |f: String| dir.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-ca".into(),
        p("ca.pem".into()),
        "--tls-cert".into(),
        p(format!("node-{id}.pem")),
        "--tls-key".into(),
        p(format!("node-{id}.key")),
    ]
}
