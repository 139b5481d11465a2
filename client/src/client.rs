//! [`Client`]: leader routing, NOT_LEADER redirects and retries within a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use cairn_proto::v1::broker_client::BrokerClient;
use cairn_proto::v1::list_offsets_request::Spec;
use cairn_proto::v1::{
    DescribeClusterRequest, DescribeClusterResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceRequest, ProduceResponse, Record,
};
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::metadata::Metadata;

/// Which offset `list_offsets` resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// A connection to a Cairn cluster. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    cfg: ClientConfig,
    channels: Mutex<HashMap<String, Channel>>,
    meta: RwLock<Metadata>,
    /// Rotates the broker tried when no leader is known.
    next_broker: Mutex<usize>,
}

impl Client {
    /// Connects and loads metadata from the first broker that answers.
    ///
    /// # Errors
    /// No broker configured, invalid addresses, or no broker answering within the retry deadline.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        if cfg.brokers.is_empty() {
            return Err(ClientError::NoBrokers);
        }
        let client = Client { cfg, channels: Mutex::default(), meta: RwLock::default(), next_broker: Mutex::new(0) };
        for b in &client.cfg.brokers {
            client.channel(b)?;
        }
        client.refresh_metadata().await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| ClientError::InvalidBroker(addr.to_string()))?
            .connect_timeout(self.cfg.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    fn broker(&self, addr: &str) -> Result<BrokerClient<Channel>, ClientError> {
        let max = self.cfg.message_bytes_max;
        Ok(BrokerClient::new(self.channel(addr)?).max_decoding_message_size(max).max_encoding_message_size(max))
    }

    fn any_broker(&self) -> String {
        let mut i = self.next_broker.lock().unwrap_or_else(|p| p.into_inner());
        let addr = self.cfg.brokers[*i % self.cfg.brokers.len()].clone();
        *i = i.wrapping_add(1);
        addr
    }

    /// Runs one attempt of `op` against `addr` with the per-request timeout plus `extra` (the
    /// server-side wait a long-poll asked for).
    async fn attempt<T, F, Fut>(&self, addr: &str, extra: Duration, op: &F) -> Result<T, ClientError>
    where
        F: Fn(BrokerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.broker(addr)?;
        match tokio::time::timeout(self.cfg.request_timeout + extra, op(client)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(addr, status)),
            Err(_) => Err(ClientError::Transport {
                addr: addr.to_string(),
                status: tonic::Status::deadline_exceeded("request timed out"),
            }),
        }
    }

    /// Describes the cluster as seen by the first broker that answers.
    ///
    /// # Errors
    /// No broker answered within the retry deadline.
    pub async fn describe_cluster(&self) -> Result<DescribeClusterResponse, ClientError> {
        self.with_retries(None, Duration::ZERO, |c| async move {
            let mut c = c;
            c.describe_cluster(DescribeClusterRequest {}).await
        })
        .await
    }

    /// Reloads partition counts and leaders.
    ///
    /// # Errors
    /// As [`Client::describe_cluster`].
    pub async fn refresh_metadata(&self) -> Result<(), ClientError> {
        let resp = self.describe_cluster().await?;
        let mut meta = Metadata::from_response(&resp);
        // A node that answers but does not know a leader yet: keep what we had.
        let old = self.meta.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (topic, leaders) in meta.topics.iter_mut() {
            for (p, l) in leaders.iter_mut().enumerate() {
                if l.is_none() {
                    *l = old.leader(topic, p as u32).map(String::from);
                }
            }
        }
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
        Ok(())
    }

    /// Number of partitions of `topic` (from cached metadata, refreshed once if unknown).
    ///
    /// # Errors
    /// UNKNOWN_TOPIC when the cluster does not have the topic.
    pub async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        if let Some(n) = self.meta.read().unwrap_or_else(|p| p.into_inner()).topics.get(topic).map(Vec::len) {
            return Ok(n as u32);
        }
        self.refresh_metadata().await?;
        self.meta.read().unwrap_or_else(|p| p.into_inner()).topics.get(topic).map(|t| t.len() as u32).ok_or_else(|| {
            ClientError::Server {
                code: crate::ErrorCode::UnknownTopic,
                message: format!("unknown topic {topic:?}"),
                retriable: false,
                definite: true,
                leader: None,
                log_start_offset: 0,
                high_watermark: 0,
            }
        })
    }

    /// The retry loop shared by every call. `route` names the partition whose leader should
    /// answer (None: any broker).
    async fn with_retries<T, F, Fut>(
        &self,
        route: Option<(&str, u32)>,
        extra: Duration,
        op: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(BrokerClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.cfg.retry_deadline;
        let mut backoff = self.cfg.backoff_initial;
        let mut attempts = 0u32;
        let mut redirects = 0u32;
        let mut target = self.target(route);
        loop {
            attempts += 1;
            let err = match self.attempt(&target, extra, &op).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if let (Some((topic, partition)), Some(hint)) = (route, err.leader_hint()) {
                if redirects < self.cfg.redirects_max && hint != target {
                    redirects += 1;
                    self.meta.write().unwrap_or_else(|p| p.into_inner()).set_leader(
                        topic,
                        partition,
                        Some(hint.to_string()),
                    );
                    target = hint.to_string();
                    continue;
                }
            }
            if !err.is_retriable() {
                return Err(err);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::RetriesExhausted { attempts, last: Box::new(err) });
            }
            tracing::debug!(%target, error = %err, "retrying");
            let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
            let sleep = (backoff + Duration::from_millis(jitter)).min(deadline - now);
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(self.cfg.backoff_max);
            redirects = 0;
            if let Some((topic, partition)) = route {
                // The cached leader failed: forget it, and learn the new one if a broker knows.
                self.meta.write().unwrap_or_else(|p| p.into_inner()).set_leader(topic, partition, None);
                if matches!(&err, ClientError::Server { .. }) || attempts % 2 == 0 {
                    let _ = Box::pin(self.refresh_metadata_once()).await;
                }
            }
            target = self.target(route);
        }
    }

    /// One metadata refresh attempt without the retry loop (used inside it).
    async fn refresh_metadata_once(&self) -> Result<(), ClientError> {
        let addr = self.any_broker();
        let resp = self
            .attempt(&addr, Duration::ZERO, &|mut c: BrokerClient<Channel>| async move {
                c.describe_cluster(DescribeClusterRequest {}).await
            })
            .await?;
        let fresh = Metadata::from_response(&resp);
        let mut meta = self.meta.write().unwrap_or_else(|p| p.into_inner());
        for (topic, leaders) in fresh.topics {
            let slot = meta.topics.entry(topic).or_default();
            if slot.len() != leaders.len() {
                *slot = vec![None; leaders.len()];
            }
            for (p, l) in leaders.into_iter().enumerate() {
                if l.is_some() {
                    slot[p] = l;
                }
            }
        }
        Ok(())
    }

    fn target(&self, route: Option<(&str, u32)>) -> String {
        route
            .and_then(|(t, p)| self.meta.read().unwrap_or_else(|e| e.into_inner()).leader(t, p).map(String::from))
            .unwrap_or_else(|| self.any_broker())
    }

    /// Appends `records` to one partition; returns once they are committed (on a majority, each
    /// fsynced). Retries retriable errors until the deadline. Without an idempotent producer a
    /// retry after an unknown outcome may append the records twice.
    ///
    /// # Errors
    /// Non-retriable server errors (unknown topic, record too large, ...) and exhausted retries.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<ProduceResponse, ClientError> {
        let req = ProduceRequest { topic: topic.to_string(), partition, records, ..ProduceRequest::default() };
        self.with_retries(Some((topic, partition)), Duration::ZERO, |mut c| {
            let req = req.clone();
            async move { c.produce(req).await }
        })
        .await
    }

    /// Reads committed records of one partition from `offset` (from its leader).
    ///
    /// # Errors
    /// OFFSET_OUT_OF_RANGE and other non-retriable errors; exhausted retries.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<FetchResponse, ClientError> {
        let req = FetchRequest { topic: topic.to_string(), partition, offset, max_bytes, max_wait_ms };
        let wait = Duration::from_millis(u64::from(max_wait_ms));
        self.with_retries(Some((topic, partition)), wait, |mut c| {
            let req = req.clone();
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
        self.attempt(addr, wait, &|mut c: BrokerClient<Channel>| {
            let req = req.clone();
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
        let req = ListOffsetsRequest { topic: topic.to_string(), partition, spec: Some(spec) };
        self.with_retries(Some((topic, partition)), Duration::ZERO, |mut c| {
            let req = req.clone();
            async move { c.list_offsets(req).await }
        })
        .await
    }
}
