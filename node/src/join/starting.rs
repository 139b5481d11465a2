//! The public API while the start-up check runs: every call is answered UNAVAILABLE (retriable,
//! nothing applied), so clients that reach the node early retry elsewhere instead of failing on
//! an unknown service.

use cairn_proto::v1::admin_server::{Admin, AdminServer};
use cairn_proto::v1::broker_server::{Broker, BrokerServer};
use cairn_proto::v1::{
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeTopicRequest, DescribeTopicResponse, FetchRequest, FetchResponse,
    InitProducerRequest, InitProducerResponse, ListOffsetsRequest, ListOffsetsResponse, ListTopicsRequest,
    ListTopicsResponse, ProduceRequest, ProduceResponse, ProduceStreamRequest, ProduceStreamResponse,
    RepairReplicaRequest, RepairReplicaResponse, ReplaceNodeRequest, ReplaceNodeResponse,
};
use tonic::{Request, Response, Status, Streaming};

use crate::service::ServiceError;

#[derive(Clone, Copy)]
pub(super) struct Starting;

impl Starting {
    pub fn broker(self) -> BrokerServer<Starting> {
        BrokerServer::new(self)
    }

    pub fn admin(self) -> AdminServer<Starting> {
        AdminServer::new(self)
    }

    pub fn groups(self) -> cairn_proto::v1::groups_server::GroupsServer<Starting> {
        cairn_proto::v1::groups_server::GroupsServer::new(self)
    }
}

fn unavailable<T>() -> Result<Response<T>, Status> {
    Err(ServiceError::Joining.into())
}

#[tonic::async_trait]
impl Broker for Starting {
    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        unavailable()
    }

    type ProduceStreamStream = tokio_stream::Empty<Result<ProduceStreamResponse, Status>>;

    async fn produce_stream(
        &self,
        _: Request<Streaming<ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        unavailable()
    }

    async fn init_producer(&self, _: Request<InitProducerRequest>) -> Result<Response<InitProducerResponse>, Status> {
        unavailable()
    }

    type SubscribeStream = tokio_stream::Empty<Result<cairn_proto::v1::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        _: Request<Streaming<cairn_proto::v1::SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        unavailable()
    }

    async fn fetch(&self, _: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        unavailable()
    }

    async fn list_offsets(&self, _: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        unavailable()
    }

    async fn delete_records(
        &self,
        _: Request<cairn_proto::v1::DeleteRecordsRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteRecordsResponse>, Status> {
        unavailable()
    }

    async fn describe_cluster(
        &self,
        _: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        unavailable()
    }
}

#[tonic::async_trait]
impl Admin for Starting {
    async fn create_topic(&self, _: Request<CreateTopicRequest>) -> Result<Response<CreateTopicResponse>, Status> {
        unavailable()
    }

    async fn delete_topic(&self, _: Request<DeleteTopicRequest>) -> Result<Response<DeleteTopicResponse>, Status> {
        unavailable()
    }

    async fn list_topics(&self, _: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        unavailable()
    }

    async fn describe_topic(
        &self,
        _: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        unavailable()
    }

    async fn replace_node(&self, _: Request<ReplaceNodeRequest>) -> Result<Response<ReplaceNodeResponse>, Status> {
        unavailable()
    }

    async fn repair_replica(
        &self,
        _: Request<RepairReplicaRequest>,
    ) -> Result<Response<RepairReplicaResponse>, Status> {
        unavailable()
    }

    async fn alter_topic_config(
        &self,
        _: Request<cairn_proto::v1::AlterTopicConfigRequest>,
    ) -> Result<Response<cairn_proto::v1::AlterTopicConfigResponse>, Status> {
        unavailable()
    }

    async fn create_partitions(
        &self,
        _: Request<cairn_proto::v1::CreatePartitionsRequest>,
    ) -> Result<Response<cairn_proto::v1::CreatePartitionsResponse>, Status> {
        unavailable()
    }

    async fn create_acls(
        &self,
        _: Request<cairn_proto::v1::CreateAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::CreateAclsResponse>, Status> {
        unavailable()
    }

    async fn delete_acls(
        &self,
        _: Request<cairn_proto::v1::DeleteAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteAclsResponse>, Status> {
        unavailable()
    }

    async fn list_acls(
        &self,
        _: Request<cairn_proto::v1::ListAclsRequest>,
    ) -> Result<Response<cairn_proto::v1::ListAclsResponse>, Status> {
        unavailable()
    }
}

#[tonic::async_trait]
impl cairn_proto::v1::groups_server::Groups for Starting {
    async fn find_coordinator(
        &self,
        _: Request<cairn_proto::v1::FindCoordinatorRequest>,
    ) -> Result<Response<cairn_proto::v1::FindCoordinatorResponse>, Status> {
        unavailable()
    }

    async fn consumer_group_heartbeat(
        &self,
        _: Request<cairn_proto::v1::ConsumerGroupHeartbeatRequest>,
    ) -> Result<Response<cairn_proto::v1::ConsumerGroupHeartbeatResponse>, Status> {
        unavailable()
    }

    async fn offset_commit(
        &self,
        _: Request<cairn_proto::v1::OffsetCommitRequest>,
    ) -> Result<Response<cairn_proto::v1::OffsetCommitResponse>, Status> {
        unavailable()
    }

    async fn offset_fetch(
        &self,
        _: Request<cairn_proto::v1::OffsetFetchRequest>,
    ) -> Result<Response<cairn_proto::v1::OffsetFetchResponse>, Status> {
        unavailable()
    }

    async fn list_groups(
        &self,
        _: Request<cairn_proto::v1::ListGroupsRequest>,
    ) -> Result<Response<cairn_proto::v1::ListGroupsResponse>, Status> {
        unavailable()
    }

    async fn describe_group(
        &self,
        _: Request<cairn_proto::v1::DescribeGroupRequest>,
    ) -> Result<Response<cairn_proto::v1::DescribeGroupResponse>, Status> {
        unavailable()
    }

    async fn delete_group(
        &self,
        _: Request<cairn_proto::v1::DeleteGroupRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteGroupResponse>, Status> {
        unavailable()
    }

    async fn alter_offsets(
        &self,
        _: Request<cairn_proto::v1::AlterOffsetsRequest>,
    ) -> Result<Response<cairn_proto::v1::AlterOffsetsResponse>, Status> {
        unavailable()
    }
}
