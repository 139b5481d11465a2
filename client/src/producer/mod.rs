//! The idempotent producer: exactly-once appends across retries, leader changes and restarts.
//!
//! ```text
//!  send(record) ─► partition queue (bounded) ─► [partition task] batches (linger, size)
//!        ▲                                        │ sequence numbers per batch
//!        └─ DeliveryFuture ◄── offset ◄─ answers ◄┴─ ordered ProduceStream to the leader,
//!                                                    ≤ 5 batches in flight, resent in order
//!                                                    with the same sequences after any doubt
//! ```
//!
//! Each partition has its own task and stream: batches reach the leader in send order, and
//! after a retriable error or an unknown outcome (leader change, lost answer, timeout) every
//! batch in flight is sent again, in order, with the same producer id, epoch and sequence
//! numbers. The partition's state machine recognises the duplicates and answers with the
//! original offsets, so each record is appended once and offsets follow send order.
//!
//! A batch one of whose attempts may have been applied is *in doubt*. Only the partition
//! leader's answer resolves it (appended or duplicate); a definite refusal of a retry, perhaps
//! from a broker whose metadata lags, proves nothing about the earlier attempt. A batch that
//! stays in doubt until its delivery timeout is reported with an unknown outcome, never as
//! failed. Sequence numbers are never given to other records within one producer identity:
//! after any batch fails or is abandoned, the partition takes a new identity (an anonymous
//! producer a new id; a named one a higher epoch of its own) before it sequences anything new.

mod partition;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::ClientError;
use crate::partitioner::partition_for_key;
use crate::{Client, Record};

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Stable name: a new producer with the same name fences this one (its sends then fail
    /// with FENCED). `None` for an anonymous producer.
    pub name: Option<String>,
    /// How long a partition waits for more records before sending a partial batch.
    pub linger: Duration,
    pub batch_records_max: usize,
    pub batch_bytes_max: usize,
    /// Batches in flight per partition (at most 5: the server remembers 5 per producer).
    pub in_flight_max: usize,
    /// How long one attempt waits for its answer before the outcome counts as unknown.
    pub request_timeout: Duration,
    /// How long a record may take, retries included, before its send fails.
    pub delivery_timeout: Duration,
    /// Records queued per partition before `send` waits (back-pressure).
    pub queue_records_max: usize,
    /// Negative control for the fault suite only: trust a definite refusal of a retry as if no
    /// attempt had landed, fail the batch and reuse its sequence numbers (the behaviour before
    /// in-doubt tracking). Never enable it otherwise.
    #[doc(hidden)]
    pub fault_trust_retry_refusals: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            name: None,
            linger: Duration::from_millis(5),
            batch_records_max: 1000,
            batch_bytes_max: 1 << 20,
            in_flight_max: 5,
            request_timeout: Duration::from_secs(15),
            delivery_timeout: Duration::from_secs(120),
            queue_records_max: 10_000,
            fault_trust_retry_refusals: false,
        }
    }
}

/// Where a record was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAck {
    pub topic: String,
    /// The topic incarnation the record went to.
    pub topic_id: u64,
    pub partition: u32,
    pub offset: u64,
    /// The producer identity the record was sent under on this partition, and its sequence.
    pub producer_id: u64,
    pub epoch: u32,
    pub sequence: u32,
    /// The leader's append time (ms since the Unix epoch).
    pub append_time_ms: i64,
}

/// Resolves when the record is committed, definitely failed, or its outcome is known to be
/// unknowable ([`ClientError::is_definite`] false).
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordAck, ClientError>>,
}

impl std::future::Future for DeliveryFuture {
    type Output = Result<RecordAck, ClientError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ClientError::OutcomeUnknown("the producer stopped before the record was delivered".into()))
            })
        })
    }
}

/// One queued record and where its outcome goes.
pub(crate) struct Pending {
    pub record: Record,
    /// A conditional append's condition: the record is sent as a batch of its own.
    pub condition: Option<crate::Condition>,
    pub done: oneshot::Sender<Result<RecordAck, ClientError>>,
    pub queued_at: tokio::time::Instant,
}

/// A producer identity on one partition: id and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ident {
    pub producer_id: u64,
    pub epoch: u32,
}

/// Shared by the producer handle and its partition tasks.
pub(crate) struct Shared {
    pub client: Arc<Client>,
    pub cfg: ProducerConfig,
    /// The identity InitProducer gave; each partition starts with it and takes a new one after
    /// a batch it could not deliver.
    pub base: Ident,
    /// Records sent and not yet resolved (for `flush`).
    pub outstanding: AtomicUsize,
    pub settled: Notify,
    /// Set once the producer is fenced: every later send fails with it.
    pub fenced: Mutex<Option<ClientError>>,
    /// Why batches were resent since the last [`Producer::take_retry_reasons`] (bounded).
    pub retries: Mutex<RetryLog>,
}

/// Reasons for resending, counted per distinct message: what a user watching a producer that
/// makes no progress needs to see (a full disk, no leader, an unreachable broker).
#[derive(Default)]
pub(crate) struct RetryLog {
    counts: Vec<(String, u64)>,
}

/// Distinct retry reasons kept between two reads; more are counted under the last one.
const RETRY_REASONS_MAX: usize = 16;

impl RetryLog {
    pub(crate) fn note(&mut self, why: &ClientError) {
        let text = why.to_string();
        if let Some(c) = self.counts.iter_mut().find(|(t, _)| *t == text) {
            c.1 += 1;
        } else if self.counts.len() < RETRY_REASONS_MAX {
            self.counts.push((text, 1));
        } else if let Some(last) = self.counts.last_mut() {
            last.1 += 1;
        }
    }
}

impl Shared {
    /// A new identity for a partition whose identity `current` gave sequence numbers to records
    /// that did not all land: an anonymous producer takes a new id, a named one a higher epoch
    /// of its own instance (which does not fence its other partitions).
    pub(crate) async fn reinit(&self, current: Ident) -> Result<Ident, ClientError> {
        let (producer_id, epoch) = match &self.cfg.name {
            None => self.client.init_producer("").await?,
            Some(name) => self.client.bump_producer_epoch(name, current.producer_id, current.epoch).await?,
        };
        Ok(Ident { producer_id, epoch })
    }

    pub(crate) fn settle(&self, n: usize) {
        if self.outstanding.fetch_sub(n, Ordering::AcqRel) == n {
            self.settled.notify_waiters();
        }
    }
}

/// A partition task's queue and the topic incarnation (id) it writes to.
type TaskHandle = (u64, mpsc::Sender<Pending>);

/// An idempotent producer. Cheap to share behind an `Arc`; `send` takes `&self`.
pub struct Producer {
    shared: Arc<Shared>,
    /// Each partition's task, with the topic incarnation it writes to.
    partitions: Mutex<HashMap<(String, u32), TaskHandle>>,
    round_robin: AtomicU32,
}

impl Producer {
    /// Registers a producer with the cluster (InitProducer on the controller leader).
    ///
    /// # Errors
    /// Invalid settings or name; the cluster could not be reached.
    pub async fn new(client: Arc<Client>, cfg: ProducerConfig) -> Result<Producer, ClientError> {
        if cfg.in_flight_max == 0 || cfg.in_flight_max > 5 {
            return Err(ClientError::InvalidArgument("in_flight_max must be 1..=5".into()));
        }
        if cfg.batch_records_max == 0 || cfg.queue_records_max == 0 {
            return Err(ClientError::InvalidArgument("batch_records_max and queue_records_max must be > 0".into()));
        }
        let (producer_id, epoch) = client.init_producer(cfg.name.as_deref().unwrap_or("")).await?;
        let shared = Arc::new(Shared {
            client,
            cfg,
            base: Ident { producer_id, epoch },
            outstanding: AtomicUsize::new(0),
            settled: Notify::new(),
            fenced: Mutex::new(None),
            retries: Mutex::default(),
        });
        Ok(Producer { shared, partitions: Mutex::default(), round_robin: AtomicU32::new(0) })
    }

    /// The id InitProducer gave (a partition may have moved on to another identity; each
    /// [`RecordAck`] names the one used).
    pub fn producer_id(&self) -> u64 {
        self.shared.base.producer_id
    }

    pub fn epoch(&self) -> u32 {
        self.shared.base.epoch
    }

    /// Queues `record` for `topic` (on `partition`, else the key's partition, else
    /// round-robin) and returns a future for its offset. Waits while the partition's queue is
    /// full.
    ///
    /// # Errors
    /// FENCED once a newer instance took the name over; UNKNOWN_TOPIC; a partition out of range.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: Record,
    ) -> Result<DeliveryFuture, ClientError> {
        self.enqueue(topic, partition, record, None).await
    }

    /// Queues `record` as a conditional append (a batch of its own, see [`crate::Condition`]):
    /// it is appended only if the condition holds when the broker applies it, exactly once
    /// whatever retries and leader changes happen. The future fails with OFFSET_MISMATCH
    /// ([`ClientError::mismatch`]) when the condition did not hold; later records on the
    /// partition are not held back by it.
    ///
    /// # Errors
    /// As [`Producer::send`].
    pub async fn send_conditional(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: Record,
        condition: crate::Condition,
    ) -> Result<DeliveryFuture, ClientError> {
        self.enqueue(topic, partition, record, Some(condition)).await
    }

    async fn enqueue(
        &self,
        topic: &str,
        partition: Option<u32>,
        mut record: Record,
        condition: Option<crate::Condition>,
    ) -> Result<DeliveryFuture, ClientError> {
        crate::trace::inject_current(std::slice::from_mut(&mut record));
        if let Some(e) = self.shared.fenced.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(e);
        }
        let (topic_id, count) = self.shared.client.topic(topic).await?;
        let p = match partition {
            Some(p) if p < count => p,
            Some(p) => {
                return Err(ClientError::InvalidArgument(format!(
                    "topic {topic} has {count} partitions; no partition {p}"
                )))
            }
            None if !record.key.is_empty() => partition_for_key(&record.key, count),
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % count,
        };
        let tx = {
            let mut map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map
                .entry((topic.to_string(), p))
                .or_insert_with(|| (topic_id, partition::spawn(self.shared.clone(), topic.to_string(), topic_id, p)));
            if entry.0 != topic_id || entry.1.is_closed() {
                // The topic was re-created (or the task retired): a fresh task for the new
                // incarnation; the old one finishes what it holds on its own.
                *entry = (topic_id, partition::spawn(self.shared.clone(), topic.to_string(), topic_id, p));
            }
            entry.1.clone()
        };
        let (done, rx) = oneshot::channel();
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        let pending = Pending { record, condition, done, queued_at: tokio::time::Instant::now() };
        if tx.send(pending).await.is_err() {
            // Never queued: definitely not sent.
            self.shared.settle(1);
            return Err(ClientError::InvalidArgument(format!(
                "the producer task of {topic}/{p} stopped (topic {topic} deleted?); send again"
            )));
        }
        Ok(DeliveryFuture { rx })
    }

    /// Why this producer resent batches since the last call, with how often (distinct
    /// messages, at most 16): retriable errors never reach a [`DeliveryFuture`] until the
    /// delivery timeout, so this is how a caller shows them as they happen.
    pub fn take_retry_reasons(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.shared.retries.lock().unwrap_or_else(|p| p.into_inner()).counts)
    }

    /// Waits until every record sent so far is delivered or failed.
    pub async fn flush(&self) {
        loop {
            let settled = self.shared.settled.notified();
            if self.shared.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            settled.await;
        }
    }
}
