//! `cairn.v1.Broker`: produce, fetch, list offsets, describe cluster.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cairn_proto::peer::RecordBatch;
use cairn_proto::v1::broker_server::{Broker, BrokerServer};
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest, DescribeClusterResponse, FetchRequest,
    FetchResponse, InitProducerRequest, InitProducerResponse, ListOffsetsRequest, ListOffsetsResponse, NodeInfo,
    ProduceRequest, ProduceResponse, ProduceStreamRequest, ProduceStreamResponse, Record, SubscribeRequest,
    SubscribeResponse, TopicInfo,
};
use cairn_raft::group::{PartitionGroup, PendingProduce, ProduceRequest as GroupProduce};
use cairn_raft::types::{Condition, KeyCondition, ProducerRef};
use cairn_raft::GroupError;
use prost::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::access::{Access, Guarded};
use super::error::ServiceError;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::config::{Config, Faults, LimitsSection};
use crate::controller::state::ProducerCheck;
use crate::controller::Controller;
use crate::describe;
use crate::groups::{LocalGroups, Route};
use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::quota::{Direction, Quotas};
use crate::registry::validate::Refusal;

/// Batches of one produce stream in flight at once, from receipt until their answer is queued.
const STREAM_IN_FLIGHT_MAX: usize = 256;

/// A produce handed to its partition, awaiting its outcome.
struct Started {
    pending: PendingProduce,
    topic: String,
    topic_id: u64,
    /// How long the quota held the request back first.
    throttle_ms: u32,
}

/// The public broker API of one node.
#[derive(Clone)]
pub struct BrokerService {
    groups: Arc<LocalGroups>,
    controller: Arc<Controller>,
    limits: LimitsSection,
    faults: Faults,
    node_id: u64,
    liveness: Liveness,
    metrics: Arc<Metrics>,
    access: Access,
    quotas: Quotas,
    /// Broker-side schema validation asks it (docs/schemas.md).
    registry: Arc<crate::registry::Registry>,
}

impl BrokerService {
    pub fn new(
        config: &Config,
        groups: Arc<LocalGroups>,
        controller: Arc<Controller>,
        liveness: Liveness,
        metrics: Arc<Metrics>,
        access: Access,
        registry: Arc<crate::registry::Registry>,
    ) -> BrokerService {
        BrokerService {
            registry,
            groups,
            controller,
            limits: config.limits,
            faults: config.faults,
            node_id: config.node_id,
            liveness,
            metrics,
            access,
            quotas: if config.faults.ignore_quotas {
                Quotas::new(&crate::config::QuotasSection::default())
            } else {
                Quotas::new(&config.quotas)
            },
        }
    }

    /// The access check of this node.
    pub(super) fn access(&self) -> &Access {
        &self.access
    }

    /// Validates, checks the producer identity and enqueues one produce request. Requests
    /// started one after the other reach their partition's proposer in that order.
    fn start_produce(&self, req: ProduceRequest) -> Result<Started, ServiceError> {
        let requested_id = req.topic_id;
        if crate::topic::is_internal(&req.topic) {
            return Err(ServiceError::InvalidArgument(format!(
                "{:?} is an internal topic: only Cairn writes to it (read it freely)",
                req.topic
            )));
        }
        let (topic, partition, req) = self.prepare(req)?;
        let (topic_id, group) = self.local(&topic, partition, requested_id)?;
        if let Some(why) = self.groups.env().disk.refusal() {
            return Err(ServiceError::DiskFull(why));
        }
        if let Some(p) = &req.producer {
            self.check_producer(&group, p)?;
        }
        Ok(Started { pending: group.enqueue(req)?, topic, topic_id: self.reported(topic_id), throttle_ms: 0 })
    }

    /// Refuses a batch with a record that fails the topic's schema validation (keys and/or
    /// values framed with the id of a live version of `<topic>-key` / `<topic>-value`): the
    /// batch is refused whole, nothing of it appended. Topics without validation pass at once.
    ///
    /// # Errors
    /// INVALID_RECORD naming the first offending record; UNAVAILABLE (retriable) when the
    /// registry did not answer.
    async fn validate_schemas(&self, req: &ProduceRequest) -> Result<(), ServiceError> {
        let state = self.groups.state();
        let Some(v) = state.topics.get(&req.topic).map(|t| t.schema_validation) else { return Ok(()) };
        if !v.key && !v.value {
            return Ok(());
        }
        let (key_subject, value_subject) = (format!("{}-key", req.topic), format!("{}-value", req.topic));
        for (index, r) in req.records.iter().enumerate() {
            let checks = [(v.key, &key_subject, &r.key, "key"), (v.value, &value_subject, &r.value, "value")];
            for (_, subject, bytes, what) in checks.into_iter().filter(|c| c.0) {
                match self.registry.check_framed(subject, bytes).await {
                    Ok(()) => {}
                    Err(Refusal::Invalid(why)) => {
                        return Err(ServiceError::InvalidRecord { index, why: format!("its {what}: {why}") })
                    }
                    Err(Refusal::Unavailable(why)) => return Err(ServiceError::RegistryUnavailable(why)),
                }
            }
        }
        Ok(())
    }

    /// A partition accepts only producer ids and epochs the controller issued, so no request
    /// can fence a producer the controller did not fence; an older instance of a named
    /// producer is fenced as soon as this node applied the newer one's epoch.
    fn check_producer(&self, group: &PartitionGroup, p: &ProducerRef) -> Result<(), ServiceError> {
        match self.groups.state().check_producer(p.producer_id, p.epoch) {
            ProducerCheck::Issued => Ok(()),
            ProducerCheck::Fenced { fenced_below } => Err(ServiceError::ProducerFenced { current_epoch: fenced_below }),
            ProducerCheck::NotIssued(why) => Err(ServiceError::ProducerNotIssued(why)),
            // An expired registration: the epochs this partition already accepted stay valid.
            ProducerCheck::Unregistered if group.producer_epoch(p.producer_id).is_some_and(|e| e >= p.epoch) => Ok(()),
            ProducerCheck::Unregistered => Err(ServiceError::ProducerNotIssued(format!(
                "epoch {} of producer {} is not registered any more and this partition never saw it",
                p.epoch, p.producer_id
            ))),
        }
    }

    /// Waits for a started produce; refuses to acknowledge an append to an incarnation of the
    /// topic this node learned meanwhile was deleted (its records go with it).
    async fn finish(&self, started: Started) -> Result<ProduceResponse, ServiceError> {
        let ack = started.pending.wait().await?;
        if started.topic_id != 0 && !self.groups.has_incarnation(&started.topic, started.topic_id) {
            return Err(ServiceError::DeletedInFlight { topic: started.topic, topic_id: started.topic_id });
        }
        Ok(ProduceResponse {
            base_offset: ack.base_offset,
            log_append_time_ms: ack.log_append_time_ms,
            topic_id: started.topic_id,
            throttle_time_ms: started.throttle_ms,
        })
    }

    /// Holds a request of `principal` back while it is over its byte-rate quota (`bytes`
    /// charged up front; 0 for a fetch, charged after); returns how long, in ms.
    ///
    /// # Errors
    /// THROTTLED when the wait would be too long (nothing charged, nothing done).
    pub(super) async fn throttle(
        &self,
        principal: &Principal,
        direction: Direction,
        bytes: u64,
    ) -> Result<u32, ServiceError> {
        let wait = self.quotas.wait(principal.name(), direction, bytes).map_err(|e| {
            self.metrics.quota.refused(direction.as_str());
            ServiceError::OverQuota(e.to_string())
        })?;
        if wait.is_zero() {
            return Ok(0);
        }
        self.metrics.quota.throttled(direction.as_str(), wait);
        tokio::time::sleep(wait).await;
        Ok(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX))
    }

    /// Charges `bytes` served to `principal`'s quota.
    pub(super) fn charge(&self, principal: &Principal, direction: Direction, bytes: u64) {
        self.quotas.charge(principal.name(), direction, bytes);
    }

    /// Free bytes and floor of `node`'s data directory, as last known here.
    fn disk_of(&self, node: u64) -> (u64, u64) {
        if node == self.node_id {
            let disk = &self.groups.env().disk;
            (disk.reported_free_bytes(), disk.floor_bytes())
        } else {
            self.liveness.disk_of(node)
        }
    }

    /// `topic` as a metrics label: only topics in the metadata (a client cannot grow the series).
    fn topic_label<'a>(&self, topic: &'a str) -> &'a str {
        if self.groups.state().topics.contains_key(topic) {
            topic
        } else {
            ""
        }
    }

    /// The topic id an answer reports (none under the `ignore-topic-id` fault).
    fn reported(&self, topic_id: u64) -> u64 {
        if self.faults.ignore_topic_id {
            0
        } else {
            topic_id
        }
    }

    /// Fault injection: whether to lose this committed produce's answer.
    fn drop_answer(&self) -> bool {
        self.faults.drop_produce_responses > 0.0 && rand::random::<f64>() < self.faults.drop_produce_responses
    }

    /// The local replica serving `topic`/`partition` (with the topic's id), or NOT_LEADER
    /// pointing at a node that has one.
    fn local(&self, topic: &str, partition: u32, topic_id: u64) -> Result<(u64, Arc<PartitionGroup>), ServiceError> {
        match self.groups.route(topic, partition, topic_id)? {
            (id, Route::Local(g)) => Ok((id, g)),
            (_, Route::Elsewhere(hint)) => Err(ServiceError::Group(GroupError::NotLeader { leader: Some(hint) })),
        }
    }

    /// The local replica serving `topic`/`partition` (for subscriptions), as for a fetch.
    ///
    /// # Errors
    /// As a fetch's routing: unknown topic or partition, NOT_LEADER towards a replica.
    pub(crate) fn local_replica(
        &self,
        topic: &str,
        partition: u32,
        topic_id: u64,
    ) -> Result<(u64, Arc<PartitionGroup>), ServiceError> {
        self.local(topic, partition, topic_id)
    }

    /// Whether this node still has incarnation `topic_id` of `topic` (a subscription ends when
    /// its topic is deleted).
    pub(crate) fn serves_incarnation(&self, topic: &str, topic_id: u64) -> bool {
        topic_id == 0 || self.groups.has_incarnation(topic, topic_id)
    }

    pub(crate) fn fetch_bytes_max(&self) -> usize {
        self.limits.fetch_bytes_max
    }

    /// After a new instance of a named producer got its epoch: waits (bounded) until every live
    /// node applied it, so the older instance is fenced everywhere when InitProducer returns.
    async fn await_fence(&self, producer_id: u64, epoch: u32) -> Result<(), ServiceError> {
        let version = self.controller.applied_version();
        let nodes: Vec<u64> = self.groups.state().nodes.keys().copied().collect();
        let wait_ms = self.limits.producer_fence_wait_ms;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let lagging = self.liveness.live_nodes_behind(self.node_id, nodes.iter().copied(), version);
            if lagging.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServiceError::FenceNotConfirmed { producer_id, epoch, nodes: lagging, wait_ms });
            }
            // Pings carry each node's applied version a few times a second.
            tokio::time::sleep(Duration::from_millis(50)).await;
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
                return Err(ServiceError::InvalidArgument(format!(
                    "a record (index {index} in its batch) has a negative timestamp"
                )));
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
        let condition = condition_of(&req)?;
        let keys = cairn_raft::types::last_key_ordinals(req.records.iter().map(|r| r.key.as_ref()));
        let batch = RecordBatch { records: req.records };
        let mut buf = BytesMut::with_capacity(batch.encoded_len());
        batch.encode(&mut buf).map_err(|e| ServiceError::InvalidArgument(format!("cannot encode records: {e}")))?;
        let group_req = GroupProduce {
            producer,
            record_count: count,
            max_set_timestamp_ms: max_set,
            has_unset_timestamps: unset,
            records: buf.freeze(),
            condition,
            keys,
        };
        Ok((req.topic, req.partition, group_req))
    }
}

/// The condition of a conditional append, checked for shape here (the verdict is apply's).
fn condition_of(req: &ProduceRequest) -> Result<Option<Condition>, ServiceError> {
    use cairn_proto::v1::key_offset::State;
    let key = match req.expected_key_offset.as_ref().map(|k| k.state) {
        None => None,
        Some(state) => {
            let expected = match state {
                Some(State::Offset(offset)) => Some(offset),
                Some(State::NoRecord(true)) => None,
                Some(State::NoRecord(false)) | None => {
                    return Err(ServiceError::InvalidArgument(
                        "expected_key_offset needs an offset or no_record = true".into(),
                    ))
                }
                Some(State::ForgottenUpto(_)) => {
                    return Err(ServiceError::InvalidArgument(
                        "expected_key_offset cannot be forgotten_upto (it only appears in answers)".into(),
                    ))
                }
            };
            let first = req.records.first().map(|r| r.key.clone()).unwrap_or_default();
            if first.is_empty() {
                return Err(ServiceError::InvalidArgument(
                    "a batch with expected_key_offset needs records with a key".into(),
                ));
            }
            if let Some(index) = req.records.iter().position(|r| r.key != first) {
                return Err(ServiceError::InvalidArgument(format!(
                    "every record of a batch with expected_key_offset must have the same key (record {index} differs \
                     from record 0)"
                )));
            }
            Some(KeyCondition { key: first, expected })
        }
    };
    if key.is_none() && req.expected_offset.is_none() {
        return Ok(None);
    }
    Ok(Some(Condition { expected_offset: req.expected_offset, key }))
}

/// A produce request's size and receipt time, for the metrics of its answer. Counted once:
/// by [`Counted::answered`], or, when the handler is dropped first (the client cancelled or its
/// deadline passed), as `CANCELLED` when dropped.
struct Counted {
    metrics: Arc<Metrics>,
    topic_known: bool,
    topic: String,
    records: u64,
    bytes: u64,
    received: std::time::Instant,
    done: bool,
}

impl Counted {
    fn produce(service: &BrokerService, req: &ProduceRequest) -> Counted {
        Counted {
            metrics: service.metrics.clone(),
            topic_known: service.groups.state().topics.contains_key(&req.topic),
            topic: req.topic.clone(),
            records: req.records.len() as u64,
            bytes: req.records.iter().map(|r| record_size(r) as u64).sum(),
            received: std::time::Instant::now(),
            done: false,
        }
    }

    /// Only topics in the metadata become label values: a client cannot grow the series.
    fn topic(&self) -> &str {
        if self.topic_known {
            self.topic.as_str()
        } else {
            ""
        }
    }

    fn answered(mut self, error: Option<&ServiceError>) {
        self.done = true;
        match error {
            None => {
                self.metrics.produce.answered(self.topic(), crate::metrics::OK, self.records, self.bytes);
                self.metrics.produce_latency(self.received.elapsed());
            }
            Some(e) => self.metrics.produce.answered(self.topic(), e.code_name(), 0, 0),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.produce.answered(self.topic(), crate::metrics::CANCELLED, 0, 0);
        }
    }
}

fn stream_error(correlation_id: u64, e: &ServiceError) -> ProduceStreamResponse {
    ProduceStreamResponse { correlation_id, response: None, error: Some(e.detail().1) }
}

fn record_size(r: &Record) -> usize {
    r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()
}

/// The record bytes of a produce request (what the produce quota counts).
fn batch_bytes(req: &ProduceRequest) -> u64 {
    req.records.iter().map(|r| record_size(r) as u64).sum()
}

/// The record bytes of a fetched record (what the fetch quota and metrics count).
pub(super) fn fetched_size(r: &cairn_proto::v1::FetchedRecord) -> u64 {
    (r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()) as u64
}

#[tonic::async_trait]
impl Broker for BrokerService {
    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<ProduceResponse>, Status> {
        let count = Counted::produce(self, request.get_ref());
        let allowed = self.access.guard(&request);
        let req = request.into_inner();
        let span = super::trace::produce_span(&req.topic, req.partition, &req.records);
        let answer = async {
            let principal = allowed?;
            let throttle_ms = self.throttle(&principal, Direction::Produce, batch_bytes(&req)).await?;
            self.validate_schemas(&req).await?;
            match self.start_produce(req).map(|s| Started { throttle_ms, ..s }) {
                Ok(started) => self.finish(started).await,
                Err(e) => Err(e),
            }
        }
        .instrument(span)
        .await;
        count.answered(answer.as_ref().err());
        let answer = answer?;
        if self.drop_answer() {
            // Like a connection lost after the commit: no structured detail, outcome unknown.
            return Err(Status::unavailable("fault injection: answer dropped after commit"));
        }
        Ok(Response::new(answer))
    }

    type ProduceStreamStream = ReceiverStream<Result<ProduceStreamResponse, Status>>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        // Checked for every batch: a write ACL revoked mid-stream stops the next one.
        let principal = Principal::of(&request);
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_IN_FLIGHT_MAX);
        let this = self.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(STREAM_IN_FLIGHT_MAX));
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return,
                    Err(status) => {
                        // A message that does not decode or is over the size limit: the
                        // answers already under way go out first, then the stream ends with
                        // the error (never a silent OK that leaves the client waiting).
                        tracing::debug!(error = %status, "produce stream ended by a bad message");
                        let _ = permits.acquire_many(STREAM_IN_FLIGHT_MAX as u32).await;
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                // A permit is held from receipt until the answer is queued: a client that writes
                // but never reads stops being read once STREAM_IN_FLIGHT_MAX answers wait.
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let cid = msg.correlation_id;
                let count = msg.request.as_ref().map(|r| Counted::produce(&this, r));
                let span = match &msg.request {
                    Some(r) => super::trace::produce_span(&r.topic, r.partition, &r.records),
                    None => tracing::Span::none(),
                };
                // Checked and held back (quota) in the order received: the stream's batches reach
                // their partitions in that order.
                let started = match msg.request {
                    Some(r) => match this.access.require(&principal, r.needs()) {
                        Ok(()) => match this.throttle(&principal, Direction::Produce, batch_bytes(&r)).await {
                            Ok(throttle_ms) => match this.validate_schemas(&r).await {
                                Ok(()) => span.in_scope(|| this.start_produce(r)).map(|s| Started { throttle_ms, ..s }),
                                Err(e) => Err(e),
                            },
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    },
                    None => Err(ServiceError::InvalidArgument("stream message without a request".into())),
                };
                let started = match started {
                    Ok(s) => s,
                    Err(e) => {
                        if let Some(c) = count {
                            c.answered(Some(&e));
                        }
                        if tx.send(Ok(stream_error(cid, &e))).await.is_err() {
                            return;
                        }
                        drop(permit);
                        continue;
                    }
                };
                let (tx, this) = (tx.clone(), this.clone());
                tokio::spawn(async move {
                    let finished = this.finish(started).instrument(span).await;
                    if let Some(c) = count {
                        c.answered(finished.as_ref().err());
                    }
                    let answer = match finished {
                        Ok(_) if this.drop_answer() => return,
                        Ok(r) => ProduceStreamResponse { correlation_id: cid, response: Some(r), error: None },
                        Err(e) => stream_error(cid, &e),
                    };
                    let _ = tx.send(Ok(answer)).await;
                    drop(permit);
                });
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delete_records(
        &self,
        request: Request<DeleteRecordsRequest>,
    ) -> Result<Response<DeleteRecordsResponse>, Status> {
        self.access.guard(&request)?;
        let req = request.into_inner();
        if crate::topic::is_internal(&req.topic) {
            return Err(
                ServiceError::InvalidArgument(format!("{} is internal: its records are Cairn's", req.topic)).into()
            );
        }
        let (_, group) = self.local(&req.topic, req.partition, req.topic_id)?;
        let p = group.progress();
        let before = match req.before_offset {
            -1 => p.high_watermark,
            b if b < -1 => {
                return Err(ServiceError::InvalidArgument(format!(
                    "before_offset {b}: expected an offset or -1 (the high watermark)"
                ))
                .into())
            }
            b => b.unsigned_abs(),
        };
        if !group.is_leader() {
            return Err(ServiceError::Group(GroupError::NotLeader { leader: group.leader_hint() }).into());
        }
        if before > p.high_watermark {
            // Nothing above the committed log can be deleted; nothing changes.
            return Err(ServiceError::Group(GroupError::OffsetOutOfRange {
                offset: before,
                log_start: p.log_start_offset,
                high_watermark: p.high_watermark,
            })
            .into());
        }
        let timeout = Duration::from_millis(self.limits.produce_timeout_ms);
        let log_start_offset = group.delete_records(before, timeout).await.map_err(ServiceError::from)?;
        Ok(Response::new(DeleteRecordsResponse { log_start_offset }))
    }

    type SubscribeStream = ReceiverStream<Result<SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<Streaming<SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let principal = Principal::of(&request);
        let rx = super::subscribe::serve(self.clone(), principal, request.into_inner());
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn init_producer(
        &self,
        request: Request<InitProducerRequest>,
    ) -> Result<Response<InitProducerResponse>, Status> {
        self.access.guard(&request)?;
        let req = request.into_inner();
        let instance = (req.producer_id != 0).then_some((req.producer_id, req.epoch));
        let (producer_id, epoch) = self.controller.init_producer(&req.name, instance).await?;
        if !req.name.is_empty() && instance.is_none() {
            self.await_fence(producer_id, epoch).await?;
        }
        Ok(Response::new(InitProducerResponse { producer_id, epoch }))
    }

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let principal = self.access.guard(&request)?;
        let req = request.into_inner();
        let (topic_id, group) = match self.local(&req.topic, req.partition, req.topic_id) {
            Ok(local) => local,
            Err(e) => {
                self.metrics.fetch.answered(self.topic_label(&req.topic), e.code_name(), 0, 0);
                return Err(e.into());
            }
        };
        let max_bytes = match req.max_bytes as usize {
            0 => self.limits.fetch_bytes_max,
            n => n.min(self.limits.fetch_bytes_max),
        };
        let wait = Duration::from_millis(u64::from(req.max_wait_ms).min(self.limits.fetch_wait_ms_max));
        let throttle_ms = self.throttle(&principal, Direction::Fetch, 0).await?;
        let res = group.fetch(req.offset, max_bytes, wait).await.map_err(ServiceError::from);
        let topic = self.topic_label(&req.topic);
        match &res {
            Ok(r) => {
                let bytes = r.records.iter().map(fetched_size).sum();
                self.metrics.fetch.answered(topic, crate::metrics::OK, r.records.len() as u64, bytes);
            }
            Err(e) => self.metrics.fetch.answered(topic, e.code_name(), 0, 0),
        }
        let res = res?;
        self.charge(&principal, Direction::Fetch, res.records.iter().map(fetched_size).sum());
        Ok(Response::new(FetchResponse {
            records: res.records,
            high_watermark: res.high_watermark,
            log_start_offset: res.log_start_offset,
            topic_id: self.reported(topic_id),
            throttle_time_ms: throttle_ms,
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        self.access.guard(&request)?;
        let req = request.into_inner();
        let (_, group) = self.local(&req.topic, req.partition, req.topic_id)?;
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
        request: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let principal = self.access.guard(&request)?;
        let state = self.groups.known_state()?;
        // Only the topics the caller may describe (all of them with ACLs off).
        let visible: Vec<_> = state
            .topics
            .iter()
            .filter(|(name, _)| self.access.may(&principal, Operation::Describe, Resource::topic(name)))
            .collect();
        let ids = visible.iter().flat_map(|(_, t)| t.partitions.iter().map(|p| p.group_id)).collect();
        let views = describe::gather(&self.groups, &self.liveness, ids).await;
        let topics: Vec<TopicInfo> = visible
            .into_iter()
            .map(|(name, t)| TopicInfo {
                name: name.clone(),
                partitions: describe::partitions(t, &views, &state),
                topic_id: t.id,
            })
            .collect();
        let nodes = state
            .nodes
            .iter()
            .map(|(id, addr)| (id, addr, self.disk_of(*id)))
            .map(|(id, addr, (disk_free_bytes, disk_free_floor_bytes))| NodeInfo {
                node_id: *id,
                address: addr.client.clone(),
                peer_address: addr.peer.clone(),
                alive: *id == self.node_id || self.liveness.is_alive(*id),
                leader_count: topics.iter().flat_map(|t| &t.partitions).filter(|p| p.leader_node_id == *id).count()
                    as u32,
                directory_id: state.directories.get(id).copied().unwrap_or(0),
                awaiting_replacement: state.awaiting_replacement(*id),
                disk_free_bytes,
                disk_free_floor_bytes,
            })
            .collect();
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: state.cluster_id.clone(),
            answering_node_id: self.node_id,
            nodes,
            topics,
            controller_leader_id: self.controller.leader().map(|l| l.node_id).unwrap_or(0),
            metadata_version: state.version,
            controller_reconfiguring: self.controller.group().membership().0
                != state.controller_members().into_keys().collect(),
        }))
    }
}
