//! The registry on the node leading `__schemas`: the state loaded from the partition's keyed
//! state, and one task that runs operations one at a time. A write is one conditional batch
//! (it must land exactly at the end offset this leader knows), so a write planned from a state
//! that another leader has since changed is refused, and this leader is replaced by a fresh
//! load, instead of appending something planned on stale data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cairn_proto::peer::RecordBatch;
use cairn_raft::group::{PartitionGroup, ProduceRequest};
use cairn_raft::types::Condition;
use cairn_raft::GroupError;
use prost::Message;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::RegistryError;
use super::ops::Op;
use super::records::Record;
use super::state::State;
use crate::disk::DiskGuard;

type Disk = Arc<DiskGuard>;

/// Operations waiting for the leader's task.
const QUEUE_MAX: usize = 256;
/// How long a loading leader waits to have applied every entry of earlier terms.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How long a read waits for a majority to confirm this replica still leads.
const CONFIRM: Duration = Duration::from_secs(5);

type Call = (Op, oneshot::Sender<Result<Value, RegistryError>>);

/// The running registry of this node (while it leads `__schemas` in `term`).
pub struct Leader {
    pub replica: Arc<PartitionGroup>,
    pub term: u64,
    tx: mpsc::Sender<Call>,
    broken: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Leader {
    /// Loads the registry from `replica`, which leads `__schemas`.
    ///
    /// # Errors
    /// The replica stopped leading, or its state cannot be read.
    pub async fn load(replica: Arc<PartitionGroup>, disk: Disk, forget: bool) -> Result<Leader, GroupError> {
        let term = replica.term();
        replica.caught_up_as_leader(CATCH_UP).await?;
        // The end offset before the state: a batch committed between the two reads (by an older
        // leader task of this node) is then in the state but not in `end`, and the first write
        // (conditional on `end`) fails and reloads, instead of overwriting what it missed.
        let end = replica.status().high_watermark;
        let mut state = State::default();
        let mut skipped = 0;
        let keyed = if forget {
            tracing::warn!("FAULT INJECTION: the schema registry forgets __schemas as it loads");
            Vec::new()
        } else {
            replica.keyed_state().await?
        };
        for (k, v) in keyed {
            match Record::decode(&k, &v) {
                Ok(r) => state.apply(r),
                Err(e) => {
                    skipped += 1;
                    tracing::error!(error = %e, "undecodable record in __schemas; skipped");
                }
            }
        }
        tracing::info!(term, end, skipped, "schema registry loaded");
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        let broken = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(state, replica.clone(), term, end, disk, rx, broken.clone()));
        Ok(Leader { replica, term, tx, broken, task })
    }

    /// Whether this leader may still answer: not broken, and its replica leads in its term.
    pub fn is_current(&self, replica: &Arc<PartitionGroup>) -> bool {
        !self.broken.load(Ordering::Acquire)
            && Arc::ptr_eq(replica, &self.replica)
            && replica.is_leader()
            && replica.term() == self.term
    }

    /// Runs `op` after every operation queued before it.
    ///
    /// # Errors
    /// The operation's refusal; 50002 when the queue is full or the leader went away.
    pub async fn call(&self, op: Op) -> Result<Value, RegistryError> {
        let (reply, rx) = oneshot::channel();
        self.tx.try_send((op, reply)).map_err(|_| RegistryError::not_run("the registry leader is busy"))?;
        // A dropped reply: the task stopped before it took this operation up.
        rx.await.map_err(|_| RegistryError::not_run("the registry leader changed"))?
    }
}

async fn run(
    mut state: State,
    replica: Arc<PartitionGroup>,
    term: u64,
    mut end: u64,
    disk: Disk,
    mut rx: mpsc::Receiver<Call>,
    broken: Arc<AtomicBool>,
) {
    while let Some((op, reply)) = rx.recv().await {
        // Only while this replica leads in the term the state was loaded in: a node elected
        // again later runs a freshly loaded leader, never this one.
        if !(replica.is_leader() && replica.term() == term) {
            broken.store(true, Ordering::Release);
            let _ = reply.send(Err(RegistryError::not_run("the registry leader changed")));
            return;
        }
        let plan = match op.plan(&state) {
            Ok(p) if !p.records.is_empty() => p,
            answer => {
                // A read or a refusal answers from this state: only once this replica is
                // confirmed leader (a majority still follows it), else a deposed leader that
                // has not heard of its successor would answer from stale state.
                if let Err(e) = replica.caught_up_as_leader(CONFIRM).await {
                    broken.store(true, Ordering::Release);
                    let _ = reply.send(Err(RegistryError::not_run(format!("the registry leader changed ({e})"))));
                    return;
                }
                let _ = reply.send(answer.map(|p| p.answer));
                continue;
            }
        };
        if let Some(why) = disk.refusal() {
            let _ = reply.send(Err(RegistryError::store(why)));
            continue;
        }
        let count = plan.records.len() as u64;
        match write(&replica, &plan.records, end).await {
            Ok(base) => {
                end = base + count;
                for r in plan.records {
                    state.apply(r);
                }
                let _ = reply.send(Ok(plan.answer));
            }
            Err(e) => {
                // The outcome may be unknown (a timeout) or another leader wrote: this state
                // can no longer be trusted. The manager loads a fresh one.
                broken.store(true, Ordering::Release);
                tracing::warn!(error = %e, "schema registry write failed; reloading");
                let _ = reply.send(Err(match e {
                    GroupError::OutcomeUnknown { .. } => RegistryError::timeout(e),
                    e => RegistryError::store(e),
                }));
                return;
            }
        }
    }
}

/// Appends `records` as one batch at exactly offset `end`; answers its base offset.
async fn write(replica: &PartitionGroup, records: &[Record], end: u64) -> Result<u64, GroupError> {
    let batch = RecordBatch {
        records: records
            .iter()
            .map(|r| {
                let (k, v) = r.encode();
                cairn_proto::v1::Record { key: k.into(), value: v.into(), ..Default::default() }
            })
            .collect(),
    };
    let mut buf = BytesMut::with_capacity(batch.encoded_len());
    batch
        .encode(&mut buf)
        .map_err(|e| GroupError::Stopped { reason: format!("cannot encode registry records: {e}") })?;
    let ack = replica
        .produce(ProduceRequest {
            producer: None,
            record_count: records.len() as u32,
            max_set_timestamp_ms: None,
            has_unset_timestamps: true,
            records: buf.freeze(),
            condition: Some(Condition { expected_offset: Some(end), key: None }),
            keys: Vec::new(),
        })
        .await?;
    Ok(ack.base_offset)
}
