//! Starting, killing, pausing and restarting the node processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the nodes of a run.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub count: u64,
    pub port: u16,
    pub binary: PathBuf,
    pub dir: PathBuf,
    /// Extra node flags (fault switches of negative controls).
    pub extra_args: Vec<String>,
    /// Extra flags of single nodes, after `extra_args` (a node configured apart).
    pub node_args: std::collections::BTreeMap<u64, Vec<String>>,
    /// Data directories are `<dir>/n<id>/<this>` when set (a filesystem mounted on
    /// `<dir>/n<id>` has a `lost+found` the node must not take for foreign data).
    pub data_subdir: Option<String>,
}

pub struct Node {
    pub id: u64,
    pub ip: Ipv4Addr,
    /// Client address.
    pub addr: String,
    /// Peer address (Raft transport, node-internal calls): the client port + 1000.
    pub peer_addr: String,
    /// Metrics and health (plain HTTP): the client port + 2000.
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The node processes of one run.
pub struct Cluster {
    pub spec: NodeSpec,
    pub nodes: Vec<Node>,
    initial_cluster: String,
}

pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + id as u8)
}

impl Cluster {
    /// Starts every node.
    ///
    /// # Errors
    /// A node that cannot be spawned.
    pub fn start(spec: NodeSpec) -> anyhow::Result<Cluster> {
        let nodes: Vec<Node> = (1..=spec.count)
            .map(|id| {
                let ip = node_ip(id);
                Node {
                    id,
                    ip,
                    addr: format!("{ip}:{}", spec.port),
                    peer_addr: format!("{ip}:{}", spec.port + 1000),
                    metrics_addr: format!("{ip}:{}", spec.port + 2000),
                    data_dir: match &spec.data_subdir {
                        Some(sub) => spec.dir.join(format!("n{id}")).join(sub),
                        None => spec.dir.join(format!("n{id}")),
                    },
                    log: spec.dir.join(format!("n{id}.log")),
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let initial_cluster =
            nodes.iter().map(|n| format!("{}={}/{}", n.id, n.addr, n.peer_addr)).collect::<Vec<_>>().join(",");
        let mut c = Cluster { spec, nodes, initial_cluster };
        for id in 1..=c.spec.count {
            c.spawn(id)?;
        }
        Ok(c)
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let (binary, cluster) = (self.spec.binary.clone(), self.initial_cluster.clone());
        let mut extra = self.spec.extra_args.clone();
        extra.extend(self.spec.node_args.get(&id).cloned().unwrap_or_default());
        let n = self.node_mut(id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&n.log)?;
        let child = Command::new(binary)
            .args(["--node-id", &id.to_string(), "--listen", &n.addr, "--initial-cluster", &cluster])
            .arg("--data-dir")
            .arg(&n.data_dir)
            .args(["--peer-source-ip", &n.ip.to_string()])
            .args(["--metrics-listen", &n.metrics_addr])
            .args(&extra)
            .env("RUST_LOG", "info,openraft=warn,openraft::replication=off")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        n.child = Some(child);
        n.paused = false;
        Ok(())
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.node(id).child.is_some() && !self.node(id).paused
    }

    /// SIGKILL; the node stays down until [`Cluster::restart`].
    pub fn kill(&mut self, id: u64) {
        let n = self.node_mut(id);
        if let Some(mut c) = n.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        n.paused = false;
    }

    /// Starts a killed node again on its address and data directory.
    ///
    /// # Errors
    /// Spawn failures.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        if self.node(id).child.is_none() {
            self.spawn(id)?;
        }
        Ok(())
    }

    fn signal(&mut self, id: u64, sig: &str) {
        if let Some(c) = self.node(id).child.as_ref() {
            let _ = Command::new("kill").args([sig, &c.id().to_string()]).status();
        }
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, "-STOP");
        self.node_mut(id).paused = true;
    }

    pub fn resume(&mut self, id: u64) {
        self.signal(id, "-CONT");
        self.node_mut(id).paused = false;
    }

    /// Every node running and unpaused.
    ///
    /// # Errors
    /// Spawn failures.
    pub fn heal_processes(&mut self) -> anyhow::Result<()> {
        for id in 1..=self.spec.count {
            if self.node(id).paused {
                self.resume(id);
            }
            self.restart(id)?;
        }
        Ok(())
    }

    /// Node ids whose process exited on its own (a crash the suite did not cause).
    pub fn crashed(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut() {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    out.push(n.id);
                }
            }
        }
        out
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Stops every node (SIGCONT first so SIGTERM can land), waiting up to 10 s each.
    pub fn stop(&mut self) {
        for id in 1..=self.spec.count {
            self.resume(id);
            self.signal(id, "-TERM");
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
