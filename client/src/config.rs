//! Client settings.

use std::time::Duration;

/// The local three-node cluster started by `deploy/local-cluster.sh`.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:7701,127.0.0.1:7702,127.0.0.1:7703";

/// How the client finds the cluster and how hard it tries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Bootstrap brokers, `host:port`. Any one reachable broker is enough.
    pub brokers: Vec<String>,
    /// Deadline of one attempt of one request.
    pub request_timeout: Duration,
    /// Total time an operation may spend retrying retriable errors (leader elections take
    /// seconds: budget at least 10 s).
    pub retry_deadline: Duration,
    /// NOT_LEADER redirects followed in a row before backing off and refreshing metadata.
    pub redirects_max: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    /// Largest response accepted (a fetch returns up to the server's fetch limit).
    pub message_bytes_max: usize,
    /// Cached metadata older than this is reloaded at its next use, so partitions added to a
    /// topic reach producers and consumers without a restart (Kafka's `metadata.max.age.ms`,
    /// 5 minutes there; shorter here, the answer being small).
    pub metadata_max_age: Duration,
    /// TLS to the brokers (None: plaintext).
    pub tls: Option<ClientTls>,
}

/// TLS settings of a client: the CA the brokers' certificates chain to, and optionally a
/// client certificate (mutual TLS). PEM text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    /// (certificate, key).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads the CA and, if given, the client certificate and key.
    ///
    /// # Errors
    /// A file that cannot be read; a certificate without its key or the reverse.
    pub fn from_files(
        ca: &std::path::Path,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> std::io::Result<ClientTls> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => return Err(std::io::Error::other("a client certificate needs its key, and a key its certificate")),
        };
        Ok(ClientTls { ca_pem: read(ca)?, identity })
    }
}

impl ClientConfig {
    pub fn new<I, S>(brokers: I) -> ClientConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            brokers: brokers.into_iter().map(Into::into).collect(),
            request_timeout: Duration::from_secs(12),
            retry_deadline: Duration::from_secs(20),
            redirects_max: 5,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            message_bytes_max: 64 << 20,
            metadata_max_age: Duration::from_secs(30),
            tls: None,
        }
    }

    /// Parses a comma-separated broker list.
    pub fn from_broker_list(list: &str) -> ClientConfig {
        ClientConfig::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from))
    }
}
