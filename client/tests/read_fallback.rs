//! Reads fall back to another replica when one answers REPLICA_STOPPED (its data is damaged or
//! its Raft instance stopped): two scripted brokers replicate partition t/0; the one the
//! metadata names as leader has stopped, the other serves.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientConfig};
use cairn_proto::v1::broker_server::{Broker, BrokerServer};
use cairn_proto::v1::{
    DescribeClusterRequest, DescribeClusterResponse, ErrorCode, ErrorDetail, FetchRequest, FetchResponse,
    FetchedRecord, InitProducerRequest, InitProducerResponse, ListOffsetsRequest, ListOffsetsResponse, NodeInfo,
    PartitionInfo, ProduceRequest, ProduceResponse, ProduceStreamRequest, ProduceStreamResponse, TopicInfo,
};
use prost::Message;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
struct Replica {
    /// This broker's node id (1 is stopped, 2 serves).
    id: u64,
    addrs: Arc<std::sync::Mutex<Vec<String>>>,
    fetches: Arc<AtomicUsize>,
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Broker for Replica {
    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        Err(Status::unimplemented("produce"))
    }

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.id == 1 {
            let detail = ErrorDetail {
                code: ErrorCode::ReplicaStopped as i32,
                retriable: true,
                definite: true,
                message: "partition replica is stopped: damaged data".into(),
                ..ErrorDetail::default()
            };
            return Err(Status::with_details(
                tonic::Code::Unavailable,
                detail.message.clone(),
                detail.encode_to_vec().into(),
            ));
        }
        let offset = request.into_inner().offset;
        Ok(Response::new(FetchResponse {
            records: vec![FetchedRecord { offset, value: b"from node 2".to_vec().into(), ..FetchedRecord::default() }],
            high_watermark: offset + 1,
            log_start_offset: 0,
            topic_id: 7,
            throttle_time_ms: 0,
        }))
    }

    async fn list_offsets(&self, _: Request<ListOffsetsRequest>) -> Result<Response<ListOffsetsResponse>, Status> {
        Err(Status::unimplemented("list offsets"))
    }

    async fn delete_records(
        &self,
        _: Request<cairn_proto::v1::DeleteRecordsRequest>,
    ) -> Result<Response<cairn_proto::v1::DeleteRecordsResponse>, Status> {
        Err(Status::unimplemented("delete records"))
    }

    async fn describe_cluster(
        &self,
        _: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let node = |id: u64| NodeInfo {
            node_id: id,
            address: addrs[id as usize - 1].clone(),
            alive: true,
            ..NodeInfo::default()
        };
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: "fake".into(),
            answering_node_id: self.id,
            nodes: vec![node(1), node(2)],
            topics: vec![TopicInfo {
                name: "t".into(),
                topic_id: 7,
                partitions: vec![PartitionInfo {
                    partition: 0,
                    group_id: 1,
                    leader_node_id: 1,
                    leader_address: addrs[0].clone(),
                    replica_node_ids: vec![1, 2],
                    ..PartitionInfo::default()
                }],
            }],
            controller_leader_id: 1,
            metadata_version: 1,
            ..DescribeClusterResponse::default()
        }))
    }

    async fn init_producer(&self, _: Request<InitProducerRequest>) -> Result<Response<InitProducerResponse>, Status> {
        Err(Status::unimplemented("init producer"))
    }

    type ProduceStreamStream = Stream<ProduceStreamResponse>;

    async fn produce_stream(
        &self,
        _: Request<Streaming<ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        Err(Status::unimplemented("produce stream"))
    }
    type SubscribeStream = Stream<cairn_proto::v1::SubscribeResponse>;

    async fn subscribe(
        &self,
        _: Request<Streaming<cairn_proto::v1::SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("subscribe"))
    }
}

async fn serve(r: Replica) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(BrokerServer::new(r))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    addr
}

#[tokio::test]
async fn a_read_refused_with_replica_stopped_is_served_by_another_replica() {
    let addrs: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let stopped = Replica { id: 1, addrs: addrs.clone(), fetches: Arc::default() };
    let serving = Replica { id: 2, addrs: addrs.clone(), fetches: Arc::default() };
    let a = serve(stopped.clone()).await;
    let b = serve(serving.clone()).await;
    *addrs.lock().unwrap_or_else(|p| p.into_inner()) = vec![a.to_string(), b.to_string()];

    let mut cfg = ClientConfig::new(vec![a.to_string()]);
    cfg.retry_deadline = Duration::from_secs(5);
    let client = Client::connect(cfg).await.expect("connect");
    let r = client.fetch("t", 0, 0, 1 << 20, 0).await.expect("read from the other replica");
    assert_eq!(r.records.len(), 1);
    assert_eq!(&r.records[0].value[..], b"from node 2");
    assert!(stopped.fetches.load(Ordering::SeqCst) >= 1, "the metadata's leader was asked first");
    assert_eq!(serving.fetches.load(Ordering::SeqCst), 1, "one fallback, no retry storm");
}
