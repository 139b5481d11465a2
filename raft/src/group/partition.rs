//! [`PartitionGroup`]: one replica of one partition, as the node's services see it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::v1::FetchedRecord;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, ServerState};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use gauges::Gauges;

#[path = "gauges.rs"]
mod gauges;

use super::config::GroupConfig;
use super::proposer::{self, Proposal};
use super::reader;
use crate::error::{GroupError, LeaderHint};
use crate::ids::{node_of, GroupId, NodeId, ReplicaId};
use crate::network::{GroupRegistry, NetworkFactory, PeerChannels};
use crate::storage::checkpoints::CheckpointSummary;
use crate::storage::{Db, Failure, Health, LogStore, Progress, SharedProducers, StateMachineStore};
use crate::types::{ApplyResponse, Command, LogId, MetaStateMachine, ProducerRef, Raft};

/// A produce request as the group takes it: records already encoded.
#[derive(Debug)]
pub struct ProduceRequest {
    pub producer: Option<ProducerRef>,
    pub record_count: u32,
    pub max_set_timestamp_ms: Option<i64>,
    pub has_unset_timestamps: bool,
    /// Protobuf encoding of `cairn.peer.v1.RecordBatch`.
    pub records: Bytes,
    /// A conditional append's condition.
    pub condition: Option<crate::types::Condition>,
    /// Distinct record keys with their last record's ordinal ([`crate::types::last_key_ordinals`]).
    pub keys: Vec<(Bytes, u32)>,
}

/// A committed produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceAck {
    pub base_offset: u64,
    pub log_append_time_ms: i64,
}

/// A batch handed to the proposer, awaiting its commit.
#[derive(Debug)]
pub struct PendingProduce {
    rx: oneshot::Receiver<Result<(u64, i64), GroupError>>,
}

impl PendingProduce {
    /// Waits for the batch's outcome.
    ///
    /// # Errors
    /// As [`PartitionGroup::produce`].
    pub async fn wait(self) -> Result<ProduceAck, GroupError> {
        match self.rx.await {
            Ok(Ok((base_offset, log_append_time_ms))) => Ok(ProduceAck { base_offset, log_append_time_ms }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GroupError::OutcomeUnknown { reason: "proposer dropped the request".into() }),
        }
    }
}

/// Records read from a replica, with its view of the partition bounds.
#[derive(Debug)]
pub struct FetchResult {
    pub records: Vec<FetchedRecord>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// A point-in-time view of the replica, for cluster description.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    pub group: GroupId,
    pub leader: Option<LeaderHint>,
    pub is_leader: bool,
    pub replicas: Vec<NodeId>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Why the replica stopped serving, when it did.
    pub stopped: Option<Failure>,
    /// The replica's current Raft term (a higher term's leader claim wins).
    pub term: u64,
}

/// A member as the leader sees it: its replica id and the last index known replicated there.
pub type Matched = (ReplicaId, Option<u64>);

/// One replica of one partition.
pub struct PartitionGroup {
    cfg: GroupConfig,
    raft: Raft,
    db: Arc<Db>,
    proposals: mpsc::Sender<Proposal>,
    /// The proposer's in-flight permits (for the metrics).
    in_flight: Arc<tokio::sync::Semaphore>,
    progress: watch::Receiver<Progress>,
    producers: SharedProducers,
    registry: GroupRegistry,
    tasks: Vec<JoinHandle<()>>,
    /// Whether openraft's timer runs (see [`PartitionGroup::set_ticking`]).
    ticking: std::sync::atomic::AtomicBool,
    /// Damaged data found by any read of this replica.
    health: Health,
}

/// A replica's role in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
}

/// A replica as the quiescence and failover loop sees it.
#[derive(Clone, Debug)]
pub struct Observation {
    pub role: Role,
    /// Node of the leader this replica knows, if any.
    pub leader_node: Option<NodeId>,
    pub last_log_index: Option<u64>,
    /// Leader only: nodes whose replica has not matched the last log index.
    pub lagging_nodes: Vec<NodeId>,
    /// Leader only: nodes of the replicas it replicates to.
    pub follower_nodes: Vec<NodeId>,
    pub stopped: bool,
    pub term: u64,
}

impl PartitionGroup {
    /// Opens the replica's storage, starts its Raft instance and proposer, and
    /// registers it for peer RPCs.
    ///
    /// # Errors
    /// Invalid Raft timers, storage errors, or openraft failing to start.
    pub async fn start(
        cfg: GroupConfig,
        db: Arc<Db>,
        peers: PeerChannels,
        registry: GroupRegistry,
    ) -> Result<PartitionGroup, GroupError> {
        PartitionGroup::start_with_meta(cfg, db, peers, registry, None).await
    }

    /// Like [`PartitionGroup::start`], for a group whose `Command::Meta` entries `meta` applies
    /// (the controller).
    ///
    /// # Errors
    /// As [`PartitionGroup::start`].
    pub async fn start_with_meta(
        cfg: GroupConfig,
        db: Arc<Db>,
        peers: PeerChannels,
        registry: GroupRegistry,
        meta: Option<Box<dyn MetaStateMachine>>,
    ) -> Result<PartitionGroup, GroupError> {
        let raft_cfg = cfg.raft_config()?;
        let health = Health::default();
        let log = LogStore::new(db.clone(), cfg.group)
            .with_read_bytes_max(cfg.replication_read_bytes_max)
            .with_health(health.clone());
        let mut sm = StateMachineStore::open_with_meta(db.clone(), cfg.group, cfg.checkpoint, meta).await?;
        if cfg.faults.no_dedup {
            tracing::warn!(group = cfg.group, "FAULT INJECTION: idempotent producer deduplication is disabled");
            sm.disable_dedup_for_fault_injection();
        }
        if cfg.faults.ignore_conditions {
            tracing::warn!(group = cfg.group, "FAULT INJECTION: conditional appends are not checked");
            sm.ignore_conditions_for_fault_injection();
        }
        if cfg.keyed_state {
            sm.keep_keyed_state();
        }
        if cfg.faults.truncate_past_checkpoint {
            tracing::warn!(group = cfg.group, "FAULT INJECTION: retention truncates one record past each checkpoint");
            sm.truncate_past_checkpoint_for_fault_injection();
        }
        let progress = sm.progress();
        let producers = sm.shared_producers();
        let network = NetworkFactory::new(cfg.group, cfg.replica, peers);
        let raft = Raft::new(cfg.replica, Arc::new(raft_cfg), network, log, sm).await.map_err(|e| {
            let reason = format!("raft failed to start: {e}");
            match health.get() {
                Some(f) if f.corrupt => GroupError::Damaged { reason },
                _ => GroupError::Stopped { reason },
            }
        })?;
        registry.insert(cfg.group, cfg.replica, raft.clone());

        let (tx, rx) = mpsc::channel(cfg.proposal_queue_max.max(1));
        if cfg.faults.ack_before_commit || cfg.faults.fetch_above_hw || cfg.faults.skip_fetch_checksum {
            tracing::warn!(group = cfg.group, faults = ?cfg.faults, "FAULT INJECTION enabled for this group");
        }
        // Entries proposed and not yet answered (bounded by proposals_in_flight_max).
        let in_flight = Arc::new(tokio::sync::Semaphore::new(cfg.proposals_in_flight_max.max(1)));
        let tasks = vec![tokio::spawn(proposer::run(
            raft.clone(),
            rx,
            cfg.clone(),
            progress.clone(),
            db.clone(),
            in_flight.clone(),
        ))];
        Ok(PartitionGroup {
            cfg,
            raft,
            db,
            proposals: tx,
            in_flight,
            progress,
            producers,
            registry,
            tasks,
            ticking: std::sync::atomic::AtomicBool::new(true),
            health,
        })
    }

    pub fn group_id(&self) -> GroupId {
        self.cfg.group
    }

    /// This replica's id in its group (node id and incarnation).
    pub fn replica_id(&self) -> ReplicaId {
        self.cfg.replica
    }

    /// Makes `members` (replica id → node address) the first membership, unless the group
    /// already has state. Every member may call it with the same list: the initial entry is
    /// identical everywhere.
    ///
    /// # Errors
    /// The Raft instance stopped or rejected the membership.
    pub async fn bootstrap(&self, members: &BTreeMap<ReplicaId, String>) -> Result<(), GroupError> {
        // Asked first: openraft logs an ERROR for every refused initialize, and a restart (or a
        // founder that already heard a peer's vote) is no error.
        if matches!(self.raft.is_initialized().await, Ok(true)) {
            return Ok(());
        }
        let nodes: BTreeMap<ReplicaId, BasicNode> =
            members.iter().map(|(r, addr)| (*r, BasicNode::new(addr))).collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()), // already initialised
            Err(e) => Err(GroupError::Stopped { reason: format!("initialise: {e}") }),
        }
    }

    /// Why this replica stopped serving: damaged data a read found, or the Raft instance's own
    /// stop (a storage error, a failed start). `None` while it runs.
    pub fn failure(&self) -> Option<Failure> {
        if let Some(f) = self.health.get() {
            return Some(f);
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        m.running_state.as_ref().err().map(|e| Failure { reason: e.to_string(), corrupt: false })
    }

    fn stopped(&self) -> Option<String> {
        self.failure().map(|f| f.reason)
    }

    /// Stops the replica because a read found damaged data: it must neither serve nor vote
    /// (its log is not what it acknowledged). Returns the error to answer with.
    fn fail_corrupt(&self, e: GroupError) -> GroupError {
        // Damage in an SST block is the whole node's (see `Db::escalate_shared_damage`).
        self.db.escalate_shared_damage(&e.to_string());
        let failure = Failure { reason: format!("damaged data: {e}"), corrupt: true };
        if self.health.fail(failure.clone()) {
            tracing::error!(group = self.cfg.group, error = %e, "damaged data found; the replica stops and awaits its repair");
            let (raft, registry, group, replica) =
                (self.raft.clone(), self.registry.clone(), self.cfg.group, self.cfg.replica);
            tokio::spawn(async move {
                registry.remove(group, replica);
                if let Err(e) = raft.shutdown().await {
                    tracing::warn!(group, error = %e, "raft shutdown after damaged data");
                }
            });
        }
        GroupError::Stopped { reason: self.stopped().unwrap_or(failure.reason) }
    }

    /// Maps a read's error: damaged data stops the replica (see [`Self::fail_corrupt`]).
    fn read_error(&self, e: GroupError) -> GroupError {
        if e.is_damage() {
            self.fail_corrupt(e)
        } else {
            e
        }
    }

    /// Reads (and so verifies) this replica's stored log from `from` (at most about `bytes`),
    /// for the node's background scrubber. Answers the index to continue from, `None` once the
    /// end is reached.
    ///
    /// # Errors
    /// `Stopped` when damaged data was found (the replica then stops), other storage errors.
    pub async fn scrub(&self, from: u64, bytes: usize) -> Result<Option<u64>, GroupError> {
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        let (db, group) = (self.db.clone(), self.cfg.group);
        let read = tokio::task::spawn_blocking(move || {
            crate::storage::log_store::read_entries(&db, group, from, None, Some(bytes))
        })
        .await
        .map_err(|e| GroupError::Storage(e.into()))?;
        match read {
            Ok(entries) => Ok(entries.last().map(|e| e.log_id.index + 1)),
            Err(e) => Err(self.read_error(GroupError::Storage(e))),
        }
    }

    /// The leader this replica knows of, if any.
    pub fn leader_hint(&self) -> Option<LeaderHint> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some(LeaderHint { node_id: node_of(id), address: node.addr.clone() })
    }

    /// Appends a batch; answers once it is committed on a majority (each fsynced) and applied.
    ///
    /// # Errors
    /// `NotLeader` and `Overloaded` (definite, nothing appended), `OutcomeUnknown` (may have been
    /// committed), `Stopped`.
    pub async fn produce(&self, req: ProduceRequest) -> Result<ProduceAck, GroupError> {
        self.enqueue(req)?.wait().await
    }

    /// Queues a batch for the proposer without waiting: batches enqueued one after the other
    /// from one task are proposed (and so sequenced) in that order, which an ordered produce
    /// stream relies on.
    ///
    /// # Errors
    /// `NotLeader`, `Overloaded`, `Stopped` (all definite).
    pub fn enqueue(&self, req: ProduceRequest) -> Result<PendingProduce, GroupError> {
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.state != ServerState::Leader {
                drop(m);
                return Err(GroupError::NotLeader { leader: self.leader_hint() });
            }
        }
        let (reply, rx) = oneshot::channel();
        let proposal = Proposal {
            producer: req.producer,
            record_count: req.record_count,
            max_set_timestamp_ms: req.max_set_timestamp_ms,
            has_unset_timestamps: req.has_unset_timestamps,
            records: req.records,
            condition: req.condition,
            keys: req.keys,
            reply,
            queued: std::time::Instant::now(),
        };
        self.proposals.try_send(proposal).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => GroupError::Overloaded { queued: self.cfg.proposal_queue_max },
            mpsc::error::TrySendError::Closed(_) => GroupError::Stopped { reason: "proposer stopped".into() },
        })?;
        Ok(PendingProduce { rx })
    }

    /// The epoch this replica's applied state knows for producer `pid` (None: not remembered).
    pub fn producer_epoch(&self, pid: u64) -> Option<u32> {
        self.producers.read().unwrap_or_else(|p| p.into_inner()).epoch_of(pid)
    }

    /// Producers this replica's table remembers.
    pub fn producer_count(&self) -> usize {
        self.producers.read().unwrap_or_else(|p| p.into_inner()).producers.len()
    }

    /// The replica's applied progress.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Reads committed records from `offset`. At or past this replica's high watermark it waits
    /// up to `max_wait` for new records and may return none; on the leader an offset beyond
    /// everything committed is OFFSET_OUT_OF_RANGE.
    ///
    /// # Errors
    /// `OffsetOutOfRange`, storage and decode errors.
    pub async fn fetch(&self, offset: u64, max_bytes: usize, max_wait: Duration) -> Result<FetchResult, GroupError> {
        // A stopped replica's view is frozen: answering from it would stall a reader silently.
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        let mut progress = self.progress.clone();
        if self.leading_before_applying_its_term() {
            // A new leader may not have applied a truncation its predecessor announced: catch
            // up first, so no reader sees records below a log start it was already told of.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.raft.ensure_linearizable()).await;
        }
        let mut p = *progress.borrow_and_update();
        if offset < p.log_start_offset {
            return Err(out_of_range(offset, &p));
        }
        if offset > p.high_watermark && self.is_leader() {
            // A new leader may not have applied everything committed yet: catch up to a
            // linearizable point before calling the offset invalid.
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), self.raft.ensure_linearizable()).await {
                p = *progress.borrow_and_update();
                if offset > p.high_watermark {
                    return Err(out_of_range(offset, &p));
                }
            }
        }
        if self.cfg.faults.fetch_above_hw && offset >= p.high_watermark {
            let (db, group) = (self.db.clone(), self.cfg.group);
            let records = tokio::task::spawn_blocking(move || {
                reader::read_unapplied(&db, group, p.applied_index, p.high_watermark, offset)
            })
            .await
            .map_err(|e| GroupError::Storage(e.into()))??;
            if !records.is_empty() {
                return Ok(FetchResult {
                    records,
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log_start_offset,
                });
            }
        }
        if offset >= p.high_watermark {
            // Followers trail the leader: wait for the offset to become visible here.
            let deadline = tokio::time::Instant::now() + max_wait;
            while offset >= p.high_watermark {
                match tokio::time::timeout_at(deadline, progress.changed()).await {
                    Ok(Ok(())) => p = *progress.borrow_and_update(),
                    _ => {
                        return Ok(FetchResult {
                            records: Vec::new(),
                            high_watermark: p.high_watermark,
                            log_start_offset: p.log_start_offset,
                        });
                    }
                }
            }
        }
        let (db, group, hw) = (self.db.clone(), self.cfg.group, p.high_watermark);
        let verify = reader::Verify(!self.cfg.faults.skip_fetch_checksum);
        let records = tokio::task::spawn_blocking(move || reader::read(&db, group, offset, max_bytes, hw, verify))
            .await
            .map_err(|e| GroupError::Storage(e.into()))?
            .map_err(|e| self.read_error(e))?;
        let after = *progress.borrow();
        if offset < after.log_start_offset {
            return Err(out_of_range(offset, &after));
        }
        Ok(FetchResult { records, high_watermark: hw, log_start_offset: p.log_start_offset })
    }

    /// Whether this replica leads but has not applied an entry of its own term yet (so maybe
    /// not everything its predecessors committed).
    fn leading_before_applying_its_term(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.last_applied.is_none_or(|l| l.leader_id.term < m.current_term)
    }

    /// Leader only: waits until this replica has applied everything committed before its term
    /// (its term's first entry), so its applied state is the whole committed state.
    ///
    /// # Errors
    /// `NotLeader` when it is not (or stops being) the leader, `OutcomeUnknown` after `timeout`.
    pub async fn caught_up_as_leader(&self, timeout: Duration) -> Result<(), GroupError> {
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        match tokio::time::timeout(timeout, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(GroupError::NotLeader { leader: self.leader_hint() }),
            Err(_) => Err(GroupError::OutcomeUnknown { reason: "timed out catching up as leader".into() }),
        }
    }

    /// The keyed state (see [`GroupConfig::keyed_state`]) as applied here: every record key
    /// with its latest value.
    ///
    /// # Errors
    /// Storage errors (damage stops the replica).
    pub async fn keyed_state(&self) -> Result<crate::storage::state_machine::KeyedState, GroupError> {
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        let (db, group) = (self.db.clone(), self.cfg.group);
        tokio::task::spawn_blocking(move || crate::storage::state_machine::keyed_state(&db, group))
            .await
            .map_err(|e| GroupError::Storage(e.into()))?
            .map_err(|e| self.read_error(GroupError::Storage(e)))
    }

    /// The Raft term this replica is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The first offset whose timestamp is at or after `ts_ms` (the high watermark if none).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn offset_for_timestamp(&self, ts_ms: i64) -> Result<u64, GroupError> {
        let p = self.progress();
        let (db, group) = (self.db.clone(), self.cfg.group);
        if let Some(reason) = self.stopped() {
            return Err(GroupError::Stopped { reason });
        }
        tokio::task::spawn_blocking(move || {
            reader::offset_for_timestamp(&db, group, ts_ms, p.log_start_offset, p.high_watermark)
        })
        .await
        .map_err(|e| GroupError::Storage(e.into()))?
        .map_err(|e| self.read_error(e))
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// A snapshot of the replica's view, for cluster description.
    pub fn status(&self) -> GroupStatus {
        let p = self.progress();
        let (replicas, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.membership_config.membership().voter_ids().map(node_of).collect(), m.current_term)
        };
        GroupStatus {
            group: self.cfg.group,
            leader: self.leader_hint(),
            is_leader: self.is_leader(),
            replicas,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            stopped: self.failure(),
            term,
        }
    }

    /// Proposes a metadata command and waits for its answer (controller group).
    ///
    /// # Errors
    /// `NotLeader` (definite), `OutcomeUnknown` after `timeout` or a leadership change,
    /// `Stopped`.
    pub async fn propose_meta(&self, command: Bytes, timeout: Duration) -> Result<Bytes, GroupError> {
        match self.write_command(Command::Meta(command), timeout).await? {
            ApplyResponse::Meta(answer) => Ok(answer),
            other => Err(GroupError::OutcomeUnknown { reason: format!("unexpected apply answer ({})", other.kind()) }),
        }
    }

    /// Proposes a retention checkpoint (leader only) and waits until it is applied here.
    ///
    /// # Errors
    /// As [`PartitionGroup::propose_meta`].
    pub async fn propose_checkpoint(&self, time_ms: i64, timeout: Duration) -> Result<(), GroupError> {
        self.write_command(Command::Checkpoint { time_ms }, timeout).await.map(|_| ())
    }

    /// Proposes truncating the log at checkpoint `upto` (leader only; see
    /// [`retention::truncation_point`](super::retention::truncation_point)) and waits until it
    /// is applied here.
    ///
    /// # Errors
    /// As [`PartitionGroup::propose_meta`].
    pub async fn propose_truncation(&self, upto: LogId, timeout: Duration) -> Result<(), GroupError> {
        self.write_command(Command::PrefixTruncate { upto }, timeout).await.map(|_| ())
    }

    /// Kafka's DeleteRecords (leader only): moves the log start to `before` (at most the high
    /// watermark) and returns the log start after it.
    ///
    /// # Errors
    /// As [`PartitionGroup::propose_meta`].
    pub async fn delete_records(&self, before: u64, timeout: Duration) -> Result<u64, GroupError> {
        match self.write_command(Command::DeleteRecords { before }, timeout).await? {
            ApplyResponse::Truncated { log_start_offset } => Ok(log_start_offset),
            other => Err(GroupError::OutcomeUnknown { reason: format!("unexpected apply answer ({})", other.kind()) }),
        }
    }

    /// The summaries of this replica's checkpoints, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn checkpoint_summaries(&self) -> Result<Vec<CheckpointSummary>, GroupError> {
        let (db, group) = (self.db.clone(), self.cfg.group);
        let res = tokio::task::spawn_blocking(move || crate::storage::checkpoints::summaries(&db, group)).await;
        match res {
            Ok(r) => Ok(r?),
            Err(e) => Err(GroupError::Stopped { reason: format!("checkpoint read task failed: {e}") }),
        }
    }

    /// Moves this replica's storage after its retention point: a snapshot at the point, and the
    /// purge of the log up to the latest snapshot (which removes the record bytes). Each call
    /// asks for whichever is due; under steady truncation both are, for different points.
    /// Returns whether anything was asked for.
    ///
    /// # Errors
    /// `Stopped` when Raft has stopped.
    pub async fn advance_purge(&self) -> Result<bool, GroupError> {
        let Some(point) = self.progress.borrow().retention_point else {
            return Ok(false);
        };
        let (snapshot, purged) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.snapshot.map(|s| s.index), m.purged.map(|p| p.index))
        };
        let stopped = |e: openraft::error::Fatal<ReplicaId>| GroupError::Stopped { reason: e.to_string() };
        let mut asked = false;
        if snapshot.is_none_or(|s| s < point.index) {
            // A trigger while a build runs is dropped; the next call asks again.
            self.raft.trigger().snapshot().await.map_err(stopped)?;
            asked = true;
        }
        if let Some(s) = snapshot.filter(|s| purged.is_none_or(|p| p < *s)) {
            // openraft defers it while a replication to a follower still reads those entries.
            self.raft.trigger().purge_log(s).await.map_err(stopped)?;
            asked = true;
        }
        Ok(asked)
    }

    /// Index of the last log entry this replica purged.
    pub fn purged_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().purged.map(|p| p.index)
    }

    /// Proposes `command` (leader only) and waits for its answer.
    async fn write_command(&self, command: Command, timeout: Duration) -> Result<ApplyResponse, GroupError> {
        if !self.is_leader() {
            return Err(GroupError::NotLeader { leader: self.leader_hint() });
        }
        let res = tokio::time::timeout(timeout, self.raft.client_write(command)).await;
        match res {
            Err(_) => Err(GroupError::OutcomeUnknown { reason: "timed out waiting for commit".into() }),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => match e.into_api_error() {
                // As for produce (see the proposer): the entry may still commit elsewhere.
                Some(openraft::error::ClientWriteError::ForwardToLeader(f)) => Err(GroupError::LeadershipLost {
                    leader: f
                        .leader_id
                        .zip(f.leader_node)
                        .map(|(id, n)| LeaderHint { node_id: node_of(id), address: n.addr }),
                }),
                Some(other) => Err(GroupError::OutcomeUnknown { reason: other.to_string() }),
                None => Err(GroupError::Stopped { reason: "raft stopped".into() }),
            },
        }
    }

    /// Voters and learners of the membership in effect.
    pub fn membership(&self) -> (std::collections::BTreeSet<ReplicaId>, std::collections::BTreeSet<ReplicaId>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        (membership.voter_ids().collect(), membership.learner_ids().collect())
    }

    /// Leader only: adds `replica` (at node address `addr`) as a learner, without waiting for
    /// it to catch up (see [`PartitionGroup::learner_caught_up`]).
    ///
    /// # Errors
    /// Not the leader, a membership change already in progress, or the Raft instance stopped.
    pub async fn add_learner(&self, replica: ReplicaId, addr: &str) -> Result<(), GroupError> {
        self.raft.add_learner(replica, BasicNode::new(addr), false).await.map(|_| ()).map_err(membership_error)
    }

    /// Leader only: whether learner `replica` has replicated the log up to the membership entry
    /// that added it (openraft's own "line rate" test).
    pub fn learner_caught_up(&self, replica: ReplicaId) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let Some(since) = m.membership_config.log_id().map(|l| l.index) else { return false };
        m.replication
            .as_ref()
            .and_then(|r| r.get(&replica).copied().flatten())
            .is_some_and(|matched| matched.index >= since)
    }

    /// Leader only: makes `voters` the voter set through joint consensus; replicas not in it
    /// leave the group.
    ///
    /// # Errors
    /// Not the leader, a voter that is not a learner yet, or the Raft instance stopped.
    pub async fn change_voters(&self, voters: std::collections::BTreeSet<ReplicaId>) -> Result<(), GroupError> {
        self.raft.change_membership(voters, false).await.map(|_| ()).map_err(membership_error)
    }

    /// Asks this replica to start an election now (preferred-leader rebalancing). Its log must
    /// be caught up or the election fails and only costs a term.
    ///
    /// # Errors
    /// The Raft instance stopped.
    pub async fn campaign(&self) -> Result<(), GroupError> {
        self.raft.trigger().elect().await.map_err(|e| GroupError::Stopped { reason: e.to_string() })
    }

    /// For the leader: its last log index and, per follower node, the last index known
    /// replicated there. `None` when this replica is not the leader.
    pub fn replication_view(&self) -> Option<(u64, BTreeMap<NodeId, Option<u64>>)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader {
            return None;
        }
        let matched = m
            .replication
            .as_ref()?
            .iter()
            .map(|(replica, log_id)| (node_of(*replica), log_id.map(|l| l.index)))
            .collect();
        Some((m.last_log_index.unwrap_or(0), matched))
    }

    /// For the leader: its last log index and each other member's (learners included) last
    /// index known replicated there. `None` when this replica is not the leader.
    pub fn followers(&self) -> Option<(u64, Vec<Matched>)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader {
            return None;
        }
        let me = self.cfg.replica;
        let matched =
            m.replication.as_ref()?.iter().filter(|(r, _)| **r != me).map(|(r, l)| (*r, l.map(|l| l.index))).collect();
        Some((m.last_log_index.unwrap_or(0), matched))
    }

    /// What the node's quiescence and failover loop needs to know about this replica.
    pub fn observe(&self) -> Observation {
        let m = self.raft.metrics();
        let m = m.borrow();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            _ => Role::Learner,
        };
        let last = m.last_log_index;
        // Only a leader needs the per-follower details; keep the common (follower) case cheap.
        let (lagging, voters) = match (&m.replication, role) {
            (Some(r), Role::Leader) => (
                r.iter()
                    .filter(|(replica, matched)| **replica != self.cfg.replica && matched.map(|l| l.index) != last)
                    .map(|(replica, _)| node_of(*replica))
                    .collect(),
                r.keys().map(|replica| node_of(*replica)).collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        Observation {
            role,
            leader_node: m.current_leader.map(node_of),
            last_log_index: last,
            lagging_nodes: lagging,
            follower_nodes: voters,
            stopped: m.running_state.is_err() || self.health.get().is_some(),
            term: m.current_term,
        }
    }

    /// Turns openraft's timer on or off. Off, the replica neither sends heartbeats (leader) nor
    /// starts elections (follower): the node quiesces idle groups and detects failures per node.
    pub fn set_ticking(&self, on: bool) {
        if self.ticking.swap(on, std::sync::atomic::Ordering::Relaxed) != on {
            self.raft.runtime_config().tick(on);
        }
    }

    pub fn is_ticking(&self) -> bool {
        self.ticking.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the replica and deletes all its data from this node (the partition was deleted
    /// or moved away).
    ///
    /// # Errors
    /// Storage errors while deleting.
    pub async fn destroy(&self) -> Result<(), GroupError> {
        let (db, group) = (self.db.clone(), self.cfg.group);
        self.shutdown().await;
        StateMachineStore::destroy(db, group).await?;
        Ok(())
    }

    /// Stops the replica: proposer and Raft instance.
    pub async fn shutdown(&self) {
        self.registry.remove(self.cfg.group, self.cfg.replica);
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = self.cfg.group, error = %e, "raft shutdown");
        }
    }
}

fn membership_error(e: RaftError<ReplicaId, openraft::error::ClientWriteError<ReplicaId, BasicNode>>) -> GroupError {
    match e.into_api_error() {
        Some(openraft::error::ClientWriteError::ForwardToLeader(f)) => GroupError::NotLeader {
            leader: f.leader_id.zip(f.leader_node).map(|(id, n)| LeaderHint { node_id: node_of(id), address: n.addr }),
        },
        Some(other) => GroupError::MembershipChange { reason: other.to_string() },
        None => GroupError::Stopped { reason: "raft stopped".into() },
    }
}

fn out_of_range(offset: u64, p: &Progress) -> GroupError {
    GroupError::OffsetOutOfRange { offset, log_start: p.log_start_offset, high_watermark: p.high_watermark }
}
