//! One partition's producer task: batching, sequence numbers, the ordered stream to the
//! leader, resending in order after any doubt, and resolving (or giving up on) doubt.
//!
//! ```text
//!  queue ─► form batch (ident, seqs) ─► in flight ─► answer ─► resolved (ack / definite failure)
//!                                          │  stream lost, timeout, unknown outcome ─► in doubt
//!                                          └─ resent in order, same seqs, until the leader's
//!                                             answer or the delivery timeout (then: unknown)
//!  after any batch that did not land: new identity (reinit) once nothing is in flight
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::{ProduceRequest, ProduceStreamRequest, ProduceStreamResponse};
use prost::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{Ident, Pending, RecordAck, Shared};
use crate::condition::Condition;
use crate::error::{ClientError, ErrorCode};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Starts the task for incarnation `topic_id` of `topic`, partition `partition`; returns its
/// queue.
pub(crate) fn spawn(shared: Arc<Shared>, topic: String, topic_id: u64, partition: u32) -> mpsc::Sender<Pending> {
    let (tx, rx) = mpsc::channel(shared.cfg.queue_records_max);
    let task = PartitionTask {
        ident: shared.base,
        shared,
        topic,
        topic_id,
        partition,
        rx,
        queue: VecDeque::new(),
        in_flight: VecDeque::new(),
        next_seq: 0,
        needs_reinit: false,
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
    ident: Ident,
    base_seq: u32,
    records: Vec<Pending>,
    /// Answered (its records resolved); kept only to hold its place in the window.
    done: bool,
    /// When the current attempt was sent (None: not on the wire, waiting to be sent again).
    sent_at: Option<Instant>,
    /// Why an earlier attempt may have been applied (lost answer, timeout, unknown outcome).
    /// Only the leader's acknowledgement clears it.
    doubt: Option<ClientError>,
    /// The oldest record's queue time: the delivery deadline counts from it.
    created: Instant,
    /// A conditional batch's condition (such a batch holds one record).
    condition: Option<Condition>,
}

impl Batch {
    /// Whether some attempt may have been applied: an earlier one in doubt, or one on the wire.
    fn in_doubt(&self) -> bool {
        self.doubt.is_some() || self.sent_at.is_some()
    }

    /// The error for this batch when the producer gives up on it because of `last`: unknown
    /// outcome if an attempt may have landed (None otherwise).
    fn unresolved(&self, last: &ClientError) -> Option<ClientError> {
        self.in_doubt().then(|| {
            let earlier =
                self.doubt.clone().unwrap_or_else(|| lost("its answer had not arrived when the producer gave up"));
            ClientError::InDoubt { earlier: Box::new(earlier), last: Box::new(last.clone()) }
        })
    }
}

struct Conn {
    tx: mpsc::Sender<ProduceStreamRequest>,
    rx: Streaming<ProduceStreamResponse>,
}

struct PartitionTask {
    shared: Arc<Shared>,
    topic: String,
    /// The incarnation this task writes to; when the topic is deleted (or re-created) the task
    /// settles what it holds and stops.
    topic_id: u64,
    partition: u32,
    rx: mpsc::Receiver<Pending>,
    /// Records waiting to be batched.
    queue: VecDeque<Pending>,
    in_flight: VecDeque<Batch>,
    /// The identity new batches are sequenced under, and its next sequence number.
    ident: Ident,
    next_seq: u32,
    /// Sequence numbers of `ident` went to records that did not all land: a new identity
    /// before anything new is sequenced (once nothing is in flight).
    needs_reinit: bool,
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
            if self.incarnation_gone() {
                self.retire();
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
                Event::Answer(Ok(None)) => self.reset(lost("the leader closed the stream"), false),
                Event::Answer(Err(status)) => self.reset(lost(&format!("the stream failed: {status}")), false),
                Event::Timer => {
                    let timeout = self.shared.cfg.request_timeout;
                    if self.in_flight.iter().any(|b| !b.done && b.sent_at.is_some_and(|t| t.elapsed() >= timeout)) {
                        self.reset(lost("no answer within the request timeout"), false);
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
            consider(head.queued_at + cfg.delivery_timeout);
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

    fn head_ready(&self, now: Instant) -> bool {
        let cfg = &self.shared.cfg;
        self.queue.front().is_some_and(|h| {
            self.queue.len() >= cfg.batch_records_max || self.closed || now >= h.queued_at + cfg.linger
        })
    }

    /// Sends batches while the window has room: first any batch waiting to be resent (in
    /// order), then new batches from the queue (after taking a new identity if one is due).
    async fn send_ready(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|r| now < r) {
            return;
        }
        if self.needs_reinit && self.in_flight.is_empty() && self.head_ready(now) && !self.reinit().await {
            return;
        }
        let needs_send = self.in_flight.iter().any(|b| !b.done && b.sent_at.is_none());
        let window = self.shared.cfg.in_flight_max;
        let ready_new = !self.needs_reinit && self.in_flight.len() < window && self.head_ready(now);
        if !needs_send && !ready_new {
            return;
        }
        if self.conn.is_none() {
            if let Err(e) = self.connect().await {
                self.reset(lost(&format!("cannot open a produce stream: {e}")), false);
                return;
            }
        }
        // Resend, in order, every batch waiting for another attempt.
        for i in 0..self.in_flight.len() {
            if !self.in_flight[i].done && self.in_flight[i].sent_at.is_none() && !self.transmit(i).await {
                return;
            }
        }
        while !self.needs_reinit && self.in_flight.len() < window && self.head_ready(Instant::now()) {
            self.form_batch();
            let last = self.in_flight.len() - 1;
            if !self.transmit(last).await {
                return;
            }
        }
    }

    /// Takes a new identity for this partition. False when it cannot now (backoff set, or the
    /// producer was fenced).
    async fn reinit(&mut self) -> bool {
        match self.shared.reinit(self.ident).await {
            Ok(ident) => {
                tracing::debug!(topic = %self.topic, partition = self.partition, ?ident, "new producer identity");
                self.ident = ident;
                self.next_seq = 0;
                self.needs_reinit = false;
                self.backoff = BACKOFF_MIN;
                true
            }
            Err(e) if e.code() == Some(ErrorCode::Fenced) => {
                self.fence(&e);
                false
            }
            Err(e) => {
                tracing::debug!(topic = %self.topic, error = %e, "cannot take a new producer identity yet");
                self.back_off();
                false
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
            // A conditional record is a batch of its own: its condition is the batch's.
            if !records.is_empty() && p.condition.is_some() {
                break;
            }
            let alone = p.condition.is_some();
            bytes += size;
            if let Some(p) = self.queue.pop_front() {
                records.push(p);
            }
            if alone {
                break;
            }
        }
        let condition = records.first().and_then(|p| p.condition);
        let created = records.iter().map(|p| p.queued_at).min().unwrap_or_else(Instant::now);
        let base_seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(records.len() as u32);
        let cid = self.next_cid;
        self.next_cid += 1;
        self.in_flight.push_back(Batch {
            cid,
            ident: self.ident,
            base_seq,
            records,
            done: false,
            sent_at: None,
            doubt: None,
            created,
            condition,
        });
    }

    /// Sends in-flight batch `i` on the stream; false if the stream is gone.
    async fn transmit(&mut self, i: usize) -> bool {
        let b = &self.in_flight[i];
        let mut request = ProduceRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            records: b.records.iter().map(|p| p.record.clone()).collect(),
            producer_id: b.ident.producer_id,
            producer_epoch: b.ident.epoch,
            base_sequence: b.base_seq,
            topic_id: self.topic_id,
            ..ProduceRequest::default()
        };
        if let Some(c) = &b.condition {
            c.apply_to(&mut request);
        }
        let req = ProduceStreamRequest { correlation_id: b.cid, request: Some(request) };
        let Some(conn) = self.conn.as_ref() else { return false };
        // A refused send never left: the stream's receiving side was gone.
        if conn.tx.send(req).await.is_err() {
            self.reset(lost("the produce stream closed"), false);
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
    /// a backoff, or at once when following a leader hint. Attempts that were on the wire are
    /// now in doubt for `why`.
    fn reset(&mut self, why: ClientError, immediately: bool) {
        tracing::debug!(topic = %self.topic, partition = self.partition, why = %why, "resending in-flight batches");
        self.shared.retries.lock().unwrap_or_else(|p| p.into_inner()).note(&why);
        self.conn = None;
        for b in self.in_flight.iter_mut().filter(|b| !b.done) {
            if b.sent_at.take().is_some() && b.doubt.is_none() {
                b.doubt = Some(why.clone());
            }
        }
        if immediately {
            self.retry_at = None;
        } else {
            self.back_off();
            self.shared.client.set_partition_leader(&self.topic, self.partition, None);
            self.refresh_metadata();
        }
    }

    fn back_off(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn refresh_metadata(&self) {
        let client = self.shared.client.clone();
        tokio::spawn(async move {
            let _ = client.refresh_once().await;
        });
    }

    fn on_answer(&mut self, answer: ProduceStreamResponse) {
        let Some(i) =
            self.in_flight.iter().position(|b| !b.done && b.cid == answer.correlation_id && b.sent_at.is_some())
        else {
            return; // an answer to an attempt we already gave up on
        };
        if let Some(ok) = answer.response {
            self.backoff = BACKOFF_MIN;
            self.resolve(i, ok.base_offset, ok.log_append_time_ms);
            self.retire_answered();
            return;
        }
        let err = ClientError::from_detail(answer.error.unwrap_or_default());
        // This attempt is answered: it is off the wire (in doubt only if the answer says so).
        let b = &mut self.in_flight[i];
        b.sent_at = None;
        if !err.is_definite() && b.doubt.is_none() {
            b.doubt = Some(err.clone());
        }
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
                self.reset(err, follow);
            }
            Some(ErrorCode::Fenced) => self.fence(&err),
            // The partition forgot this identity (expired or evicted): nothing sent under it
            // can be resolved any more.
            Some(ErrorCode::UnknownProducer) => self.abandon(0, &err),
            // Retriable (OUT_OF_ORDER_SEQUENCE: an earlier batch is still in doubt; a lagging
            // node; no leader) or an unknown outcome: resend everything in flight, in order.
            _ if err.is_retriable() || !err.is_definite() => self.reset(err, false),
            // Refused for its own bytes (a record over the size limit, which is the same on
            // every node): no attempt of this batch can have been appended, in doubt or not, so
            // it fails now instead of being resent until the delivery timeout.
            Some(ErrorCode::RecordTooLarge) => self.refuse(i, &err),
            // A conditional batch whose condition did not hold. The producer check runs first
            // at apply, so the answer proves no attempt of it was appended up to then; none can
            // be later when the partition has moved past what the condition expects.
            Some(ErrorCode::OffsetMismatch) if self.mismatch_settles(i, &err) => self.refuse_condition(i, &err),
            _ if self.shared.cfg.fault_trust_retry_refusals => self.refuse_trusting(i, &err),
            // A definite refusal of a batch in doubt proves nothing about its earlier attempt
            // (a broker whose metadata lags answers UNKNOWN_TOPIC): keep trying until the
            // leader answers or the delivery timeout passes.
            _ if self.in_flight[i].doubt.is_some() => self.reset(err, false),
            // Definitely never appended: fail it; the batches after it cannot have been
            // appended either (they follow a gap), so they go again under a new identity.
            _ => self.refuse(i, &err),
        }
    }

    /// Batch `i`, never appended, fails with `err`; every later batch goes back to the queue
    /// (in order) to be sequenced again under a new identity. Earlier batches continue.
    fn refuse(&mut self, i: usize, err: &ClientError) {
        let mut later: Vec<Batch> = self.in_flight.drain(i..).collect();
        let refused = later.remove(0);
        self.fail_records(refused.records, err);
        for b in later.into_iter().rev().filter(|b| !b.done) {
            for p in b.records.into_iter().rev() {
                self.queue.push_front(p);
            }
        }
        self.needs_reinit = true;
        self.retire_answered();
    }

    /// Whether OFFSET_MISMATCH settles batch `i`: its only attempt was answered, or the
    /// mismatch is final (see [`Condition::mismatch_is_final`]).
    fn mismatch_settles(&self, i: usize, err: &ClientError) -> bool {
        let b = &self.in_flight[i];
        b.doubt.is_none() || b.condition.is_some_and(|c| c.mismatch_is_final(err))
    }

    /// Conditional batch `i` was refused: it fails. Its sequence numbers were not used (the
    /// refusal comes after the producer check), so when it is the last batch and was never in
    /// doubt the next batch takes them again under the same identity; otherwise as
    /// [`PartitionTask::refuse`].
    fn refuse_condition(&mut self, i: usize, err: &ClientError) {
        let b = &self.in_flight[i];
        if i + 1 == self.in_flight.len() && b.doubt.is_none() && b.ident == self.ident && !self.needs_reinit {
            let Some(b) = self.in_flight.pop_back() else { return };
            self.next_seq = b.base_seq;
            self.fail_records(b.records, err);
            self.retire_answered();
        } else {
            self.refuse(i, err);
        }
    }

    /// FAULT INJECTION (negative control): the old, wrong handling of a definite refusal. Batch
    /// `i` and every later one fail, and their sequence numbers go to the next records, whether
    /// or not an earlier attempt landed.
    fn refuse_trusting(&mut self, i: usize, err: &ClientError) {
        let base = self.in_flight[i].base_seq;
        let failed: Vec<Batch> = self.in_flight.drain(i..).collect();
        for b in failed {
            self.fail_records(b.records, err);
        }
        self.next_seq = base;
        self.retire_answered();
        self.reset(err.clone(), true);
    }

    /// Gives up on every batch from index `i` on under the current identity: those in doubt
    /// are reported with an unknown outcome (`last` ended the hope of resolving them), those
    /// definitely not appended go back to the queue, unless past their delivery timeout.
    fn abandon(&mut self, i: usize, last: &ClientError) {
        let limit = self.shared.cfg.delivery_timeout;
        let gone: Vec<Batch> = self.in_flight.drain(i..).collect();
        let mut requeue = Vec::new();
        for b in gone.into_iter().filter(|b| !b.done) {
            if let Some(e) = b.unresolved(last) {
                self.fail_records(b.records, &e);
            } else if b.created.elapsed() >= limit {
                self.fail_records(b.records, &delivery_timeout(limit));
            } else {
                requeue.extend(b.records);
            }
        }
        for p in requeue.into_iter().rev() {
            self.queue.push_front(p);
        }
        // Answers to attempts still on the wire are no longer wanted.
        self.conn = None;
        self.needs_reinit = true;
        self.retire_answered();
    }

    /// The producer was fenced (a newer instance took its name): everything it holds fails,
    /// with an unknown outcome where an attempt may have landed; every later send fails.
    fn fence(&mut self, err: &ClientError) {
        *self.shared.fenced.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.clone());
        self.abandon(0, err);
        let queued: Vec<Pending> = self.queue.drain(..).collect();
        self.fail_records(queued, err);
    }

    /// Whether the newest metadata shows that this task's incarnation of the topic is gone.
    fn incarnation_gone(&self) -> bool {
        self.shared.client.cached_topic_id(&self.topic).is_none_or(|id| id != self.topic_id)
    }

    /// The topic was deleted (perhaps re-created): settles everything and stops. Records in
    /// doubt get an unknown outcome (they may have been appended, and are deleted with the
    /// topic); the rest fail definitely and can be sent again to the new incarnation.
    fn retire(&mut self) {
        let err = ClientError::local(
            ErrorCode::UnknownTopicId,
            format!("topic {} (id {}) was deleted while these records were being sent", self.topic, self.topic_id),
        );
        let gone: Vec<Batch> = self.in_flight.drain(..).collect();
        for b in gone.into_iter().filter(|b| !b.done) {
            let e = b.unresolved(&err).unwrap_or_else(|| err.clone());
            self.fail_records(b.records, &e);
        }
        let queued: Vec<Pending> = self.queue.drain(..).collect();
        self.fail_records(queued, &err);
        self.rx.close();
        while let Ok(p) = self.rx.try_recv() {
            self.fail_records(vec![p], &err);
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

    fn resolve(&mut self, i: usize, base_offset: u64, append_time_ms: i64) {
        let b = &mut self.in_flight[i];
        b.done = true;
        b.sent_at = None;
        let records = std::mem::take(&mut b.records);
        let (ident, base_seq) = (b.ident, b.base_seq);
        let n = records.len();
        for (k, p) in records.into_iter().enumerate() {
            let ack = RecordAck {
                topic: self.topic.clone(),
                topic_id: self.topic_id,
                partition: self.partition,
                offset: base_offset + k as u64,
                producer_id: ident.producer_id,
                epoch: ident.epoch,
                sequence: base_seq.wrapping_add(k as u32),
                append_time_ms,
            };
            let _ = p.done.send(Ok(ack));
        }
        self.shared.settle(n);
    }

    /// Settles what passed its delivery timeout: queued records (never sent) fail; a batch in
    /// flight that passed it ends every batch from it on (see [`PartitionTask::abandon`]).
    fn expire_deliveries(&mut self) {
        let limit = self.shared.cfg.delivery_timeout;
        let mut expired = Vec::new();
        while self.queue.front().is_some_and(|p| p.queued_at.elapsed() >= limit) {
            expired.extend(self.queue.pop_front());
        }
        self.fail_records(expired, &delivery_timeout(limit));
        if let Some(i) = self.in_flight.iter().position(|b| !b.done && b.created.elapsed() >= limit) {
            let why = ClientError::OutcomeUnknown(format!("not acknowledged within the delivery timeout ({limit:?})"));
            self.abandon(i, &why);
        }
    }
}

/// The cause of doubt when an attempt's answer is lost.
fn lost(why: &str) -> ClientError {
    ClientError::OutcomeUnknown(why.to_string())
}

/// A record that was never possibly appended and ran out of time.
fn delivery_timeout(limit: Duration) -> ClientError {
    ClientError::RetriesExhausted {
        attempts: 0,
        last: Box::new(ClientError::InvalidArgument(format!(
            "not appended: no attempt succeeded within the delivery timeout ({limit:?})"
        ))),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
