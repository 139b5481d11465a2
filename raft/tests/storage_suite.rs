//! openraft's own storage conformance suite against the RocksDB log store and state machine.
//!
//! One `#[test]` per public `Suite` function, each on a fresh store in its own new tokio runtime.
//! Every test runs unchanged except `snapshot_meta` and `transfer_snapshot`: both assume a
//! snapshot taken at the current applied point, while Cairn's snapshots are retention
//! checkpoints that never hold record data (docs/architecture.md). They are replaced by the checkpoint
//! tests at the bottom of this file.

// openraft's Suite returns its (large) StorageError by value; we keep its signatures.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use cairn_raft::storage::producers::{ProducerLimits, Refusal};
use cairn_raft::storage::{CheckpointPolicy, Db, DbOptions, LogStore, StateMachineStore};
use cairn_raft::types::{
    ApplyResponse, BatchOutcome, Command, Entry, LogId, Membership, ProduceBatch, ProduceEntry, ProducerRef,
    StorageError, TypeConfig,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, StorageIOError};
use tempfile::TempDir;

/// Runs `f` on a fresh multi-threaded tokio runtime, so no task of an earlier test survives.
fn run_fut<F: std::future::Future<Output = Result<(), StorageError>>>(f: F) -> Result<(), StorageError> {
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(f)
}

struct Builder {
    policy: CheckpointPolicy,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let on_fatal = Arc::new(|e: &std::io::Error| panic!("fsync failed in test: {e}"));
        let db = Db::open(dir.path(), &DbOptions::default(), on_fatal).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(db.clone(), 7, self.policy).await.map_err(|e| StorageIOError::read(&e))?;
        Ok((dir, LogStore::new(db, 7), sm))
    }
}

fn builder() -> Builder {
    Builder { policy: CheckpointPolicy::default() }
}

type S = Suite<TypeConfig, LogStore, StateMachineStore, Builder, TempDir>;

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            run_fut(async {
                let (_dir, store, sm) = builder().build().await?;
                S::$name(store, sm).await
            })
            .expect(stringify!($name));
        }
    )*};
}

suite_tests!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_membership_from_log_and_sm,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    get_initial_state_log_ids,
    get_initial_state_re_apply_committed,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    try_get_log_entry,
    initial_logs,
    get_log_state,
    get_log_id,
    last_id_in_log,
    last_applied_state,
    purge_logs_upto_0,
    purge_logs_upto_5,
    purge_logs_upto_20,
    delete_logs_since_11,
    delete_logs_since_0,
    append_to_log,
    apply_single,
    apply_multiple,
);

// ---- Replacements for `snapshot_meta` and `transfer_snapshot`: checkpoint semantics. ----

fn lid(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn membership(term: u64, index: u64, voters: &[u64]) -> Entry {
    let set: BTreeSet<u64> = voters.iter().copied().collect();
    Entry { log_id: lid(term, index), payload: EntryPayload::Membership(Membership::new(vec![set], ())) }
}

fn produce(term: u64, index: u64, counts: &[u32]) -> Entry {
    let batches = counts
        .iter()
        .map(|&c| ProduceBatch {
            producer: None,
            record_count: c,
            max_timestamp_ms: 1_000,
            records: Bytes::from(vec![0u8; c as usize]),
            condition: None,
            keys: Vec::new(),
        })
        .collect();
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(Command::Produce(ProduceEntry {
            append_time_ms: 1_000,
            batches,
            producer_limits: ProducerLimits::default(),
            key_index_keys_max: 10_000,
        })),
    }
}

fn truncate(term: u64, index: u64, upto: LogId) -> Entry {
    Entry { log_id: lid(term, index), payload: EntryPayload::Normal(Command::PrefixTruncate { upto }) }
}

fn base_offsets(resp: &[ApplyResponse]) -> Vec<u64> {
    resp.iter()
        .flat_map(|r| match r {
            ApplyResponse::Produce(o) => o
                .iter()
                .map(|b| match b {
                    BatchOutcome::Appended { base_offset } | BatchOutcome::Duplicate { base_offset, .. } => {
                        *base_offset
                    }
                    BatchOutcome::Refused(r) => panic!("unexpected refusal {r:?}"),
                    BatchOutcome::ConditionFailed(f) => panic!("unexpected condition failure {f:?}"),
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Entries 1..=6 with a checkpoint every 2 entries: checkpoints at 2, 4, 6.
fn history() -> Vec<Entry> {
    vec![
        membership(1, 1, &[1, 2, 3]),
        produce(1, 2, &[3, 2]), // offsets 0..5
        produce(1, 3, &[4]),    // 5..9
        produce(1, 4, &[1]),    // 9
        produce(2, 5, &[2]),    // 10..12
        produce(2, 6, &[5]),    // 12..17
    ]
}

fn every_two() -> Builder {
    Builder { policy: CheckpointPolicy { every_entries: 2, every_bytes: u64::MAX } }
}

#[test]
fn snapshot_is_empty_until_retention_then_names_the_checkpoint() {
    run_fut(async {
        let (_d, _log, mut sm) = every_two().build().await?;
        let resp = sm.apply(history()).await?;
        assert_eq!(base_offsets(&resp), vec![0, 3, 5, 9, 10, 12]);

        // No retention yet: the builder returns a snapshot without a log id (openraft ignores
        // it) and there is no current snapshot, although 6 entries are applied.
        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snap.meta.last_log_id, None);
        assert!(sm.get_current_snapshot().await?.is_none());

        // Retention names checkpoint 4 (state after entry 4: next offset 10).
        sm.apply([truncate(2, 7, lid(1, 4))]).await?;
        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snap.meta.last_log_id, Some(lid(1, 4)), "snapshot is the checkpoint, not applied (7)");
        assert_eq!(snap.meta.last_membership.log_id(), &Some(lid(1, 1)));
        assert_eq!(snap.snapshot.next_offset, 10);
        let cur = sm.get_current_snapshot().await?.expect("current snapshot after build");
        assert_eq!(cur.meta, snap.meta);
        assert_eq!(sm.applied_state().await?.0, Some(lid(2, 7)), "applied point is unchanged");
        Ok(())
    })
    .expect("checkpoint snapshot");
}

#[test]
fn prefix_truncate_naming_a_missing_checkpoint_is_an_error_not_silent() {
    run_fut(async {
        let (_d, _log, mut sm) = every_two().build().await?;
        sm.apply(history()).await?;
        // Entry 3 is not a checkpoint (checkpoints are every 2 entries: 2, 4, 6).
        let res = sm.apply([truncate(2, 7, lid(1, 3))]).await;
        assert!(res.is_err());
        Ok(())
    })
    .expect("missing checkpoint");
}

#[test]
fn installed_checkpoint_lets_a_lagging_replica_catch_up_with_no_gap() {
    run_fut(async {
        let (_dl, _log_l, mut leader) = every_two().build().await?;
        let (_df, mut log_f, mut follower) = every_two().build().await?;

        let mut all = history();
        all.push(truncate(2, 7, lid(1, 4)));
        all.push(produce(2, 8, &[3])); // 17..20 (entry 8 is a checkpoint: 8 entries)
        all.push(produce(2, 9, &[1, 1])); // 20, 21
        let leader_offsets = base_offsets(&leader.apply(all.clone()).await?);
        let snap = leader.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snap.meta.last_log_id, Some(lid(1, 4)));

        // The follower lags: it installs checkpoint 4, then receives entries 5.. as
        // ordinary AppendEntries.
        follower.install_snapshot(&snap.meta, snap.snapshot).await?;
        assert_eq!(follower.applied_state().await?, (Some(lid(1, 4)), snap.meta.last_membership.clone()));
        let cur = follower.get_current_snapshot().await?.expect("installed snapshot is current");
        assert_eq!(cur.meta, leader.get_current_snapshot().await?.expect("leader snapshot").meta);
        let st = log_f.get_log_state().await?;
        assert_eq!(st.last_purged_log_id, Some(lid(1, 4)), "install purges the log up to the checkpoint");

        let rest: Vec<Entry> = all.into_iter().filter(|e| e.log_id.index > 4).collect();
        let follower_offsets = base_offsets(&follower.apply(rest).await?);
        // Same offsets for the same batches: no gap, no shift.
        assert_eq!(&leader_offsets[leader_offsets.len() - follower_offsets.len()..], follower_offsets.as_slice());
        assert_eq!(follower_offsets, vec![10, 12, 17, 20, 21]);
        assert_eq!(leader.progress().borrow().high_watermark, 22);
        assert_eq!(follower.progress().borrow().high_watermark, 22);
        // The follower stores nothing before the checkpoint.
        assert_eq!(follower.progress().borrow().log_start_offset, 10);
        Ok(())
    })
    .expect("lagging replica");
}

#[test]
fn snapshot_pointer_never_moves_backwards() {
    run_fut(async {
        let (_d, _log, mut sm) = every_two().build().await?;
        sm.apply(history()).await?;
        sm.apply([truncate(2, 7, lid(1, 2))]).await?;
        let old_builder = sm.get_snapshot_builder().await; // captured point: 2
        sm.apply([truncate(2, 8, lid(2, 6))]).await?;
        let newer = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(newer.meta.last_log_id, Some(lid(2, 6)));
        let mut old_builder = old_builder;
        let stale = old_builder.build_snapshot().await?;
        assert_eq!(stale.meta.last_log_id, newer.meta.last_log_id, "an older build returns the newer snapshot");
        Ok(())
    })
    .expect("pointer monotonic");
}

#[test]
fn log_reads_are_capped_in_bytes_but_never_empty() {
    run_fut(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let db = Db::open(dir.path(), &DbOptions::default(), Arc::new(|e: &std::io::Error| panic!("{e}")))
            .map_err(|e| StorageIOError::write(&e))?;
        let mut log = LogStore::new(db, 3).with_read_bytes_max(1);
        let entries: Vec<Entry> = (1..=5).map(|i| produce(1, i, &[64])).collect();
        log.blocking_append(entries).await?;
        let got = log.limited_get_log_entries(1, 6).await?;
        assert_eq!(got.len(), 1, "a 1-byte cap still returns one entry");
        let got = log.try_get_log_entries(..).await?;
        assert_eq!(got.len(), 5, "open ranges read everything");
        Ok(())
    })
    .expect("byte cap");
}

// ---- The idempotent producer table lives in the state machine: persisted, checkpointed. ----

fn produce_from(term: u64, index: u64, pid: u64, epoch: u32, seq: u32, count: u32) -> Entry {
    let batch = ProduceBatch {
        producer: Some(ProducerRef { producer_id: pid, epoch, base_sequence: seq }),
        record_count: count,
        max_timestamp_ms: 1_000,
        records: Bytes::from(vec![0u8; count as usize]),
        condition: None,
        keys: Vec::new(),
    };
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(Command::Produce(ProduceEntry {
            append_time_ms: 1_000,
            batches: vec![batch],
            producer_limits: ProducerLimits::default(),
            key_index_keys_max: 10_000,
        })),
    }
}

fn outcomes(resp: &[ApplyResponse]) -> Vec<BatchOutcome> {
    resp.iter()
        .flat_map(|r| match r {
            ApplyResponse::Produce(o) => o.clone(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn producer_state_survives_a_restart_and_travels_in_checkpoints() {
    run_fut(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let open = || Db::open(dir.path(), &DbOptions::default(), Arc::new(|e: &std::io::Error| panic!("{e}")));
        let policy = CheckpointPolicy { every_entries: 3, every_bytes: u64::MAX };
        {
            let db = open().map_err(|e| StorageIOError::write(&e))?;
            let mut sm = StateMachineStore::open(db, 7, policy).await.map_err(|e| StorageIOError::read(&e))?;
            let r = sm
                .apply([membership(1, 1, &[1, 2, 3]), produce_from(1, 2, 42, 0, 0, 2), produce_from(1, 3, 42, 0, 2, 1)])
                .await?;
            assert_eq!(
                outcomes(&r),
                vec![BatchOutcome::Appended { base_offset: 0 }, BatchOutcome::Appended { base_offset: 2 }]
            );
        }
        // Reopened (a restart): the retried batch is still recognised, with its original offset.
        let db = open().map_err(|e| StorageIOError::write(&e))?;
        let mut sm = StateMachineStore::open(db, 7, policy).await.map_err(|e| StorageIOError::read(&e))?;
        let r = sm.apply([produce_from(1, 4, 42, 0, 0, 2), produce_from(1, 5, 42, 0, 5, 1)]).await?;
        assert_eq!(
            outcomes(&r),
            vec![
                BatchOutcome::Duplicate { base_offset: 0, append_time_ms: 1_000 },
                BatchOutcome::Refused(Refusal::OutOfOrder { expected: 3 }),
            ]
        );
        assert_eq!(sm.progress().borrow().high_watermark, 3, "neither appended anything");

        // The checkpoint at entry 3 carries the table: a replica installed from it deduplicates
        // the same way.
        sm.apply([truncate(1, 6, lid(1, 3))]).await?;
        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert!(snap.snapshot.producers.producers.contains_key(&42));
        let (_d2, _log2, mut other) = every_two().build().await?;
        other.install_snapshot(&snap.meta, snap.snapshot).await?;
        let r = other.apply([produce_from(1, 7, 42, 0, 2, 1), produce_from(1, 8, 42, 0, 3, 1)]).await?;
        assert_eq!(
            outcomes(&r),
            vec![
                BatchOutcome::Duplicate { base_offset: 2, append_time_ms: 1_000 },
                BatchOutcome::Appended { base_offset: 3 }
            ]
        );
        Ok(())
    })
    .expect("producer state");
}
