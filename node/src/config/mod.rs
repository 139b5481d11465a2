//! Node configuration: defaults → TOML file → `CAIRN_*` environment → flags, then
//! [`Config::validate`]. Unknown keys in the file are errors (a misspelt `fsync = false` must
//! not be silently ignored).

mod args;
mod error;
mod faults;
mod file;
mod validate;

pub use args::Args;
pub use error::ConfigError;
pub use faults::Faults;
pub use file::{
    AuthSection, FileConfig, GroupsSection, LimitsSection, LogSection, PrincipalQuota, QuotasSection, RaftSection,
    RetentionSection, StorageSection, TlsSection, TokenEntry, TopicSpec,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::address::NodeAddress;
pub use crate::auth::AuthConfig;
pub use crate::tls::TlsFiles;

/// The validated configuration a node runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub node_id: u64,
    /// Where the client listener (the public API) listens.
    pub listen_addr: SocketAddr,
    /// Inherited, already-listening socket to serve clients on instead of binding `listen_addr`.
    pub listen_fd: Option<i32>,
    /// Where the peer listener (Raft transport, node-internal calls) listens.
    pub peer_listen_addr: SocketAddr,
    /// Inherited, already-listening socket to serve peers on instead of binding
    /// `peer_listen_addr`.
    pub peer_listen_fd: Option<i32>,
    /// Where /metrics and /health/* are served.
    pub metrics_listen: MetricsListen,
    /// OpenTelemetry collector for this node's spans (OTLP/gRPC), if any.
    pub otlp_endpoint: Option<String>,
    /// The address clients use for this node (its client address in the initial cluster).
    pub advertise_addr: String,
    pub data_dir: PathBuf,
    /// Node id → client and peer address of every bootstrap member.
    pub initial_cluster: BTreeMap<u64, NodeAddress>,
    /// Topics created when the cluster is first bootstrapped.
    pub topics: Vec<TopicSpec>,
    pub raft: RaftSection,
    pub limits: LimitsSection,
    pub log: LogSection,
    pub storage: StorageSection,
    pub groups: GroupsSection,
    pub retention: RetentionSection,
    /// Test-only breakage; all off by default.
    pub faults: Faults,
    /// Local IP outgoing peer connections bind to.
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// TLS files; None: plaintext.
    pub tls: Option<TlsFiles>,
    /// Client authentication and ACLs.
    pub auth: AuthConfig,
    /// Byte-rate quotas per principal.
    pub quotas: QuotasSection,
}

impl Config {
    /// Builds the configuration from the parsed flags/environment and the optional file they
    /// name, then validates it.
    ///
    /// # Errors
    /// Unreadable or malformed file, unknown keys, missing required settings, and every
    /// contradiction [`Config::validate`] finds.
    pub fn load(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Config::from_layers(file, args)
    }

    /// Merges `file` under `args` (flags and environment win) and validates.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_layers(file: FileConfig, args: &Args) -> Result<Config, ConfigError> {
        let node_id =
            args.node_id.or(file.node_id).ok_or(ConfigError::Missing("node_id (--node-id / CAIRN_NODE_ID)"))?;
        let cluster_spec = args
            .initial_cluster
            .clone()
            .or(file.initial_cluster)
            .ok_or(ConfigError::Missing("initial_cluster (--initial-cluster / CAIRN_INITIAL_CLUSTER)"))?;
        let initial_cluster = validate::parse_initial_cluster(&cluster_spec)?;
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .ok_or(ConfigError::Missing("data_dir (--data-dir / CAIRN_DATA_DIR)"))?;
        let own = initial_cluster.get(&node_id).cloned();
        let advertise_addr =
            args.advertise_addr.clone().or(file.advertise_addr).or(own.as_ref().map(|a| a.client.clone())).ok_or(
                ConfigError::Invalid {
                    key: "initial_cluster",
                    message: format!("does not list this node (id {node_id})"),
                },
            )?;
        let listen_given = args.listen_addr.clone().or(file.listen_addr);
        let listen = listen_given.clone().unwrap_or_else(|| advertise_addr.clone());
        let listen_addr: SocketAddr = listen.parse().map_err(|_| ConfigError::Invalid {
            key: "listen_addr",
            message: format!("{listen:?} is not an IP:port socket address"),
        })?;
        let peer_listen_addr = peer_listen(args, file.peer_listen_addr, listen_given.is_some(), listen_addr, own)?;
        let metrics_listen = metrics_listen(args, file.metrics_listen.as_deref(), listen_addr)?;
        let topics = if args.topics.is_empty() { file.topics } else { args.topics.clone() };
        let mut log = file.log;
        if let Some(level) = &args.log_level {
            log.level = level.clone();
        }
        let faults = Faults::parse(&args.faults)?;
        let config = Config {
            node_id,
            listen_addr,
            listen_fd: args.listen_fd,
            peer_listen_addr,
            peer_listen_fd: args.peer_listen_fd,
            metrics_listen,
            otlp_endpoint: args.otlp_endpoint.clone().or(file.otlp_endpoint),
            advertise_addr,
            data_dir,
            initial_cluster,
            topics,
            raft: file.raft,
            limits: file.limits,
            log,
            storage: file.storage,
            groups: file.groups,
            retention: file.retention,
            faults,
            peer_source_ip: args.peer_source_ip.or(file.peer_source_ip),
            tls: tls_files(args, file.tls)?,
            auth: auth(args, file.auth)?,
            quotas: file.quotas,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The TLS files from flags over the file: all three, or none.
fn tls_files(args: &Args, file: TlsSection) -> Result<Option<TlsFiles>, ConfigError> {
    let ca = args.tls_ca.clone().or(file.ca_file);
    let cert = args.tls_cert.clone().or(file.cert_file);
    let key = args.tls_key.clone().or(file.key_file);
    match (ca, cert, key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles { ca, cert, key })),
        (ca, cert, key) => {
            let missing: Vec<&str> =
                [(ca.is_none(), "tls.ca_file"), (cert.is_none(), "tls.cert_file"), (key.is_none(), "tls.key_file")]
                    .into_iter()
                    .filter_map(|(m, k)| m.then_some(k))
                    .collect();
            Err(ConfigError::Invalid {
                key: "tls",
                message: format!("needs the CA, certificate and key files together; missing {}", missing.join(", ")),
            })
        }
    }
}

/// The `[auth]` settings, flags over the file; tokens from both.
fn auth(args: &Args, file: AuthSection) -> Result<AuthConfig, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { key: "auth", message };
    let super_users = if args.super_users.is_empty() { file.super_users } else { args.super_users.clone() };
    let mut tokens = Vec::new();
    for entry in file.tokens.iter().chain(&args.auth_tokens) {
        let principal = entry.principal.trim();
        crate::auth::check_principal_name(principal).map_err(|m| invalid(format!("token of {principal:?}: {m}")))?;
        let digest = crate::auth::token::parse_hex(&entry.sha256)
            .map_err(|m| invalid(format!("token of {principal:?}: sha256 {m}")))?;
        tokens.push((principal.to_string(), digest));
    }
    for name in &super_users {
        crate::auth::check_principal_name(name).map_err(|m| invalid(format!("super user {name:?}: {m}")))?;
    }
    Ok(AuthConfig {
        enabled: args.auth.map_or(file.enabled, |a| a.0),
        acls: args.acls.map_or(file.acls, |a| a.0),
        super_users,
        tokens: crate::auth::Tokens::new(tokens).map_err(invalid)?,
    })
}

/// Where the peer listener binds: `--peer-listen`; else, when the client listen address was
/// set (a container binding `0.0.0.0`), its IP at this node's peer port; else this node's peer
/// address in the initial cluster.
fn peer_listen(
    args: &Args,
    file: Option<String>,
    listen_given: bool,
    listen: SocketAddr,
    own: Option<NodeAddress>,
) -> Result<SocketAddr, ConfigError> {
    let invalid = |text: &str| ConfigError::Invalid {
        key: "peer_listen_addr",
        message: format!("{text:?} is not an IP:port socket address"),
    };
    if let Some(text) = args.peer_listen_addr.clone().or(file) {
        return text.parse().map_err(|_| invalid(&text));
    }
    let Some(own) = own else {
        // No own entry: validation names the real problem.
        return Ok(SocketAddr::new(listen.ip(), 0));
    };
    let (_, port) = crate::address::host_port(&own.peer)
        .map_err(|m| ConfigError::Invalid { key: "initial_cluster", message: m })?;
    if listen_given {
        return Ok(SocketAddr::new(listen.ip(), port));
    }
    own.peer.parse().map_err(|_| ConfigError::Invalid {
        key: "peer_listen_addr",
        message: format!(
            "this node's peer address {} is not an IP:port to listen on; set peer_listen_addr (--peer-listen)",
            own.peer
        ),
    })
}

/// Where the metrics and health endpoints are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    /// `explicit`: configured (a bind failure stops the node) rather than derived from the
    /// client port (a bind failure is logged and the node runs without metrics).
    Addr {
        addr: SocketAddr,
        explicit: bool,
    },
    /// An inherited listening socket.
    Fd(i32),
}

/// Offset of the default metrics port from the client port.
pub const METRICS_PORT_OFFSET: u16 = 2000;

fn metrics_listen(args: &Args, file: Option<&str>, listen: SocketAddr) -> Result<MetricsListen, ConfigError> {
    if let Some(fd) = args.metrics_listen_fd {
        return Ok(MetricsListen::Fd(fd));
    }
    match args.metrics_listen.as_deref().or(file) {
        Some("off") => Ok(MetricsListen::Off),
        Some(text) => {
            text.parse().map(|addr| MetricsListen::Addr { addr, explicit: true }).map_err(|_| ConfigError::Invalid {
                key: "metrics_listen",
                message: format!("{text:?} is neither \"off\" nor an IP:port socket address"),
            })
        }
        // An inherited client socket (a test harness, a supervisor) says nothing about which
        // ports are free: no metrics unless asked for.
        None if args.listen_fd.is_some() || listen.port() == 0 => Ok(MetricsListen::Off),
        None => Ok(match listen.port().checked_add(METRICS_PORT_OFFSET) {
            Some(port) => MetricsListen::Addr { addr: SocketAddr::new(listen.ip(), port), explicit: false },
            None => MetricsListen::Off,
        }),
    }
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
