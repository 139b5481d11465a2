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
        }
    }

    /// Parses a comma-separated broker list.
    pub fn from_broker_list(list: &str) -> ClientConfig {
        ClientConfig::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from))
    }
}
