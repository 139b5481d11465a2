//! The optional TOML file layer. Every key is optional here; required ones may come from flags
//! or the environment instead.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;

/// The TOML file as written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<u64>,
    pub listen_addr: Option<String>,
    /// Where the peer listener binds (`IP:PORT`).
    pub peer_listen_addr: Option<String>,
    pub advertise_addr: Option<String>,
    /// HTTP listener for metrics and health (`"off"`, or `IP:PORT`).
    pub metrics_listen: Option<String>,
    /// OpenTelemetry collector receiving this node's spans over OTLP/gRPC.
    pub otlp_endpoint: Option<String>,
    /// Local IP outgoing connections to other nodes bind to.
    pub peer_source_ip: Option<std::net::IpAddr>,
    pub data_dir: Option<PathBuf>,
    /// `"1=127.0.0.1:7701,2=127.0.0.1:7702,3=127.0.0.1:7703"` (peers on 8701..8703), or with
    /// the peer addresses named: `"1=10.0.0.1:7701/10.1.0.1:7801,..."`.
    pub initial_cluster: Option<String>,
    #[serde(default)]
    pub topics: Vec<TopicSpec>,
    #[serde(default)]
    pub raft: RaftSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub groups: GroupsSection,
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub quotas: QuotasSection,
}

impl FileConfig {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// I/O errors, TOML syntax errors, unknown keys, wrong types.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source: Box::new(source) })
    }
}

/// TLS on both listeners and between nodes: all three files, or none (plaintext).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM: the cluster CA (peers' certificates must chain to it).
    pub ca_file: Option<PathBuf>,
    /// PEM: this node's certificate (chain), naming its hosts as subject alternative names.
    pub cert_file: Option<PathBuf>,
    /// PEM: the certificate's private key.
    pub key_file: Option<PathBuf>,
}

/// Client authentication and authorization. Off by default (every client may do everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Every call of the public API must carry a client certificate of the cluster CA or a
    /// bearer token.
    pub enabled: bool,
    /// ACLs decide what each principal may do (needs `enabled`).
    pub acls: bool,
    /// Principals that pass every ACL check.
    pub super_users: Vec<String>,
    /// Bearer tokens, stored as their SHA-256 digests (`cairn token new` prints one).
    pub tokens: Vec<TokenEntry>,
}

/// One bearer token: whose it is and the SHA-256 (64 hex digits) of the token text.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub principal: String,
    pub sha256: String,
}

impl std::str::FromStr for TokenEntry {
    type Err = String;

    /// `PRINCIPAL:SHA256`, e.g. `alice:9f86d081…`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (principal, sha256) = s.rsplit_once(':').ok_or_else(|| format!("{s:?}: expected PRINCIPAL:SHA256"))?;
        Ok(TokenEntry { principal: principal.to_string(), sha256: sha256.to_string() })
    }
}

/// Byte-rate quotas per principal, on each node (0: unlimited, the default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasSection {
    /// Record bytes a principal may produce to this node per second.
    pub produce_bytes_per_second: u64,
    /// Record bytes a principal may fetch from this node per second.
    pub fetch_bytes_per_second: u64,
    /// Principals with rates of their own (both rates replace the defaults; 0: unlimited).
    pub principals: Vec<PrincipalQuota>,
}

/// One principal's own rates.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalQuota {
    pub principal: String,
    #[serde(default)]
    pub produce_bytes_per_second: u64,
    #[serde(default)]
    pub fetch_bytes_per_second: u64,
}

/// A topic created at bootstrap.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
}

impl std::str::FromStr for TopicSpec {
    type Err = String;

    /// `name:partitions`, e.g. `orders:6`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, n) = s.rsplit_once(':').ok_or_else(|| format!("{s:?}: expected NAME:PARTITIONS"))?;
        let partitions = n.parse().map_err(|_| format!("{s:?}: partition count {n:?} is not a number"))?;
        Ok(TopicSpec { name: name.to_string(), partitions })
    }
}

/// Raft timers. Failover takes about `election_timeout_ms_max` (the leader lease) plus one
/// election timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Also the AppendEntries timeout: a payload transfer plus a follower fsync must fit.
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection { heartbeat_interval_ms: 400, election_timeout_ms_min: 1_000, election_timeout_ms_max: 1_400 }
    }
}

/// Sizes, queues and deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest record (key + value + headers).
    pub record_bytes_max: usize,
    /// Largest gRPC request a client may send.
    pub request_bytes_max: usize,
    /// Largest fetch response payload (a single larger record is still returned alone).
    pub fetch_bytes_max: usize,
    /// Longest a fetch may wait for new records.
    pub fetch_wait_ms_max: u64,
    /// Produce requests queued per partition before THROTTLED.
    pub proposal_queue_max: usize,
    /// Produce batches per Raft entry.
    pub entry_batches_max: usize,
    /// Record bytes per Raft entry.
    pub entry_bytes_max: usize,
    /// Entries in flight per partition.
    pub proposals_in_flight_max: usize,
    /// How long a produce waits for commit before answering "outcome unknown".
    pub produce_timeout_ms: u64,
    /// Idempotent producers one partition remembers; a new one beyond it evicts the one idle
    /// the longest (whose next batch then gets UNKNOWN_PRODUCER). About 0.3 KiB each.
    pub producers_per_partition_max: u32,
    /// A partition forgets a producer idle this long (by the log's clock).
    pub producer_expiry_ms: u64,
    /// Record keys one partition's last-offset-by-key index holds (conditional appends with
    /// expected_key_offset); beyond it the key written the longest ago is forgotten, and a key
    /// condition on it is refused until an append with expected_offset indexes it again. About
    /// the key's length plus 170 bytes each; 0 turns key conditions off.
    pub key_index_keys_per_partition_max: u32,
    /// Named producers the cluster registers; InitProducer with a new name beyond it gets
    /// LIMIT_EXCEEDED.
    pub named_producers_max: u64,
    /// A named producer's registration is forgotten this long after its last InitProducer.
    pub named_producer_expiry_ms: u64,
    /// How long InitProducer for a named producer waits for every live node to learn the new
    /// epoch (the older instance fenced everywhere) before answering TIMEOUT.
    pub producer_fence_wait_ms: u64,
    /// Partition replicas one node may host (CreateTopic beyond it: LIMIT_EXCEEDED).
    pub partition_replicas_per_node_max: u64,
    /// Partitions in the whole cluster.
    pub partitions_max: u64,
    /// Connections open at once on the client listener; one more is closed at once.
    pub client_connections_max: usize,
    /// Concurrent calls (HTTP/2 streams) one client connection may have open; a client waits
    /// for a free one beyond it.
    pub client_streams_per_connection_max: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            record_bytes_max: 1 << 20,
            request_bytes_max: 16 << 20,
            fetch_bytes_max: 4 << 20,
            fetch_wait_ms_max: 30_000,
            proposal_queue_max: 4096,
            entry_batches_max: 256,
            entry_bytes_max: 4 << 20,
            proposals_in_flight_max: 64,
            produce_timeout_ms: 10_000,
            producers_per_partition_max: 1_000,
            producer_expiry_ms: 86_400_000,
            key_index_keys_per_partition_max: cairn_raft::storage::key_index::KEY_INDEX_KEYS_MAX_DEFAULT,
            named_producers_max: 100_000,
            named_producer_expiry_ms: 7 * 86_400_000,
            producer_fence_wait_ms: 10_000,
            partition_replicas_per_node_max: 4_000,
            partitions_max: 20_000,
            client_connections_max: 10_000,
            client_streams_per_connection_max: 1_000,
        }
    }
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `info,cairn_raft=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info,openraft=warn,openraft::replication=off".into(), format: "text".into() }
    }
}

/// Storage health: the background scrubber and the repair of stopped replicas.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Bytes per second the scrubber reads (and so verifies) of this node's replicas; 0 turns
    /// it off.
    pub scrub_bytes_per_second: u64,
    /// Controller: a replica stopped for a reason other than damaged data (which is repaired
    /// at once) is rebuilt after it has stayed stopped this long despite its node's restarts.
    pub repair_stopped_after_ms: u64,
    /// Controller: replica repairs started per minute, cluster-wide, at most.
    pub repairs_per_minute_max: u32,
    /// Below this many free bytes in the data directory the node refuses writes (produce, and
    /// new log entries from leaders) and keeps serving reads; 0 turns the check off. At least
    /// 4 × `write_buffer_bytes`: RocksDB needs room to flush its memtables (the log's is twice
    /// the others'), and recovers from a disk that did fill only once it has that room.
    pub free_space_min_bytes: u64,
    /// RocksDB memtable size per column family (the log's is twice this): memory held before a
    /// flush to disk.
    pub write_buffer_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            scrub_bytes_per_second: 8 << 20,
            repair_stopped_after_ms: 120_000,
            repairs_per_minute_max: 6,
            free_space_min_bytes: 128 << 20,
            write_buffer_bytes: 32 << 20,
        }
    }
}

/// Consumer groups: the internal topic holding their state, and the bounds of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsSection {
    /// Partitions of `__consumer_offsets`, fixed when the controller creates it at bootstrap.
    pub offsets_partitions: u32,
    /// Session timeout of a member that asks for none.
    pub session_timeout_ms: u32,
    /// Bounds of the session timeout a member may ask for.
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
    /// How often members heartbeat (told to them in every answer; at most a third of a
    /// member's session timeout).
    pub heartbeat_interval_ms: u32,
    /// How long a member may take to give up revoked partitions when it asks for no limit.
    pub rebalance_timeout_ms: u32,
    pub members_per_group_max: u32,
    /// Groups one `__consumer_offsets` partition holds (each coordinator keeps them in memory).
    pub groups_per_partition_max: u32,
    /// Bytes of the metadata string of one committed offset.
    pub commit_metadata_bytes_max: u32,
}

impl Default for GroupsSection {
    fn default() -> Self {
        GroupsSection {
            offsets_partitions: 12,
            session_timeout_ms: 10_000,
            session_timeout_ms_min: 1_000,
            session_timeout_ms_max: 300_000,
            heartbeat_interval_ms: 1_000,
            rebalance_timeout_ms: 60_000,
            members_per_group_max: 1_000,
            groups_per_partition_max: 10_000,
            commit_metadata_bytes_max: 4_096,
        }
    }
}

/// Retention: the cluster defaults a topic's own settings override, how the log is cut into
/// truncation points, and how often leaders check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Keep records this long (by their timestamps); -1 = forever. Kafka's `log.retention.ms`.
    pub retention_ms: i64,
    /// Keep about this many record bytes per partition; -1 = unlimited. Kafka's
    /// `log.retention.bytes`.
    pub retention_bytes: i64,
    /// A partition's leader starts a new segment (proposes a checkpoint, the unit retention
    /// removes) after this many record bytes. Kafka's `log.segment.bytes`.
    pub segment_bytes: u64,
    /// ... or once the segment's first records are this old. Kafka's `log.roll.ms`.
    pub segment_ms: u64,
    /// How often leaders check their partitions against retention (and every replica frees
    /// what was truncated). Kafka's `log.retention.check.interval.ms`.
    pub check_interval_ms: u64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            segment_bytes: 64 << 20,
            segment_ms: 7 * 24 * 3_600_000,
            check_interval_ms: 5_000,
        }
    }
}
