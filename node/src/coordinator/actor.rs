//! One coordinator: the leader of one `__consumer_offsets` partition, serving every group that
//! hashes to it from memory, one request at a time.
//!
//! ```text
//!  request ─► [actor task] compute the change on a copy of the group ─► records ─► append
//!                 │ (memory updated once the append is queued: the log has the same order)
//!                 └─ the answer waits until everything appended before it is committed
//!  tick (250 ms): expired sessions, revocations past their timeout, topic metadata changes
//! ```
//!
//! The state is loaded from the partition's keyed state (the latest record per key) when this
//! replica becomes leader, after it applied everything committed before its term. Records are
//! whole upserts appended in order and Raft commits a prefix of the log, so whatever a later
//! leader finds committed is a state this coordinator once held. If an append's outcome is
//! unknown (leadership lost, a storage error), the coordinator stops and is rebuilt from the log:
//! its memory may be ahead of what committed. Soft state (session deadlines, when a revocation
//! started) is not persisted: a new coordinator gives every member a fresh session.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cairn_proto::peer::{CoordinatedGroup, RecordBatch};
use cairn_proto::v1::{
    CommittedOffset, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, OffsetCommitPartition,
    TopicPartitions,
};
use cairn_raft::group::{PartitionGroup, ProduceRequest};
use cairn_raft::GroupError;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::confirm::Confirmer;
use super::error::CoordError;
use super::group::{compile_regex, GroupState, Member, Metadata, Partitions, TopicMeta};
use super::records::{group_value, offset_value, OffsetValue, RecordKey};
use super::Shared;

/// Requests waiting for the actor; beyond it callers get THROTTLED-like refusals.
const QUEUE_MAX: usize = 4096;
const TICK: Duration = Duration::from_millis(250);
/// Longest group id accepted (bytes).
pub const GROUP_ID_BYTES_MAX: usize = 255;

type Reply<T> = oneshot::Sender<Result<T, CoordError>>;

/// What a caller asks a coordinator.
pub enum Cmd {
    Heartbeat(ConsumerGroupHeartbeatRequest, String, Reply<ConsumerGroupHeartbeatResponse>),
    Commit { group: String, member: String, epoch: i32, offsets: Vec<OffsetCommitPartition>, reply: Reply<()> },
    Fetch { group: String, topics: Vec<String>, reply: Reply<Vec<CommittedOffset>> },
    Describe { group: String, reply: Reply<Option<GroupView>> },
    Delete { group: String, reply: Reply<()> },
    Alter { group: String, offsets: Vec<OffsetCommitPartition>, reply: Reply<()> },
    List { reply: Reply<Vec<CoordinatedGroup>> },
}

/// A group as DescribeGroup shows it.
#[derive(Clone, Debug)]
pub struct GroupView {
    pub state: GroupState,
    pub offsets: BTreeMap<(u64, u32), OffsetValue>,
}

/// A running coordinator (see the module comment).
pub struct Coordinator {
    pub partition: u32,
    pub term: u64,
    pub replica: Arc<PartitionGroup>,
    tx: mpsc::Sender<Cmd>,
    broken: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Coordinator {
    /// Whether it stopped (an append failed) or its task ended.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire) || self.task.is_finished()
    }

    /// Sends `cmd`; an error when the coordinator is gone or too busy.
    pub fn send(&self, cmd: Cmd) -> Result<(), CoordError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                CoordError::LimitExceeded(format!("{QUEUE_MAX} requests are waiting for this coordinator; retry"))
            }
            mpsc::error::TrySendError::Closed(_) => {
                CoordError::Write(GroupError::Stopped { reason: "the coordinator stopped".into() })
            }
        })
    }

    /// Loads the state of partition `partition` from `replica` (which leads it) and starts.
    ///
    /// # Errors
    /// The replica is not the leader any more, or its state cannot be read.
    pub async fn load(
        shared: Arc<Shared>,
        partition: u32,
        replica: Arc<PartitionGroup>,
    ) -> Result<Coordinator, CoordError> {
        let term = replica.term();
        replica.caught_up_as_leader(Duration::from_secs(10)).await?;
        let mut groups: BTreeMap<String, Entry> = BTreeMap::new();
        let now = Instant::now();
        for (k, v) in replica.keyed_state().await? {
            match RecordKey::decode(&k) {
                Some(RecordKey::Group { group }) => match serde_json::from_slice::<GroupState>(&v) {
                    Ok(state) => {
                        let e = groups.entry(group).or_default();
                        e.soft =
                            state.members.keys().map(|m| (m.clone(), Soft::fresh(now, &state.members[m]))).collect();
                        e.state = state;
                    }
                    Err(e) => tracing::error!(partition, error = %e, "undecodable group record; skipped"),
                },
                Some(RecordKey::Offset { .. }) if shared.faults.forget_offsets_on_load => {}
                Some(RecordKey::Offset { group, topic_id, partition: p }) => {
                    match serde_json::from_slice::<OffsetValue>(&v) {
                        Ok(o) => {
                            groups.entry(group).or_default().offsets.insert((topic_id, p), o);
                        }
                        Err(e) => tracing::error!(partition, error = %e, "undecodable offset record; skipped"),
                    }
                }
                None => tracing::error!(partition, "unknown record key in __consumer_offsets; skipped"),
            }
        }
        tracing::info!(partition, term, groups = groups.len(), "coordinator loaded");
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        let broken = Arc::new(AtomicBool::new(false));
        let (committed, _) = watch::channel(Commits::default());
        let actor = Actor {
            partition,
            replica: replica.clone(),
            shared,
            groups,
            issued: 0,
            committed,
            broken: broken.clone(),
            meta: (u64::MAX, Arc::new(Metadata::new())),
            confirm: Confirmer::start(replica.clone()),
        };
        let task = tokio::spawn(actor.run(rx));
        Ok(Coordinator { partition, term, replica, tx, broken, task })
    }
}

/// Appends committed so far (by sequence) or the failure that stopped the coordinator.
#[derive(Clone, Debug, Default)]
struct Commits {
    done: u64,
    failed: Option<String>,
}

/// A member's soft state (memory only).
#[derive(Clone, Copy, Debug)]
struct Soft {
    /// Removed when no heartbeat arrives before this.
    deadline: Instant,
    /// When its current revocation started.
    revoking_since: Option<Instant>,
    /// Its revocation timed out: its heartbeats are refused (it gives its partitions up when
    /// told) and its session is no longer extended; it is removed, and its partitions move,
    /// when the session ends. Removing it at once would hand them over while the member,
    /// alive and between two heartbeats, still reads them.
    evicted: bool,
}

impl Soft {
    fn fresh(now: Instant, m: &Member) -> Soft {
        Soft {
            deadline: now + Duration::from_millis(u64::from(m.session_timeout_ms)),
            revoking_since: None,
            evicted: false,
        }
    }
}

#[derive(Default)]
struct Entry {
    state: GroupState,
    offsets: BTreeMap<(u64, u32), OffsetValue>,
    soft: HashMap<String, Soft>,
}

struct Actor {
    partition: u32,
    replica: Arc<PartitionGroup>,
    shared: Arc<Shared>,
    groups: BTreeMap<String, Entry>,
    /// Appends issued so far.
    issued: u64,
    committed: watch::Sender<Commits>,
    broken: Arc<AtomicBool>,
    /// Topic metadata and the cluster metadata version it was built from.
    meta: (u64, Arc<Metadata>),
    /// Leadership checks for answers that appended nothing.
    confirm: Confirmer,
}

fn invalid(m: impl Into<String>) -> CoordError {
    CoordError::Invalid(m.into())
}

fn check_group_id(group: &str) -> Result<(), CoordError> {
    if group.is_empty() || group.len() > GROUP_ID_BYTES_MAX {
        return Err(invalid(format!("a group id must be 1 to {GROUP_ID_BYTES_MAX} bytes")));
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A new member id: random, 22 characters like Kafka's.
fn new_member_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..22).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Partitions as the API lists them (with topic names from `names`).
pub fn to_topic_partitions(p: &Partitions, names: &BTreeMap<u64, (String, u32)>) -> Vec<TopicPartitions> {
    p.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| TopicPartitions {
            topic_id: *id,
            topic: names.get(id).map(|(n, _)| n.clone()).unwrap_or_default(),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_topic_partitions(list: &[TopicPartitions]) -> Partitions {
    let mut out = Partitions::new();
    for tp in list {
        out.entry(tp.topic_id).or_default().extend(&tp.partitions);
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
                _ = tick.tick() => self.tick(),
            }
            if self.broken.load(Ordering::Acquire) {
                tracing::warn!(
                    partition = self.partition,
                    "coordinator stopped: an append's outcome is unknown; it reloads from the log"
                );
                return;
            }
        }
    }

    fn metadata(&mut self) -> Arc<Metadata> {
        let state = self.shared.local.state();
        if self.meta.0 != state.version {
            let ignore_new = self.shared.faults.ignore_new_partitions;
            let mut first_counts = self.shared.first_counts.lock().unwrap_or_else(|p| p.into_inner());
            let meta: Metadata = state
                .topics
                .iter()
                .filter(|(name, _)| !crate::topic::is_internal(name))
                .map(|(name, t)| {
                    let mut partitions = t.partitions.len() as u32;
                    if ignore_new {
                        partitions = *first_counts.entry(t.id).or_insert(partitions);
                    }
                    (name.clone(), TopicMeta { name: name.clone(), id: t.id, partitions })
                })
                .collect();
            self.meta = (state.version, Arc::new(meta));
        }
        self.meta.1.clone()
    }

    fn handle(&mut self, cmd: Cmd) {
        // Read before the request is looked at: whether it appended anything decides what
        // proves this replica still led when it answered (see `confirm`).
        let issued = self.issued;
        match cmd {
            Cmd::Heartbeat(req, host, reply) => {
                let group = req.group_id.clone();
                let res = self.heartbeat(req, host);
                self.answer(reply, res, Some(group), issued);
            }
            Cmd::Commit { group, member, epoch, offsets, reply } => {
                let res = self.commit(&group, &member, epoch, offsets);
                self.answer(reply, res, Some(group), issued);
            }
            Cmd::Fetch { group, topics, reply } => {
                let res = self.fetch(&group, &topics);
                self.answer(reply, Ok(res), Some(group), issued);
            }
            Cmd::Describe { group, reply } => {
                let view =
                    self.groups.get(&group).map(|e| GroupView { state: e.state.clone(), offsets: e.offsets.clone() });
                self.answer(reply, Ok(view), Some(group), issued);
            }
            Cmd::Delete { group, reply } => {
                let res = self.delete(&group);
                self.answer(reply, res, Some(group), issued);
            }
            Cmd::Alter { group, offsets, reply } => {
                let res = self.alter(&group, offsets);
                self.answer(reply, res, Some(group), issued);
            }
            Cmd::List { reply } => {
                let list = self
                    .groups
                    .iter()
                    .map(|(id, e)| CoordinatedGroup {
                        group_id: id.clone(),
                        state: e.state.state_name().to_string(),
                        members: e.state.members.len() as u32,
                    })
                    .collect();
                self.answer(reply, Ok(list), None, issued);
            }
        }
    }

    /// Answers once everything appended so far is committed (errors at once: a refusal
    /// promises nothing). `issued_before` is the append count before the request was handled:
    /// an answer that appended nothing also waits for a leadership check begun after it was
    /// received (see [`super::confirm`]); `group` names the group in the refusal if that fails.
    fn answer<T: Send + 'static>(
        &self,
        reply: Reply<T>,
        res: Result<T, CoordError>,
        group: Option<String>,
        issued_before: u64,
    ) {
        let value = match res {
            Ok(v) => v,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let target = self.issued;
        let ticket = (target == issued_before).then(|| self.confirm.ticket());
        let (replica, me) = (self.replica.clone(), self.shared.local.env().me);
        let mut rx = self.committed.subscribe();
        tokio::spawn(async move {
            let res = loop {
                {
                    let c = rx.borrow_and_update();
                    if c.done >= target {
                        break Ok(value);
                    }
                    if let Some(f) = &c.failed {
                        break Err(CoordError::Write(GroupError::OutcomeUnknown { reason: f.clone() }));
                    }
                }
                if rx.changed().await.is_err() {
                    break Err(CoordError::Write(GroupError::OutcomeUnknown {
                        reason: "the coordinator stopped".into(),
                    }));
                }
            };
            let unconfirmed = match ticket {
                Some(t) if res.is_ok() => !t.confirmed().await,
                _ => false,
            };
            let res = if unconfirmed {
                let hint = replica.leader_hint().filter(|h| h.node_id != me);
                Err(match group {
                    Some(group) => CoordError::NotCoordinator { group, hint },
                    None => CoordError::Write(GroupError::NotLeader { leader: hint }),
                })
            } else {
                res
            };
            let _ = reply.send(res);
        });
    }

    /// Appends `records` (key, value; empty value = delete) in one batch. Memory is updated by
    /// the caller only when this succeeds; a failure later stops the coordinator.
    fn write(&mut self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), CoordError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(why) = self.shared.local.env().disk.refusal() {
            return Err(CoordError::DiskFull(why));
        }
        let count = records.len() as u32;
        let batch = RecordBatch {
            records: records
                .into_iter()
                .map(|(k, v)| cairn_proto::v1::Record { key: k.into(), value: v.into(), ..Default::default() })
                .collect(),
        };
        let mut buf = BytesMut::with_capacity(batch.encoded_len());
        batch.encode(&mut buf).map_err(|e| invalid(format!("cannot encode group records: {e}")))?;
        let pending = self.replica.enqueue(ProduceRequest {
            producer: None,
            record_count: count,
            max_set_timestamp_ms: None,
            has_unset_timestamps: true,
            records: buf.freeze(),
            condition: None,
            keys: Vec::new(),
        })?;
        self.issued += 1;
        let (seq, tx, broken) = (self.issued, self.committed.clone(), self.broken.clone());
        tokio::spawn(async move {
            match pending.wait().await {
                Ok(_) => tx.send_modify(|c| c.done = c.done.max(seq)),
                Err(e) => {
                    broken.store(true, Ordering::Release);
                    tx.send_modify(|c| c.failed = Some(e.to_string()));
                }
            }
        });
        Ok(())
    }

    fn write_group(&mut self, group: &str, state: GroupState, soft: HashMap<String, Soft>) -> Result<(), CoordError> {
        let key = RecordKey::Group { group: group.to_string() }.encode();
        self.write(vec![(key, group_value(&state))])?;
        let e = self.groups.entry(group.to_string()).or_default();
        e.state = state;
        e.soft = soft;
        Ok(())
    }

    fn session_timeout(&self, asked: u32) -> u32 {
        let g = &self.shared.config;
        if asked == 0 {
            g.session_timeout_ms
        } else {
            asked.clamp(g.session_timeout_ms_min, g.session_timeout_ms_max)
        }
    }

    fn heartbeat(
        &mut self,
        req: ConsumerGroupHeartbeatRequest,
        host: String,
    ) -> Result<ConsumerGroupHeartbeatResponse, CoordError> {
        check_group_id(&req.group_id)?;
        let meta = self.metadata();
        let now = Instant::now();
        let group = req.group_id.clone();
        let cfg = self.shared.config;
        if !self.groups.contains_key(&group)
            && req.member_epoch == 0
            && self.groups.len() >= cfg.groups_per_partition_max as usize
        {
            return Err(CoordError::LimitExceeded(format!(
                "this coordinator holds {} groups (groups.groups_per_partition_max)",
                self.groups.len()
            )));
        }
        let (mut state, mut soft) = match self.groups.get(&group) {
            Some(e) => (e.state.clone(), e.soft.clone()),
            None if req.member_epoch == 0 => (GroupState::default(), HashMap::new()),
            None => return Err(CoordError::UnknownMember { group, member: req.member_id }),
        };
        let before = state.clone();
        let member_id = match req.member_epoch {
            -1 | -2 => {
                let leaving = state.members.get(&req.member_id).cloned();
                match leaving {
                    Some(m) if req.member_epoch == -2 && m.instance_id.is_some() => {
                        if let Some(x) = state.members.get_mut(&req.member_id) {
                            x.left_static = true;
                        }
                        soft.insert(req.member_id.clone(), Soft::fresh(now, &m));
                    }
                    Some(_) => {
                        state.remove(&req.member_id, &meta);
                        soft.remove(&req.member_id);
                    }
                    None => {}
                }
                if state != before {
                    self.write_group(&group, state, soft)?;
                }
                return Ok(ConsumerGroupHeartbeatResponse {
                    member_id: req.member_id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: cfg.heartbeat_interval_ms,
                    ..Default::default()
                });
            }
            0 => self.join(&mut state, &mut soft, &req, host, &meta)?,
            e if e > 0 => {
                let Some(m) = state.members.get(&req.member_id) else {
                    return Err(CoordError::UnknownMember { group, member: req.member_id });
                };
                if soft.get(&req.member_id).is_some_and(|s| s.evicted) {
                    return Err(CoordError::UnknownMember { group, member: req.member_id });
                }
                let e = e as u32;
                if e != m.epoch && e != m.previous_epoch {
                    return Err(CoordError::FencedEpoch {
                        group,
                        member: req.member_id,
                        sent: req.member_epoch,
                        current: m.epoch,
                    });
                }
                req.member_id.clone()
            }
            other => return Err(invalid(format!("member epoch {other} is not valid"))),
        };
        // A subscription change re-assigns.
        let (names, regex) = subscription(&req)?;
        let subscription_changed = state.members.get(&member_id).is_some_and(|m| {
            (!names.is_empty() || regex.is_some()) && (m.subscribed_topics != names || m.subscribed_regex != regex)
        });
        if subscription_changed {
            if let Some(m) = state.members.get_mut(&member_id) {
                m.subscribed_topics = names;
                m.subscribed_regex = regex;
            }
            state.reassign(&meta);
        }
        // Acknowledgements count only from a heartbeat at the member's current epoch.
        let acked = state
            .members
            .get(&member_id)
            .filter(|m| req.member_epoch > 0 && req.member_epoch as u32 == m.epoch)
            .map(|_| from_topic_partitions(&req.owned));
        let acked = if req.member_epoch == 0 { Some(Partitions::new()) } else { acked };
        // NEGATIVE CONTROL (skip_revoke): target partitions are handed out while their old
        // owner may still be consuming them.
        state.reconcile_with(&member_id, acked.as_ref(), self.shared.faults.skip_revoke);
        let m = state.members.get(&member_id).cloned().ok_or_else(|| invalid("member vanished"))?;
        let s = soft.entry(member_id.clone()).or_insert_with(|| Soft::fresh(now, &m));
        s.deadline = now + Duration::from_millis(u64::from(m.session_timeout_ms));
        if super::group::is_empty(&m.pending_revocation) {
            s.revoking_since = None;
        } else if s.revoking_since.is_none() {
            s.revoking_since = Some(now);
        }
        let names = state.topics.clone();
        if state != before {
            self.write_group(&group, state, soft)?;
        } else if let Some(e) = self.groups.get_mut(&group) {
            e.soft = soft;
        }
        Ok(ConsumerGroupHeartbeatResponse {
            member_id,
            member_epoch: m.epoch as i32,
            // At least three heartbeats per session, whatever session the member asked for.
            heartbeat_interval_ms: cfg.heartbeat_interval_ms.min(m.session_timeout_ms / 3).max(1),
            assignment: to_topic_partitions(&m.assigned, &names),
            session_timeout_ms: m.session_timeout_ms,
        })
    }

    /// A join (member epoch 0): a new member, or a static member's new instance taking the
    /// place of the old one (its partitions and epoch, without a re-assignment).
    fn join(
        &mut self,
        state: &mut GroupState,
        soft: &mut HashMap<String, Soft>,
        req: &ConsumerGroupHeartbeatRequest,
        host: String,
        meta: &Metadata,
    ) -> Result<String, CoordError> {
        let (names, regex) = subscription(req)?;
        if names.is_empty() && regex.is_none() {
            return Err(invalid("a joining member must subscribe to topic names or a regex"));
        }
        let assignor = super::assignor::Assignor::parse(&req.assignor).map_err(CoordError::Invalid)?;
        if req.instance_id.len() > GROUP_ID_BYTES_MAX || req.client_id.len() > GROUP_ID_BYTES_MAX {
            return Err(invalid(format!("instance and client ids must be at most {GROUP_ID_BYTES_MAX} bytes")));
        }
        let now = Instant::now();
        let instance = (!req.instance_id.is_empty()).then(|| req.instance_id.clone());
        let previous = instance.as_ref().and_then(|i| {
            state.members.values().find(|m| m.instance_id.as_ref() == Some(i)).map(|m| m.member_id.clone())
        });
        let member_id = new_member_id();
        let session = self.session_timeout(req.session_timeout_ms);
        let rebalance = if req.rebalance_timeout_ms == 0 {
            self.shared.config.rebalance_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        if let Some(old_id) = previous {
            // Static membership: the new instance takes over the old one's place.
            let Some(mut m) = state.members.remove(&old_id) else { return Err(invalid("member vanished")) };
            soft.remove(&old_id);
            m.member_id = member_id.clone();
            m.client_id = req.client_id.clone();
            m.client_host = host;
            m.left_static = false;
            m.session_timeout_ms = session;
            m.rebalance_timeout_ms = rebalance;
            soft.insert(member_id.clone(), Soft::fresh(now, &m));
            state.members.insert(member_id.clone(), m);
            tracing::info!(group = %req.group_id, instance = %req.instance_id, old = %old_id, new = %member_id, "static member rejoined");
            return Ok(member_id);
        }
        if state.members.len() >= self.shared.config.members_per_group_max as usize {
            return Err(CoordError::LimitExceeded(format!(
                "group {:?} has {} members (groups.members_per_group_max)",
                req.group_id,
                state.members.len()
            )));
        }
        if state.members.is_empty() {
            state.assignor = assignor;
        }
        let m = Member {
            member_id: member_id.clone(),
            instance_id: instance,
            client_id: req.client_id.clone(),
            client_host: host,
            subscribed_topics: names,
            subscribed_regex: regex,
            rebalance_timeout_ms: rebalance,
            session_timeout_ms: session,
            ..Member::default()
        };
        soft.insert(member_id.clone(), Soft::fresh(now, &m));
        state.members.insert(member_id.clone(), m);
        state.reassign(meta);
        Ok(member_id)
    }

    /// Resolves one offset's topic against the metadata: (topic id, topic name).
    fn resolve(&mut self, o: &OffsetCommitPartition) -> Result<(u64, String), CoordError> {
        let meta = self.metadata();
        let t = meta.get(&o.topic).ok_or_else(|| CoordError::UnknownTopic(o.topic.clone()))?;
        if o.topic_id != 0 && o.topic_id != t.id {
            return Err(CoordError::UnknownTopicId { topic: o.topic.clone(), requested: o.topic_id, current: t.id });
        }
        if o.partition >= t.partitions {
            return Err(CoordError::UnknownPartition {
                topic: o.topic.clone(),
                partition: o.partition,
                count: t.partitions,
            });
        }
        if o.metadata.len() > self.shared.config.commit_metadata_bytes_max as usize {
            return Err(invalid(format!(
                "commit metadata of {}/{} is {} bytes, over groups.commit_metadata_bytes_max ({})",
                o.topic,
                o.partition,
                o.metadata.len(),
                self.shared.config.commit_metadata_bytes_max
            )));
        }
        Ok((t.id, t.name.clone()))
    }

    fn check_new_group(&self, group: &str) -> Result<(), CoordError> {
        if !self.groups.contains_key(group) && self.groups.len() >= self.shared.config.groups_per_partition_max as usize
        {
            return Err(CoordError::LimitExceeded(format!(
                "this coordinator holds {} groups (groups.groups_per_partition_max)",
                self.groups.len()
            )));
        }
        Ok(())
    }

    fn commit(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        offsets: Vec<OffsetCommitPartition>,
    ) -> Result<(), CoordError> {
        check_group_id(group)?;
        if offsets.is_empty() {
            return Err(invalid("an offset commit needs at least one offset"));
        }
        self.check_new_group(group)?;
        let mut resolved = Vec::with_capacity(offsets.len());
        for o in &offsets {
            resolved.push((self.resolve(o)?, o));
        }
        let members = self.groups.get(group).map_or(0, |e| e.state.members.len());
        if epoch < 0 {
            if members > 0 {
                return Err(CoordError::UnknownMember { group: group.to_string(), member: member.to_string() });
            }
        } else {
            let m =
                self.groups.get(group).and_then(|e| e.state.members.get(member)).ok_or_else(|| {
                    CoordError::UnknownMember { group: group.to_string(), member: member.to_string() }
                })?;
            for ((id, name), o) in &resolved {
                match m.may_commit(epoch as u32, *id, o.partition) {
                    Ok(()) => {}
                    Err(super::group::CommitRefusal::Fenced) => {
                        return Err(CoordError::FencedEpoch {
                            group: group.to_string(),
                            member: member.to_string(),
                            sent: epoch,
                            current: m.epoch,
                        })
                    }
                    Err(r) => {
                        let why = match r {
                            super::group::CommitRefusal::Stale => format!("epoch {epoch} is old (current {})", m.epoch),
                            _ => "it does not own the partition (revoked, or never assigned)".to_string(),
                        };
                        return Err(CoordError::StaleEpoch {
                            group: group.to_string(),
                            member: member.to_string(),
                            topic: name.clone(),
                            partition: o.partition,
                            why,
                        });
                    }
                }
            }
        }
        self.write_offsets(group, resolved.into_iter().map(|((id, name), o)| (id, name, o.clone())).collect())
    }

    fn write_offsets(
        &mut self,
        group: &str,
        offsets: Vec<(u64, String, OffsetCommitPartition)>,
    ) -> Result<(), CoordError> {
        let time = now_ms();
        let values: Vec<((u64, u32), OffsetValue)> = offsets
            .into_iter()
            .map(|(id, name, o)| {
                (
                    (id, o.partition),
                    OffsetValue { topic: name, offset: o.offset, metadata: o.metadata, commit_time_ms: time },
                )
            })
            .collect();
        let records = values
            .iter()
            .map(|((id, p), v)| {
                (RecordKey::Offset { group: group.to_string(), topic_id: *id, partition: *p }.encode(), offset_value(v))
            })
            .collect();
        self.write(records)?;
        let e = self.groups.entry(group.to_string()).or_default();
        e.offsets.extend(values);
        Ok(())
    }

    fn fetch(&mut self, group: &str, topics: &[String]) -> Vec<CommittedOffset> {
        let meta = self.metadata();
        let Some(e) = self.groups.get(group) else { return Vec::new() };
        e.offsets
            .iter()
            .filter_map(|((id, p), o)| {
                // Offsets of a deleted incarnation are not the current topic's.
                let t = meta.values().find(|t| t.id == *id)?;
                (topics.is_empty() || topics.contains(&t.name)).then(|| CommittedOffset {
                    topic: t.name.clone(),
                    topic_id: *id,
                    partition: *p,
                    offset: o.offset,
                    metadata: o.metadata.clone(),
                    commit_time_ms: o.commit_time_ms,
                })
            })
            .collect()
    }

    fn delete(&mut self, group: &str) -> Result<(), CoordError> {
        let e = self.groups.get(group).ok_or_else(|| CoordError::NotFound(group.to_string()))?;
        if !e.state.members.is_empty() {
            return Err(CoordError::NotEmpty {
                group: group.to_string(),
                members: e.state.members.len(),
                what: "deleting it",
            });
        }
        let mut records = vec![(RecordKey::Group { group: group.to_string() }.encode(), Vec::new())];
        records.extend(e.offsets.keys().map(|(id, p)| {
            (RecordKey::Offset { group: group.to_string(), topic_id: *id, partition: *p }.encode(), Vec::new())
        }));
        self.write(records)?;
        self.groups.remove(group);
        Ok(())
    }

    fn alter(&mut self, group: &str, offsets: Vec<OffsetCommitPartition>) -> Result<(), CoordError> {
        check_group_id(group)?;
        if offsets.is_empty() {
            return Err(invalid("nothing to set"));
        }
        if let Some(e) = self.groups.get(group).filter(|e| !e.state.members.is_empty()) {
            return Err(CoordError::NotEmpty {
                group: group.to_string(),
                members: e.state.members.len(),
                what: "resetting its offsets",
            });
        }
        self.check_new_group(group)?;
        let mut resolved = Vec::with_capacity(offsets.len());
        for o in offsets {
            let (id, name) = self.resolve(&o)?;
            resolved.push((id, name, o));
        }
        self.write_offsets(group, resolved)
    }

    /// Expired sessions, revocations past their timeout, subscribed topics that changed.
    fn tick(&mut self) {
        let now = Instant::now();
        let meta = self.metadata();
        let mut changed: Vec<(String, GroupState, HashMap<String, Soft>)> = Vec::new();
        let mut soft_only: Vec<(String, HashMap<String, Soft>)> = Vec::new();
        for (id, e) in &self.groups {
            let mut state = e.state.clone();
            let mut soft = e.soft.clone();
            let mut evicted = false;
            let mut expired: Vec<String> = Vec::new();
            for m in state.members.values() {
                let Some(s) = soft.get_mut(&m.member_id) else {
                    expired.push(m.member_id.clone());
                    continue;
                };
                if now >= s.deadline {
                    expired.push(m.member_id.clone());
                } else if !s.evicted
                    && s.revoking_since.is_some_and(|t| {
                        now.duration_since(t) >= Duration::from_millis(u64::from(m.rebalance_timeout_ms))
                    })
                {
                    tracing::info!(group = %id, member = %m.member_id, "revocation timed out: member fenced; its partitions move when its session ends");
                    s.evicted = true;
                    evicted = true;
                }
            }
            for m in &expired {
                tracing::info!(group = %id, member = %m, "member removed: its session timed out");
                state.members.remove(m);
                soft.remove(m);
            }
            if !expired.is_empty() || (!state.members.is_empty() && state.topics_changed(&meta)) {
                state.reassign(&meta);
            }
            if state != e.state {
                changed.push((id.clone(), state, soft));
            } else if evicted {
                soft_only.push((id.clone(), soft));
            }
        }
        for (id, soft) in soft_only {
            if let Some(e) = self.groups.get_mut(&id) {
                e.soft = soft;
            }
        }
        for (id, state, soft) in changed {
            if let Err(e) = self.write_group(&id, state, soft) {
                tracing::warn!(group = %id, error = %e, "could not write a group change; will retry");
                return;
            }
        }
    }
}

/// A heartbeat's subscription: topic names or a regex (validated), possibly neither (unchanged).
fn subscription(req: &ConsumerGroupHeartbeatRequest) -> Result<(Vec<String>, Option<String>), CoordError> {
    let names: Vec<String> = {
        let mut n = req.subscribed_topics.clone();
        n.sort();
        n.dedup();
        n
    };
    let regex = (!req.subscribed_regex.is_empty()).then(|| req.subscribed_regex.clone());
    if !names.is_empty() && regex.is_some() {
        return Err(invalid("subscribe to topic names or to a regex, not both"));
    }
    if names.len() > 10_000 {
        return Err(invalid("too many subscribed topics"));
    }
    if let Some(r) = &regex {
        compile_regex(r).map_err(CoordError::Invalid)?;
    }
    Ok((names, regex))
}
