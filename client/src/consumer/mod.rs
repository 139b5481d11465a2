//! [`Consumer`]: a consumer group member. The coordinator assigns partitions (KIP-848: broker
//! side, incremental); the consumer fetches them, hands records to the application through
//! [`Consumer::poll`], and commits positions.
//!
//! ```text
//!  heartbeat task ─► assignment ─┐
//!                                ▼
//!  poll() ─► 1. records returned by the previous poll count as processed
//!            2. auto-commit (every interval) of processed positions
//!            3. act on the assignment: revoked → stop fetching, listener.on_revoked, commit,
//!               report them given up (the next heartbeat acknowledges); new → committed offset
//!               (or the reset policy), start fetching, listener.on_assigned
//!            4. return fetched records (≤ one batch per call)
//! ```
//!
//! Delivery is at least once: an offset is committed only for records the application was
//! given and came back for more (or committed itself); after a rebalance or a crash the new
//! owner starts from the committed offset, so records in flight may be delivered again.

mod fetcher;
mod membership;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::v1::{Header, OffsetCommitPartition};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{ClientError, ErrorCode};
use crate::{Client, OffsetSpec};
use fetcher::Batch;
use membership::{Membership, Shared};

/// One partition of one topic incarnation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
    /// The topic incarnation.
    pub topic_id: u64,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a partition without a committed offset (or with one out of range) starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail `poll` with the reason.
    None,
}

/// What the member subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    Topics(Vec<String>),
    /// A regular expression over topic names (whole names), evaluated by the coordinator: new
    /// matching topics are assigned without a restart.
    Pattern(String),
}

/// Consumer settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub group: String,
    /// Static membership: a restarted instance with the same id takes its partitions back
    /// without a rebalance (within the session timeout).
    pub instance_id: Option<String>,
    pub client_id: String,
    pub auto_offset_reset: OffsetReset,
    /// Zero: the coordinator's default (10 s).
    pub session_timeout: Duration,
    /// How long a revocation may take; zero: the coordinator's default.
    pub rebalance_timeout: Duration,
    /// Commit the positions of processed records every `auto_commit_interval`, on revocation
    /// and on close.
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// `uniform` or `range` (applies when the group is created).
    pub assignor: Option<String>,
    pub fetch_bytes_max: u32,
    pub fetch_wait: Duration,
    /// Fetched batches buffered across partitions before fetching pauses.
    pub buffered_batches_max: usize,
}

impl ConsumerConfig {
    pub fn new(group: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            group: group.into(),
            instance_id: None,
            client_id: "cairn-consumer".into(),
            auto_offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::ZERO,
            rebalance_timeout: Duration::ZERO,
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            assignor: None,
            fetch_bytes_max: 1 << 20,
            fetch_wait: Duration::from_millis(500),
            buffered_batches_max: 64,
        }
    }
}

/// A record as the consumer returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub topic_id: u64,
    pub partition: u32,
    pub offset: u64,
    pub key: Bytes,
    pub value: Bytes,
    pub headers: Vec<Header>,
    pub timestamp_ms: i64,
}

/// Offsets a listener commits while partitions are revoked (`next offset to read` each).
#[derive(Debug, Default)]
pub struct Commits {
    offsets: BTreeMap<TopicPartition, u64>,
}

impl Commits {
    pub fn set(&mut self, tp: &TopicPartition, next_offset: u64) {
        self.offsets.insert(tp.clone(), next_offset);
    }
}

/// Called inside [`Consumer::poll`] when the assignment changes.
pub trait RebalanceListener: Send {
    /// New partitions, once their start offsets are known.
    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions about to be given up (fetching has stopped; nothing of them is returned any
    /// more): commit what was processed in `commits` (with auto-commit the consumer commits the
    /// processed positions itself too).
    fn on_revoked(&mut self, _partitions: &[TopicPartition], _commits: &mut Commits) {}
    /// Partitions taken away without a revocation (this member was fenced or its session
    /// expired): someone else may own them already; committing is no longer possible.
    fn on_lost(&mut self, _partitions: &[TopicPartition]) {}
}

/// One owned partition.
#[derive(Debug)]
struct Part {
    /// Next offset to hand to the application.
    delivered: u64,
    /// Next offset after the records the application finished with (returned before the
    /// current poll).
    processed: u64,
    /// The last offset this consumer committed for it.
    committed: Option<u64>,
    generation: u64,
    fetcher: Option<JoinHandle<()>>,
    paused: bool,
}

/// A consumer group member (see the module comment).
pub struct Consumer {
    shared: Arc<Shared>,
    heartbeat: JoinHandle<()>,
    parts: BTreeMap<TopicPartition, Part>,
    tx: mpsc::Sender<Batch>,
    rx: mpsc::Receiver<Batch>,
    /// Abort handles of running fetchers (the heartbeat task stops them when fenced).
    fetchers: Arc<Mutex<HashMap<TopicPartition, tokio::task::AbortHandle>>>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_generation: u64,
    last_auto_commit: Instant,
    /// A batch received while the session had lapsed, handed out (or dropped as stale) once a
    /// heartbeat answered.
    held: Option<Batch>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.heartbeat.abort();
        for p in self.parts.values_mut() {
            if let Some(f) = p.fetcher.take() {
                f.abort();
            }
        }
    }
}

impl Consumer {
    /// Joins `cfg.group` subscribed to `subscription` (the join happens in the background; the
    /// first [`Consumer::poll`] calls return records once partitions are assigned).
    ///
    /// # Errors
    /// Invalid settings (empty group or subscription).
    pub async fn subscribe(
        client: Arc<Client>,
        cfg: ConsumerConfig,
        subscription: Subscription,
    ) -> Result<Consumer, ClientError> {
        if cfg.group.is_empty() {
            return Err(ClientError::InvalidArgument("a consumer needs a group id".into()));
        }
        match &subscription {
            Subscription::Topics(t) if t.is_empty() => {
                return Err(ClientError::InvalidArgument("subscribe to at least one topic".into()))
            }
            Subscription::Pattern(p) if p.is_empty() => {
                return Err(ClientError::InvalidArgument("an empty subscription pattern".into()))
            }
            _ => {}
        }
        let fetchers: Arc<Mutex<HashMap<TopicPartition, tokio::task::AbortHandle>>> = Arc::default();
        let on_fenced = {
            let f = fetchers.clone();
            Box::new(move || {
                for (_, h) in f.lock().unwrap_or_else(|p| p.into_inner()).drain() {
                    h.abort();
                }
            })
        };
        let session = if cfg.session_timeout.is_zero() { Duration::from_secs(10) } else { cfg.session_timeout };
        let shared = Arc::new(Shared {
            client,
            cfg: cfg.clone(),
            subscription,
            state: Mutex::new(Membership {
                member_id: String::new(),
                epoch: 0,
                assignment: None,
                owned: BTreeSet::new(),
                fenced: false,
                error: None,
                last_ok: Instant::now(),
                interval: Duration::from_millis(500),
                session,
                closing: false,
            }),
            wake_heartbeat: tokio::sync::Notify::new(),
            wake_poll: tokio::sync::Notify::new(),
            on_fenced,
        });
        let heartbeat = tokio::spawn(membership::run(shared.clone()));
        let (tx, rx) = mpsc::channel(cfg.buffered_batches_max.max(1));
        Ok(Consumer {
            shared,
            heartbeat,
            parts: BTreeMap::new(),
            tx,
            rx,
            fetchers,
            listener: None,
            next_generation: 1,
            last_auto_commit: Instant::now(),
            held: None,
        })
    }

    /// Calls `listener` (inside `poll`) on every assignment change.
    pub fn set_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// The member id and epoch the coordinator gave (empty and 0 before the first join).
    pub fn member(&self) -> (String, i32) {
        let m = self.shared.lock();
        (m.member_id.clone(), m.epoch)
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// The next offset `poll` returns of `tp`.
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.parts.get(tp).map(|p| p.delivered)
    }

    /// Waits up to `timeout` for records; applies assignment changes first (see the module
    /// comment). Returns an empty list when nothing arrived in time.
    ///
    /// # Errors
    /// A refusal of this member no retry cures (an invalid subscription), a partition without
    /// an offset to start from under [`OffsetReset::None`], a topic deleted while read.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        for p in self.parts.values_mut() {
            p.processed = p.delivered;
        }
        if self.shared.cfg.auto_commit && self.last_auto_commit.elapsed() >= self.shared.cfg.auto_commit_interval {
            self.last_auto_commit = Instant::now();
            if let Err(e) = self.commit_processed(None).await {
                tracing::warn!(group = %self.shared.cfg.group, error = %e, "auto-commit failed");
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.reconcile().await?;
            // A member that heard nothing from its coordinator for a whole session (it just woke
            // from a stop-the-world pause, say) may have lost its partitions to another member
            // already: it hands out nothing until a heartbeat answers. The batches wait in the
            // channel (dropping them would skip records if the partitions stay).
            let lapsed = self.session_lapsed();
            if lapsed {
                self.shared.wake_heartbeat.notify_one();
            } else {
                while let Some(batch) = self.held.take().or_else(|| self.rx.try_recv().ok()) {
                    if let Some(records) = self.take(batch).await? {
                        return Ok(records);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let recheck = if lapsed { deadline.min(now + Duration::from_millis(50)) } else { deadline };
            tokio::select! {
                b = self.rx.recv(), if !lapsed => {
                    // The wait may have been a stop-the-world pause: check the session again.
                    match b {
                        Some(batch) if self.session_lapsed() => self.held = Some(batch),
                        Some(batch) => {
                            if let Some(records) = self.take(batch).await? {
                                return Ok(records);
                            }
                        }
                        None => {}
                    }
                }
                _ = self.shared.wake_poll.notified() => {}
                _ = tokio::time::sleep_until(recheck) => {}
            }
        }
    }

    /// Whether the member joined and has had no heartbeat answer for a whole session.
    fn session_lapsed(&self) -> bool {
        let m = self.shared.lock();
        m.epoch > 0 && m.last_ok.elapsed() >= m.session
    }

    /// The records of `batch` the application has not seen, or nothing (a stale batch).
    async fn take(&mut self, batch: Batch) -> Result<Option<Vec<ConsumerRecord>>, ClientError> {
        let Some(part) = self.parts.get_mut(&batch.tp) else { return Ok(None) };
        if part.generation != batch.generation || part.paused {
            return Ok(None);
        }
        match batch.result {
            Ok(records) => {
                let from = part.delivered;
                let out: Vec<ConsumerRecord> = records
                    .into_iter()
                    .filter(|r| r.offset >= from)
                    .map(|r| ConsumerRecord {
                        topic: batch.tp.topic.clone(),
                        topic_id: batch.tp.topic_id,
                        partition: batch.tp.partition,
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        timestamp_ms: r.timestamp_ms,
                    })
                    .collect();
                if let Some(last) = out.last() {
                    part.delivered = last.offset + 1;
                }
                Ok((!out.is_empty()).then_some(out))
            }
            Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                let tp = batch.tp.clone();
                let to = Consumer::reset_offset(&self.shared.clone(), &tp, &e).await?;
                tracing::warn!(group = %self.shared.cfg.group, %tp, to, error = %e, "offset out of range: reset");
                self.restart(&tp, to);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Where `tp` starts under the reset policy (`why`: the reason a reset is needed).
    async fn reset_offset(shared: &Shared, tp: &TopicPartition, why: &ClientError) -> Result<u64, ClientError> {
        let spec = match shared.cfg.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::None => {
                return Err(ClientError::local(
                    ErrorCode::OffsetOutOfRange,
                    format!("{tp}: {why}, and auto_offset_reset is none"),
                ))
            }
        };
        Ok(shared.client.list_offsets(&tp.topic, tp.partition, spec).await?.offset)
    }

    /// Starts (again) fetching `tp` from `offset` under a new generation.
    fn restart(&mut self, tp: &TopicPartition, offset: u64) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(part) = self.parts.get_mut(tp) else { return };
        if let Some(f) = part.fetcher.take() {
            f.abort();
        }
        part.generation = generation;
        part.delivered = offset;
        part.processed = part.processed.min(offset);
        if part.paused {
            return;
        }
        let cfg = &self.shared.cfg;
        let handle = fetcher::spawn(
            self.shared.client.clone(),
            tp.clone(),
            offset,
            generation,
            self.tx.clone(),
            cfg.fetch_bytes_max,
            cfg.fetch_wait,
        );
        self.fetchers.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), handle.abort_handle());
        part.fetcher = Some(handle);
    }

    fn stop(&mut self, tp: &TopicPartition) -> Option<Part> {
        self.fetchers.lock().unwrap_or_else(|p| p.into_inner()).remove(tp);
        let mut part = self.parts.remove(tp)?;
        if let Some(f) = part.fetcher.take() {
            f.abort();
        }
        Some(part)
    }

    /// Acts on the membership: fenced → give everything up; revoked → stop, listener, commit,
    /// report; new → start from the committed offset.
    async fn reconcile(&mut self) -> Result<(), ClientError> {
        let (fenced, assignment, error) = {
            let mut m = self.shared.lock();
            // No answer for a whole session (this process was paused, or cut off): the
            // coordinator has removed this member by now, so nothing more is handed out until
            // it rejoins.
            if !m.fenced && m.epoch > 0 && m.last_ok.elapsed() >= m.session {
                m.fenced = true;
                m.epoch = 0;
                m.assignment = None;
            }
            (m.fenced, m.assignment.clone(), m.error.clone())
        };
        if let Some(e) = error {
            return Err(e);
        }
        if fenced {
            let lost: Vec<TopicPartition> = self.parts.keys().cloned().collect();
            for tp in &lost {
                self.stop(tp);
            }
            if !lost.is_empty() {
                if let Some(l) = self.listener.as_mut() {
                    l.on_lost(&lost);
                }
            }
            let mut m = self.shared.lock();
            m.owned.clear();
            m.fenced = false;
            drop(m);
            self.shared.wake_heartbeat.notify_one();
            return Ok(());
        }
        let Some(assignment) = assignment else { return Ok(()) };
        let owned: BTreeSet<TopicPartition> = self.parts.keys().cloned().collect();
        let revoked: Vec<TopicPartition> = owned.difference(&assignment).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(&revoked).await;
        }
        let added: Vec<TopicPartition> = assignment.difference(&owned).cloned().collect();
        if !added.is_empty() {
            self.assign(&added).await?;
        }
        Ok(())
    }

    async fn revoke(&mut self, revoked: &[TopicPartition]) {
        let mut commits = Commits::default();
        // Nothing more of them reaches the application from here on.
        for tp in revoked {
            if let Some(f) = self.parts.get_mut(tp).and_then(|p| p.fetcher.take()) {
                f.abort();
            }
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_revoked(revoked, &mut commits);
        }
        if self.shared.cfg.auto_commit {
            for tp in revoked {
                if let Some(p) = self.parts.get(tp) {
                    commits.offsets.entry(tp.clone()).or_insert(p.processed);
                }
            }
        }
        let offsets: Vec<(TopicPartition, u64)> = commits
            .offsets
            .into_iter()
            .filter(|(tp, o)| self.parts.get(tp).is_some_and(|p| p.committed != Some(*o)))
            .collect();
        if !offsets.is_empty() {
            if let Err(e) = self.send_commit(&offsets).await {
                tracing::warn!(group = %self.shared.cfg.group, error = %e, "commit on revocation failed");
            }
        }
        for tp in revoked {
            self.stop(tp);
        }
        let mut m = self.shared.lock();
        for tp in revoked {
            m.owned.remove(tp);
        }
        drop(m);
        tracing::debug!(group = %self.shared.cfg.group, partitions = ?revoked, "partitions given up");
        self.shared.wake_heartbeat.notify_one();
    }

    async fn assign(&mut self, added: &[TopicPartition]) -> Result<(), ClientError> {
        let topics: Vec<String> =
            added.iter().map(|tp| tp.topic.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let committed = self.shared.client.committed_offsets(&self.shared.cfg.group, &topics).await?;
        for tp in added {
            let c = committed.iter().find(|o| o.topic_id == tp.topic_id && o.partition == tp.partition);
            let start = match c {
                Some(o) => o.offset,
                None => {
                    let why = ClientError::local(ErrorCode::OffsetOutOfRange, "no committed offset".into());
                    Consumer::reset_offset(&self.shared.clone(), tp, &why).await?
                }
            };
            self.parts.insert(
                tp.clone(),
                Part {
                    delivered: start,
                    processed: start,
                    committed: c.map(|o| o.offset),
                    generation: 0,
                    fetcher: None,
                    paused: false,
                },
            );
            self.restart(tp, start);
        }
        let mut m = self.shared.lock();
        m.owned.extend(added.iter().cloned());
        drop(m);
        if let Some(l) = self.listener.as_mut() {
            l.on_assigned(added);
        }
        self.shared.wake_heartbeat.notify_one();
        Ok(())
    }

    async fn send_commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), ClientError> {
        let (member, epoch) = self.member();
        let list = offsets
            .iter()
            .map(|(tp, o)| OffsetCommitPartition {
                topic: tp.topic.clone(),
                topic_id: tp.topic_id,
                partition: tp.partition,
                offset: *o,
                metadata: String::new(),
            })
            .collect();
        self.shared.client.commit_offsets(&self.shared.cfg.group, &member, epoch, list).await?;
        for (tp, o) in offsets {
            if let Some(p) = self.parts.get_mut(tp) {
                p.committed = Some(*o);
            }
        }
        Ok(())
    }

    /// Commits `processed` (or, with `Some(true)`, `delivered`) positions that changed.
    async fn commit_processed(&mut self, delivered: Option<bool>) -> Result<(), ClientError> {
        let use_delivered = delivered.unwrap_or(false);
        let offsets: Vec<(TopicPartition, u64)> = self
            .parts
            .iter()
            .map(|(tp, p)| (tp.clone(), if use_delivered { p.delivered } else { p.processed }))
            .filter(|(tp, o)| self.parts.get(tp).is_some_and(|p| p.committed != Some(*o)))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        self.send_commit(&offsets).await
    }

    /// Commits the position of every record returned so far (call it once they are processed).
    ///
    /// # Errors
    /// STALE_MEMBER_EPOCH / FENCED_MEMBER_EPOCH when a partition was taken away meanwhile,
    /// exhausted retries.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        self.commit_processed(Some(true)).await
    }

    /// Commits explicit offsets (the next offset to read, per partition).
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), ClientError> {
        self.send_commit(offsets).await
    }

    /// Commits the position of every record returned so far without waiting; the handle
    /// resolves with the outcome.
    pub fn commit_async(&mut self) -> JoinHandle<Result<(), ClientError>> {
        let (member, epoch) = self.member();
        let offsets: Vec<OffsetCommitPartition> = self
            .parts
            .iter()
            .filter(|(_, p)| p.committed != Some(p.delivered))
            .map(|(tp, p)| OffsetCommitPartition {
                topic: tp.topic.clone(),
                topic_id: tp.topic_id,
                partition: tp.partition,
                offset: p.delivered,
                metadata: String::new(),
            })
            .collect();
        for p in self.parts.values_mut() {
            p.committed = Some(p.delivered);
        }
        let (client, group) = (self.shared.client.clone(), self.shared.cfg.group.clone());
        tokio::spawn(async move {
            if offsets.is_empty() {
                return Ok(());
            }
            client.commit_offsets(&group, &member, epoch, offsets).await
        })
    }

    /// Makes `poll` return `tp` from `offset` next.
    ///
    /// # Errors
    /// `tp` is not owned by this consumer.
    pub fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<(), ClientError> {
        if !self.parts.contains_key(tp) {
            return Err(ClientError::InvalidArgument(format!("{tp} is not assigned to this consumer")));
        }
        self.restart(tp, offset);
        if let Some(p) = self.parts.get_mut(tp) {
            p.processed = offset;
        }
        Ok(())
    }

    /// Stops returning records of `partitions` (they stay owned) until [`Consumer::resume`].
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(p) = self.parts.get_mut(tp) {
                p.paused = true;
                if let Some(f) = p.fetcher.take() {
                    f.abort();
                }
            }
        }
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            let Some(p) = self.parts.get_mut(tp) else { continue };
            if !p.paused {
                continue;
            }
            p.paused = false;
            let from = p.delivered;
            self.restart(tp, from);
        }
    }

    /// The records as a stream (each item one record; assignment changes and auto-commit happen
    /// as in [`Consumer::poll`], which it calls). The stream ends after the first error.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<ConsumerRecord, ClientError>> {
        let state = (self, std::collections::VecDeque::<ConsumerRecord>::new(), false);
        futures::stream::unfold(state, |(mut c, mut buf, failed)| async move {
            if failed {
                return None;
            }
            loop {
                if let Some(r) = buf.pop_front() {
                    return Some((Ok(r), (c, buf, false)));
                }
                match c.poll(Duration::from_secs(1)).await {
                    Ok(records) => buf.extend(records),
                    Err(e) => return Some((Err(e), (c, buf, true))),
                }
            }
        })
    }

    /// Gives every partition up (listener and commit as on a revocation), leaves the group
    /// (a static member keeps its place for the session timeout) and stops.
    ///
    /// # Errors
    /// None today; kept for a failed final commit to be reported in the future.
    pub async fn close(mut self) -> Result<(), ClientError> {
        for p in self.parts.values_mut() {
            p.processed = p.delivered;
        }
        let all: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        if !all.is_empty() {
            self.revoke(&all).await;
        }
        self.shared.lock().closing = true;
        self.shared.wake_heartbeat.notify_one();
        let heartbeat = std::mem::replace(&mut self.heartbeat, tokio::spawn(async {}));
        let _ = tokio::time::timeout(Duration::from_secs(6), heartbeat).await;
        Ok(())
    }
}
