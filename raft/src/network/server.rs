//! The receiving side of the peer transport: decode, route to the group's Raft, encode.

use cairn_proto::peer::raft_reply::Result as Reply;
use cairn_proto::peer::raft_transport_server::{RaftTransport, RaftTransportServer};
use cairn_proto::peer::{RaftBatch, RaftBatchReply, RaftReply, RaftRequest};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::codec::{from_bytes, to_bytes, CodecError};
use super::directories::Directories;
use super::registry::GroupRegistry;
use crate::ids::ReplicaId;
use crate::types::{CheckpointData, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// gRPC service delivering peer messages to local groups.
#[derive(Clone)]
pub struct PeerService {
    registry: GroupRegistry,
    directories: Directories,
    message_bytes_max: usize,
    write_gate: Option<WriteGate>,
}

/// Answers why this node must not append new log entries now (None: it may).
pub type WriteGate = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

impl PeerService {
    pub fn new(registry: GroupRegistry, directories: Directories, message_bytes_max: usize) -> PeerService {
        PeerService { registry, directories, message_bytes_max, write_gate: None }
    }

    /// Refuses AppendEntries carrying entries while `gate` answers why (a full disk).
    pub fn with_write_gate(mut self, gate: WriteGate) -> PeerService {
        self.write_gate = Some(gate);
        self
    }

    /// The tonic service to mount on the node's server.
    pub fn into_server(self) -> RaftTransportServer<PeerService> {
        let max = self.message_bytes_max;
        RaftTransportServer::new(self).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    /// The local replica a message is for, once both nodes' directories check out.
    fn route(&self, req: &RaftRequest) -> Result<Raft, String> {
        self.directories.admit(req.from_node_id, req.from_directory_id, req.target_directory_id)?;
        self.registry.lookup(req.group_id, req.target_replica_id)
    }
}

fn reply<T: Serialize, E: Serialize>(what: &'static str, res: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let result = match res {
        Ok(v) => Reply::Ok(to_bytes(what, &v).map_err(codec_status)?.into()),
        Err(e) => Reply::RaftError(to_bytes("raft error", &e).map_err(codec_status)?.into()),
    };
    Ok(Response::new(RaftReply { result: Some(result) }))
}

fn codec_status(e: CodecError) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl RaftTransport for PeerService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = match self.route(&req) {
            Ok(r) => r,
            Err(why) => return Ok(Response::new(RaftReply { result: Some(Reply::Unreachable(why)) })),
        };
        let rpc: AppendEntriesRequest<TypeConfig> = from_bytes("append entries", &req.payload).map_err(codec_status)?;
        if !rpc.entries.is_empty() {
            // No room for new entries: the leader treats this replica as unreachable for now
            // (and retries), instead of this replica's write failing and stopping its group.
            if let Some(why) = self.write_gate.as_ref().and_then(|gate| gate()) {
                return Ok(Response::new(RaftReply { result: Some(Reply::Unreachable(why)) }));
            }
        }
        reply("append entries response", raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = match self.route(&req) {
            Ok(r) => r,
            Err(why) => return Ok(Response::new(RaftReply { result: Some(Reply::Unreachable(why)) })),
        };
        let rpc: VoteRequest<ReplicaId> = from_bytes("vote", &req.payload).map_err(codec_status)?;
        reply("vote response", raft.vote(rpc).await)
    }

    async fn campaign(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = match self.route(&req) {
            Ok(r) => r,
            Err(why) => return Ok(Response::new(RaftReply { result: Some(Reply::Unreachable(why)) })),
        };
        let res: Result<(), openraft::error::Fatal<ReplicaId>> = raft.trigger().elect().await;
        reply("campaign", res)
    }

    async fn batch(&self, request: Request<RaftBatch>) -> Result<Response<RaftBatchReply>, Status> {
        // Each message goes to its own group, concurrently; one slow group does not hold up the
        // others' processing, only the shared reply.
        let replies = futures::future::join_all(request.into_inner().requests.into_iter().map(|req| async move {
            match self.append_entries(Request::new(req)).await {
                Ok(r) => r.into_inner(),
                Err(status) => RaftReply { result: Some(Reply::Unreachable(status.message().to_string())) },
            }
        }))
        .await;
        Ok(Response::new(RaftBatchReply { replies }))
    }

    async fn full_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = match self.route(&req) {
            Ok(r) => r,
            Err(why) => return Ok(Response::new(RaftReply { result: Some(Reply::Unreachable(why)) })),
        };
        let (vote, meta, data): (Vote, SnapshotMeta, CheckpointData) =
            from_bytes("snapshot", &req.payload).map_err(codec_status)?;
        let snapshot = Snapshot { meta, snapshot: Box::new(data) };
        reply("snapshot response", raft.install_full_snapshot(vote, snapshot).await)
    }
}
