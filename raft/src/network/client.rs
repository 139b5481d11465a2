//! openraft's network side: one [`PeerClient`] per (group, target replica), all sharing the
//! per-address channels of [`PeerChannels`].

use std::future::Future;

use cairn_proto::peer::raft_reply::Result as Reply;
use cairn_proto::peer::raft_transport_client::RaftTransportClient;
use cairn_proto::peer::RaftRequest;
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, OptionalSend, RPCTypes};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::batcher::BatchError;
use super::codec::{from_bytes, to_bytes};
use super::peers::PeerChannels;
use crate::ids::{GroupId, ReplicaId};
use crate::types::{Snapshot, TypeConfig, Vote};

/// Creates openraft network clients for one group.
#[derive(Clone)]
pub struct NetworkFactory {
    group: GroupId,
    self_replica: ReplicaId,
    peers: PeerChannels,
}

impl NetworkFactory {
    pub fn new(group: GroupId, self_replica: ReplicaId, peers: PeerChannels) -> NetworkFactory {
        NetworkFactory { group, self_replica, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: ReplicaId, node: &BasicNode) -> PeerClient {
        PeerClient {
            group: self.group,
            self_replica: self.self_replica,
            target,
            addr: self.peers.options().addresses.resolve(crate::ids::node_of(target), &node.addr),
            peers: self.peers.clone(),
        }
    }
}

/// Sends one group's Raft RPCs to one target replica.
pub struct PeerClient {
    group: GroupId,
    self_replica: ReplicaId,
    target: ReplicaId,
    addr: String,
    peers: PeerChannels,
}

/// Which transport call to make.
#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    /// An AppendEntries without entries (a heartbeat): coalesced with other groups' ones.
    Heartbeat,
    Vote,
    Snapshot,
    Campaign,
}

/// Why a peer call failed, before mapping to openraft's error types.
enum CallError {
    /// Could not reach the peer, or it does not host the replica: back off.
    Unreachable(String),
    /// The peer's Raft returned an error (encoded).
    Remote(Vec<u8>),
    Timeout,
    Other(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerClient {
    /// The transport message for `payload`, stamped with both nodes' data directories.
    fn request(&self, payload: Vec<u8>) -> RaftRequest {
        let dirs = &self.peers.options().directories;
        RaftRequest {
            group_id: self.group,
            target_replica_id: self.target,
            payload: payload.into(),
            from_node_id: crate::ids::node_of(self.self_replica),
            from_directory_id: dirs.own(),
            target_directory_id: dirs.registered(crate::ids::node_of(self.target)),
        }
    }

    async fn call(&self, kind: Rpc, payload: Vec<u8>, ttl: std::time::Duration) -> Result<Vec<u8>, CallError> {
        if let Rpc::Heartbeat = kind {
            return self.coalesced(payload, ttl).await;
        }
        let channel = self
            .peers
            .get(&self.addr)
            .map_err(|e| CallError::Unreachable(format!("bad address {}: {e}", self.addr)))?;
        let max = self.peers.options().message_bytes_max;
        let mut client =
            RaftTransportClient::new(channel).max_decoding_message_size(max).max_encoding_message_size(max);
        let mut req = tonic::Request::new(self.request(payload));
        req.set_timeout(ttl);
        let fut = async {
            match kind {
                Rpc::Vote => client.vote(req).await,
                Rpc::Snapshot => client.full_snapshot(req).await,
                Rpc::AppendEntries | Rpc::Heartbeat => client.append_entries(req).await,
                Rpc::Campaign => client.campaign(req).await,
            }
        };
        let res = match tokio::time::timeout(ttl, fut).await {
            Err(_) => return Err(CallError::Timeout),
            Ok(r) => r,
        };
        match res {
            Ok(reply) => match reply.into_inner().result {
                Some(Reply::Ok(b)) => Ok(b.to_vec()),
                Some(Reply::RaftError(b)) => Err(CallError::Remote(b.to_vec())),
                Some(Reply::Unreachable(why)) => Err(CallError::Unreachable(why)),
                None => Err(CallError::Other("empty reply".into())),
            },
            Err(status) => match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unimplemented | tonic::Code::Cancelled => {
                    Err(CallError::Unreachable(status.message().to_string()))
                }
                tonic::Code::DeadlineExceeded => Err(CallError::Timeout),
                _ => Err(CallError::Other(format!("{}: {}", status.code(), status.message()))),
            },
        }
    }

    async fn coalesced(&self, payload: Vec<u8>, ttl: std::time::Duration) -> Result<Vec<u8>, CallError> {
        let batcher = self
            .peers
            .batcher(&self.addr)
            .map_err(|e| CallError::Unreachable(format!("bad address {}: {e}", self.addr)))?;
        match batcher.send(self.request(payload), ttl).await {
            Ok(reply) => match reply.result {
                Some(Reply::Ok(b)) => Ok(b.to_vec()),
                Some(Reply::RaftError(b)) => Err(CallError::Remote(b.to_vec())),
                Some(Reply::Unreachable(why)) => Err(CallError::Unreachable(why)),
                None => Err(CallError::Other("empty reply".into())),
            },
            Err(BatchError::Timeout) => Err(CallError::Timeout),
            Err(BatchError::Transport(why)) => Err(CallError::Unreachable(why)),
        }
    }

    /// The common shape of append-entries and vote: encode, call, decode.
    async fn unary<Req, Resp>(
        &self,
        kind: Rpc,
        action: RPCTypes,
        what: &'static str,
        rpc: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<ReplicaId, BasicNode, RaftError<ReplicaId>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let payload = to_bytes(what, rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match self.call(kind, payload, option.hard_ttl()).await {
            Ok(b) => from_bytes(what, &b).map_err(|e| RPCError::Network(NetworkError::new(&e))),
            Err(CallError::Remote(b)) => {
                let err: RaftError<ReplicaId> =
                    from_bytes("raft error", &b).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                Err(RPCError::RemoteError(RemoteError::new(self.target, err)))
            }
            Err(CallError::Unreachable(why)) => Err(RPCError::Unreachable(Unreachable::new(&Msg(why)))),
            Err(CallError::Timeout) => Err(RPCError::Timeout(self.timeout(action, option))),
            Err(CallError::Other(why)) => Err(RPCError::Network(NetworkError::new(&Msg(why)))),
        }
    }

    fn timeout(&self, action: RPCTypes, option: &RPCOption) -> Timeout<ReplicaId> {
        Timeout { action, id: self.self_replica, target: self.target, timeout: option.hard_ttl() }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ReplicaId>, RPCError<ReplicaId, BasicNode, RaftError<ReplicaId>>> {
        // Heartbeats of many groups share frames; appends carrying entries go on their own.
        let kind = if rpc.entries.is_empty() { Rpc::Heartbeat } else { Rpc::AppendEntries };
        self.unary(kind, RPCTypes::AppendEntries, "append entries", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ReplicaId>,
        option: RPCOption,
    ) -> Result<VoteResponse<ReplicaId>, RPCError<ReplicaId, BasicNode, RaftError<ReplicaId>>> {
        self.unary(Rpc::Vote, RPCTypes::Vote, "vote", &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<ReplicaId>, StreamingError<TypeConfig, Fatal<ReplicaId>>> {
        // openraft puts no deadline around a full snapshot: enforce ours.
        let ttl = self.peers.options().snapshot_timeout;
        let payload = to_bytes("snapshot", &(&vote, &snapshot.meta, &*snapshot.snapshot))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let res = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = self.call(Rpc::Snapshot, payload, ttl) => r,
        };
        match res {
            Ok(b) => from_bytes("snapshot response", &b).map_err(|e| StreamingError::Network(NetworkError::new(&e))),
            Err(CallError::Remote(b)) => {
                let err: Fatal<ReplicaId> =
                    from_bytes("fatal", &b).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
                Err(StreamingError::RemoteError(RemoteError::new(self.target, err)))
            }
            Err(CallError::Unreachable(why)) => Err(StreamingError::Unreachable(Unreachable::new(&Msg(why)))),
            Err(CallError::Timeout) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.self_replica,
                target: self.target,
                timeout: ttl,
            })),
            Err(CallError::Other(why)) => Err(StreamingError::Network(NetworkError::new(&Msg(why)))),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer soon enough that a restarted node rejoins quickly, rarely
        // enough that a dead one costs nothing.
        openraft::network::Backoff::new(std::iter::repeat(std::time::Duration::from_millis(200)))
    }
}

/// Asks replica `target` of `group`, on the node at `addr`, to start an election now
/// (preferred-leader rebalancing).
///
/// # Errors
/// The peer is unreachable, does not host that replica, or its Raft instance stopped.
pub async fn request_campaign(
    peers: &PeerChannels,
    addr: &str,
    group: GroupId,
    target: ReplicaId,
    from: ReplicaId,
) -> Result<(), String> {
    let client = PeerClient { group, self_replica: from, target, addr: addr.to_string(), peers: peers.clone() };
    match client.call(Rpc::Campaign, Vec::new(), std::time::Duration::from_secs(2)).await {
        Ok(_) => Ok(()),
        Err(CallError::Unreachable(why)) | Err(CallError::Other(why)) => Err(why),
        Err(CallError::Remote(_)) => Err("the target's raft stopped".into()),
        Err(CallError::Timeout) => Err("timed out".into()),
    }
}
