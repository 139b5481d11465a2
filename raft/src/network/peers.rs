//! One gRPC channel per peer address, created once and shared by every group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::batcher::Batcher;
use super::directories::Directories;

/// Transport settings for peer channels.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    pub connect_timeout: Duration,
    /// Largest message accepted or sent (above the per-RPC byte cap of log reads).
    pub message_bytes_max: usize,
    /// Deadline of a full-snapshot transfer (openraft puts none around it).
    pub snapshot_timeout: Duration,
    /// Local address outgoing peer connections bind to (hosts with several addresses; the
    /// fault suite uses it to cut links between nodes sharing one network namespace).
    pub local_address: Option<std::net::IpAddr>,
    /// This node's data directory and every node's registered one (stamped on every message).
    pub directories: Directories,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            connect_timeout: Duration::from_millis(500),
            message_bytes_max: 64 << 20,
            snapshot_timeout: Duration::from_secs(30),
            local_address: None,
            directories: Directories::default(),
        }
    }
}

/// Cache of peer channels (and heartbeat batchers) by address.
#[derive(Clone)]
pub struct PeerChannels {
    opts: PeerOptions,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    batchers: Arc<Mutex<HashMap<String, Batcher>>>,
}

impl PeerChannels {
    pub fn new(opts: PeerOptions) -> PeerChannels {
        PeerChannels { opts, channels: Arc::default(), batchers: Arc::default() }
    }

    /// The batcher coalescing small messages to `addr`, started on first use.
    pub(crate) fn batcher(&self, addr: &str) -> Result<Batcher, tonic::transport::Error> {
        let mut map = self.batchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(addr) {
            return Ok(b.clone());
        }
        let b = Batcher::spawn(self.get(addr)?, self.opts.message_bytes_max);
        map.insert(addr.to_string(), b.clone());
        Ok(b)
    }

    pub fn options(&self) -> &PeerOptions {
        &self.opts
    }

    /// The channel to `addr` (`host:port`), connecting lazily on first use.
    ///
    /// # Errors
    /// An address that is not a valid URI authority.
    pub fn get(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let ch = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.opts.connect_timeout)
            .local_address(self.opts.local_address)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}
