//! Gauges computed when Prometheus scrapes: each local replica's Raft and log figures, the
//! partitions this node leads that are under-replicated, leaderless partitions (on the
//! controller leader only, so a sum over the cluster counts each once), quiesced groups, the
//! data directory's free space, RocksDB's figures, and every bound of `[limits]` beside what it
//! bounds.

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};

use crate::controller::Controller;
use crate::groups::LocalGroups;
use crate::liveness::Liveness;

/// One gauge family: name, help, labels.
type Family = (&'static str, &'static str, &'static [&'static str]);

const P: &[&str] = &["topic", "partition"];
const FAMILIES: &[Family] = &[
    ("cairn_partition_leader", "1 when this node's replica leads the partition, else 0", P),
    ("cairn_partition_term", "Raft term of this node's replica", P),
    ("cairn_partition_last_log_index", "last Raft log index of this node's replica", P),
    ("cairn_partition_applied_index", "last Raft log index this node's replica applied", P),
    ("cairn_partition_high_watermark", "offset after the last committed record, as this replica knows it", P),
    ("cairn_partition_log_start_offset", "first offset this replica still holds (retention moves it)", P),
    ("cairn_partition_replica_stopped", "1 when this node's replica stopped serving (damage, storage error)", P),
    (
        "cairn_partition_producers",
        "idempotent producers this replica's table remembers (bound: producers_per_partition_max)",
        P,
    ),
    (
        "cairn_partition_key_index_keys",
        "record keys the last-offset-by-key index holds (bound: key_index_keys_per_partition_max)",
        P,
    ),
    (
        "cairn_partition_proposal_queue_depth",
        "produce proposals waiting in the leader's queue (bound: proposal_queue_max)",
        P,
    ),
    (
        "cairn_partition_proposals_in_flight",
        "leader only: entries proposed to Raft and not yet answered (bound: proposals_in_flight_max)",
        P,
    ),
    (
        "cairn_partition_under_replicated",
        "leader only: 1 while a placed replica is not serving (its node down, stopped, or still catching up)",
        P,
    ),
    (
        "cairn_partition_follower_lag_entries",
        "leader only: Raft entries each follower is behind the leader's log",
        &["topic", "partition", "follower"],
    ),
    ("cairn_rocksdb_column_family_bytes", "bytes in SST files and memtables, by column family", &["cf"]),
    ("cairn_limit", "every configured bound of the [limits] section, by name", &["limit"]),
];

const NODE: &[(&str, &str)] = &[
    ("cairn_replicas", "partition replicas on this node (bound: limit partition_replicas_per_node_max)"),
    ("cairn_replicas_quiesced", "replicas whose group is idle and sends no heartbeats"),
    ("cairn_partitions_under_replicated", "partitions this node leads with a placed replica not serving"),
    ("cairn_disk_free_bytes", "free bytes of the data directory's filesystem"),
    ("cairn_disk_free_floor_bytes", "below this many free bytes the node refuses writes"),
    ("cairn_rocksdb_pending_compaction_bytes", "bytes RocksDB estimates its compactions still have to rewrite"),
    ("cairn_rocksdb_block_cache_usage_bytes", "bytes held in RocksDB's block cache"),
    ("cairn_rocksdb_block_cache_capacity_bytes", "bytes RocksDB's block cache may hold"),
    ("cairn_controller_leader", "1 when this node leads the controller group"),
];

/// Controller-leader-only gauges: absent on the other nodes.
const CLUSTER: &[(&str, &str)] = &[
    ("cairn_cluster_partitions", "partitions in the cluster (controller leader only; bound: limit partitions_max)"),
    ("cairn_cluster_partitions_leaderless", "partitions no live node leads (controller leader only)"),
    (
        "cairn_cluster_named_producers",
        "registered named producers (controller leader only; bound: limit named_producers_max)",
    ),
    ("cairn_cluster_nodes_down", "members the controller leader cannot reach (controller leader only)"),
];

pub struct NodeView {
    groups: Arc<LocalGroups>,
    liveness: Liveness,
    controller: Arc<Controller>,
    vecs: Vec<IntGaugeVec>,
    node: Vec<IntGauge>,
    cluster: Vec<IntGauge>,
    descs: Vec<Desc>,
    /// One scrape at a time: each fills the gauges, then reads them.
    scrape: Mutex<()>,
}

impl NodeView {
    /// # Errors
    /// A malformed metric name (a bug).
    pub fn new(
        groups: Arc<LocalGroups>,
        liveness: Liveness,
        controller: Arc<Controller>,
    ) -> Result<NodeView, prometheus::Error> {
        let vecs = FAMILIES
            .iter()
            .map(|(name, help, labels)| IntGaugeVec::new(Opts::new(*name, *help), labels))
            .collect::<Result<Vec<_>, _>>()?;
        let gauges = |list: &[(&str, &str)]| {
            list.iter().map(|(name, help)| IntGauge::new(*name, *help)).collect::<Result<Vec<_>, _>>()
        };
        let (node, cluster) = (gauges(NODE)?, gauges(CLUSTER)?);
        let descs = vecs
            .iter()
            .flat_map(|v| v.desc().into_iter().cloned())
            .chain(node.iter().chain(&cluster).flat_map(|g| g.desc().into_iter().cloned()))
            .collect();
        Ok(NodeView { groups, liveness, controller, vecs, node, cluster, descs, scrape: Mutex::new(()) })
    }

    /// The declared family `name`; a name missing from [`FAMILIES`] is a bug (debug builds,
    /// hence the tests, stop on it; release builds skip the sample).
    fn vec(&self, name: &str) -> Option<&IntGaugeVec> {
        let i = FAMILIES.iter().position(|(n, _, _)| *n == name);
        debug_assert!(i.is_some(), "metric family {name} is not declared in FAMILIES");
        i.map(|i| &self.vecs[i])
    }

    fn gauge<'a>(list: &[(&str, &str)], gauges: &'a [IntGauge], name: &str) -> Option<&'a IntGauge> {
        let i = list.iter().position(|(n, _)| *n == name);
        debug_assert!(i.is_some(), "gauge {name} is not declared");
        i.map(|i| &gauges[i])
    }

    fn set(&self, name: &str, v: u64) {
        if let Some(g) = Self::gauge(NODE, &self.node, name) {
            g.set(clamp(v));
        }
    }

    fn put(&self, name: &str, labels: &[&str], v: u64) {
        if let Some(family) = self.vec(name) {
            family.with_label_values(labels).set(clamp(v));
        }
    }

    /// Fills every gauge; returns whether this node led the controller (the cluster gauges are
    /// exported then, from this same reading).
    fn fill(&self) -> bool {
        for v in &self.vecs {
            v.reset();
        }
        let env = self.groups.env();
        let me = env.me;
        let state = self.groups.state();
        let roles = self.groups.roles();
        let stopped_elsewhere = self.liveness.stopped_replicas();
        let mut under = 0u64;
        let all = self.groups.all();
        let quiesced = all.iter().filter(|g| !g.is_ticking()).count();
        for (topic, partition, placed) in state.replicas_on(me) {
            let Some(g) = self.groups.get(placed.group_id) else { continue };
            let part = partition.to_string();
            let labels = [topic, part.as_str()];
            let gauges = g.gauges();
            let progress = g.progress();
            let stopped = roles.stopped.iter().any(|s| s.group == placed.group_id);
            let put = |name: &str, v: u64| self.put(name, &labels, v);
            put("cairn_partition_leader", u64::from(gauges.is_leader));
            put("cairn_partition_term", gauges.term);
            put("cairn_partition_last_log_index", gauges.last_log_index);
            put("cairn_partition_applied_index", gauges.applied_index);
            put("cairn_partition_high_watermark", progress.high_watermark);
            put("cairn_partition_log_start_offset", progress.log_start_offset);
            put("cairn_partition_replica_stopped", u64::from(stopped));
            put("cairn_partition_producers", g.producer_count() as u64);
            put("cairn_partition_key_index_keys", progress.key_index_keys);
            if !gauges.is_leader {
                continue;
            }
            put("cairn_partition_proposal_queue_depth", gauges.proposal_queue_depth as u64);
            put("cairn_partition_proposals_in_flight", gauges.proposals_in_flight as u64);
            for (node, behind) in &gauges.followers {
                let follower = node.to_string();
                self.put(
                    "cairn_partition_follower_lag_entries",
                    &[topic, part.as_str(), follower.as_str()],
                    behind.unwrap_or(gauges.last_log_index),
                );
            }
            // A placed replica is serving when its node is up, it is a voter that has received
            // something, and it has not reported itself stopped.
            let not_serving = placed.replicas.iter().filter(|r| r.node != me).any(|r| {
                let voter = gauges.followers.iter().find(|(n, _)| *n == r.node);
                !self.liveness.is_alive(r.node)
                    || voter.is_none_or(|(_, behind)| behind.is_none())
                    || stopped_elsewhere
                        .get(&r.node)
                        .is_some_and(|list| list.iter().any(|s| s.group_id == placed.group_id))
            });
            put("cairn_partition_under_replicated", u64::from(not_serving));
            under += u64::from(not_serving);
        }
        self.set("cairn_replicas", all.len() as u64);
        self.set("cairn_replicas_quiesced", quiesced as u64);
        self.set("cairn_partitions_under_replicated", under);
        // 0 until the first measurement: not exported as free space then.
        match env.disk.reported_free_bytes() {
            0 => {}
            free => self.set("cairn_disk_free_bytes", free),
        }
        self.set("cairn_disk_free_floor_bytes", env.disk.floor_bytes());
        let stats = env.db.stats();
        self.set("cairn_rocksdb_pending_compaction_bytes", stats.pending_compaction_bytes);
        self.set("cairn_rocksdb_block_cache_usage_bytes", stats.block_cache_usage_bytes);
        self.set("cairn_rocksdb_block_cache_capacity_bytes", stats.block_cache_capacity_bytes);
        for (cf, bytes) in env.db.column_family_bytes() {
            self.put("cairn_rocksdb_column_family_bytes", &[cf], bytes);
        }
        for (limit, value) in limits(&env.config.limits) {
            self.put("cairn_limit", &[limit], value);
        }
        let leads_controller = self.controller.is_leader();
        self.set("cairn_controller_leader", u64::from(leads_controller));
        if leads_controller {
            let cluster = |name: &str, v: u64| {
                if let Some(g) = Self::gauge(CLUSTER, &self.cluster, name) {
                    g.set(clamp(v));
                }
            };
            let partitions: Vec<_> = state.topics.values().flat_map(|t| &t.partitions).collect();
            let leaderless = partitions
                .iter()
                .filter(|p| {
                    !p.replicas.iter().any(|r| {
                        if r.node == me {
                            self.groups.get(p.group_id).is_some_and(|g| g.is_leader())
                        } else {
                            self.liveness.leads(r.node, p.group_id)
                        }
                    })
                })
                .count();
            cluster("cairn_cluster_partitions", partitions.len() as u64);
            cluster("cairn_cluster_partitions_leaderless", leaderless as u64);
            cluster("cairn_cluster_named_producers", state.producer_names.len() as u64);
            let down = state.nodes.keys().filter(|n| **n != me && !self.liveness.is_alive(**n)).count();
            cluster("cairn_cluster_nodes_down", down as u64);
        }
        leads_controller
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every bound of `[limits]`, by its configuration key.
fn limits(l: &crate::config::LimitsSection) -> [(&'static str, u64); 17] {
    [
        ("record_bytes_max", l.record_bytes_max as u64),
        ("request_bytes_max", l.request_bytes_max as u64),
        ("fetch_bytes_max", l.fetch_bytes_max as u64),
        ("fetch_wait_ms_max", l.fetch_wait_ms_max),
        ("proposal_queue_max", l.proposal_queue_max as u64),
        ("entry_batches_max", l.entry_batches_max as u64),
        ("entry_bytes_max", l.entry_bytes_max as u64),
        ("proposals_in_flight_max", l.proposals_in_flight_max as u64),
        ("produce_timeout_ms", l.produce_timeout_ms),
        ("producers_per_partition_max", u64::from(l.producers_per_partition_max)),
        ("producer_expiry_ms", l.producer_expiry_ms),
        ("key_index_keys_per_partition_max", u64::from(l.key_index_keys_per_partition_max)),
        ("named_producers_max", l.named_producers_max),
        ("named_producer_expiry_ms", l.named_producer_expiry_ms),
        ("producer_fence_wait_ms", l.producer_fence_wait_ms),
        ("partition_replicas_per_node_max", l.partition_replicas_per_node_max),
        ("partitions_max", l.partitions_max),
    ]
}

impl Collector for NodeView {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let leads_controller = self.fill();
        let mut out: Vec<MetricFamily> = self.vecs.iter().flat_map(|v| v.collect()).collect();
        out.extend(self.node.iter().flat_map(|g| g.collect()));
        if leads_controller {
            out.extend(self.cluster.iter().flat_map(|g| g.collect()));
        }
        out
    }
}
