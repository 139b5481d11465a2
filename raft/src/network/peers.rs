//! One gRPC channel per peer address, created once and shared by every group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::batcher::Batcher;
use super::directories::Directories;
use super::tls::{ClientTlsSource, TlsConnector};
use crate::ids::NodeId;

/// Transport settings for peer channels.
#[derive(Clone)]
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
    /// Where each node's peer listener is.
    pub addresses: AddressBook,
    /// TLS for every outgoing connection (None: plaintext).
    pub tls: Option<ClientTlsSource>,
}

impl std::fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerOptions")
            .field("local_address", &self.local_address)
            .field("addresses", &self.addresses)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            connect_timeout: Duration::from_millis(500),
            message_bytes_max: 64 << 20,
            snapshot_timeout: Duration::from_secs(30),
            local_address: None,
            directories: Directories::default(),
            addresses: AddressBook::default(),
            tls: None,
        }
    }
}

/// Node id → address of the node's peer listener, shared by every clone.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    peers: Arc<std::sync::RwLock<HashMap<NodeId, String>>>,
}

impl AddressBook {
    /// Replaces the whole book.
    pub fn set(&self, peers: HashMap<NodeId, String>) {
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// Where to reach `node`'s Raft transport: its peer address, or `membership_addr` (the
    /// address its membership entry carries) for a node the book does not list, as when one
    /// listener serves everything (this crate's own tests).
    pub fn resolve(&self, node: NodeId, membership_addr: &str) -> String {
        self.peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .cloned()
            .unwrap_or_else(|| membership_addr.to_string())
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
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.opts.connect_timeout)
            .local_address(self.opts.local_address)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let ch = match &self.opts.tls {
            // TLS by our own connector: it reads the node's current certificate at every
            // (re)connection, so a rotated one is picked up without a restart.
            Some(tls) => endpoint.connect_with_connector_lazy(TlsConnector {
                tls: tls.clone(),
                local_address: self.opts.local_address,
                connect_timeout: self.opts.connect_timeout,
            }),
            None => endpoint.connect_lazy(),
        };
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}
