//! `cairn.peer.v1.NodeInternal`: what other nodes ask this one (not a public API).

use std::sync::Arc;

use cairn_proto::peer::node_internal_server::{NodeInternal, NodeInternalServer};
use cairn_proto::peer::{DescribeGroupsRequest, DescribeGroupsResponse};
use tonic::{Request, Response, Status};

use crate::describe::local_states;
use crate::groups::LocalGroups;

pub struct InternalService {
    groups: Arc<LocalGroups>,
}

impl InternalService {
    pub fn new(groups: Arc<LocalGroups>) -> InternalService {
        InternalService { groups }
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
        Ok(Response::new(DescribeGroupsResponse {
            node_id: self.groups.env().me,
            groups: local_states(&self.groups, &ids),
        }))
    }
}
