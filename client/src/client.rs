//! [`Client`]: leader routing, NOT_LEADER redirects and retries within a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::{
    AlterTopicConfigRequest, CreatePartitionsRequest, CreateTopicRequest, DeleteRecordsRequest, DeleteTopicRequest,
    DescribeClusterRequest, DescribeClusterResponse, DescribeTopicRequest, DescribeTopicResponse, FetchRequest,
    FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ListTopicsRequest, ProduceRequest, ProduceResponse, Record,
    RetentionConfig, TopicSummary,
};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Endpoint;

use crate::config::{ClientConfig, Conn, Credentials};
use crate::error::{ClientError, ErrorCode};
use crate::metadata::Metadata;

/// Which offset `list_offsets` resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// Who should answer a call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// Any broker (reads of metadata).
    Any,
    /// The leader of one partition of one topic incarnation (id 0: by name).
    Partition(&'a str, u32, u64),
    /// The controller leader (metadata changes).
    Controller,
    /// The coordinator of one consumer group.
    Coordinator(&'a str),
}

/// A connection to a Cairn cluster. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    cfg: ClientConfig,
    channels: Mutex<HashMap<String, Conn>>,
    meta: RwLock<Metadata>,
    controller: RwLock<Option<String>>,
    /// Coordinator address by consumer group.
    coordinators: RwLock<HashMap<String, String>>,
    /// Rotates the broker tried when no leader is known.
    next_broker: Mutex<usize>,
    /// Bootstrap brokers that could not be reached, passed over until the time given: a dead
    /// broker in the list costs one failed connection, not a detour of every request.
    down: Mutex<HashMap<String, Instant>>,
    /// When metadata last came back from a broker (see [`ClientConfig::metadata_max_age`]).
    refreshed_at: Mutex<Option<std::time::Instant>>,
    /// Set while one caller reloads stale metadata (the others go on with the cache).
    refreshing: std::sync::atomic::AtomicBool,
}

/// How long a partition call keeps retrying UNKNOWN_TOPIC / UNKNOWN_PARTITION: a topic that was
/// just created can take a moment to reach every node's copy of the metadata.
const UNKNOWN_TOPIC_GRACE: Duration = Duration::from_secs(3);

/// How long a broker that could not be reached is passed over by calls any broker can answer.
const DOWN_FOR: Duration = Duration::from_secs(10);

/// How long [`Client::connect`] keeps trying while no broker can be connected to at all.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(3);

impl Client {
    /// Connects and loads metadata from the first broker that answers.
    ///
    /// # Errors
    /// No broker configured, invalid addresses, or no broker answering within the retry deadline.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        if cfg.brokers.is_empty() {
            return Err(ClientError::NoBrokers);
        }
        let client = Client {
            cfg,
            channels: Mutex::default(),
            meta: RwLock::default(),
            controller: RwLock::default(),
            coordinators: RwLock::default(),
            next_broker: Mutex::new(0),
            down: Mutex::default(),
            refreshed_at: Mutex::new(None),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        };
        for b in &client.cfg.brokers {
            client.channel(b)?;
        }
        client.first_contact().await?;
        Ok(client)
    }

    /// Loads metadata from the first broker that answers. While none can even be connected to,
    /// gives up after [`UNREACHABLE_GRACE`] naming every address tried (a typo'd address or a
    /// cluster that is down should not cost the whole retry deadline); once any broker answers,
    /// even with an error (starting, no controller yet), the ordinary retry budget applies.
    async fn first_contact(&self) -> Result<(), ClientError> {
        let start = Instant::now();
        loop {
            let mut last = None;
            for b in &self.cfg.brokers {
                let asked = self
                    .attempt(b, Duration::ZERO, &|ch| {
                        let mut c = self.broker(ch);
                        async move { c.describe_cluster(DescribeClusterRequest {}).await }
                    })
                    .await;
                match asked {
                    Ok(resp) => {
                        self.absorb(&resp);
                        return Ok(());
                    }
                    Err(e) if e.is_unreachable() => last = Some(e),
                    Err(_) => return self.refresh_metadata().await,
                }
            }
            let last = last.unwrap_or(ClientError::NoBrokers);
            if start.elapsed() >= UNREACHABLE_GRACE {
                return Err(ClientError::Unreachable { tried: self.cfg.brokers.clone(), last: Box::new(last) });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn channel(&self, addr: &str) -> Result<Conn, ClientError> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.cfg.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|_| ClientError::InvalidBroker(addr.to_string()))?
            .connect_timeout(self.cfg.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.cfg.tls {
            // The broker's certificate is checked against the host of its address.
            let mut t = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(t).map_err(|e| ClientError::Tls(e.to_string()))?;
        }
        let ch = Conn::new(endpoint.connect_lazy(), Credentials::new(self.cfg.token.as_ref())?);
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// The channel to `addr`, created once.
    pub(crate) fn channel_to(&self, addr: &str) -> Result<Conn, ClientError> {
        self.channel(addr)
    }

    /// The cached leader of `topic`/`partition`, or some broker to ask.
    pub(crate) fn partition_target(&self, topic: &str, partition: u32) -> String {
        self.target_addr(Target::Partition(topic, partition, 0))
    }

    /// Remembers (or forgets) the leader of `topic`/`partition`.
    pub(crate) fn set_partition_leader(&self, topic: &str, partition: u32, addr: Option<String>) {
        self.remember_leader(Target::Partition(topic, partition, 0), addr);
    }

    /// The incarnation of `topic` in the newest metadata seen (None: no such topic there).
    pub(crate) fn cached_topic_id(&self, topic: &str) -> Option<u64> {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).topic_id(topic)
    }

    /// One metadata refresh attempt, errors ignored by callers that will retry anyway.
    pub(crate) async fn refresh_once(&self) -> Result<(), ClientError> {
        self.refresh_metadata_once().await
    }

    pub(crate) fn broker(&self, ch: Conn) -> BrokerClient<Conn> {
        let max = self.cfg.message_bytes_max;
        BrokerClient::new(ch).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    /// The next bootstrap broker in turn, passing over those recently unreachable (unless
    /// every one is).
    fn any_broker(&self) -> String {
        let n = self.cfg.brokers.len();
        let mut i = self.next_broker.lock().unwrap_or_else(|p| p.into_inner());
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for _ in 0..n {
            let addr = &self.cfg.brokers[*i % n];
            *i = i.wrapping_add(1);
            if down.get(addr).is_none_or(|until| *until <= now) {
                return addr.clone();
            }
        }
        let addr = self.cfg.brokers[*i % n].clone();
        *i = i.wrapping_add(1);
        addr
    }

    /// Notes whether `addr` could be reached.
    fn note_reach(&self, addr: &str, reached: bool) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if reached {
            if !down.is_empty() {
                down.remove(addr);
            }
        } else if self.cfg.brokers.iter().any(|b| b == addr) {
            down.insert(addr.to_string(), Instant::now() + DOWN_FOR);
        }
    }

    /// Runs one attempt of `op` against `addr` with the per-request timeout plus `extra` (the
    /// server-side wait a long-poll asked for).
    async fn attempt<T, F, Fut>(&self, addr: &str, extra: Duration, op: &F) -> Result<T, ClientError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let ch = self.channel(addr)?;
        let res = match tokio::time::timeout(self.cfg.request_timeout + extra, op(ch)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(addr, status)),
            Err(_) => Err(ClientError::Transport {
                addr: addr.to_string(),
                status: tonic::Status::deadline_exceeded("request timed out"),
            }),
        };
        // No Cairn answer at all (refused, dropped, timed out): not a broker to ask now.
        self.note_reach(addr, !res.as_ref().is_err_and(|e| matches!(e, ClientError::Transport { .. })));
        res
    }

    fn target_addr(&self, target: Target<'_>) -> String {
        let cached = match target {
            Target::Any => None,
            Target::Partition(t, p, _) => {
                self.meta.read().unwrap_or_else(|e| e.into_inner()).leader(t, p).map(String::from)
            }
            Target::Controller => self.controller.read().unwrap_or_else(|e| e.into_inner()).clone(),
            Target::Coordinator(g) => self.coordinators.read().unwrap_or_else(|e| e.into_inner()).get(g).cloned(),
        };
        cached.unwrap_or_else(|| self.any_broker())
    }

    fn remember_leader(&self, target: Target<'_>, addr: Option<String>) {
        match target {
            Target::Any => {}
            Target::Partition(t, p, _) => self.meta.write().unwrap_or_else(|e| e.into_inner()).set_leader(t, p, addr),
            Target::Controller => *self.controller.write().unwrap_or_else(|e| e.into_inner()) = addr,
            Target::Coordinator(g) => {
                let mut map = self.coordinators.write().unwrap_or_else(|e| e.into_inner());
                match addr {
                    Some(a) => map.insert(g.to_string(), a),
                    None => map.remove(g),
                };
            }
        }
    }

    /// The retry loop shared by every call: follow NOT_LEADER hints (at most `redirects_max` in a
    /// row), back off and re-resolve on retriable errors, give up at the deadline. Once an
    /// attempt's outcome was unknown, a later definite error is reported as
    /// [`ClientError::InDoubt`]: a refusal of the retry says nothing about the first attempt.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        target: Target<'_>,
        extra: Duration,
        op: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.with_retries_for(target, extra, self.cfg.retry_deadline, op).await
    }

    /// [`Client::with_retries`] with its own retry budget (a heartbeat must not outlive a
    /// session).
    pub(crate) async fn with_retries_for<T, F, Fut>(
        &self,
        target: Target<'_>,
        extra: Duration,
        budget: Duration,
        op: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = start + budget;
        let mut backoff = self.cfg.backoff_initial;
        let mut attempts = 0u32;
        let mut redirects = 0u32;
        let mut doubt: Option<ClientError> = None;
        let mut addr = self.target_addr(target);
        // Replicas that answered REPLICA_STOPPED in a row: the next attempt goes elsewhere.
        let mut stopped_at: Vec<String> = Vec::new();
        loop {
            attempts += 1;
            let err = match self.attempt(&addr, extra, &op).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_definite() {
                doubt = Some(err.clone());
            }
            if matches!(err, ClientError::Transport { .. }) {
                // Any broker can answer: go to the next one at once, no back-off.
                if matches!(target, Target::Any) && redirects < self.cfg.redirects_max {
                    let next = self.any_broker();
                    if next != addr {
                        redirects += 1;
                        addr = next;
                        continue;
                    }
                }
            }

            if let Some(hint) = err.leader_hint() {
                if redirects < self.cfg.redirects_max && hint != addr {
                    redirects += 1;
                    self.remember_leader(target, Some(hint.to_string()));
                    addr = hint.to_string();
                    continue;
                }
            }
            if let (Some(ErrorCode::ReplicaStopped), Target::Partition(topic, partition, _)) = (err.code(), target) {
                stopped_at.push(addr.clone());
                let other = self
                    .meta
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .other_replica(topic, partition, &stopped_at)
                    .map(String::from);
                if let Some(other) = other.filter(|_| redirects < self.cfg.redirects_max) {
                    tracing::debug!(failed = %addr, next = %other, error = %err, "replica stopped; trying another replica");
                    redirects += 1;
                    self.remember_leader(target, None);
                    addr = other;
                    continue;
                }
                stopped_at.clear();
            }
            let unknown_topic = matches!(err.code(), Some(ErrorCode::UnknownTopic | ErrorCode::UnknownPartition));
            let retry_unknown =
                unknown_topic && matches!(target, Target::Partition(..)) && start.elapsed() < UNKNOWN_TOPIC_GRACE;
            if let (Some(ErrorCode::UnknownTopicId), Target::Partition(topic, _, id)) = (err.code(), target) {
                // Retriable only while the incarnation asked for is still the topic's: once the
                // newest metadata shows another one (or none), it was deleted for good.
                let _ = self.refresh_metadata_once().await;
                if self.cached_topic_id(topic) != Some(id) {
                    return Err(err.after(doubt.as_ref()));
                }
            }
            if !err.is_retriable() && !retry_unknown {
                return Err(err.after(doubt.as_ref()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::RetriesExhausted { attempts, last: Box::new(err.after(doubt.as_ref())) });
            }
            tracing::debug!(%addr, error = %err, "retrying");
            let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
            tokio::time::sleep((backoff + Duration::from_millis(jitter)).min(deadline - now)).await;
            backoff = (backoff * 2).min(self.cfg.backoff_max);
            redirects = 0;
            // The cached leader failed: forget it, and learn the new one if a broker knows.
            self.remember_leader(target, None);
            if matches!(target, Target::Partition(..))
                && (matches!(&err, ClientError::Server { .. }) || attempts % 2 == 0)
            {
                let _ = self.refresh_metadata_once().await;
            }
            addr = self.target_addr(target);
        }
    }

    /// Describes the cluster as seen by the first broker that answers.
    ///
    /// # Errors
    /// No broker answered within the retry deadline.
    pub async fn describe_cluster(&self) -> Result<DescribeClusterResponse, ClientError> {
        self.with_retries(Target::Any, Duration::ZERO, |ch| {
            let mut c = self.broker(ch);
            async move { c.describe_cluster(DescribeClusterRequest {}).await }
        })
        .await
    }

    fn absorb(&self, resp: &DescribeClusterResponse) {
        *self.refreshed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        let fresh = Metadata::from_response(resp);
        let mut meta = self.meta.write().unwrap_or_else(|p| p.into_inner());
        if !meta.merge(fresh) {
            return; // an answer older than what we know: its controller may be stale too
        }
        if resp.controller_leader_id != 0 {
            let addr = resp.nodes.iter().find(|n| n.node_id == resp.controller_leader_id).map(|n| n.address.clone());
            if addr.is_some() {
                *self.controller.write().unwrap_or_else(|p| p.into_inner()) = addr;
            }
        }
    }

    /// Reloads topics, partition counts and leaders.
    ///
    /// # Errors
    /// As [`Client::describe_cluster`].
    pub async fn refresh_metadata(&self) -> Result<(), ClientError> {
        let resp = self.describe_cluster().await?;
        self.absorb(&resp);
        Ok(())
    }

    /// One metadata refresh attempt without the retry loop (used inside it).
    async fn refresh_metadata_once(&self) -> Result<(), ClientError> {
        let addr = self.any_broker();
        let resp = self
            .attempt(&addr, Duration::ZERO, &|ch| {
                let mut c = self.broker(ch);
                async move { c.describe_cluster(DescribeClusterRequest {}).await }
            })
            .await?;
        self.absorb(&resp);
        Ok(())
    }

    /// Reloads the metadata once if it is older than [`ClientConfig::metadata_max_age`] and no
    /// other caller is at it; returns whether it tried. One attempt: on failure the cache
    /// stays (a retriable error elsewhere refreshes it again).
    async fn reload_if_stale(&self) -> bool {
        use std::sync::atomic::Ordering;
        let stale = self
            .refreshed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() >= self.cfg.metadata_max_age);
        if !stale || self.refreshing.swap(true, Ordering::AcqRel) {
            return false;
        }
        /// Clears the flag however the reload ends (its future may be dropped mid-way).
        struct Reloading<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Reloading<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        let _flag = Reloading(&self.refreshing);
        if self.refresh_metadata_once().await.is_err() {
            // Not again at every call while the cluster is unreachable: next after max age.
            *self.refreshed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        }
        true
    }

    /// Number of partitions of `topic` (from cached metadata, refreshed once if unknown).
    ///
    /// # Errors
    /// UNKNOWN_TOPIC when the cluster does not have the topic.
    pub async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        Ok(self.topic(topic).await?.1)
    }

    /// The current incarnation (id) of `topic` and its partition count, from cached metadata
    /// (refreshed once if unknown).
    ///
    /// # Errors
    /// UNKNOWN_TOPIC when the cluster does not have the topic.
    pub async fn topic(&self, topic: &str) -> Result<(u64, u32), ClientError> {
        let cached = |c: &Client| {
            let meta = c.meta.read().unwrap_or_else(|p| p.into_inner());
            meta.topic_id(topic).zip(meta.partition_count(topic))
        };
        if let Some(t) = cached(self) {
            if !self.reload_if_stale().await {
                return Ok(t);
            }
            if let Some(t) = cached(self) {
                return Ok(t);
            }
        }
        self.refresh_metadata().await?;
        cached(self).ok_or_else(|| {
            // With authentication on, the metadata lists only what this principal may describe.
            let hint = if self.cfg.token.is_some() || self.cfg.tls.as_ref().is_some_and(|t| t.identity.is_some()) {
                " (or this principal may not describe it)"
            } else {
                ""
            };
            ClientError::local(ErrorCode::UnknownTopic, format!("unknown topic {topic:?}{hint}"))
        })
    }

    /// Appends `records` to one partition; returns once they are committed (on a majority, each
    /// fsynced). Retries retriable errors until the deadline. Without an idempotent producer a
    /// retry after an unknown outcome may append the records twice.
    ///
    /// # Errors
    /// Non-retriable server errors (unknown topic, record too large, ...) and exhausted retries;
    /// [`ClientError::InDoubt`] when an attempt's outcome was unknown.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        mut records: Vec<Record>,
    ) -> Result<ProduceResponse, ClientError> {
        crate::trace::inject_current(&mut records);
        let (topic_id, _) = self.topic(topic).await?;
        let req =
            ProduceRequest { topic: topic.to_string(), partition, records, topic_id, ..ProduceRequest::default() };
        self.with_retries(Target::Partition(topic, partition, topic_id), Duration::ZERO, |ch| {
            let (mut c, req) = (self.broker(ch), req.clone());
            async move { c.produce(req).await }
        })
        .await
    }

    /// Appends `records` to one partition only if `condition` holds when the batch is applied
    /// (optimistic concurrency); returns once they are committed. A key condition needs every
    /// record to carry the same key. Without an idempotent producer, a retry after an unknown
    /// outcome cannot tell "my earlier attempt landed" from "someone else moved the partition":
    /// such an answer comes back as [`ClientError::InDoubt`]; the [`crate::Producer`]'s
    /// `send_conditional` resolves it.
    ///
    /// # Errors
    /// OFFSET_MISMATCH ([`ClientError::mismatch`] tells the state it was checked against);
    /// INVALID_ARGUMENT for a key condition on records without one key; as [`Client::produce`].
    pub async fn produce_conditional(
        &self,
        topic: &str,
        partition: u32,
        mut records: Vec<Record>,
        condition: crate::Condition,
    ) -> Result<ProduceResponse, ClientError> {
        crate::trace::inject_current(&mut records);
        let (topic_id, _) = self.topic(topic).await?;
        let mut req =
            ProduceRequest { topic: topic.to_string(), partition, records, topic_id, ..ProduceRequest::default() };
        condition.apply_to(&mut req);
        self.with_retries(Target::Partition(topic, partition, topic_id), Duration::ZERO, |ch| {
            let (mut c, req) = (self.broker(ch), req.clone());
            async move { c.produce(req).await }
        })
        .await
    }

    /// Reads committed records of one partition from `offset` (from its leader).
    ///
    /// # Errors
    /// OFFSET_OUT_OF_RANGE and other non-retriable errors; UNKNOWN_TOPIC_ID once the topic was
    /// deleted (and perhaps re-created) while reading; exhausted retries.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResponse, ClientError> {
        let (topic_id, _) = self.topic(topic).await?;
        self.fetch_incarnation(topic, topic_id, partition, offset, max_bytes, max_wait_ms).await
    }

    /// Like [`Client::fetch`], from incarnation `topic_id` of `topic` (as a consumer that must
    /// not read a re-created topic as the one it was reading).
    ///
    /// # Errors
    /// As [`Client::fetch`]; UNKNOWN_TOPIC_ID when that incarnation is gone.
    pub async fn fetch_incarnation(
        &self,
        topic: &str,
        topic_id: u64,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResponse, ClientError> {
        let req = FetchRequest { topic: topic.to_string(), partition, offset, max_bytes, max_wait_ms, topic_id };
        let wait = Duration::from_millis(u64::from(max_wait_ms));
        self.with_retries(Target::Partition(topic, partition, topic_id), wait, |ch| {
            let (mut c, req) = (self.broker(ch), req.clone());
            async move { c.fetch(req).await }
        })
        .await
    }

    /// Reads from one specific node's replica, without redirects or retries (for checking what
    /// each replica holds).
    ///
    /// # Errors
    /// Any error of that node.
    pub async fn fetch_from_node(&self, addr: &str, req: FetchRequest) -> Result<FetchResponse, ClientError> {
        let wait = Duration::from_millis(u64::from(req.max_wait_ms));
        self.attempt(addr, wait, &|ch| {
            let (mut c, req) = (self.broker(ch), req.clone());
            async move { c.fetch(req).await }
        })
        .await
    }

    /// Resolves earliest / latest / by-timestamp to an offset (on the leader).
    ///
    /// # Errors
    /// Non-retriable errors; exhausted retries.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListOffsetsResponse, ClientError> {
        let spec = match spec {
            OffsetSpec::Earliest => Spec::Earliest(true),
            OffsetSpec::Latest => Spec::Latest(true),
            OffsetSpec::Timestamp(t) => Spec::TimestampMs(t),
        };
        let (topic_id, _) = self.topic(topic).await?;
        let req = ListOffsetsRequest { topic: topic.to_string(), partition, spec: Some(spec), topic_id };
        self.with_retries(Target::Partition(topic, partition, topic_id), Duration::ZERO, |ch| {
            let (mut c, req) = (self.broker(ch), req.clone());
            async move { c.list_offsets(req).await }
        })
        .await
    }

    /// Kafka's DeleteRecords: makes every record of `topic`/`partition` below `before` (None:
    /// the high watermark) unreadable; the bytes go at the next segment boundary at or below
    /// it. Returns the log start after the call. Safe to retry (the log start never moves back).
    ///
    /// # Errors
    /// OFFSET_OUT_OF_RANGE for an offset above the high watermark (nothing changed),
    /// INVALID_ARGUMENT for an internal topic, exhausted retries.
    pub async fn delete_records(&self, topic: &str, partition: u32, before: Option<u64>) -> Result<u64, ClientError> {
        let (topic_id, _) = self.topic(topic).await?;
        let before_offset = match before {
            Some(b) => {
                i64::try_from(b).map_err(|_| ClientError::InvalidArgument(format!("offset {b} is too large")))?
            }
            None => -1,
        };
        let req = DeleteRecordsRequest { topic: topic.to_string(), partition, topic_id, before_offset };
        let resp = self
            .with_retries(Target::Partition(topic, partition, topic_id), Duration::ZERO, |ch| {
                let (mut c, req) = (self.broker(ch), req.clone());
                async move { c.delete_records(req).await }
            })
            .await?;
        Ok(resp.log_start_offset)
    }

    /// Changes a topic's retention settings (None keeps a setting; 0 returns it to the cluster
    /// default; -1 = no limit). Idempotent, so retried freely. Returns the topic as changed.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC, INVALID_ARGUMENT (bad values, an internal topic, nothing to change),
    /// exhausted retries.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        retention_ms: Option<i64>,
        retention_bytes: Option<i64>,
    ) -> Result<TopicSummary, ClientError> {
        let req =
            AlterTopicConfigRequest { name: name.to_string(), retention_ms, retention_bytes, ..Default::default() };
        self.alter(req).await
    }

    /// Turns a topic's broker-side schema validation of keys and/or values on or off (None
    /// keeps a setting): produce then refuses, as INVALID_RECORD, a batch with a key or value
    /// that does not carry the id of a schema registered under `<topic>-key` / `<topic>-value`
    /// (docs/schemas.md). Idempotent. Returns the topic as changed.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC, INVALID_ARGUMENT (an internal topic, nothing to change), exhausted retries.
    pub async fn set_schema_validation(
        &self,
        name: &str,
        key: Option<bool>,
        value: Option<bool>,
    ) -> Result<TopicSummary, ClientError> {
        let req = AlterTopicConfigRequest {
            name: name.to_string(),
            key_schema_validation: key,
            value_schema_validation: value,
            ..Default::default()
        };
        self.alter(req).await
    }

    async fn alter(&self, req: AlterTopicConfigRequest) -> Result<TopicSummary, ClientError> {
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.alter_topic_config(req).await }
            })
            .await?;
        r.topic.ok_or_else(|| ClientError::InvalidArgument("server answered without a topic".into()))
    }

    /// Grows `name` to `partitions` partitions (never fewer). Idempotent: asking for the count
    /// the topic already has answers with the topic unchanged, so it is retried freely. This
    /// client's metadata is refreshed; other clients see the new partitions at their next
    /// refresh (within [`crate::ClientConfig::metadata_max_age`]).
    ///
    /// # Errors
    /// UNKNOWN_TOPIC, INVALID_ARGUMENT (fewer partitions, an internal topic),
    /// NOT_ENOUGH_LIVE_NODES, LIMIT_EXCEEDED, exhausted retries.
    pub async fn create_partitions(&self, name: &str, partitions: u32) -> Result<TopicSummary, ClientError> {
        let req = CreatePartitionsRequest { name: name.to_string(), partitions };
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.create_partitions(req).await }
            })
            .await?;
        let _ = self.refresh_metadata().await;
        r.topic.ok_or_else(|| ClientError::InvalidArgument("server answered without a topic".into()))
    }

    /// Creates a topic (`replication_factor` 0: the cluster default). A retry after an unknown
    /// outcome that finds the same topic already created counts as success.
    ///
    /// # Errors
    /// INVALID_ARGUMENT (name, partitions), INVALID_REPLICATION_FACTOR, TOPIC_ALREADY_EXISTS,
    /// exhausted retries.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        retention: Option<RetentionConfig>,
    ) -> Result<TopicSummary, ClientError> {
        let req = CreateTopicRequest { name: name.to_string(), partitions, replication_factor, retention };
        let mut uncertain = false;
        loop {
            let res = self
                .with_retries(Target::Controller, Duration::ZERO, |ch| {
                    let (mut c, req) = (AdminClient::new(ch), req.clone());
                    async move { c.create_topic(req).await }
                })
                .await;
            match res {
                Ok(r) => {
                    let _ = self.refresh_metadata().await;
                    return r
                        .topic
                        .ok_or_else(|| ClientError::InvalidArgument("server answered without a topic".into()));
                }
                // Our own earlier attempt may have created it: accept an identical topic.
                Err(e) if (uncertain || !e.is_definite()) && e.code() == Some(ErrorCode::TopicAlreadyExists) => {
                    let d = self.describe_topic(name).await?;
                    let t = d.topic.ok_or(e)?;
                    let rf_ok = replication_factor == 0 || t.replication_factor == replication_factor;
                    if t.partitions == partitions && rf_ok {
                        let _ = self.refresh_metadata().await;
                        return Ok(t);
                    }
                    return Err(ClientError::local(
                        ErrorCode::TopicAlreadyExists,
                        format!("topic {name:?} already exists with other settings"),
                    ));
                }
                Err(e) if !e.is_definite() && !uncertain => {
                    uncertain = true;
                    tracing::debug!(error = %e, "create_topic outcome unknown; retrying once");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A producer id and epoch from the controller leader (see [`crate::Producer`]): a new
    /// anonymous id, or for a name a new instance's epoch (fencing every older instance).
    ///
    /// # Errors
    /// Invalid names, LIMIT_EXCEEDED, exhausted retries.
    pub async fn init_producer(&self, name: &str) -> Result<(u64, u32), ClientError> {
        self.init_producer_request(cairn_proto::v1::InitProducerRequest {
            name: name.to_string(),
            ..Default::default()
        })
        .await
    }

    /// A higher epoch for the running instance `(producer_id, epoch)` of named producer `name`,
    /// without fencing the instance itself (after a send it could not resolve).
    ///
    /// # Errors
    /// FENCED when a newer instance took the name over; exhausted retries.
    pub(crate) async fn bump_producer_epoch(
        &self,
        name: &str,
        producer_id: u64,
        epoch: u32,
    ) -> Result<(u64, u32), ClientError> {
        self.init_producer_request(cairn_proto::v1::InitProducerRequest { name: name.to_string(), producer_id, epoch })
            .await
    }

    async fn init_producer_request(
        &self,
        req: cairn_proto::v1::InitProducerRequest,
    ) -> Result<(u64, u32), ClientError> {
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (self.broker(ch), req.clone());
                async move { c.init_producer(req).await }
            })
            .await?;
        Ok((r.producer_id, r.epoch))
    }

    /// Deletes a topic and all of its data.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC, exhausted retries.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let req = DeleteTopicRequest { name: name.to_string() };
        self.with_retries(Target::Controller, Duration::ZERO, |ch| {
            let (mut c, req) = (AdminClient::new(ch), req.clone());
            async move { c.delete_topic(req).await }
        })
        .await?;
        self.meta.write().unwrap_or_else(|p| p.into_inner()).topics.remove(name);
        Ok(())
    }

    /// Marks node `node_id`, whose data directory was lost, for replacement (see
    /// `cairn node replace`); returns how many partition replicas will be rebuilt on it.
    ///
    /// # Errors
    /// INVALID_ARGUMENT (unknown node, the node is up with its registered directory, already
    /// awaiting its replacement), exhausted retries.
    pub async fn replace_node(&self, node_id: u64) -> Result<u32, ClientError> {
        let req = cairn_proto::v1::ReplaceNodeRequest { node_id, ..Default::default() };
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req);
                async move { c.replace_node(req).await }
            })
            .await?;
        Ok(r.replicas)
    }

    /// Rebuilds the replica of `topic`/`partition` on `node_id` from the others (see `cairn
    /// replica repair`); returns the new replica's id.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC / UNKNOWN_PARTITION, INVALID_ARGUMENT (no replica there, a single-replica
    /// partition), UNAVAILABLE while the partition has no leader or another repair runs,
    /// exhausted retries.
    pub async fn repair_replica(&self, topic: &str, partition: u32, node_id: u64) -> Result<u64, ClientError> {
        let req = cairn_proto::v1::RepairReplicaRequest { topic: topic.to_string(), partition, node_id };
        let r = self
            .with_retries(Target::Controller, Duration::ZERO, |ch| {
                let (mut c, req) = (AdminClient::new(ch), req.clone());
                async move { c.repair_replica(req).await }
            })
            .await?;
        Ok(r.replica_id)
    }

    /// Every topic but the internal ones.
    ///
    /// # Errors
    /// No broker answered within the deadline.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, ClientError> {
        self.list_topics_with(false).await
    }

    /// Every topic, internal ones (`__consumer_offsets`) too when `include_internal`.
    ///
    /// # Errors
    /// No broker answered within the deadline.
    pub async fn list_topics_with(&self, include_internal: bool) -> Result<Vec<TopicSummary>, ClientError> {
        let resp = self
            .with_retries(Target::Any, Duration::ZERO, |ch| {
                let mut c = AdminClient::new(ch);
                async move { c.list_topics(ListTopicsRequest { include_internal }).await }
            })
            .await?;
        Ok(resp.topics)
    }

    /// One topic's settings and per-partition leader, replicas, high watermark and log start.
    ///
    /// # Errors
    /// UNKNOWN_TOPIC, exhausted retries.
    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse, ClientError> {
        let req = DescribeTopicRequest { name: name.to_string() };
        self.with_retries(Target::Any, Duration::ZERO, |ch| {
            let (mut c, req) = (AdminClient::new(ch), req.clone());
            async move { c.describe_topic(req).await }
        })
        .await
    }
}
