//! TLS on both listeners and on every connection to another node (rustls, ring provider).
//!
//! One set of files per node: the cluster CA, this node's certificate and its key. The client
//! listener presents the node certificate; the peer listener presents it too and **requires**
//! the caller's certificate, chained to the cluster CA and naming (as a DNS or IP subject
//! alternative name) the host of some member's peer address: another node, never a client
//! certificate of the same CA. Outgoing connections to peers check the server the same way any
//! TLS client does (the host dialled) and present the node certificate.
//!
//! ```text
//!  files ─► material::load ─► TlsState (current Material, swapped whole)
//!                                 │  SIGHUP, or a file's size/mtime changed (checked every 2 s)
//!                                 ▼
//!        reload::run ─► load again ─► ok: swap (new connections use it) │ error: keep the old, log
//!  acceptor::incoming: accept ─► handshake off the accept loop (bounded) ─► tonic
//! ```
//!
//! A node with TLS configured never serves or dials plaintext. Established connections are not
//! touched by a rotation: TLS checks certificates at the handshake only.

mod acceptor;
mod material;
mod reload;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use acceptor::incoming;
pub use material::Material;
pub use reload::run as reload;

/// The three files of a node's TLS setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which listener a connection arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Peer,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Peer => "peer",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The node's current TLS material, shared by the listeners and the peer connector.
#[derive(Clone)]
pub struct TlsState {
    files: TlsFiles,
    /// Hosts of the members' peer addresses: what a peer certificate must name.
    members: Vec<String>,
    current: Arc<RwLock<Arc<Material>>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState").field("files", &self.files).field("members", &self.members).finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads the files once.
    ///
    /// # Errors
    /// Unreadable or malformed files, a key that does not match the certificate.
    pub fn load(files: TlsFiles, members: Vec<String>) -> Result<TlsState, TlsError> {
        let material = material::load(&files, &members)?;
        Ok(TlsState { files, members, current: Arc::new(RwLock::new(Arc::new(material))) })
    }

    fn material(&self) -> Arc<Material> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The server configuration new connections on `side` are accepted with.
    pub fn server(&self, side: Side) -> Arc<rustls::ServerConfig> {
        let m = self.material();
        match side {
            Side::Client => m.client_listener.clone(),
            Side::Peer => m.peer_listener.clone(),
        }
    }

    /// The client configuration new connections to peers are made with.
    pub fn outgoing(&self) -> Arc<rustls::ClientConfig> {
        self.material().outgoing.clone()
    }

    /// A source of the current outgoing configuration for the Raft transport.
    pub fn source(&self) -> cairn_raft::network::ClientTlsSource {
        let this = self.clone();
        Arc::new(move || this.outgoing())
    }

    fn swap(&self, m: Material) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m);
    }
}
