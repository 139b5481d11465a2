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
        }
    }
}

/// Where a record was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAck {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The record's sequence number for this producer and partition.
    pub sequence: u32,
}

/// Resolves when the record is committed (or definitely failed).
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordAck, ClientError>>,
}

impl std::future::Future for DeliveryFuture {
    type Output = Result<RecordAck, ClientError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(ClientError::InvalidArgument("producer stopped before the record was delivered".into()))
            })
        })
    }
}

/// One queued record and where its outcome goes.
pub(crate) struct Pending {
    pub record: Record,
    pub done: oneshot::Sender<Result<RecordAck, ClientError>>,
    pub queued_at: tokio::time::Instant,
}

/// Shared by the producer handle and its partition tasks.
pub(crate) struct Shared {
    pub client: Arc<Client>,
    pub cfg: ProducerConfig,
    pub producer_id: u64,
    pub epoch: u32,
    /// Records sent and not yet resolved (for `flush`).
    pub outstanding: AtomicUsize,
    pub settled: Notify,
    /// Set once the producer is fenced: every later send fails with it.
    pub fenced: Mutex<Option<ClientError>>,
}

impl Shared {
    pub(crate) fn settle(&self, n: usize) {
        if self.outstanding.fetch_sub(n, Ordering::AcqRel) == n {
            self.settled.notify_waiters();
        }
    }
}

/// An idempotent producer. Cheap to share behind an `Arc`; `send` takes `&self`.
pub struct Producer {
    shared: Arc<Shared>,
    partitions: Mutex<HashMap<(String, u32), mpsc::Sender<Pending>>>,
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
            producer_id,
            epoch,
            outstanding: AtomicUsize::new(0),
            settled: Notify::new(),
            fenced: Mutex::new(None),
        });
        Ok(Producer { shared, partitions: Mutex::default(), round_robin: AtomicU32::new(0) })
    }

    pub fn producer_id(&self) -> u64 {
        self.shared.producer_id
    }

    pub fn epoch(&self) -> u32 {
        self.shared.epoch
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
        if let Some(e) = self.shared.fenced.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(e);
        }
        let count = self.shared.client.partition_count(topic).await?;
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
            map.entry((topic.to_string(), p))
                .or_insert_with(|| partition::spawn(self.shared.clone(), topic.to_string(), p))
                .clone()
        };
        let (done, rx) = oneshot::channel();
        self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        let pending = Pending { record, done, queued_at: tokio::time::Instant::now() };
        if tx.send(pending).await.is_err() {
            self.shared.settle(1);
            return Err(ClientError::InvalidArgument("the partition's producer task stopped".into()));
        }
        Ok(DeliveryFuture { rx })
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
