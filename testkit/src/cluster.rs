//! A cluster of real `cairn-node` processes on loopback.
//!
//! Each node's three listening sockets (client, HTTP, peer) are bound here on port 0 and handed
//! to the child as fds 3, 4 and 5 (`--listen-fd 3`, ...), so no port is ever guessed and tests
//! running side by side never collide. The kit's own copies are closed right after the spawn,
//! so a killed node's port refuses connections like a dead host; a restart binds it again.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_client::{Client, ClientConfig};
use command_fds::{CommandFdExt, FdMapping};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::TestkitError;

/// How long the kit waits for the cluster, a topic's leaders or a new leader.
const READY_WITHIN: Duration = Duration::from_secs(60);

struct Node {
    addr: SocketAddr,
    http_addr: SocketAddr,
    peer_addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster; dropping it kills every node (their temp directories go with it).
pub struct Cluster {
    nodes: BTreeMap<u64, Node>,
    binary: PathBuf,
    initial_cluster: String,
    args: Vec<String>,
    config: Option<PathBuf>,
    dir: TempDir,
}

/// Settings of a cluster to start (see [`Cluster::builder`]).
#[derive(Clone, Debug, Default)]
pub struct ClusterBuilder {
    nodes: u64,
    config: Option<String>,
    args: Vec<String>,
    binary: Option<PathBuf>,
}

impl ClusterBuilder {
    /// Nodes in the cluster (1 or 3 usually; 3 by default).
    pub fn nodes(mut self, n: u64) -> Self {
        self.nodes = n;
        self
    }

    /// A node configuration file's content (TOML, as `cairn-node --config`), for every node.
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// Extra `cairn-node` flags for every node.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The `cairn-node` binary to run (default: [`crate::node_binary`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the nodes and waits until the cluster's controller has a leader.
    ///
    /// # Errors
    /// No node binary; sockets or temp directories that cannot be made; a cluster not ready
    /// within 60 s.
    pub async fn start(self) -> Result<Cluster, TestkitError> {
        let binary = match self.binary {
            Some(b) => b,
            None => crate::node_binary()?,
        };
        let dir = tempfile::tempdir().map_err(TestkitError::io("creating the cluster's temp directory"))?;
        let config = match &self.config {
            Some(text) => {
                let path = dir.path().join("cairn-node.toml");
                std::fs::write(&path, text).map_err(TestkitError::io("writing the node configuration"))?;
                Some(path)
            }
            None => None,
        };
        let n = self.nodes.max(1);
        let mut sockets = Vec::new();
        for id in 1..=n {
            let bind0 = || bind("127.0.0.1:0".parse().expect("invariant: a valid address"));
            sockets.push((id, bind0()?, bind0()?, bind0()?));
        }
        let initial_cluster = sockets
            .iter()
            .map(|(id, l, _, p)| Ok(format!("{id}={}/{}", local(l)?, local(p)?)))
            .collect::<Result<Vec<_>, TestkitError>>()?
            .join(",");
        let mut cluster = Cluster { nodes: BTreeMap::new(), binary, initial_cluster, args: self.args, config, dir };
        for (id, client, http, peer) in sockets {
            let node = Node {
                addr: local(&client)?,
                http_addr: local(&http)?,
                peer_addr: local(&peer)?,
                data_dir: cluster.dir.path().join(format!("node{id}")),
                log: cluster.dir.path().join(format!("node{id}.log")),
                child: None,
            };
            cluster.nodes.insert(id, node);
            cluster.spawn(id, client, http, peer)?;
        }
        cluster.wait_for_controller().await?;
        Ok(cluster)
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, TestkitError> {
    // A just-killed node's port can be busy for a moment (taken as an ephemeral source port).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(TestkitError::Io { what: format!("binding {addr}"), source: e }),
        }
    }
}

fn local(l: &TcpListener) -> Result<SocketAddr, TestkitError> {
    l.local_addr().map_err(TestkitError::io("reading a socket's address"))
}

impl Cluster {
    /// Starts `n` nodes with default settings (see [`Cluster::builder`] for more).
    ///
    /// # Errors
    /// As [`ClusterBuilder::start`].
    pub async fn start(n: u64) -> Result<Cluster, TestkitError> {
        Cluster::builder().nodes(n).start().await
    }

    /// A cluster to configure, then start.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder { nodes: 3, ..ClusterBuilder::default() }
    }

    fn spawn(
        &mut self,
        id: u64,
        client: TcpListener,
        http: TcpListener,
        peer: TcpListener,
    ) -> Result<(), TestkitError> {
        let node = self.nodes.get_mut(&id).ok_or(TestkitError::UnknownNode(id))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(TestkitError::io(format!("opening {}", node.log.display())))?;
        let log2 = log.try_clone().map_err(TestkitError::io("duplicating the log file"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "--node-id",
            &id.to_string(),
            "--listen-fd",
            "3",
            "--metrics-listen-fd",
            "4",
            "--peer-listen-fd",
            "5",
        ])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(["--initial-cluster", &self.initial_cluster]);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&self.args)
            .env("RUST_LOG", std::env::var("CAIRN_TESTKIT_LOG").unwrap_or_else(|_| "info,openraft=warn".into()))
            .stdin(Stdio::null())
            .stdout(log2)
            .stderr(log);
        cmd.fd_mappings(vec![
            FdMapping { parent_fd: OwnedFd::from(client), child_fd: 3 },
            FdMapping { parent_fd: OwnedFd::from(http), child_fd: 4 },
            FdMapping { parent_fd: OwnedFd::from(peer), child_fd: 5 },
        ])
        .map_err(|e| TestkitError::Io { what: "passing the sockets".into(), source: std::io::Error::other(e) })?;
        let child = cmd.spawn().map_err(TestkitError::io(format!("starting {}", self.binary.display())))?;
        // `cmd`, and with it this process's copy of the sockets, is dropped here.
        drop(cmd);
        node.child = Some(child);
        Ok(())
    }

    /// Every node's client address (`host:port`), for `ClientConfig::new` or `--brokers`.
    pub fn brokers(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.to_string()).collect()
    }

    /// The brokers as one comma-separated string (`CAIRN_BROKERS`, `--brokers`).
    pub fn brokers_arg(&self) -> String {
        self.brokers().join(",")
    }

    /// Node `id`'s HTTP listener (metrics, health).
    pub fn http_addr(&self, id: u64) -> Option<SocketAddr> {
        self.nodes.get(&id).map(|n| n.http_addr)
    }

    /// Node ids, in order.
    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// A client of this cluster with a retry budget that spans elections.
    ///
    /// # Errors
    /// No node reachable.
    pub async fn client(&self) -> Result<Client, TestkitError> {
        let mut cfg = ClientConfig::new(self.brokers());
        cfg.retry_deadline = Duration::from_secs(30);
        cfg.request_timeout = Duration::from_secs(10);
        Ok(Client::connect(cfg).await?)
    }

    /// Creates `topic` with `partitions` partitions (replicated on up to 3 nodes) and waits until
    /// every partition has a leader.
    ///
    /// # Errors
    /// The creation failed (e.g. the topic exists) or leaders did not come within 60 s.
    pub async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), TestkitError> {
        let rf = (self.nodes.len() as u32).min(3);
        self.client().await?.create_topic(topic, partitions, rf, None).await?;
        self.wait_for_leaders(topic).await
    }

    /// Waits until every partition of `topic` has a leader on a running node.
    ///
    /// # Errors
    /// Not within 60 s.
    pub async fn wait_for_leaders(&self, topic: &str) -> Result<(), TestkitError> {
        let client = self.client().await?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(d) = client.describe_topic(topic).await {
                let running = |id: u64| self.nodes.get(&id).is_some_and(|n| n.child.is_some());
                if !d.partitions.is_empty() && d.partitions.iter().all(|p| running(p.leader_node_id)) {
                    let _ = client.refresh_metadata().await;
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("partitions of {topic} got no leaders")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node leading `topic`/`partition` (waiting for one to be elected).
    ///
    /// # Errors
    /// No leader within 60 s.
    pub async fn leader_of(&self, topic: &str, partition: u32) -> Result<u64, TestkitError> {
        let client = self.client().await?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(d) = client.describe_topic(topic).await {
                if let Some(p) = d.partitions.iter().find(|p| p.partition == partition && p.leader_node_id != 0) {
                    return Ok(p.leader_node_id);
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("{topic}/{partition} got no leader")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `id` (a crash) and wait until the process is gone. Idempotent.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a killed node again, on its ports and data directory.
    ///
    /// # Errors
    /// An unknown node; its ports cannot be bound again within 30 s.
    pub fn restart(&mut self, id: u64) -> Result<(), TestkitError> {
        let node = self.nodes.get(&id).ok_or(TestkitError::UnknownNode(id))?;
        if node.child.is_some() {
            return Ok(());
        }
        let (a, h, p) = (node.addr, node.http_addr, node.peer_addr);
        let (client, http, peer) = (bind(a)?, bind(h)?, bind(p)?);
        self.spawn(id, client, http, peer)
    }

    /// Whether node `id` runs (it was not killed and did not exit by itself).
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Node `id`'s log so far.
    pub fn log_of(&self, id: u64) -> String {
        self.nodes.get(&id).and_then(|n| std::fs::read_to_string(&n.log).ok()).unwrap_or_default()
    }

    async fn wait_for_controller(&self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(client) = self.client().await {
                if client.describe_cluster().await.is_ok_and(|d| d.controller_leader_id != 0) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready("the cluster's controller got no leader".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The error for something not ready in time, with the end of every node's log (the temp
    /// directory holding the logs goes with the cluster).
    fn not_ready(&self, what: String) -> TestkitError {
        let logs = self
            .nodes
            .keys()
            .map(|id| {
                let log = self.log_of(*id);
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                format!("\n-- node {id} --\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<String>();
        TestkitError::NotReady { what, secs: READY_WITHIN.as_secs(), logs }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.kill(*id);
        }
        if std::thread::panicking() {
            for id in ids {
                let log = self.log_of(id);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- cairn-testkit: node {id} log (last 30 lines) ----");
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}
