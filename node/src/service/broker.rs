//! `cairn.v1.Broker`: produce, fetch, list offsets, describe cluster.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cairn_proto::peer::RecordBatch;
use cairn_proto::v1::broker_server::{Broker, BrokerServer};
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::{
    DescribeClusterRequest, DescribeClusterResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, NodeInfo, ProduceRequest, ProduceResponse, Record, TopicInfo,
};
use cairn_raft::group::{PartitionGroup, ProduceRequest as GroupProduce};
use cairn_raft::types::ProducerRef;
use cairn_raft::GroupError;
use prost::Message;
use tonic::{Request, Response, Status};

use super::error::ServiceError;
use crate::config::{Config, LimitsSection};
use crate::controller::Controller;
use crate::describe;
use crate::groups::{LocalGroups, Route};
use crate::liveness::Liveness;

/// The public broker API of one node.
pub struct BrokerService {
    groups: Arc<LocalGroups>,
    controller: Arc<Controller>,
    limits: LimitsSection,
    node_id: u64,
    cluster_id: String,
    liveness: Liveness,
}

impl BrokerService {
    pub fn new(
        config: &Config,
        cluster_id: String,
        groups: Arc<LocalGroups>,
        controller: Arc<Controller>,
        liveness: Liveness,
    ) -> BrokerService {
        BrokerService { groups, controller, limits: config.limits, node_id: config.node_id, cluster_id, liveness }
    }

    /// The local replica serving `topic`/`partition`, or NOT_LEADER pointing at a node that has one.
    fn local(&self, topic: &str, partition: u32) -> Result<Arc<PartitionGroup>, ServiceError> {
        match self.groups.route(topic, partition)? {
            Route::Local(g) => Ok(g),
            Route::Elsewhere(hint) => Err(ServiceError::Group(GroupError::NotLeader { leader: Some(hint) })),
        }
    }

    pub fn into_server(self) -> BrokerServer<BrokerService> {
        let decode_max = self.limits.request_bytes_max;
        // A fetch answers up to fetch_bytes_max of payload, plus framing.
        let encode_max = decode_max.max(self.limits.fetch_bytes_max * 2);
        BrokerServer::new(self).max_decoding_message_size(decode_max).max_encoding_message_size(encode_max)
    }

    /// Checks the records and encodes them once, on this request's task (not the proposer's).
    fn prepare(&self, req: ProduceRequest) -> Result<(String, u32, GroupProduce), ServiceError> {
        if req.records.is_empty() {
            return Err(ServiceError::InvalidArgument("a produce request needs at least one record".into()));
        }
        let count = u32::try_from(req.records.len())
            .map_err(|_| ServiceError::InvalidArgument("too many records in one request".into()))?;
        let mut max_set = None::<i64>;
        let mut unset = false;
        for (index, r) in req.records.iter().enumerate() {
            let size = record_size(r);
            if size > self.limits.record_bytes_max {
                return Err(ServiceError::RecordTooLarge { index, size, max: self.limits.record_bytes_max });
            }
            if r.timestamp_ms < 0 {
                return Err(ServiceError::InvalidArgument(format!("record {index} has a negative timestamp")));
            }
            if r.timestamp_ms == 0 {
                unset = true;
            } else {
                max_set = max_set.max(Some(r.timestamp_ms));
            }
        }
        let producer = (req.producer_id != 0).then_some(ProducerRef {
            producer_id: req.producer_id,
            epoch: req.producer_epoch,
            base_sequence: req.base_sequence,
        });
        let batch = RecordBatch { records: req.records };
        let mut buf = BytesMut::with_capacity(batch.encoded_len());
        batch.encode(&mut buf).map_err(|e| ServiceError::InvalidArgument(format!("cannot encode records: {e}")))?;
        let group_req = GroupProduce {
            producer,
            record_count: count,
            max_set_timestamp_ms: max_set,
            has_unset_timestamps: unset,
            records: buf.freeze(),
        };
        Ok((req.topic, req.partition, group_req))
    }
}

fn record_size(r: &Record) -> usize {
    r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()
}

#[tonic::async_trait]
impl Broker for BrokerService {
    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let (topic, partition, req) = self.prepare(request.into_inner())?;
        let group = self.local(&topic, partition)?;
        let ack = group.produce(req).await.map_err(ServiceError::from)?;
        Ok(Response::new(ProduceResponse { base_offset: ack.base_offset, log_append_time_ms: ack.log_append_time_ms }))
    }

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let group = self.local(&req.topic, req.partition)?;
        let max_bytes = match req.max_bytes as usize {
            0 => self.limits.fetch_bytes_max,
            n => n.min(self.limits.fetch_bytes_max),
        };
        let wait = Duration::from_millis(u64::from(req.max_wait_ms).min(self.limits.fetch_wait_ms_max));
        let res = group.fetch(req.offset, max_bytes, wait).await.map_err(ServiceError::from)?;
        Ok(Response::new(FetchResponse {
            records: res.records,
            high_watermark: res.high_watermark,
            log_start_offset: res.log_start_offset,
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let req = request.into_inner();
        let group = self.local(&req.topic, req.partition)?;
        let p = group.progress();
        let offset = match req.spec {
            Some(Spec::Earliest(_)) => p.log_start_offset,
            Some(Spec::Latest(_)) => p.high_watermark,
            Some(Spec::TimestampMs(ts)) => group.offset_for_timestamp(ts).await.map_err(ServiceError::from)?,
            None => {
                return Err(
                    ServiceError::InvalidArgument("spec (earliest, latest or timestamp_ms) is required".into()).into()
                )
            }
        };
        Ok(Response::new(ListOffsetsResponse {
            offset,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
        }))
    }

    async fn describe_cluster(
        &self,
        _request: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let state = self.groups.state();
        let ids = state.topics.values().flat_map(|t| t.partitions.iter().map(|p| p.group_id)).collect();
        let views = describe::gather(&self.groups, &self.liveness, ids).await;
        let topics: Vec<TopicInfo> = state
            .topics
            .iter()
            .map(|(name, t)| TopicInfo { name: name.clone(), partitions: describe::partitions(t, &views, &state) })
            .collect();
        let nodes = state
            .nodes
            .iter()
            .map(|(id, addr)| NodeInfo {
                node_id: *id,
                address: addr.clone(),
                alive: *id == self.node_id || self.liveness.is_alive(*id),
                leader_count: topics.iter().flat_map(|t| &t.partitions).filter(|p| p.leader_node_id == *id).count()
                    as u32,
            })
            .collect();
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: self.cluster_id.clone(),
            answering_node_id: self.node_id,
            nodes,
            topics,
            controller_leader_id: self.controller.leader().map(|l| l.node_id).unwrap_or(0),
        }))
    }
}
