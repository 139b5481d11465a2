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
    /// Bearer token sent with every call (`authorization: Bearer …`), for a cluster with
    /// authentication on. Never printed.
    pub token: Option<Token>,
}

/// A bearer token; its `Debug` form hides it, so a logged configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(text: impl Into<String>) -> Token {
        Token(text.into().trim().to_string())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// A connection to one broker: the channel, with the credentials added to every call.
pub type Conn = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Credentials>;

/// Adds the bearer token, if any, to each call.
#[derive(Clone)]
pub struct Credentials(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Credentials {
    /// # Errors
    /// A token with characters a header cannot carry.
    pub(crate) fn new(token: Option<&Token>) -> Result<Credentials, crate::ClientError> {
        let Some(Token(text)) = token else {
            return Ok(Credentials(None));
        };
        let mut value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {text}").parse().map_err(|_| {
                crate::ClientError::InvalidArgument("the token has characters a header cannot carry".into())
            })?;
        value.set_sensitive(true);
        Ok(Credentials(Some(value)))
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
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
            token: None,
        }
    }

    /// Parses a comma-separated broker list.
    pub fn from_broker_list(list: &str) -> ClientConfig {
        ClientConfig::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from))
    }
}
