//! A scripted broker for the client's state machines: one topic (`t`, id 7, one partition)
//! whose partition applies produce batches with the real sequence rules, while a script decides,
//! attempt by attempt, whether the answer is given, lost, or replaced by a refusal (as from a
//! broker whose metadata lags).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use cairn_proto::v1::broker_server::{Broker, BrokerServer};
use cairn_proto::v1::{
    DescribeClusterRequest, DescribeClusterResponse, ErrorCode, ErrorDetail, FetchRequest, FetchResponse,
    InitProducerRequest, InitProducerResponse, ListOffsetsRequest, ListOffsetsResponse, NodeInfo, PartitionInfo,
    ProduceRequest, ProduceResponse, ProduceStreamRequest, ProduceStreamResponse, TopicInfo,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

pub const TOPIC_ID: u64 = 7;

/// One produce attempt as the broker received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub producer_id: u64,
    pub epoch: u32,
    pub base_sequence: u32,
    /// Record values as strings.
    pub values: Vec<String>,
    /// How many attempts of a batch with these values came before (0 for the first).
    pub retry: usize,
}

/// What the broker does with one attempt.
#[derive(Clone, Debug)]
pub enum Action {
    /// Apply it and answer truthfully.
    Normal,
    /// Apply it, then close the stream without answering (the answer is lost).
    ApplyAndLoseAnswer,
    /// Do not apply it; answer with this error instead.
    Refuse(ErrorDetail),
}

type Script = Box<dyn Fn(&Attempt) -> Action + Send + Sync>;

/// (first sequence, last sequence, base offset) of an appended batch.
type SeqBatch = (u32, u32, u64);

#[derive(Default)]
struct Partition {
    /// Appended records: (producer id, epoch, sequence, value).
    log: Vec<(u64, u32, u32, String)>,
    /// Producer id → (epoch, batches).
    producers: BTreeMap<u64, (u32, Vec<SeqBatch>)>,
}

impl Partition {
    /// The sequence rules of the real partition (window unbounded here).
    fn apply(&mut self, r: &ProduceRequest) -> Result<u64, ErrorDetail> {
        let count = r.records.len() as u32;
        let last = r.base_sequence + count - 1;
        let expected = match self.producers.get(&r.producer_id) {
            None => 0,
            Some((e, _)) if r.producer_epoch < *e => return Err(error(ErrorCode::Fenced, false, true)),
            Some((e, _)) if r.producer_epoch > *e => 0,
            Some((_, batches)) => {
                if let Some(b) = batches.iter().find(|b| b.0 == r.base_sequence && b.1 == last) {
                    return Ok(b.2);
                }
                batches.last().map_or(0, |b| b.1 + 1)
            }
        };
        if r.base_sequence != expected {
            let code = if self.producers.contains_key(&r.producer_id) {
                ErrorCode::OutOfOrderSequence
            } else {
                ErrorCode::UnknownProducer
            };
            return Err(error(code, code == ErrorCode::OutOfOrderSequence, true));
        }
        let base = self.log.len() as u64;
        let entry = self.producers.entry(r.producer_id).or_insert((r.producer_epoch, Vec::new()));
        if entry.0 != r.producer_epoch {
            *entry = (r.producer_epoch, Vec::new());
        }
        entry.1.push((r.base_sequence, last, base));
        for (i, rec) in r.records.iter().enumerate() {
            let value = String::from_utf8_lossy(&rec.value).into_owned();
            self.log.push((r.producer_id, r.producer_epoch, r.base_sequence + i as u32, value));
        }
        Ok(base)
    }
}

pub fn error(code: ErrorCode, retriable: bool, definite: bool) -> ErrorDetail {
    ErrorDetail {
        code: code as i32,
        retriable,
        definite,
        message: format!("scripted {code:?}"),
        ..ErrorDetail::default()
    }
}

struct State {
    partition: Partition,
    attempts: Vec<Attempt>,
    next_producer_id: u64,
    inits: usize,
    script: Script,
}

#[derive(Clone)]
pub struct FakeBroker {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
}

impl FakeBroker {
    /// Starts the broker on a loopback port with `script`.
    pub async fn start(script: impl Fn(&Attempt) -> Action + Send + Sync + 'static) -> FakeBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            partition: Partition::default(),
            attempts: Vec::new(),
            next_producer_id: 100,
            inits: 0,
            script: Box::new(script),
        }));
        let broker = FakeBroker { state, addr };
        let server = BrokerServer::new(broker.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        broker
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Values in the partition, in offset order.
    pub fn log_values(&self) -> Vec<String> {
        self.with(|s| s.partition.log.iter().map(|r| r.3.clone()).collect())
    }

    /// (producer id, epoch, sequence) each stored value was appended under.
    pub fn log(&self) -> Vec<(u64, u32, u32, String)> {
        self.with(|s| s.partition.log.clone())
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.with(|s| s.attempts.clone())
    }

    pub fn inits(&self) -> usize {
        self.with(|s| s.inits)
    }

    /// Handles one attempt: Some(answer) to send, None to close the stream unanswered.
    fn handle(&self, cid: u64, req: ProduceRequest) -> Option<ProduceStreamResponse> {
        self.with(|s| {
            let values: Vec<String> =
                req.records.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
            let retry = s.attempts.iter().filter(|a| a.values == values).count();
            let attempt = Attempt {
                producer_id: req.producer_id,
                epoch: req.producer_epoch,
                base_sequence: req.base_sequence,
                values,
                retry,
            };
            let action = (s.script)(&attempt);
            s.attempts.push(attempt);
            let answer = |res: Result<u64, ErrorDetail>| match res {
                Ok(base_offset) => ProduceStreamResponse {
                    correlation_id: cid,
                    response: Some(ProduceResponse {
                        base_offset,
                        log_append_time_ms: 1,
                        topic_id: TOPIC_ID,
                        throttle_time_ms: 0,
                    }),
                    error: None,
                },
                Err(e) => ProduceStreamResponse { correlation_id: cid, response: None, error: Some(e) },
            };
            match action {
                Action::Normal => Some(answer(s.partition.apply(&req))),
                Action::ApplyAndLoseAnswer => {
                    let _ = s.partition.apply(&req);
                    None
                }
                Action::Refuse(e) => Some(answer(Err(e))),
            }
        })
    }
}

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Broker for FakeBroker {
    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        Err(Status::unimplemented("the fake broker only streams"))
    }

    async fn fetch(&self, _: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        Err(Status::unimplemented("fetch"))
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
        let addr = self.addr();
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: "fake".into(),
            answering_node_id: 1,
            nodes: vec![NodeInfo {
                node_id: 1,
                address: addr.clone(),
                alive: true,
                leader_count: 1,
                ..NodeInfo::default()
            }],
            topics: vec![TopicInfo {
                name: "t".into(),
                topic_id: TOPIC_ID,
                partitions: vec![PartitionInfo {
                    partition: 0,
                    group_id: 1,
                    leader_node_id: 1,
                    leader_address: addr,
                    replica_node_ids: vec![1],
                    ..PartitionInfo::default()
                }],
            }],
            controller_leader_id: 1,
            metadata_version: 1,
            ..DescribeClusterResponse::default()
        }))
    }

    async fn init_producer(
        &self,
        request: Request<InitProducerRequest>,
    ) -> Result<Response<InitProducerResponse>, Status> {
        let req = request.into_inner();
        let (producer_id, epoch) = self.with(|s| {
            s.inits += 1;
            if req.producer_id != 0 {
                (req.producer_id, req.epoch + 1)
            } else {
                s.next_producer_id += 1;
                (s.next_producer_id, 0)
            }
        });
        Ok(Response::new(InitProducerResponse { producer_id, epoch }))
    }

    type SubscribeStream = Stream<cairn_proto::v1::SubscribeResponse>;

    async fn subscribe(
        &self,
        _: Request<Streaming<cairn_proto::v1::SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("subscribe"))
    }

    type ProduceStreamStream = Stream<ProduceStreamResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let Some(req) = msg.request else { continue };
                match this.handle(msg.correlation_id, req) {
                    Some(answer) => {
                        if tx.send(Ok(answer)).await.is_err() {
                            return;
                        }
                    }
                    // Closing the answer stream loses this answer (and any later ones).
                    None => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
