//! Faults on a seeded schedule: quiet periods alternate with fault windows until the healing
//! phase. Every action is recorded (`start-<name>` / `stop-<name>`, process -1) so windows can
//! be shaded in the picture and liveness measured against them.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::DescribeGroupsRequest;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use cairn_client::Client;

use crate::cluster::disks::SmallDisks;
use crate::cluster::nodes::node_ip;
use crate::cluster::{Cluster, Net};
use crate::history::Recorder;
use crate::incarnations::Incarnations;
use crate::storage_faults;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// No faults: the baseline.
    None,
    /// SIGKILL a random node or a partition's leader; restart it after 0–10 s.
    Kill,
    /// SIGSTOP a random node or leader for 1–20 s (longer than the election timeout).
    Pause,
    /// Network partitions: one node isolated, majority/minority split, leader isolated, one-way.
    Partition,
    /// A leader's replies to clients are dropped: requests execute, answers are lost.
    ClientPartition,
    /// One node killed and restarted over and over.
    CrashLoop,
    /// One node cut off from the controller leader (both ways) while clients still reach it:
    /// its metadata lags while topics are created (pair with the `topics` workload).
    StaleBroker,
    /// Two replicas of a partition (not the controller leader) cut off from the other nodes
    /// while the topic is deleted and re-created through the majority: the minority still runs
    /// the old incarnation's group (5 nodes).
    Recreate,
    /// Bits flipped in one node's blob, SST or WAL files while it is down, then restarted; the
    /// next only once the cluster repaired it (never a majority of any partition).
    Corrupt,
    /// The tail of one node's newest WAL file cut off while it is down, then restarted.
    WalTruncate,
    /// Data directories on small filesystems of their own: one node's, a majority's or every
    /// node's filled below the free-space floor (or to the last byte), then freed.
    DiskFull,
    /// A random mix of all of the above.
    Combined,
}

impl NemesisKind {
    pub fn needs_network(self) -> bool {
        matches!(
            self,
            NemesisKind::Partition | NemesisKind::ClientPartition | NemesisKind::StaleBroker | NemesisKind::Recreate
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::None => "none",
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::ClientPartition => "client-partition",
            NemesisKind::CrashLoop => "crash-loop",
            NemesisKind::StaleBroker => "stale-broker",
            NemesisKind::Recreate => "recreate",
            NemesisKind::Corrupt => "corrupt",
            NemesisKind::WalTruncate => "wal-truncate",
            NemesisKind::DiskFull => "disk-full",
            NemesisKind::Combined => "combined",
        }
    }
}

/// What the nemesis acts on.
pub struct Nemesis {
    pub cluster: Arc<Mutex<Cluster>>,
    pub net: Net,
    pub rec: Recorder,
    /// Group ids of the workload's partitions (to find leaders).
    pub groups: Vec<u64>,
    pub rng: StdRng,
    /// For faults that are cluster operations (re-creating a topic).
    pub client: Arc<Client>,
    pub incarnations: Arc<Incarnations>,
    pub replication_factor: u32,
    /// Mount points of the nodes' own filesystems (disk-full), by node id - 1; empty otherwise.
    pub disks: Vec<std::path::PathBuf>,
    /// The nodes' free-space floor (bytes).
    pub free_space_floor: u64,
    /// A node running without a floor (disk-full): filling its disk to the last byte makes
    /// RocksDB's own writes fail.
    pub no_floor: Option<u64>,
    /// TLS of the suite's peer calls in a TLS run.
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
    /// A node whose damaged files no read has been seen to cover yet (no scrubber pass since it
    /// served again), and since when: no other storage fault until it has been (see `damage`).
    pub unscrubbed: Option<(u64, std::time::SystemTime)>,
}

/// The node whose replica of `group` claims leadership with the highest term; `addrs` are the
/// nodes' peer addresses.
pub async fn leader_of(
    addrs: &[(u64, String)],
    group: u64,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None;
    for (id, addr) in addrs {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let Ok(mut ep) = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")) else { continue };
        if let Some(t) = tls {
            let Ok(with_tls) = ep.tls_config(t.clone()) else { continue };
            ep = with_tls;
        }
        let req = DescribeGroupsRequest { group_ids: vec![group] };
        let mut client = NodeInternalClient::new(ep.connect_timeout(Duration::from_millis(300)).connect_lazy());
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_millis(500), client.describe_groups(req)).await {
            for g in r.into_inner().groups.into_iter().filter(|g| g.is_leader) {
                if best.is_none_or(|(t, _)| g.term > t) {
                    best = Some((g.term, *id));
                }
            }
        }
    }
    best.map(|(_, id)| id)
}

impl Nemesis {
    async fn node_count(&self) -> u64 {
        self.cluster.lock().await.spec.count
    }

    async fn up_addrs(&self) -> Vec<(u64, String)> {
        let c = self.cluster.lock().await;
        c.nodes.iter().filter(|n| c.is_up(n.id)).map(|n| (n.id, n.peer_addr.clone())).collect()
    }

    /// A random node, or (half the time) the leader of a random partition.
    async fn target(&mut self) -> u64 {
        let n = self.node_count().await;
        if self.rng.random_bool(0.5) {
            if let Some(g) = self.groups.choose(&mut self.rng).copied() {
                let addrs = self.up_addrs().await;
                if let Some(l) = leader_of(&addrs, g, self.peer_tls.as_ref()).await {
                    return l;
                }
            }
        }
        self.rng.random_range(1..=n)
    }

    fn span(&mut self, lo_ms: u64, hi_ms: u64, until: Instant) -> Duration {
        let d = Duration::from_millis(self.rng.random_range(lo_ms..=hi_ms));
        d.min(until.saturating_duration_since(Instant::now()))
    }

    /// Runs the schedule until `until`, then heals everything.
    pub async fn run(mut self, kind: NemesisKind, until: Instant) {
        let kinds: Vec<NemesisKind> = match kind {
            NemesisKind::Combined => {
                let mut k = vec![NemesisKind::Kill, NemesisKind::Pause, NemesisKind::CrashLoop];
                if self.net.enabled {
                    k.extend([NemesisKind::Partition, NemesisKind::ClientPartition, NemesisKind::StaleBroker]);
                }
                k
            }
            k => vec![k],
        };
        loop {
            let quiet = self.span(3_000, 8_000, until);
            tokio::time::sleep(quiet).await;
            if Instant::now() + Duration::from_secs(2) >= until || kind == NemesisKind::None {
                if kind == NemesisKind::None && Instant::now() < until {
                    continue;
                }
                break;
            }
            let k = *kinds.choose(&mut self.rng).unwrap_or(&NemesisKind::None);
            if let Err(e) = self.act(k, until).await {
                self.rec.nemesis("error", json!({"nemesis": k.name(), "error": e.to_string()}));
            }
        }
        self.heal().await;
    }

    /// Undoes every fault: network rules flushed, paused nodes resumed, killed nodes restarted.
    pub async fn heal(&mut self) {
        let _ = self.net.heal();
        for d in &self.disks {
            SmallDisks::free(d);
        }
        let res = self.cluster.lock().await.heal_processes();
        self.rec.nemesis("heal", json!({"ok": res.is_ok()}));
    }

    async fn act(&mut self, k: NemesisKind, until: Instant) -> anyhow::Result<()> {
        match k {
            NemesisKind::None | NemesisKind::Combined => Ok(()),
            NemesisKind::Kill => {
                let node = self.target().await;
                self.rec.nemesis("start-kill", json!({"node": node}));
                self.cluster.lock().await.kill(node);
                let down = self.span(0, 10_000, until);
                tokio::time::sleep(down).await;
                self.cluster.lock().await.restart(node)?;
                self.rec.nemesis("stop-kill", json!({"node": node, "down_ms": down.as_millis() as u64}));
                Ok(())
            }
            NemesisKind::Pause => {
                let node = self.target().await;
                self.rec.nemesis("start-pause", json!({"node": node}));
                self.cluster.lock().await.pause(node);
                let paused = self.span(1_000, 20_000, until);
                tokio::time::sleep(paused).await;
                self.cluster.lock().await.resume(node);
                self.rec.nemesis("stop-pause", json!({"node": node, "paused_ms": paused.as_millis() as u64}));
                Ok(())
            }
            NemesisKind::CrashLoop => {
                let node = self.rng.random_range(1..=self.node_count().await);
                let window = self.span(8_000, 20_000, until);
                let end = Instant::now() + window;
                self.rec.nemesis("start-crash-loop", json!({"node": node}));
                let mut kills = 0;
                while Instant::now() < end {
                    self.cluster.lock().await.kill(node);
                    kills += 1;
                    tokio::time::sleep(self.span(500, 2_000, end)).await;
                    self.cluster.lock().await.restart(node)?;
                    tokio::time::sleep(self.span(1_000, 4_000, end)).await;
                }
                self.rec.nemesis("stop-crash-loop", json!({"node": node, "kills": kills}));
                Ok(())
            }
            NemesisKind::Partition => self.partition(until).await,
            NemesisKind::StaleBroker => self.stale_broker(until).await,
            NemesisKind::Recreate => self.recreate(until).await,
            NemesisKind::Corrupt | NemesisKind::WalTruncate => self.damage(k, until).await,
            NemesisKind::DiskFull => self.disk_full(until).await,
            NemesisKind::ClientPartition => {
                let node = self.target().await;
                self.rec.nemesis("start-client-partition", json!({"node": node}));
                self.net.drop_replies_to_clients(node_ip(node))?;
                tokio::time::sleep(self.span(3_000, 12_000, until)).await;
                self.net.heal()?;
                self.rec.nemesis("stop-client-partition", json!({"node": node}));
                Ok(())
            }
        }
    }

    /// The node leading the controller group, as the cluster reports it.
    async fn controller_leader(&self) -> anyhow::Result<u64> {
        let d = self.client.describe_cluster().await?;
        anyhow::ensure!(d.controller_leader_id != 0, "no controller leader known");
        Ok(d.controller_leader_id)
    }

    /// Damages one stopped node's files (see [`crate::storage_faults`]), restarts it and waits
    /// for the cluster to repair it.
    async fn damage(&mut self, k: NemesisKind, until: Instant) -> anyhow::Result<()> {
        let name = k.name();
        let nodes = self.node_count().await;
        if !storage_faults::repaired(&self.client, nodes).await {
            self.rec
                .nemesis(&format!("skip-{name}"), json!({"why": "the cluster has not repaired earlier damage yet"}));
            return Ok(());
        }
        if let Some((n, since)) = self.unscrubbed {
            let metrics = self.cluster.lock().await.node(n).metrics_addr.clone();
            if !storage_faults::wait_scrubbed(&metrics, since, Duration::ZERO).await {
                // Damage there may still be latent: found later, while another node's replica
                // of the same partition is out, it would leave a partition without a majority.
                self.rec.nemesis(
                    &format!("skip-{name}"),
                    json!({"why": format!("node {n} has not scrubbed its data since it was damaged")}),
                );
                return Ok(());
            }
            self.unscrubbed = None;
        }
        let node = self.rng.random_range(1..=nodes);
        let db = self.cluster.lock().await.node(node).data_dir.join("db");
        self.rec.nemesis(&format!("start-{name}"), json!({"node": node}));
        if k == NemesisKind::Corrupt {
            // A restart first: recovery writes the WAL's records into SST and blob files, so
            // there is more than a WAL to damage (a short run never fills a memtable).
            self.cluster.lock().await.kill(node);
            self.cluster.lock().await.restart(node)?;
            let limit = until.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
            storage_faults::wait_repaired(&self.client, nodes, limit).await;
        }
        self.cluster.lock().await.kill(node);
        let done = match k {
            NemesisKind::WalTruncate => storage_faults::truncate_wal(&db, &mut self.rng),
            _ => storage_faults::flip_bytes(&db, &mut self.rng),
        };
        self.cluster.lock().await.restart(node)?;
        let mut what = done?;
        what["node"] = json!(node);
        self.rec.nemesis(&format!("{name}-done"), what);
        let addr = self.cluster.lock().await.node(node).addr.clone();
        let topics: Vec<(String, u64, u32)> = self
            .incarnations
            .live()
            .into_iter()
            .map(|i| (i.name, i.topic_id, self.incarnations.partitions()))
            .collect();
        let altered = storage_faults::read_back(&self.client, &addr, &topics, Duration::from_secs(20)).await;
        if !altered.is_empty() {
            // What a consumer attached to that node was served: the checker counts it.
            self.rec.nemesis("altered-read", json!({"node": node, "records": altered}));
        }
        let limit = || until.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
        let took = storage_faults::wait_repaired(&self.client, nodes, limit()).await;
        let mut repaired = took.is_some();
        let mut scrubbed = None;
        if k == NemesisKind::Corrupt {
            // The read-back covers the workload's partitions only, as far as it got in its time;
            // the scrubber reads every replica's log. A pass begun once every replica serves
            // again has met whatever damage is left (and that replica stopped and is repaired).
            let since = std::time::SystemTime::now();
            let metrics = self.cluster.lock().await.node(node).metrics_addr.clone();
            let done = storage_faults::wait_scrubbed(&metrics, since, limit()).await;
            if !done {
                self.unscrubbed = Some((node, since));
            }
            scrubbed = Some(done);
            repaired = storage_faults::wait_repaired(&self.client, nodes, limit()).await.is_some();
        }
        self.rec.nemesis(
            &format!("stop-{name}"),
            json!({
                "node": node,
                "repaired": repaired,
                "repair_ms": took.map(|d| d.as_millis() as u64),
                "scrubbed": scrubbed,
            }),
        );
        Ok(())
    }

    /// Fills the filesystems of one node, a majority or every node, most often to half the
    /// free-space floor (the node refuses writes before it runs out), sometimes to the last byte
    /// (RocksDB's own writes fail), holds them full for 5–15 s, then frees them.
    async fn disk_full(&mut self, until: Instant) -> anyhow::Result<()> {
        anyhow::ensure!(!self.disks.is_empty(), "disk-full needs the nodes on filesystems of their own");
        let n = self.disks.len();
        let mut nodes: Vec<usize> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(nodes.as_mut_slice(), &mut self.rng);
        let how_many = match self.rng.random_range(0..4) {
            0 | 1 => 1,
            2 => n / 2 + 1,
            _ => n,
        };
        nodes.truncate(how_many);
        let zero = self.rng.random_bool(0.4);
        if let Some(bare) = self.no_floor.map(|n| n as usize - 1) {
            if zero && !nodes.contains(&bare) {
                nodes[0] = bare;
            }
        }
        let leave = if zero { 0 } else { self.free_space_floor / 2 };
        let ids: Vec<usize> = nodes.iter().map(|i| i + 1).collect();
        self.rec.nemesis("start-disk-full", json!({"nodes": ids, "leave_bytes": leave}));
        let mut filled = Vec::new();
        for i in &nodes {
            let d = self.disks[*i].clone();
            let bytes = tokio::task::spawn_blocking(move || SmallDisks::fill(&d, leave)).await??;
            filled.push(bytes);
        }
        self.rec.nemesis("disk-full-filled", json!({"nodes": ids, "filler_bytes": filled}));
        tokio::time::sleep(self.span(5_000, 15_000, until)).await;
        for i in &nodes {
            SmallDisks::free(&self.disks[*i]);
        }
        self.rec.nemesis("stop-disk-full", json!({"nodes": ids}));
        Ok(())
    }

    async fn stale_broker(&mut self, until: Instant) -> anyhow::Result<()> {
        let leader = self.controller_leader().await?;
        let others: Vec<u64> = (1..=self.node_count().await).filter(|n| *n != leader).collect();
        let node = *others.choose(&mut self.rng).ok_or_else(|| anyhow::anyhow!("no node besides the leader"))?;
        self.rec.nemesis("start-stale-broker", json!({"node": node, "controller_leader": leader}));
        self.net.cut_both(node_ip(node), node_ip(leader))?;
        tokio::time::sleep(self.span(5_000, 15_000, until)).await;
        self.net.heal()?;
        self.rec.nemesis("stop-stale-broker", json!({"node": node}));
        Ok(())
    }

    async fn recreate(&mut self, until: Instant) -> anyhow::Result<()> {
        let leader = self.controller_leader().await?;
        let live = self.incarnations.live();
        let topic = live.choose(&mut self.rng).ok_or_else(|| anyhow::anyhow!("no live topic"))?.clone();
        let described = self.client.describe_topic(&topic.name).await?;
        let part = described.partitions.choose(&mut self.rng).ok_or_else(|| anyhow::anyhow!("no partition"))?;
        // Two of the partition's replicas, never the controller leader: the majority side keeps
        // the controller, the minority keeps a majority of the old group.
        let mut minority: Vec<u64> = part.replica_node_ids.iter().copied().filter(|n| *n != leader).collect();
        rand::seq::SliceRandom::shuffle(minority.as_mut_slice(), &mut self.rng);
        minority.truncate(2);
        let n = self.node_count().await;
        anyhow::ensure!(minority.len() == 2 && n >= 5, "recreate needs 5 nodes and two replicas besides the leader");
        self.rec.nemesis(
            "start-recreate",
            json!({"topic": topic.name, "partition": part.partition, "minority": minority, "controller_leader": leader}),
        );
        for a in &minority {
            for b in (1..=n).filter(|b| !minority.contains(b)) {
                self.net.cut_both(node_ip(*a), node_ip(b))?;
            }
        }
        // Give clients a moment to write to the old incarnation through the minority.
        tokio::time::sleep(self.span(1_000, 3_000, until)).await;
        let recreated = self.delete_and_create(&topic).await;
        if recreated.is_ok() {
            tokio::time::sleep(self.span(5_000, 12_000, until)).await;
        }
        // Healed whatever happened: a failed re-creation must not leave the cut in place.
        self.net.heal()?;
        self.rec.nemesis("stop-recreate", json!({"topic": topic.name}));
        recreated
    }

    /// Deletes `topic`'s incarnation and creates the topic again, recording both.
    async fn delete_and_create(&mut self, topic: &crate::incarnations::Incarnation) -> anyhow::Result<()> {
        if let Err(e) = self.client.delete_topic(&topic.name).await {
            // The outcome may be unknown: the incarnation counts as deleted unless it is there.
            let d = self.client.describe_topic(&topic.name).await;
            if d.is_ok_and(|d| d.topic.is_some_and(|t| t.topic_id == topic.topic_id)) {
                return Err(e.into());
            }
        }
        let gone = self.incarnations.delete(&topic.name);
        self.rec.nemesis("delete-topic", json!({"topic": topic.name, "topic_id": topic.topic_id, "partitions": gone}));
        let partitions = self.incarnations.partitions();
        let created = self.client.create_topic(&topic.name, partitions, self.replication_factor, None).await?;
        let base = self.incarnations.add(&topic.name, created.topic_id);
        self.rec.nemesis(
            "create-topic",
            json!({"topic": topic.name, "topic_id": created.topic_id, "partitions": [base, base + partitions - 1]}),
        );
        Ok(())
    }

    async fn partition(&mut self, until: Instant) -> anyhow::Result<()> {
        let n = self.node_count().await;
        let all: Vec<u64> = (1..=n).collect();
        let variant = ["isolate-node", "majority-minority", "isolate-leader", "one-way"][self.rng.random_range(0..4)];
        let mut cuts: Vec<(u64, u64)> = Vec::new();
        let mut one_way = false;
        match variant {
            "isolate-node" | "isolate-leader" => {
                let node = if variant == "isolate-leader" { self.target().await } else { self.rng.random_range(1..=n) };
                cuts.extend(all.iter().filter(|o| **o != node).map(|o| (node, *o)));
            }
            "majority-minority" => {
                let mut shuffled = all.clone();
                rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut self.rng);
                let minority = &shuffled[..(n as usize - 1) / 2];
                let majority = &shuffled[(n as usize - 1) / 2..];
                for a in minority {
                    for b in majority {
                        cuts.push((*a, *b));
                    }
                }
            }
            _ => {
                let a = self.rng.random_range(1..=n);
                let b = loop {
                    let b = self.rng.random_range(1..=n);
                    if b != a {
                        break b;
                    }
                };
                cuts.push((a, b));
                one_way = true;
            }
        }
        self.rec.nemesis("start-partition", json!({"variant": variant, "cuts": cuts}));
        for (a, b) in &cuts {
            if one_way {
                self.net.cut(node_ip(*a), node_ip(*b))?;
            } else {
                self.net.cut_both(node_ip(*a), node_ip(*b))?;
            }
        }
        tokio::time::sleep(self.span(5_000, 15_000, until)).await;
        self.net.heal()?;
        self.rec.nemesis("stop-partition", json!({"variant": variant}));
        Ok(())
    }
}
