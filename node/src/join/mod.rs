//! Start-up check of a node whose data directory is new: did the cluster know this node with
//! another directory (a wiped or lost disk)?
//!
//! ```text
//!  new directory ─► serve "joining" pings ─► ping the other members until a majority answered
//!     a peer has another directory registered for us ─► refuse to start (the replace procedure)
//!     a peer says we await our replacement          ─► join: new controller incarnation, no
//!                                                      group initialised, the leaders add us
//!     a majority know nothing of us (new cluster)    ─► bootstrap as a founding member
//! ```
//!
//! While checking, the node answers pings itself (saying it is joining), so the members of a
//! brand-new cluster, all checking at once, see each other; client calls get UNAVAILABLE. Safety does not rest on this check:
//! peers also refuse Raft traffic from a directory other than the registered one (see
//! [`cairn_raft::network::Directories`]); the check makes the refusal early and clear.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::node_internal_server::{NodeInternal, NodeInternalServer};
use cairn_proto::peer::{DescribeGroupsRequest, DescribeGroupsResponse, PingRequest, PingResponse};
use cairn_raft::network::PeerChannels;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::controller::state::CONTROLLER_INCARNATION;

pub mod cluster;
pub mod recover;
mod starting;

const ROUND: Duration = Duration::from_millis(300);

/// How the node may start with its new directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A founding member of a new cluster (or one the others never registered).
    Bootstrap,
    /// The replacement of a lost directory: this controller replica incarnation.
    Replacement { controller_incarnation: u32 },
}

impl Verdict {
    pub fn controller_incarnation(self) -> u32 {
        match self {
            Verdict::Bootstrap => CONTROLLER_INCARNATION,
            Verdict::Replacement { controller_incarnation } => controller_incarnation,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "node {node}: this data directory is new, but the cluster knows node {node} with data directory \
         {registered:#x} (node {peer} says so): this node's data is gone, and a node that forgets what it \
         acknowledged can lose acknowledged records. Refusing to start. To rebuild it from the other \
         replicas, run `cairn node replace {node}` against the cluster, then start this node again with an \
         empty data directory (docs/operations.md, \"Replacing a node\")"
    )]
    Amnesia { node: u64, registered: u64, peer: u64 },
    #[error(
        "data directory {} belongs to cluster {ours}, but node {peer} at {address} is a member of cluster \
         {theirs}: this is another cluster's directory (or another cluster now runs on these addresses). \
         Refusing to start; nothing in the directory was changed. Start this node with its own cluster's \
         data directory (to make this node a member of cluster {theirs} anew, see `cairn node replace` in \
         docs/operations.md, \"Replacing a node\")",
        dir.display()
    )]
    OtherCluster { dir: std::path::PathBuf, ours: String, theirs: String, peer: u64, address: String },
    #[error("cannot answer peers while checking: {0}")]
    Io(#[from] std::io::Error),
}

/// Answers pings while the node checks: it knows nothing yet.
struct Joining {
    me: u64,
}

#[tonic::async_trait]
impl NodeInternal for Joining {
    async fn describe_groups(
        &self,
        _request: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        Ok(Response::new(DescribeGroupsResponse { node_id: self.me, ..DescribeGroupsResponse::default() }))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse { node_id: self.me, joining: true, ..PingResponse::default() }))
    }

    async fn registry(
        &self,
        _request: Request<cairn_proto::peer::RegistryCall>,
    ) -> Result<Response<cairn_proto::peer::RegistryAnswer>, Status> {
        let reply = crate::registry::ops::PeerReply::NotLeader { hint: None };
        let bytes = serde_json::to_vec(&reply).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(cairn_proto::peer::RegistryAnswer { reply: bytes.into() }))
    }

    async fn coordinated_groups(
        &self,
        _request: Request<cairn_proto::peer::CoordinatedGroupsRequest>,
    ) -> Result<Response<cairn_proto::peer::CoordinatedGroupsResponse>, Status> {
        Ok(Response::new(cairn_proto::peer::CoordinatedGroupsResponse { node_id: self.me, groups: Vec::new() }))
    }
}

/// Clones of the node's listening sockets the check serves on.
pub struct Probes {
    pub client: std::net::TcpListener,
    pub peer: std::net::TcpListener,
    /// The node's TLS, if configured: the probes speak it too.
    pub tls: Option<crate::tls::TlsState>,
}

/// Asks the other members how this node may start with a new directory; serves "joining"
/// pings on the peer socket and UNAVAILABLE on the client one meanwhile. Waits as long as it
/// takes a majority of the initial cluster (this node included) to answer.
///
/// # Errors
/// [`JoinError::Amnesia`] when the cluster knows this node with another directory.
///
/// `replacing`: this node asked for its own replacement (see [`recover`]); a peer that still
/// has the old directory registered has not applied that yet and is asked again.
pub async fn check(
    config: &Config,
    probes: Probes,
    peers: &PeerChannels,
    replacing: bool,
) -> Result<Verdict, JoinError> {
    let me = config.node_id;
    let (stop, _) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (peer_listener, client_listener) =
        (tokio::net::TcpListener::from_std(probes.peer)?, tokio::net::TcpListener::from_std(probes.client)?);
    let peer_router = tonic::transport::Server::builder().add_service(NodeInternalServer::new(Joining { me }));
    let client_router = tonic::transport::Server::builder()
        .add_service(starting::Starting.broker())
        .add_service(starting::Starting.admin())
        .add_service(starting::Starting.groups());
    let (peer_server, client_server) = match &probes.tls {
        Some(t) => (
            tokio::spawn(peer_router.serve_with_incoming_shutdown(
                crate::tls::incoming(peer_listener, t.clone(), crate::tls::Side::Peer, None),
                stopped(stop.subscribe()),
            )),
            tokio::spawn(client_router.serve_with_incoming_shutdown(
                crate::tls::incoming(client_listener, t.clone(), crate::tls::Side::Client, None),
                stopped(stop.subscribe()),
            )),
        ),
        None => (
            tokio::spawn(
                peer_router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(peer_listener), stopped(stop.subscribe())),
            ),
            tokio::spawn(
                client_router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(client_listener), stopped(stop.subscribe())),
            ),
        ),
    };
    let verdict = ask(config, peers, replacing).await;
    stop.send_replace(true);
    // Connections to the check servers close; peers and clients reconnect to the node proper.
    for server in [peer_server, client_server] {
        if tokio::time::timeout(Duration::from_secs(3), server).await.is_err() {
            tracing::debug!("a start-up check server did not stop in time");
        }
    }
    verdict
}

async fn ask(config: &Config, peers: &PeerChannels, replacing: bool) -> Result<Verdict, JoinError> {
    let me = config.node_id;
    let majority = config.initial_cluster.len() / 2 + 1;
    let mut answered: BTreeSet<u64> = BTreeSet::new();
    let mut last_note = Instant::now();
    tracing::info!(node = me, "new data directory: asking the other members whether the cluster knew this node");
    loop {
        for (id, addr) in config.initial_cluster.iter().filter(|(id, _)| **id != me) {
            let Ok(ch) = peers.get(&addr.peer) else { continue };
            let mut req = Request::new(PingRequest { from_node_id: me });
            req.set_timeout(ROUND);
            let Ok(Ok(r)) = tokio::time::timeout(ROUND, NodeInternalClient::new(ch).ping(req)).await else { continue };
            let r = r.into_inner();
            if r.node_id != *id {
                continue;
            }
            let you = r.you.unwrap_or_default();
            if you.awaiting_replacement {
                tracing::info!(
                    node = me,
                    peer = id,
                    incarnation = you.controller_incarnation,
                    "joining as the replacement of this node's lost directory"
                );
                return Ok(Verdict::Replacement { controller_incarnation: you.controller_incarnation });
            }
            if you.registered_directory_id != 0 && replacing {
                continue; // this peer has not applied our replacement yet
            }
            if you.registered_directory_id != 0 {
                return Err(JoinError::Amnesia { node: me, registered: you.registered_directory_id, peer: *id });
            }
            answered.insert(*id);
        }
        if 1 + answered.len() >= majority && !replacing {
            return Ok(Verdict::Bootstrap);
        }
        if last_note.elapsed() > Duration::from_secs(5) {
            tracing::info!(node = me, answered = ?answered, majority, "waiting for a majority of the members to answer");
            last_note = Instant::now();
        }
        tokio::time::sleep(ROUND).await;
    }
}
