//! Conditional appends in the state machine: the verdict at apply time (partition and key
//! conditions), with the idempotent producer, the key index's bound, and the index surviving a
//! restart and travelling in checkpoints.

#![allow(clippy::result_large_err)]

use std::sync::Arc;

use bytes::Bytes;
use cairn_raft::storage::key_index::KeyOffset;
use cairn_raft::storage::producers::ProducerLimits;
use cairn_raft::storage::{CheckpointPolicy, Db, DbOptions, StateMachineStore};
use cairn_raft::types::{
    ApplyResponse, BatchOutcome, Command, Condition, ConditionFailed, Entry, KeyCondition, LogId, ProduceBatch,
    ProduceEntry, ProducerRef, StorageError,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use tempfile::TempDir;

fn run<F: std::future::Future<Output = Result<(), StorageError>>>(f: F) {
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(f).expect("test");
}

fn lid(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// One batch of `count` records all with `key` (None: no key).
struct B {
    key: Option<&'static str>,
    count: u32,
    condition: Option<Condition>,
    producer: Option<ProducerRef>,
}

fn b(key: &'static str, count: u32) -> B {
    B { key: Some(key), count, condition: None, producer: None }
}

impl B {
    fn expect_key(mut self, expected: Option<u64>) -> B {
        let key = Bytes::from_static(self.key.expect("a keyed batch").as_bytes());
        self.condition.get_or_insert_with(Condition::default).key = Some(KeyCondition { key, expected });
        self
    }

    fn expect_offset(mut self, offset: u64) -> B {
        self.condition.get_or_insert_with(Condition::default).expected_offset = Some(offset);
        self
    }

    fn from(mut self, producer_id: u64, base_sequence: u32) -> B {
        self.producer = Some(ProducerRef { producer_id, epoch: 0, base_sequence });
        self
    }
}

fn entry(index: u64, keys_max: u32, batches: Vec<B>) -> Entry {
    let batches = batches
        .into_iter()
        .map(|b| ProduceBatch {
            producer: b.producer,
            record_count: b.count,
            max_timestamp_ms: 1_000,
            records: Bytes::from(vec![0u8; b.count as usize]),
            condition: b.condition,
            keys: b.key.map(|k| vec![(Bytes::from_static(k.as_bytes()), b.count - 1)]).unwrap_or_default(),
        })
        .collect();
    Entry {
        log_id: lid(index),
        payload: EntryPayload::Normal(Command::Produce(ProduceEntry {
            append_time_ms: 1_000,
            batches,
            producer_limits: ProducerLimits::default(),
            key_index_keys_max: keys_max,
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

fn failed(end_offset: u64, key_offset: Option<KeyOffset>) -> BatchOutcome {
    BatchOutcome::ConditionFailed(ConditionFailed { end_offset, key_offset })
}

async fn open(dir: &TempDir, policy: CheckpointPolicy) -> Result<StateMachineStore, StorageError> {
    let db = Db::open(dir.path(), &DbOptions::default(), Arc::new(|e: &std::io::Error| panic!("{e}")))
        .map_err(|e| StorageIOError::write(&e))?;
    StateMachineStore::open(db, 7, policy).await.map_err(|e| StorageIOError::read(&e).into())
}

#[test]
fn a_condition_is_judged_against_the_state_before_its_batch() {
    run(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let mut sm = open(&dir, CheckpointPolicy::default()).await?;
        let r = sm
            .apply([entry(
                1,
                100,
                vec![
                    b("acct-1", 1).expect_key(None),    // offset 0: the key had no record
                    b("acct-1", 1).expect_key(None),    // refused: it has one now, at 0
                    b("acct-1", 2).expect_key(Some(0)), // offsets 1-2
                    b("acct-2", 1).expect_offset(3),    // offset 3: the end matched
                    b("acct-2", 1).expect_offset(3),    // refused: the end is 4
                    b("acct-1", 1).expect_key(Some(1)), // refused: the last is 2, not 1
                    b("acct-3", 1).expect_key(Some(0)), // refused: a key with no record
                ],
            )])
            .await?;
        assert_eq!(
            outcomes(&r),
            vec![
                BatchOutcome::Appended { base_offset: 0 },
                failed(1, Some(KeyOffset::At(0))),
                BatchOutcome::Appended { base_offset: 1 },
                BatchOutcome::Appended { base_offset: 3 },
                failed(4, None),
                failed(4, Some(KeyOffset::At(2))),
                failed(4, Some(KeyOffset::NoRecord)),
            ]
        );
        assert_eq!(sm.progress().borrow().high_watermark, 4, "refused batches append nothing");
        assert_eq!(sm.progress().borrow().key_index_keys, 2);
        Ok(())
    });
}

#[test]
fn an_idempotent_retry_of_an_appended_conditional_batch_still_succeeds() {
    run(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let mut sm = open(&dir, CheckpointPolicy::default()).await?;
        let r = sm
            .apply([
                entry(1, 100, vec![b("k", 1).expect_key(None).from(9, 0)]),
                // The retry (same sequence) comes after the log moved: the producer check comes
                // first, so it answers with the original offset.
                entry(2, 100, vec![b("k", 1).expect_key(None).from(9, 0)]),
                // A refused condition leaves the producer's sequences unused: the next batch
                // takes sequence 1 again.
                entry(3, 100, vec![b("k", 1).expect_key(Some(5)).from(9, 1)]),
                entry(4, 100, vec![b("k", 1).expect_key(Some(0)).from(9, 1)]),
            ])
            .await?;
        assert_eq!(
            outcomes(&r),
            vec![
                BatchOutcome::Appended { base_offset: 0 },
                BatchOutcome::Duplicate { base_offset: 0, append_time_ms: 1_000 },
                failed(1, Some(KeyOffset::At(0))),
                BatchOutcome::Appended { base_offset: 1 },
            ]
        );
        Ok(())
    });
}

#[test]
fn at_its_bound_the_key_index_forgets_the_oldest_key_and_refuses_conditions_on_it() {
    run(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let mut sm = open(&dir, CheckpointPolicy::default()).await?;
        let r = sm
            .apply([
                entry(1, 2, vec![b("a", 1), b("b", 1), b("c", 1)]), // a forgotten (at 0)
                entry(2, 2, vec![b("a", 1).expect_key(Some(0))]),   // refused: forgotten
                entry(3, 2, vec![b("new", 1).expect_key(None)]),    // refused: absence unprovable
                entry(4, 2, vec![b("a", 1).expect_offset(3)]),      // indexes a again, at 3
                entry(5, 2, vec![b("a", 1).expect_key(Some(3))]),
            ])
            .await?;
        assert_eq!(
            outcomes(&r),
            vec![
                BatchOutcome::Appended { base_offset: 0 },
                BatchOutcome::Appended { base_offset: 1 },
                BatchOutcome::Appended { base_offset: 2 },
                failed(3, Some(KeyOffset::Forgotten { upto: 0 })),
                failed(3, Some(KeyOffset::Forgotten { upto: 0 })),
                BatchOutcome::Appended { base_offset: 3 },
                BatchOutcome::Appended { base_offset: 4 },
            ]
        );
        assert_eq!(sm.progress().borrow().key_index_keys, 2, "never more keys than the bound");
        Ok(())
    });
}

#[test]
fn the_key_index_survives_a_restart_and_travels_in_checkpoints() {
    run(async {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let policy = CheckpointPolicy { every_entries: 2, every_bytes: u64::MAX };
        {
            let mut sm = open(&dir, policy).await?;
            sm.apply([entry(1, 2, vec![b("a", 1), b("b", 2)]), entry(2, 2, vec![b("c", 1)])]).await?;
        }
        // Reopened (a restart): the index and its forgotten bound are as they were.
        let mut sm = open(&dir, policy).await?;
        let r = sm
            .apply([
                entry(3, 2, vec![b("b", 1).expect_key(Some(2))]),
                entry(4, 2, vec![b("a", 1).expect_key(Some(0))]),
                Entry { log_id: lid(5), payload: EntryPayload::Normal(Command::PrefixTruncate { upto: lid(2) }) },
            ])
            .await?;
        assert_eq!(
            outcomes(&r),
            vec![BatchOutcome::Appended { base_offset: 4 }, failed(5, Some(KeyOffset::Forgotten { upto: 0 }))]
        );
        // The checkpoint at entry 2 carries the index as it was there: a replica installed from
        // it judges the same way.
        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        let other_dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let mut other = open(&other_dir, policy).await?;
        other.install_snapshot(&snap.meta, snap.snapshot).await?;
        let r = other
            .apply([entry(3, 2, vec![b("b", 1).expect_key(Some(2))]), entry(4, 2, vec![b("a", 1).expect_key(Some(0))])])
            .await?;
        assert_eq!(
            outcomes(&r),
            vec![BatchOutcome::Appended { base_offset: 4 }, failed(5, Some(KeyOffset::Forgotten { upto: 0 }))]
        );
        drop(other);
        // And the installed index was persisted with the install.
        let mut reopened = open(&other_dir, policy).await?;
        let r = reopened.apply([entry(5, 2, vec![b("b", 1).expect_key(Some(4))])]).await?;
        assert_eq!(outcomes(&r), vec![BatchOutcome::Appended { base_offset: 5 }]);
        Ok(())
    });
}
