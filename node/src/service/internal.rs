//! `cairn.peer.v1.NodeInternal`: what other nodes ask this one (not a public API).

use std::sync::Arc;

use cairn_proto::peer::node_internal_server::{NodeInternal, NodeInternalServer};
use cairn_proto::peer::{DescribeGroupsRequest, DescribeGroupsResponse, PingRequest, PingResponse};
use tonic::{Request, Response, Status};

use crate::describe::local_states;
use crate::groups::LocalGroups;

pub struct InternalService {
    groups: Arc<LocalGroups>,
    boot_id: u64,
}

impl InternalService {
    /// `boot_id` identifies this process start (peers detect restarts by its change).
    pub fn new(groups: Arc<LocalGroups>, boot_id: u64) -> InternalService {
        InternalService { groups, boot_id }
    }

    pub fn into_server(self) -> NodeInternalServer<InternalService> {
        NodeInternalServer::new(self)
    }
}

#[tonic::async_trait]
impl NodeInternal for InternalService {
    async fn describe_groups(
        &self,
        request: Request<DescribeGroupsRequest>,
    ) -> Result<Response<DescribeGroupsResponse>, Status> {
        let ids = request.into_inner().group_ids;
        let groups = local_states(&self.groups, &ids);
        Ok(Response::new(DescribeGroupsResponse { node_id: self.groups.env().me, groups }))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        // From the quiescence loop's last pass: pings are frequent, observing every group is not.
        let roles = self.groups.roles();
        let node_id = self.groups.env().me;
        Ok(Response::new(PingResponse {
            node_id,
            boot_id: self.boot_id,
            stopped_groups: roles.stopped,
            leading_groups: roles.leading.into_keys().collect(),
            metadata_version: self.groups.state().version,
        }))
    }
}
