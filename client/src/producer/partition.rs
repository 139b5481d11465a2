//! One partition's producer task: batching, sequence numbers, the ordered stream to the
//! leader, and resending in order after any doubt.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::{ProduceRequest, ProduceStreamRequest, ProduceStreamResponse};
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{Pending, RecordAck, Shared};
use crate::error::{ClientError, ErrorCode};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Starts the task for `topic`/`partition`; returns its queue.
pub(crate) fn spawn(shared: Arc<Shared>, topic: String, partition: u32) -> mpsc::Sender<Pending> {
    let (tx, rx) = mpsc::channel(shared.cfg.queue_records_max);
    let task = PartitionTask {
        shared,
        topic,
        partition,
        rx,
        queue: VecDeque::new(),
        in_flight: VecDeque::new(),
        next_seq: 0,
        next_cid: 1,
        conn: None,
        retry_at: None,
        backoff: BACKOFF_MIN,
        closed: false,
    };
    tokio::spawn(task.run());
    tx
}

/// A batch sent (or to be sent again) with fixed sequence numbers.
///
/// The window (`in_flight`) keeps a batch until every batch before it is answered too: the
/// server remembers the last 5 batches per producer, so no more than 5 may be sent after the
/// oldest one still in doubt, or a retry of it would be older than the server's memory.
struct Batch {
    cid: u64,
    base_seq: u32,
    records: Vec<Pending>,
    /// Answered (its records resolved); kept only to hold its place in the window.
    done: bool,
    /// When the current attempt was sent (None: waiting to be sent again).
    sent_at: Option<Instant>,
    /// The oldest record's queue time: the delivery deadline counts from it.
    created: Instant,
}

struct Conn {
    tx: mpsc::Sender<ProduceStreamRequest>,
    rx: Streaming<ProduceStreamResponse>,
}

struct PartitionTask {
    shared: Arc<Shared>,
    topic: String,
    partition: u32,
    rx: mpsc::Receiver<Pending>,
    /// Records waiting to be batched.
    queue: VecDeque<Pending>,
    in_flight: VecDeque<Batch>,
    next_seq: u32,
    next_cid: u64,
    conn: Option<Conn>,
    /// No (re)connection before this instant (backoff after an error).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The producer handle is gone: finish what is queued, then stop.
    closed: bool,
}

enum Event {
    Record(Option<Pending>),
    Answer(Result<Option<ProduceStreamResponse>, tonic::Status>),
    Timer,
}

impl PartitionTask {
    async fn run(mut self) {
        loop {
            if self.closed && self.queue.is_empty() && self.in_flight.is_empty() {
                return;
            }
            self.expire_deliveries();
            self.send_ready().await;
            let deadline = self.next_deadline();
            let room = !self.closed && self.queue.len() < self.shared.cfg.queue_records_max;
            let event = {
                let answers = async {
                    match self.conn.as_mut() {
                        Some(c) => c.rx.message().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = self.rx.recv(), if room => Event::Record(r),
                    a = answers => Event::Answer(a),
                    _ = sleep_until(deadline) => Event::Timer,
                }
            };
            match event {
                Event::Record(Some(p)) => {
                    self.queue.push_back(p);
                    // Take whatever else is already queued without waiting.
                    while self.queue.len() < self.shared.cfg.queue_records_max {
                        match self.rx.try_recv() {
                            Ok(p) => self.queue.push_back(p),
                            Err(_) => break,
                        }
                    }
                }
                Event::Record(None) => self.closed = true,
                Event::Answer(Ok(Some(answer))) => self.on_answer(answer),
                Event::Answer(Ok(None)) => self.reset("the leader closed the stream", false),
                Event::Answer(Err(status)) => self.reset(&format!("stream failed: {status}"), false),
                Event::Timer => {
                    let timeout = self.shared.cfg.request_timeout;
                    if self.in_flight.iter().any(|b| !b.done && b.sent_at.is_some_and(|t| t.elapsed() >= timeout)) {
                        self.reset("no answer within the request timeout", false);
                    }
                }
            }
        }
    }

    /// The next instant something is due: linger of a partial batch, an answer's timeout, the
    /// end of a backoff, a delivery deadline.
    fn next_deadline(&self) -> Option<Instant> {
        let cfg = &self.shared.cfg;
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some(head) = self.queue.front() {
            if self.in_flight.len() < cfg.in_flight_max {
                consider(head.queued_at + cfg.linger);
            }
        }
        for b in self.in_flight.iter().filter(|b| !b.done) {
            if let Some(t) = b.sent_at {
                consider(t + cfg.request_timeout);
            }
            consider(b.created + cfg.delivery_timeout);
        }
        if let Some(r) = self.retry_at {
            consider(r);
        }
        at
    }

    /// Sends batches while the window has room: first any batch waiting to be resent (in
    /// order), then new batches from the queue.
    async fn send_ready(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|r| now < r) {
            return;
        }
        let needs_send = self.in_flight.iter().any(|b| !b.done && b.sent_at.is_none());
        let cfg = self.shared.cfg.clone();
        let ready_new = self.in_flight.len() < cfg.in_flight_max
            && self.queue.front().is_some_and(|h| {
                self.queue.len() >= cfg.batch_records_max || self.closed || now >= h.queued_at + cfg.linger
            });
        if !needs_send && !ready_new {
            return;
        }
        if self.conn.is_none() {
            if let Err(e) = self.connect().await {
                self.reset(&format!("cannot open a produce stream: {e}"), false);
                return;
            }
        }
        // Resend, in order, every batch whose outcome is in doubt.
        for i in 0..self.in_flight.len() {
            if !self.in_flight[i].done && self.in_flight[i].sent_at.is_none() && !self.transmit(i).await {
                return;
            }
        }
        while self.in_flight.len() < cfg.in_flight_max
            && self.queue.front().is_some_and(|h| {
                self.queue.len() >= cfg.batch_records_max || self.closed || Instant::now() >= h.queued_at + cfg.linger
            })
        {
            self.form_batch();
            let last = self.in_flight.len() - 1;
            if !self.transmit(last).await {
                return;
            }
        }
    }

    /// Moves up to a batch's worth of queued records into a new in-flight batch, assigning its
    /// sequence numbers.
    fn form_batch(&mut self) {
        let cfg = &self.shared.cfg;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while let Some(p) = self.queue.front() {
            let size = p.record.encoded_len();
            if !records.is_empty() && (records.len() >= cfg.batch_records_max || bytes + size > cfg.batch_bytes_max) {
                break;
            }
            bytes += size;
            if let Some(p) = self.queue.pop_front() {
                records.push(p);
            }
        }
        let created = records.iter().map(|p| p.queued_at).min().unwrap_or_else(Instant::now);
        let base_seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(records.len() as u32);
        let cid = self.next_cid;
        self.next_cid += 1;
        self.in_flight.push_back(Batch { cid, base_seq, records, done: false, sent_at: None, created });
    }

    /// Sends in-flight batch `i` on the stream; false if the stream is gone.
    async fn transmit(&mut self, i: usize) -> bool {
        let b = &self.in_flight[i];
        let req = ProduceStreamRequest {
            correlation_id: b.cid,
            request: Some(ProduceRequest {
                topic: self.topic.clone(),
                partition: self.partition,
                records: b.records.iter().map(|p| p.record.clone()).collect(),
                producer_id: self.shared.producer_id,
                producer_epoch: self.shared.epoch,
                base_sequence: b.base_seq,
            }),
        };
        let Some(conn) = self.conn.as_ref() else { return false };
        if conn.tx.send(req).await.is_err() {
            self.reset("the produce stream closed", false);
            return false;
        }
        self.in_flight[i].sent_at = Some(Instant::now());
        true
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let client = &self.shared.client;
        let addr = client.partition_target(&self.topic, self.partition);
        let ch = client.channel_to(&addr)?;
        let (tx, rx) = mpsc::channel(self.shared.cfg.in_flight_max * 2);
        let mut broker = client.broker(ch);
        let opened =
            tokio::time::timeout(self.shared.cfg.request_timeout, broker.produce_stream(ReceiverStream::new(rx))).await;
        let stream = match opened {
            Ok(Ok(s)) => s.into_inner(),
            Ok(Err(status)) => return Err(ClientError::from_status(&addr, status)),
            Err(_) => {
                return Err(ClientError::Transport {
                    addr,
                    status: tonic::Status::deadline_exceeded("opening the stream"),
                })
            }
        };
        self.conn = Some(Conn { tx, rx: stream });
        Ok(())
    }

    /// Drops the stream and marks every in-flight batch for resending (same sequences) after
    /// a backoff, or at once when following a leader hint.
    fn reset(&mut self, why: &str, immediately: bool) {
        tracing::debug!(topic = %self.topic, partition = self.partition, why, "resending in-flight batches");
        self.conn = None;
        for b in self.in_flight.iter_mut().filter(|b| !b.done) {
            b.sent_at = None;
        }
        if immediately {
            self.retry_at = None;
        } else {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            self.shared.client.set_partition_leader(&self.topic, self.partition, None);
            let client = self.shared.client.clone();
            tokio::spawn(async move {
                let _ = client.refresh_once().await;
            });
        }
    }

    fn on_answer(&mut self, answer: ProduceStreamResponse) {
        let Some(i) =
            self.in_flight.iter().position(|b| !b.done && b.cid == answer.correlation_id && b.sent_at.is_some())
        else {
            return; // an answer to an attempt we already gave up on
        };
        if let Some(ok) = answer.response {
            self.backoff = BACKOFF_MIN;
            let records = std::mem::take(&mut self.in_flight[i].records);
            let base_seq = self.in_flight[i].base_seq;
            self.in_flight[i].done = true;
            self.resolve(records, base_seq, ok.base_offset);
            self.retire_answered();
            return;
        }
        let err = ClientError::from_detail(answer.error.unwrap_or_default());
        match err.code() {
            // Committed long ago (a retry older than the server's memory): the records are in
            // the log exactly once, but their offsets are no longer known. The sequence
            // numbers stay used.
            Some(ErrorCode::DuplicateSequence) => {
                let records = std::mem::take(&mut self.in_flight[i].records);
                self.in_flight[i].done = true;
                self.fail_records(records, &err);
                self.retire_answered();
            }
            Some(ErrorCode::NotLeader) => {
                let hint = err.leader_hint().map(String::from);
                let follow = hint.is_some();
                self.shared.client.set_partition_leader(&self.topic, self.partition, hint);
                self.reset("not the leader", follow);
            }
            Some(ErrorCode::Fenced) => {
                *self.shared.fenced.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.clone());
                self.fail_from(0, &err);
                let queued: Vec<Pending> = self.queue.drain(..).collect();
                self.fail_records(queued, &err);
            }
            // Retriable (OUT_OF_ORDER_SEQUENCE included: an earlier batch is still in doubt)
            // or an unknown outcome: resend everything in flight, in order.
            _ if err.is_retriable() || !err.is_definite() => self.reset(&err.to_string(), false),
            // Definitely not appended, and never will be: fail it and the batches after it (their
            // sequences now follow a gap, so the partition refuses them too) and reuse its
            // sequence numbers for what comes next.
            _ => {
                let base = self.in_flight[i].base_seq;
                self.fail_from(i, &err);
                self.retire_answered();
                self.next_seq = base;
                // Batches after it may still be on the stream (their refusals are ignored);
                // earlier ones in doubt go again on a fresh stream.
                self.reset("a batch was refused", true);
            }
        }
    }

    /// Fails in-flight batches from index `i` on.
    fn fail_from(&mut self, i: usize, err: &ClientError) {
        let failed: Vec<Batch> = self.in_flight.drain(i..).collect();
        for b in failed {
            self.fail_records(b.records, err);
        }
    }

    fn fail_records(&self, records: Vec<Pending>, err: &ClientError) {
        let n = records.len();
        for p in records {
            let _ = p.done.send(Err(err.clone()));
        }
        self.shared.settle(n);
    }

    /// Drops answered batches from the front of the window.
    fn retire_answered(&mut self) {
        while self.in_flight.front().is_some_and(|b| b.done) {
            self.in_flight.pop_front();
        }
    }

    fn resolve(&self, records: Vec<Pending>, base_seq: u32, base_offset: u64) {
        let n = records.len();
        for (i, p) in records.into_iter().enumerate() {
            let ack = RecordAck {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: base_offset + i as u64,
                sequence: base_seq.wrapping_add(i as u32),
            };
            let _ = p.done.send(Ok(ack));
        }
        self.shared.settle(n);
    }

    /// Fails batches past their delivery timeout. Their outcome is unknown, so the sequence
    /// state of the partition is too: everything after them fails as well.
    fn expire_deliveries(&mut self) {
        let limit = self.shared.cfg.delivery_timeout;
        if let Some(i) = self.in_flight.iter().position(|b| !b.done && b.created.elapsed() >= limit) {
            let err = ClientError::RetriesExhausted {
                attempts: 0,
                last: Box::new(ClientError::InvalidArgument(format!(
                    "record not acknowledged within the delivery timeout ({limit:?}); outcome unknown"
                ))),
            };
            self.fail_from(i, &err);
            let queued: Vec<Pending> = self.queue.drain(..).collect();
            self.fail_records(queued, &err);
            *self.shared.fenced.lock().unwrap_or_else(|p| p.into_inner()) = Some(ClientError::InvalidArgument(
                "an earlier record's outcome is unknown after its delivery timeout; create a new producer".into(),
            ));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
