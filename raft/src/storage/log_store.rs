//! The Raft log of one group, in the shared RocksDB (`log` and `raft` column families).
//!
//! The log *is* the partition data: record bytes live here once. Appends are written without
//! sync and acknowledged to openraft by the node-wide syncer after the fsync that covers them.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{ReadOptions, WriteBatch};

use super::codec::{decode, encode, encode_checked};
use super::db::{blocking, Db};
use super::error::StoreError;
use super::health::Health;
use super::keys::{self, CF_LOG, CF_RAFT};
use super::tail_cache::TailCache;
use crate::ids::GroupId;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Bytes of entries returned by one `limited_get_log_entries` call (openraft's
/// `max_payload_entries` counts entries only). At least one entry is always returned.
pub const DEFAULT_READ_BYTES_MAX: usize = 4 << 20;

/// Log storage of one group.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    group: GroupId,
    read_bytes_max: usize,
    /// The newest entries, shared with the log readers of the replication streams.
    cache: Arc<Mutex<TailCache>>,
    /// The committed id openraft reported last; persisted with the next append (one write
    /// fewer per commit), readable at once.
    committed: Arc<Mutex<Option<Option<LogId>>>>,
    /// Damaged data found by a read (the leader's replication reads) is recorded here.
    health: Health,
}

impl LogStore {
    pub fn new(db: Arc<Db>, group: GroupId) -> LogStore {
        LogStore {
            db,
            group,
            read_bytes_max: DEFAULT_READ_BYTES_MAX,
            cache: Arc::default(),
            committed: Arc::default(),
            health: Health::default(),
        }
    }

    /// Records damaged data this store's reads meet in `health`.
    pub fn with_health(mut self, health: Health) -> LogStore {
        self.health = health;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TailCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Caps the bytes one replication read returns.
    pub fn with_read_bytes_max(mut self, bytes: usize) -> LogStore {
        self.read_bytes_max = bytes.max(1);
        self
    }

    async fn read(&self, start: u64, end: Option<u64>, byte_cap: Option<usize>) -> Result<Vec<Entry>, StoreError> {
        {
            let cache = self.cache();
            // A capped read needs only the beginning; an uncapped one must be whole.
            if byte_cap.is_some() || cache.covers(start, end) {
                if let Some(hit) = cache.get(start, end, byte_cap) {
                    return Ok(hit);
                }
            }
        }
        let (db, group) = (self.db.clone(), self.group);
        let res = blocking(move || read_entries(&db, group, start, end, byte_cap)).await;
        if let Err(e) = &res {
            self.db.escalate_shared_damage(&e.to_string());
            if self.health.record(e) {
                tracing::error!(group, start, error = %e, "damaged log data found by a read; the replica stops");
            }
        }
        res
    }

    async fn get_raft_key<T>(&self, key: [u8; 9], what: &'static str) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let db = self.db.clone();
        let res = blocking(move || {
            let cf = db.cf(CF_RAFT)?;
            match db.rocks().get_pinned_cf(cf, key).map_err(StoreError::rocks("get"))? {
                Some(v) => Ok(Some(decode(what, &v)?)),
                None => Ok(None),
            }
        })
        .await;
        if let Err(e) = &res {
            self.db.escalate_shared_damage(&e.to_string());
            self.health.record(e);
        }
        res
    }

    /// Fills one WriteBatch and writes it off the tokio workers; `durable` ones are fsynced
    /// before returning (and a failure stops the node, see [`Db::write_durable`]).
    async fn commit<F>(&self, durable: bool, fill: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Db, GroupId, &mut WriteBatch) -> Result<(), StoreError>,
    {
        let mut batch = WriteBatch::default();
        fill(&self.db, self.group, &mut batch)?;
        let db = self.db.clone();
        blocking(move || if durable { db.write_durable(batch, "save vote") } else { db.write(batch, "append") }).await
    }
}

/// Reads entries `[start, end)` of `group`, stopping early once `byte_cap` is reached (but never
/// returning nothing when an entry exists in the range).
pub(crate) fn read_entries(
    db: &Db,
    group: GroupId,
    start: u64,
    end: Option<u64>,
    byte_cap: Option<usize>,
) -> Result<Vec<Entry>, StoreError> {
    let cf = db.cf(CF_LOG)?;
    let mut ro = ReadOptions::default();
    ro.set_verify_checksums(true);
    let upper = match end {
        Some(e) => keys::log(group, e).to_vec(),
        None => keys::group_range(group).1,
    };
    ro.set_iterate_upper_bound(upper);
    let mut it = db.rocks().raw_iterator_cf_opt(cf, ro);
    it.seek(keys::log(group, start));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if keys::log_index(k).is_none() {
            return Err(StoreError::Corrupt { group, message: format!("bad log key {k:?}") });
        }
        if let Some(cap) = byte_cap {
            if !out.is_empty() && bytes + v.len() > cap {
                break;
            }
        }
        bytes += v.len();
        out.push(super::legacy::log_entry(v, true)?);
        it.next();
    }
    it.status().map_err(StoreError::rocks("iterate log"))?;
    Ok(out)
}

/// Adds "purge up to and including `upto`" to `b`: the last-purged id and the deletion, in one
/// atomic batch.
pub(crate) fn purge_into(db: &Db, group: GroupId, upto: &LogId, b: &mut WriteBatch) -> Result<(), StoreError> {
    b.put_cf(db.cf(CF_RAFT)?, keys::last_purged(group), encode("last purged", upto)?);
    let end = match upto.index.checked_add(1) {
        Some(next) => keys::log(group, next).to_vec(),
        None => keys::group_range(group).1,
    };
    b.delete_range_cf(db.cf(CF_LOG)?, &keys::log(group, 0)[..], &end[..]);
    Ok(())
}

fn to_bounds<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    if matches!(end, Some(e) if e <= start) {
        return None;
    }
    Some((start, end))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = to_bounds(&range) else {
            return Ok(Vec::new());
        };
        self.read(start, end, None).await.map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        if end <= start {
            return Ok(Vec::new());
        }
        self.read(start, Some(end), Some(self.read_bytes_max)).await.map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (db, group) = (self.db.clone(), self.group);
        blocking(move || {
            let purged: Option<LogId> = match db.rocks().get_pinned_cf(db.cf(CF_RAFT)?, keys::last_purged(group)) {
                Ok(Some(v)) => Some(decode("last purged", &v)?),
                Ok(None) => None,
                Err(e) => return Err(StoreError::Rocks { op: "get last purged", source: e }),
            };
            let cf = db.cf(CF_LOG)?;
            let mut ro = ReadOptions::default();
            ro.set_iterate_lower_bound(keys::log(group, 0).to_vec());
            let mut it = db.rocks().raw_iterator_cf_opt(cf, ro);
            it.seek_for_prev(keys::log(group, u64::MAX));
            let last = match it.value() {
                Some(v) => Some(super::legacy::log_entry(v, true)?.log_id),
                None => {
                    it.status().map_err(StoreError::rocks("iterate log"))?;
                    None
                }
            };
            // An empty log reports the last purged id as its last id (openraft's contract).
            let last_log_id = last.or(purged);
            Ok(LogState { last_purged_log_id: purged, last_log_id })
        })
        .await
        .map_err(|e| {
            self.db.escalate_shared_damage(&e.to_string());
            self.health.record(&e);
            StorageIOError::read_logs(&e).into()
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        // The vote must be on disk before returning: a node that forgets its vote can vote twice.
        self.commit(true, |db, g, b| {
            b.put_cf(db.cf(CF_RAFT)?, keys::vote(g), encode("vote", vote)?);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_raft_key(keys::vote(self.group), "vote").await.map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Kept in memory and written with the next append: a stale committed id after a crash
        // only means re-learning it from the leader, and a write per commit is not free.
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(c) = *self.committed.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(c);
        }
        let v: Option<Option<LogId>> =
            self.get_raft_key(keys::committed(self.group), "committed").await.map_err(|e| StorageIOError::read(&e))?;
        Ok(v.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let committed = *self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let res = self
            .commit(false, |db, g, b| {
                let cf = db.cf(CF_LOG)?;
                for e in &entries {
                    b.put_cf(cf, keys::log(g, e.log_id.index), encode_checked("log entry", e)?);
                }
                if let Some(c) = committed {
                    b.put_cf(db.cf(CF_RAFT)?, keys::committed(g), encode("committed", &c)?);
                }
                Ok(())
            })
            .await;
        if res.is_ok() {
            self.cache().push(&entries);
        }
        match res {
            Ok(()) => {
                // Readable now; durable when the syncer's next fsync completes.
                self.db.after_next_fsync(Box::new(move |r| callback.log_io_completed(r)));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Not synced: the appends that follow are fsynced after it (one WAL, in order); losing
        // both to a crash leaves the old, uncommitted suffix, which Raft truncates again.
        self.cache().truncate_from(log_id.index);
        self.commit(false, |db, g, b| {
            let (from, to) = keys::log_range_from(g, log_id.index);
            b.delete_range_cf(db.cf(CF_LOG)?, &from[..], &to[..]);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // openraft purges only up to its snapshot, and our snapshot pointer is persisted (with
        // sync) before openraft learns of a snapshot, so the purge never passes it.
        self.cache().purge_to(log_id.index);
        self.commit(false, |db, g, b| purge_into(db, g, &log_id, b))
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.db.log_purged(self.group, log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Mutex;
    use std::time::Duration;

    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::storage::db::{DbOptions, RocksWal};
    use crate::storage::syncer::WalSync;

    /// RocksDB's real fsync, held back until the test opens the gate.
    struct GatedWal {
        inner: RocksWal,
        started: Mutex<mpsc::Sender<()>>,
        gate: Mutex<mpsc::Receiver<()>>,
    }

    impl WalSync for GatedWal {
        fn sync_wal(&self) -> std::io::Result<()> {
            let _ = self.started.lock().map(|t| t.send(()));
            let _ = self.gate.lock().map(|g| g.recv());
            self.inner.sync_wal()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn append_is_readable_at_once_but_flushed_only_after_the_wal_fsync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (started_tx, started_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel();
        let db = Db::open_with_wal(dir.path(), &DbOptions::default(), Arc::new(|e| panic!("{e}")), |rocks| {
            Arc::new(GatedWal {
                inner: RocksWal::new(rocks),
                started: Mutex::new(started_tx),
                gate: Mutex::new(gate_rx),
            })
        })
        .expect("open");
        let mut log = LogStore::new(db, 1);
        let entry = Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), 1), payload: EntryPayload::Blank };

        let mut writer = log.clone();
        let mut append = tokio::spawn(async move { writer.blocking_append([entry]).await });
        // The fsync covering the entry has started and is held at the gate.
        tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("an fsync starts for the append");
        // Readable already (openraft's contract), but not reported flushed.
        assert_eq!(log.try_get_log_entries(1..2).await.expect("read").len(), 1);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut append).await.is_err(),
            "the flush callback fired before the fsync finished"
        );
        gate_tx.send(()).expect("open the gate");
        tokio::time::timeout(Duration::from_secs(10), append)
            .await
            .expect("flushed after the fsync")
            .expect("join")
            .expect("append ok");
    }
}
