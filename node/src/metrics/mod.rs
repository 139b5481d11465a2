//! The node's Prometheus metrics (DESIGN.md section 12), served on their own HTTP listener
//! ([`http`]) with the health endpoints.
//!
//! Two kinds: counters and histograms updated on the request and storage paths (this module:
//! cheap atomic increments, label values looked up once per request), and gauges computed at
//! scrape time from the node's own state ([`view`]: replicas, disk, RocksDB, limits), so a
//! scrape costs the node work only when it happens; consumer group lag comes from each group's
//! coordinator, refreshed in the background ([`groups`]). Labels are bounded: topic names only of
//! topics in the metadata (a request naming an unknown topic counts under `topic=""`),
//! partitions, node ids, error codes from the fixed list, consumer group ids (capped per node,
//! [`groups::GROUPS_MAX`]); never producer ids or offsets.

pub mod groups;
pub mod http;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use cairn_raft::storage::{ProduceStage, StorageObserver};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Request outcome label of a success.
pub const OK: &str = "OK";
/// Request outcome label of a request the client gave up on before its answer.
pub const CANCELLED: &str = "CANCELLED";

/// Counters of one request kind (produce, fetch), by topic.
#[derive(Clone, Debug)]
pub struct Requests {
    requests: IntCounterVec,
    records: IntCounterVec,
    bytes: IntCounterVec,
}

impl Requests {
    fn new(registry: &Registry, kind: &str, moved: &str) -> Result<Requests, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("cairn_{kind}_requests_total"),
                format!("{kind} requests answered, by topic and outcome (OK or the error code)"),
            ),
            &["topic", "code"],
        )?;
        let records = IntCounterVec::new(
            Opts::new(format!("cairn_{kind}_records_total"), format!("records {moved}, by topic")),
            &["topic"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                format!("cairn_{kind}_bytes_total"),
                format!("record bytes (keys, values, headers) {moved}, by topic"),
            ),
            &["topic"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        Ok(Requests { requests, records, bytes })
    }

    /// One request answered: `code` is [`OK`] or the error code's name; `records`/`bytes` what
    /// it moved (0 on failure).
    pub fn answered(&self, topic: &str, code: &str, records: u64, bytes: u64) {
        self.requests.with_label_values(&[topic, code]).inc();
        if records > 0 {
            self.records.with_label_values(&[topic]).inc_by(records);
            self.bytes.with_label_values(&[topic]).inc_by(bytes);
        }
    }
}

/// Requests held back or refused by the byte-rate quotas, by direction (produce, fetch).
#[derive(Clone, Debug)]
pub struct QuotaMetrics {
    throttle_seconds: prometheus::CounterVec,
    refused: IntCounterVec,
}

impl QuotaMetrics {
    fn new(registry: &Registry) -> Result<QuotaMetrics, prometheus::Error> {
        let throttle_seconds = prometheus::CounterVec::new(
            Opts::new(
                "cairn_quota_throttle_seconds_total",
                "time requests were held back because their principal was over its byte-rate quota, by direction",
            ),
            &["direction"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "cairn_quota_refused_total",
                "requests refused THROTTLED: their principal was too far over its byte-rate quota, by direction",
            ),
            &["direction"],
        )?;
        registry.register(Box::new(throttle_seconds.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(QuotaMetrics { throttle_seconds, refused })
    }

    pub fn throttled(&self, direction: &str, wait: Duration) {
        self.throttle_seconds.with_label_values(&[direction]).inc_by(wait.as_secs_f64());
    }

    pub fn refused(&self, direction: &str) {
        self.refused.with_label_values(&[direction]).inc();
    }
}

/// Everything the node measures on its paths; the scrape-time gauges are in [`view`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub produce: Requests,
    pub fetch: Requests,
    pub quota: QuotaMetrics,
    produce_seconds: Histogram,
    elections: IntCounter,
    fsync: FsyncMetrics,
    scrub: ScrubMetrics,
}

/// Progress of the background scrubber: a storage-fault test (or an operator) knows from these
/// when every replica on the node has been verified since a given moment.
#[derive(Clone, Debug)]
pub struct ScrubMetrics {
    passes: IntCounter,
    last_pass_start: prometheus::Gauge,
}

impl ScrubMetrics {
    fn new(registry: &Registry) -> Result<ScrubMetrics, prometheus::Error> {
        let passes = IntCounter::new(
            "cairn_scrub_passes_total",
            "passes of the background scrubber that read (and so verified) every replica on this node",
        )?;
        let last_pass_start = prometheus::Gauge::new(
            "cairn_scrub_last_pass_start_timestamp_seconds",
            "when (unix seconds) the last complete scrubber pass began: damage older than this on a serving replica would have been found; 0 before the first",
        )?;
        registry.register(Box::new(passes.clone()))?;
        registry.register(Box::new(last_pass_start.clone()))?;
        Ok(ScrubMetrics { passes, last_pass_start })
    }

    /// A pass that began at `started` has read every replica it found then.
    pub fn pass_completed(&self, started: std::time::SystemTime) {
        self.passes.inc();
        let at = started.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.last_pass_start.set(at);
    }
}

/// Fsync timings, reported by the storage layer's syncer thread.
#[derive(Clone, Debug)]
struct FsyncMetrics {
    seconds: Histogram,
    appends: Histogram,
    stages: HistogramVec,
}

impl StorageObserver for FsyncMetrics {
    fn fsync_round(&self, duration: Duration, appends: usize) {
        self.seconds.observe(duration.as_secs_f64());
        self.appends.observe(appends as f64);
    }

    fn produce_stage(&self, stage: ProduceStage, duration: Duration) {
        self.stages.with_label_values(&[stage.name()]).observe(duration.as_secs_f64());
    }
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram, prometheus::Error> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Registers every path metric and the process collector (CPU, memory, open files).
    ///
    /// # Errors
    /// A metric that does not register (a name clash: a bug).
    pub fn new() -> Result<Arc<Metrics>, prometheus::Error> {
        let registry = Registry::new();
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let build = prometheus::IntGaugeVec::new(
            Opts::new("cairn_build_info", "always 1; the running version in its label"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        let produce = Requests::new(&registry, "produce", "appended (acknowledged)")?;
        let fetch = Requests::new(&registry, "fetch", "returned by fetches")?;
        let quota = QuotaMetrics::new(&registry)?;
        // 100 µs to ~6.5 s, doubling.
        let latency = prometheus::exponential_buckets(0.0001, 2.0, 17)?;
        let produce_seconds = histogram(
            &registry,
            "cairn_produce_latency_seconds",
            "produce requests from receipt to acknowledgement (appended on a majority, each fsynced)",
            latency.clone(),
        )?;
        let stages = HistogramVec::new(
            HistogramOpts::new(
                "cairn_produce_stage_seconds",
                "parts of a produce: queue and raft on the leader (waiting for the proposer; replication, fsyncs, commit and apply), apply on every replica (one state machine apply call holding a produce entry)",
            )
            .buckets(latency),
            &["stage"],
        )?;
        registry.register(Box::new(stages.clone()))?;
        let elections = IntCounter::new(
            "cairn_leader_elections_total",
            "terms in which a replica on this node became its partition's leader (sum over nodes: elections won)",
        )?;
        registry.register(Box::new(elections.clone()))?;
        let fsync = FsyncMetrics {
            seconds: histogram(
                &registry,
                "cairn_fsync_duration_seconds",
                "WAL fsync rounds of the node-wide syncer (one fsync covers every group's appends)",
                prometheus::exponential_buckets(0.00005, 2.0, 16)?,
            )?,
            appends: histogram(
                &registry,
                "cairn_fsync_round_appends",
                "group appends made durable by one WAL fsync round",
                prometheus::exponential_buckets(1.0, 2.0, 13)?,
            )?,
            stages,
        };
        let scrub = ScrubMetrics::new(&registry)?;
        Ok(Arc::new(Metrics { registry, produce, fetch, quota, produce_seconds, elections, fsync, scrub }))
    }

    /// What the storage layer reports fsync rounds to.
    pub fn storage_observer(&self) -> Arc<dyn StorageObserver> {
        Arc::new(self.fsync.clone())
    }

    /// What the scrubber reports its passes to.
    pub fn scrub(&self) -> ScrubMetrics {
        self.scrub.clone()
    }

    /// A produce request took `took` from receipt to its (successful) answer.
    pub fn produce_latency(&self, took: Duration) {
        self.produce_seconds.observe(took.as_secs_f64());
    }

    /// A replica on this node became leader in a new term.
    pub fn election_won(&self) {
        self.elections.inc();
    }

    /// Adds the scrape-time gauges (once the node's parts exist).
    ///
    /// # Errors
    /// A name clash (a bug).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        match prometheus::TextEncoder::new().encode_to_string(&families) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "metrics did not encode");
                String::new()
            }
        }
    }
}
