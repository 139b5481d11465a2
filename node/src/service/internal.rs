//! `cairn.peer.v1.NodeInternal`: what other nodes ask this one (not a public API).

use std::sync::Arc;

use cairn_proto::peer::node_internal_server::{NodeInternal, NodeInternalServer};
use cairn_proto::peer::{
    CoordinatedGroupsRequest, CoordinatedGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, MemberView,
    PingRequest, PingResponse, RegistryAnswer, RegistryCall, StoppedReplica,
};
use tonic::{Request, Response, Status};

use crate::describe::local_states;
use crate::groups::LocalGroups;

pub struct InternalService {
    groups: Arc<LocalGroups>,
    coordinators: Arc<crate::coordinator::Coordinators>,
    registry: Arc<crate::registry::Registry>,
    boot_id: u64,
    directory_id: u64,
}

impl InternalService {
    /// `boot_id` identifies this process start (peers detect restarts by its change);
    /// `directory_id` is this node's data directory.
    pub fn new(
        groups: Arc<LocalGroups>,
        coordinators: Arc<crate::coordinator::Coordinators>,
        registry: Arc<crate::registry::Registry>,
        boot_id: u64,
        directory_id: u64,
    ) -> InternalService {
        InternalService { groups, coordinators, registry, boot_id, directory_id }
    }

    pub fn into_server(self) -> NodeInternalServer<InternalService> {
        NodeInternalServer::new(self)
    }
}

#[tonic::async_trait]
impl NodeInternal for InternalService {
    async fn registry(&self, request: Request<RegistryCall>) -> Result<Response<RegistryAnswer>, Status> {
        let op: crate::registry::ops::Op = serde_json::from_slice(&request.into_inner().op)
            .map_err(|e| Status::invalid_argument(format!("undecodable registry operation: {e}")))?;
        let reply = self.registry.local_call(op).await;
        let bytes = serde_json::to_vec(&reply).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(RegistryAnswer { reply: bytes.into() }))
    }

    async fn describe_groups(
        &self,
        request: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        let ids = request.into_inner().group_ids;
        let groups = local_states(&self.groups, &ids);
        let column_family_bytes =
            self.groups.env().db.column_family_bytes().into_iter().map(|(cf, b)| (cf.to_string(), b)).collect();
        Ok(Response::new(DescribeGroupsResponse { node_id: self.groups.env().me, groups, column_family_bytes }))
    }

    async fn coordinated_groups(
        &self,
        _request: Request<CoordinatedGroupsRequest>,
    ) -> Result<Response<CoordinatedGroupsResponse>, Status> {
        let mut groups = Vec::new();
        for c in self.coordinators.all() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if c.send(crate::coordinator::Cmd::List { reply: tx }).is_ok() {
                if let Ok(Ok(list)) = rx.await {
                    groups.extend(list);
                }
            }
        }
        Ok(Response::new(CoordinatedGroupsResponse { node_id: self.groups.env().me, groups }))
    }

    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        // From the quiescence loop's last pass: pings are frequent, observing every group is not.
        let roles = self.groups.roles();
        let node_id = self.groups.env().me;
        let state = self.groups.state();
        let from = request.into_inner().from_node_id;
        let you = MemberView {
            registered_directory_id: state.directories.get(&from).copied().unwrap_or(0),
            awaiting_replacement: state.awaiting_replacement(from),
            controller_incarnation: state.controller_incarnation(from),
        };
        Ok(Response::new(PingResponse {
            node_id,
            boot_id: self.boot_id,
            stopped_groups: roles.stopped.iter().map(|s| s.group).collect(),
            stopped_replicas: roles
                .stopped
                .into_iter()
                .map(|s| StoppedReplica {
                    group_id: s.group,
                    replica_id: s.replica,
                    reason: s.failure.reason,
                    corrupt: s.failure.corrupt,
                })
                .collect(),
            leading_groups: roles.leading.into_keys().collect(),
            metadata_version: state.version,
            directory_id: self.directory_id,
            you: Some(you),
            joining: false,
            cluster_id: state.cluster_id.clone(),
            disk_free_bytes: self.groups.env().disk.reported_free_bytes(),
            disk_free_floor_bytes: self.groups.env().disk.floor_bytes(),
        }))
    }
}
