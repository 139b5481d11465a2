//! Per-partition proposer: group commit of produce batches into Raft entries.
//!
//! ```text
//!  produce ─► bounded queue ─► [proposer task] drain ≤ N batches / M bytes ─► client_write_ff
//!                                   │  (entries appended in call order)        │
//!                                   └─ ≤ K entries in flight ◄─ waiter task ◄──┘ apply result
//! ```
//! While one entry is being replicated and fsynced, the next gathers everything that queued up,
//! so a busy partition needs one fsync for many batches.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::config::GroupConfig;
use crate::error::{GroupError, LeaderHint};
use crate::ids::node_of;
use crate::storage::{Db, ProduceStage, Progress};
use crate::types::{ApplyResponse, BatchOutcome, Command, Condition, ProduceBatch, ProduceEntry, ProducerRef, Raft};

/// One queued produce request.
pub(crate) struct Proposal {
    pub producer: Option<ProducerRef>,
    pub record_count: u32,
    /// Largest timestamp among records that carry one.
    pub max_set_timestamp_ms: Option<i64>,
    /// Whether some record has no timestamp (it gets the append time).
    pub has_unset_timestamps: bool,
    pub records: Bytes,
    pub condition: Option<Condition>,
    pub keys: Vec<(Bytes, u32)>,
    pub reply: oneshot::Sender<Result<(u64, i64), GroupError>>,
    /// When it was queued (the queue stage of the produce metrics).
    pub queued: Instant,
}

pub(crate) async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    cfg: GroupConfig,
    progress: watch::Receiver<Progress>,
    db: Arc<Db>,
    in_flight: Arc<Semaphore>,
) {
    // Negative control only: the offsets an ack-before-commit leader promises.
    let mut predicted = 0u64;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.records.len();
        let mut props = vec![first];
        while props.len() < cfg.entry_batches_max && bytes < cfg.entry_bytes_max {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.records.len();
                    props.push(p);
                }
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let append_time_ms = now_ms();
        let proposed = Instant::now();
        let mut replies = Vec::with_capacity(props.len());
        let batches: Vec<ProduceBatch> = props
            .into_iter()
            .map(|p| {
                db.observer().produce_stage(ProduceStage::Queue, proposed.saturating_duration_since(p.queued));
                replies.push(p.reply);
                let unset = p.has_unset_timestamps.then_some(append_time_ms);
                ProduceBatch {
                    producer: p.producer,
                    record_count: p.record_count,
                    max_timestamp_ms: p.max_set_timestamp_ms.max(unset).unwrap_or(append_time_ms),
                    records: p.records,
                    condition: p.condition,
                    keys: p.keys,
                }
            })
            .collect();
        if cfg.faults.ack_before_commit {
            // FAULT INJECTION: acknowledge now with guessed offsets, before anything commits.
            predicted = predicted.max(progress.borrow().high_watermark);
            let early: Vec<_> = std::mem::take(&mut replies);
            for (r, b) in early.into_iter().zip(&batches) {
                let _ = r.send(Ok((predicted, append_time_ms)));
                predicted += u64::from(b.record_count);
            }
        }
        let cmd = Command::Produce(ProduceEntry {
            append_time_ms,
            batches,
            producer_limits: cfg.producer_limits,
            key_index_keys_max: cfg.key_index_keys_max,
        });
        match raft.client_write_ff(cmd).await {
            Ok(resp_rx) => {
                let timeout = cfg.produce_timeout;
                let db = db.clone();
                tokio::spawn(async move {
                    let res = tokio::time::timeout(timeout, resp_rx).await;
                    drop(permit);
                    if matches!(res, Ok(Ok(Ok(_)))) {
                        db.observer().produce_stage(ProduceStage::Raft, proposed.elapsed());
                    }
                    dispatch(res, replies, append_time_ms);
                });
            }
            Err(fatal) => {
                for r in replies {
                    let _ = r.send(Err(GroupError::Stopped { reason: fatal.to_string() }));
                }
            }
        }
    }
}

type WriteResult = Result<
    openraft::raft::ClientWriteResponse<crate::types::TypeConfig>,
    ClientWriteError<crate::ids::ReplicaId, openraft::BasicNode>,
>;

fn dispatch(
    res: Result<Result<WriteResult, oneshot::error::RecvError>, tokio::time::error::Elapsed>,
    replies: Vec<oneshot::Sender<Result<(u64, i64), GroupError>>>,
    append_time_ms: i64,
) {
    if replies.is_empty() {
        return; // answered early (ack-before-commit fault injection)
    }
    let fail = |e: &dyn Fn() -> GroupError, replies: Vec<oneshot::Sender<_>>| {
        for r in replies {
            let _ = r.send(Err(e()));
        }
    };
    match res {
        Ok(Ok(Ok(resp))) => match resp.data {
            ApplyResponse::Produce(outcomes) if outcomes.len() == replies.len() => {
                for (r, outcome) in replies.into_iter().zip(outcomes) {
                    let res = match outcome {
                        BatchOutcome::Appended { base_offset } => Ok((base_offset, append_time_ms)),
                        // A retried duplicate answers like the original: success at its offset,
                        // with the time it was appended.
                        BatchOutcome::Duplicate { base_offset, append_time_ms } => Ok((base_offset, append_time_ms)),
                        BatchOutcome::Refused(why) => Err(GroupError::from(why)),
                        BatchOutcome::ConditionFailed(failed) => Err(GroupError::ConditionFailed(failed)),
                    };
                    let _ = r.send(res);
                }
            }
            other => {
                let reason = format!("apply gave an unexpected answer ({}) for a produce entry", other.kind());
                tracing::error!(%reason, "invariant broken");
                fail(&|| GroupError::OutcomeUnknown { reason: reason.clone() }, replies);
            }
        },
        // openraft answers ForwardToLeader both when it refused the write (not leader any more)
        // and when it truncated the appended entry from this replica's log. The second is no
        // proof: another replica may hold a copy that a later leader commits (Raft's figure 8).
        // So the outcome is unknown; an idempotent retry sorts it out.
        Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => {
            let leader = f
                .leader_id
                .zip(f.leader_node)
                .map(|(id, node)| LeaderHint { node_id: node_of(id), address: node.addr });
            fail(&|| GroupError::LeadershipLost { leader: leader.clone() }, replies);
        }
        Ok(Ok(Err(e))) => {
            let reason = e.to_string();
            fail(&|| GroupError::OutcomeUnknown { reason: reason.clone() }, replies);
        }
        Ok(Err(_)) => {
            fail(&|| GroupError::OutcomeUnknown { reason: "raft stopped before the entry applied".into() }, replies)
        }
        Err(_) => fail(&|| GroupError::OutcomeUnknown { reason: "timed out waiting for commit".into() }, replies),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
