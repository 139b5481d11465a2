//! Command-line flags, each also settable through a `CAIRN_*` environment variable.

use std::path::PathBuf;

use clap::Parser;

use super::file::{TokenEntry, TopicSpec};

/// cairn-node: one node of a Cairn cluster.
#[derive(Clone, Debug, Default, Parser)]
#[command(name = "cairn-node", version, about)]
pub struct Args {
    /// TOML configuration file (flags and CAIRN_* variables override it).
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (1 ..= 4294967295), unique in the cluster and never reused.
    #[arg(long, env = "CAIRN_NODE_ID")]
    pub node_id: Option<u64>,
    /// Address to listen on (default: this node's address in --initial-cluster).
    #[arg(long = "listen", env = "CAIRN_LISTEN_ADDR")]
    pub listen_addr: Option<String>,
    /// Serve clients on an inherited listening socket (file descriptor number) instead of binding.
    #[arg(long, env = "CAIRN_LISTEN_FD")]
    pub listen_fd: Option<i32>,
    /// Address the peer listener (replication, node-internal calls) binds (default: this node's
    /// peer address in --initial-cluster, or the --listen IP at that port).
    #[arg(long = "peer-listen", env = "CAIRN_PEER_LISTEN_ADDR")]
    pub peer_listen_addr: Option<String>,
    /// Serve peers on an inherited listening socket (file descriptor number) instead of binding.
    #[arg(long, env = "CAIRN_PEER_LISTEN_FD")]
    pub peer_listen_fd: Option<i32>,
    /// HTTP listener for /metrics and /health/* (`off` for none; default: the listen port + 2000,
    /// e.g. 7701 gives 9701).
    #[arg(long, env = "CAIRN_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Export this node's spans over OTLP/gRPC to this collector (e.g. `http://127.0.0.1:4317`).
    #[arg(long, env = "CAIRN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve /metrics on an inherited listening socket (file descriptor number).
    #[arg(long, env = "CAIRN_METRICS_LISTEN_FD")]
    pub metrics_listen_fd: Option<i32>,
    /// Address clients reach this node at (default: its client address in --initial-cluster).
    #[arg(long = "advertise", env = "CAIRN_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Bind outgoing connections to other nodes to this local IP (hosts with several addresses).
    #[arg(long, env = "CAIRN_PEER_SOURCE_IP")]
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// TLS: the cluster CA certificate (PEM). With --tls-cert and --tls-key, both listeners and
    /// every connection to another node use TLS, and peers must present a member certificate.
    #[arg(long, env = "CAIRN_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// TLS: this node's certificate (PEM).
    #[arg(long, env = "CAIRN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: this node's private key (PEM).
    #[arg(long, env = "CAIRN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Client authentication, `on` or `off` (default off: every client may do everything).
    #[arg(long, env = "CAIRN_AUTH")]
    pub auth: Option<OnOff>,
    /// ACLs decide what each principal may do, `on` or `off` (needs --auth on).
    #[arg(long, env = "CAIRN_ACLS")]
    pub acls: Option<OnOff>,
    /// Principals that pass every ACL check (comma-separated; replaces the file's list).
    #[arg(long = "super-user", env = "CAIRN_SUPER_USERS", value_delimiter = ',')]
    pub super_users: Vec<String>,
    /// A bearer token, `PRINCIPAL:SHA256` (repeatable; added to the file's tokens). Only the
    /// digest is given to the node: `cairn token new` prints a token and its digest.
    #[arg(long = "auth-token", env = "CAIRN_AUTH_TOKENS", value_delimiter = ',')]
    pub auth_tokens: Vec<TokenEntry>,
    /// Data directory (created if missing; bound to this node id on first start).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bootstrap members, `ID=HOST:PORT,...` (client addresses; each peers on its port + 1000) or
    /// `ID=CLIENT_HOST:PORT/PEER_HOST:PORT,...`.
    #[arg(long, env = "CAIRN_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Topic to create at bootstrap, `NAME:PARTITIONS` (repeatable; replaces the file's list).
    #[arg(long = "topic", env = "CAIRN_TOPICS", value_delimiter = ',')]
    pub topics: Vec<TopicSpec>,
    /// Log filter (e.g. `info`, `debug`, `info,cairn_raft=debug`).
    #[arg(long, env = "CAIRN_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Deliberate breakage for the test and fault suites (`drop-produce-responses=P`,
    /// `no-dedup`, `ack-before-commit`, `fetch-above-hw`). Never set in production.
    #[arg(long = "fault", env = "CAIRN_FAULTS", value_delimiter = ',', hide = true)]
    pub faults: Vec<String>,
}

/// A switch given as `on`/`off` (also `true`/`false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl std::str::FromStr for OnOff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" | "true" => Ok(OnOff(true)),
            "off" | "false" => Ok(OnOff(false)),
            other => Err(format!("{other:?}: expected on or off")),
        }
    }
}
