//! The node's single RocksDB instance, shared by every group, and its syncer.
//!
//! A few column families, never one per group (docs/architecture.md, "One node"). Options favour a write-ahead-log
//! workload: no compression libraries are linked, write stalls are generous, and
//! `max_total_wal_size` forces the tiny `raft` CF to flush so it cannot keep old WAL files alive.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};

use super::durable::{self, MarkerWriter};
use super::error::StoreError;
use super::keys::{ALL_CFS, CF_LOG};
use super::observer::{NoObserver, StorageObserver};
use super::syncer::{FatalHook, FlushCallback, Syncer, WalSync};
use crate::ids::GroupId;

/// Tunables of the shared RocksDB instance.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Block cache shared by all column families.
    pub block_cache_bytes: usize,
    /// Memtable size per column family.
    pub write_buffer_bytes: usize,
    /// Total WAL size that forces memtable flushes.
    pub max_total_wal_bytes: u64,
    /// Receives fsync timings (the node's metrics).
    pub observer: Arc<dyn StorageObserver>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 32 << 20,
            max_total_wal_bytes: 256 << 20,
            observer: Arc::new(NoObserver),
        }
    }
}

/// RocksDB's own figures, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Bytes RocksDB estimates its compactions still have to rewrite.
    pub pending_compaction_bytes: u64,
    /// Bytes held in the shared block cache.
    pub block_cache_usage_bytes: u64,
    /// Bytes the block cache may hold.
    pub block_cache_capacity_bytes: u64,
}

/// RocksDB plus the node-wide syncer.
pub struct Db {
    rocks: Arc<DB>,
    syncer: Syncer,
    /// Compacts purged log ranges away (frees their disk space).
    compactor: super::compactor::Compactor,
    /// Called when a durable write fails (as for a failed fsync): the node must not go on.
    on_fatal: FatalHook,
    /// Written when RocksDB reports damaged data it cannot get past (see [`Db::write`]).
    damage_flag: std::path::PathBuf,
    /// Where the node's metrics receive this crate's measurements.
    observer: Arc<dyn StorageObserver>,
}

/// The file [`Db::write`] leaves when RocksDB found damaged data; its presence makes
/// [`Db::open`] refuse the database.
const DAMAGE_FLAG: &str = "CAIRN-DAMAGED";

/// RocksDB's own WAL fsync: one WAL for every column family, so one call covers all groups.
/// With a marker, each round also records the sequence it makes durable (see [`super::durable`]).
pub struct RocksWal {
    db: Arc<DB>,
    marker: Option<MarkerWriter>,
    /// The sequence the last successful round made durable (what the marker must fall back to
    /// when a round is refused).
    durable: std::sync::atomic::AtomicU64,
}

impl RocksWal {
    pub fn new(db: Arc<DB>) -> RocksWal {
        let durable = std::sync::atomic::AtomicU64::new(db.latest_sequence_number());
        RocksWal { db, marker: None, durable }
    }
}

impl WalSync for RocksWal {
    fn sync_wal(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let Some(marker) = &self.marker else {
            return self.db.flush_wal(true).map_err(sync_error);
        };
        // Everything up to this sequence is in the WAL (RocksDB publishes a sequence after its
        // WAL write), so the fsync below makes it durable.
        let seq = self.db.latest_sequence_number();
        marker.start(seq)?;
        let wal = self.db.flush_wal(true).map_err(sync_error);
        let mark = marker.wait();
        match wal {
            Ok(()) => {
                mark?;
                self.durable.fetch_max(seq, Ordering::AcqRel);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                // Nothing new is durable: the marker must not claim `seq`, or a crash before
                // RocksDB recovers would look like a WAL that lost fsynced writes.
                marker.start(self.durable.load(Ordering::Acquire))?;
                marker.wait()?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether RocksDB *refused* a write or a sync for lack of space (ENOSPC while writing, or a
/// WAL writer that met one earlier and now refuses to sync) rather than failing an fsync: after
/// a refusal nothing acknowledged is lost and RocksDB recovers by itself once space returns;
/// after a failed fsync the page cache cannot be trusted.
pub(crate) fn refused_for_space(e: &rocksdb::Error) -> bool {
    let msg = e.to_string();
    let sync_failed = ["While fsync", "While fdatasync", "F_FULLFSYNC", "sync_file_range", "While msync"]
        .iter()
        .any(|s| msg.contains(s));
    !sync_failed && (msg.contains("No space left on device") || msg.contains("Writer has previous error"))
}

/// A WAL sync error for the syncer: a refusal for lack of space is `StorageFull` (not fatal).
fn sync_error(e: rocksdb::Error) -> std::io::Error {
    if refused_for_space(&e) {
        std::io::Error::new(std::io::ErrorKind::StorageFull, e.to_string())
    } else {
        std::io::Error::other(e.to_string())
    }
}

impl Db {
    /// Opens (creating if missing) the database in `path` and starts the syncer.
    ///
    /// # Errors
    /// RocksDB open errors (including "LOCK held": another process uses the directory) and
    /// thread-spawn failures.
    /// A database whose WAL lost writes it had fsynced (cut, or damaged so that recovery
    /// stopped early) is refused with [`StoreError::WalLost`]: this node would otherwise come
    /// up without entries it acknowledged.
    pub fn open(path: &Path, opts: &DbOptions, on_fatal: FatalHook) -> Result<Arc<Db>, StoreError> {
        let marker_path = durable::marker_path(path);
        let marker = std::cell::RefCell::new(None);
        let db = Db::open_with_wal(path, opts, on_fatal, |rocks| {
            let writer = MarkerWriter::open(&marker_path);
            let mut wal = RocksWal::new(rocks);
            match writer {
                Ok(w) => wal.marker = Some(w),
                Err(e) => *marker.borrow_mut() = Some(e),
            }
            Arc::new(wal)
        })?;
        if let Some(e) = marker.into_inner() {
            return Err(StoreError::Marker(e));
        }
        Ok(db)
    }

    /// Like [`Db::open`], with the WAL fsync provided by `wal` (tests wrap RocksDB's to observe
    /// or delay fsyncs).
    ///
    /// # Errors
    /// As [`Db::open`].
    pub fn open_with_wal(
        path: &Path,
        opts: &DbOptions,
        on_fatal: FatalHook,
        wal: impl FnOnce(Arc<DB>) -> Arc<dyn WalSync>,
    ) -> Result<Arc<Db>, StoreError> {
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);

        let cf_opts = || {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::None);
            o.set_write_buffer_size(opts.write_buffer_bytes);
            o.set_block_based_table_factory(&table);
            o.set_level_zero_slowdown_writes_trigger(40);
            o.set_level_zero_stop_writes_trigger(64);
            o.set_soft_pending_compaction_bytes_limit(64 << 30);
            o.set_hard_pending_compaction_bytes_limit(256 << 30);
            o
        };
        let mut db_opts = cf_opts();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_total_wal_size(opts.max_total_wal_bytes);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(4);

        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = cf_opts();
            if *name == CF_LOG {
                // Record bytes are written once and never updated: keep them in blob files so
                // compaction moves only small keys and blob references. Without this, compaction
                // rewrote every record several times and was the largest CPU cost of producing.
                o.set_enable_blob_files(true);
                o.set_min_blob_size(256);
                o.set_blob_file_size(64 << 20);
                o.set_blob_compression_type(DBCompressionType::None);
                // No blob GC: relocating live blobs makes compactions read record bytes, and a
                // damaged blob then fails the compaction, which puts the whole database into a
                // background error that refuses every write (found by the `corrupt` nemesis:
                // the node aborted). Purged ranges are compacted away explicitly (see
                // `compactor`), which drops their references without reading them; a blob file
                // goes once every entry in it was purged (docs/operations.md, "Retention").
                o.set_enable_blob_gc(false);
                o.set_write_buffer_size(opts.write_buffer_bytes * 2);
                o.set_max_write_buffer_number(4);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        // Read before RocksDB opens: the marker names what the WAL held durably last time.
        let (_, durable) = durable::read_marker(&durable::marker_path(path)).map_err(StoreError::Marker)?;
        let damage_flag = path.join(DAMAGE_FLAG);
        if let Ok(note) = std::fs::read_to_string(&damage_flag) {
            return Err(StoreError::Corrupt {
                group: 0,
                message: format!("this database was found damaged earlier and cannot be trusted: {}", note.trim()),
            });
        }
        let rocks = Arc::new(DB::open_cf_descriptors(&db_opts, path, cfs).map_err(StoreError::rocks("open"))?);
        let recovered = rocks.latest_sequence_number();
        if recovered < durable {
            return Err(StoreError::WalLost { durable, recovered });
        }
        let syncer = Syncer::start(wal(rocks.clone()), on_fatal.clone(), opts.observer.clone())
            .map_err(|e| StoreError::SyncFailed(format!("cannot start syncer thread: {e}")))?;
        let compactor = super::compactor::Compactor::start(rocks.clone())
            .map_err(|e| StoreError::SyncFailed(format!("cannot start compactor thread: {e}")))?;
        let observer = opts.observer.clone();
        Ok(Arc::new(Db { rocks, syncer, compactor, on_fatal, damage_flag, observer }))
    }

    /// The log of `group` was purged up to and including `upto`: compact it away soon.
    pub(crate) fn log_purged(&self, group: GroupId, upto: u64) {
        self.compactor.purged(group, upto);
    }

    pub(crate) fn rocks(&self) -> &DB {
        &self.rocks
    }

    /// Handle of a column family this module created at open.
    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.rocks
            .cf_handle(name)
            .ok_or(StoreError::Corrupt { group: 0, message: format!("column family {name} missing") })
    }

    /// Writes `batch` and fsyncs it before returning (a vote, a snapshot install, a group's
    /// deletion). A failure calls the fatal hook, like a failed fsync: after its disk failed a
    /// durable write a node cannot tell what it still remembers, so it must not carry on. A
    /// write refused for lack of space is only returned: nothing of it reached the disk, so the
    /// group that asked stops (and is restarted) without having promised anything.
    /// Blocking: call it from `spawn_blocking`.
    ///
    /// # Errors
    /// The write failed (after the fatal hook ran, for hooks that return).
    pub(crate) fn write_durable(&self, batch: WriteBatch, what: &'static str) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.rocks.write_opt(batch, &wo).map_err(|e| {
            self.note_damage(&e);
            if refused_for_space(&e) {
                tracing::warn!(error = %e, what, "durable write refused for lack of space");
            } else {
                let err = std::io::Error::other(format!("durable write ({what}) failed: {e}"));
                (self.on_fatal)(&err);
            }
            StoreError::Rocks { op: what, source: e }
        })
    }

    /// Writes `batch` without sync (appends, applies: the syncer's next fsync covers them).
    /// Blocking: call it from `spawn_blocking`.
    ///
    /// # Errors
    /// The write failed. A `Corruption` failure means RocksDB met damaged data in the
    /// background (a compaction) and refuses every write from now on: the node records that
    /// its storage is damaged and calls the fatal hook with an `InvalidData` error (the node
    /// restarts, and [`Db::open`] refuses the flagged database).
    pub(crate) fn write(&self, batch: WriteBatch, what: &'static str) -> Result<(), StoreError> {
        self.rocks.write_opt(batch, &WriteOptions::default()).map_err(|e| {
            if self.note_damage(&e) {
                // InvalidData tells the hook it is damage (the node restarts to rebuild), not a
                // failed fsync.
                let err = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("write ({what}) refused, storage damaged: {e}"),
                );
                (self.on_fatal)(&err);
            }
            StoreError::Rocks { op: what, source: e }
        })
    }

    /// Damage a read found in an SST file (`block checksum mismatch ... .sst`) is not one
    /// replica's: a block holds the keys of several groups, a rebuilt replica on this node
    /// reads the same block again (its keys share the group's range), and the first
    /// compaction over it refuses every write. Such damage is handled as the whole node's: it
    /// is recorded (see [`Db::open`]) and the fatal hook restarts the node, which then has the
    /// cluster rebuild it. Damage in blob files or a record's own checksum stays the replica's.
    /// Returns whether `error` was such damage.
    pub fn escalate_shared_damage(&self, error: &str) -> bool {
        if !(error.contains("Corruption") && error.contains(".sst")) {
            return false;
        }
        self.record_damage(error);
        let err = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("damaged SST data shared by this node's replicas: {error}"),
        );
        (self.on_fatal)(&err);
        true
    }

    /// Records a `Corruption` error as damage found in this database (see [`Db::open`]).
    /// Returns whether `e` was one.
    fn note_damage(&self, e: &rocksdb::Error) -> bool {
        if e.kind() != rocksdb::ErrorKind::Corruption {
            return false;
        }
        self.record_damage(e.as_ref());
        true
    }

    /// Writes (and fsyncs) the damage flag that makes [`Db::open`] refuse this database.
    fn record_damage(&self, e: &str) {
        let note = format!("{e}\n");
        let written = std::fs::write(&self.damage_flag, note)
            .and_then(|()| std::fs::File::open(&self.damage_flag).and_then(|f| f.sync_all()));
        if let Err(w) = written {
            tracing::error!(error = %w, "cannot record the storage damage");
        }
        tracing::error!(error = %e, "RocksDB found damaged data; this node's storage is damaged");
    }

    /// Queues `callback` for the next WAL fsync. Call only after the covered write returned.
    pub(crate) fn after_next_fsync(&self, callback: FlushCallback) {
        self.syncer.submit(callback);
    }

    /// Every group id that has data in this database (any column family).
    ///
    /// # Errors
    /// RocksDB read errors.
    pub async fn group_ids(self: &Arc<Self>) -> Result<std::collections::BTreeSet<GroupId>, StoreError> {
        let db = self.clone();
        blocking(move || {
            let mut out = std::collections::BTreeSet::new();
            for cf in ALL_CFS {
                let mut it = db.rocks.raw_iterator_cf(db.cf(cf)?);
                it.seek_to_first();
                while let Some(key) = it.key() {
                    let Some(g) = key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes) else {
                        break;
                    };
                    out.insert(g);
                    // Jump to the next group: one seek per group, not one step per key.
                    match g.checked_add(1) {
                        Some(next) => it.seek(next.to_be_bytes()),
                        None => break,
                    }
                }
                it.status().map_err(StoreError::rocks("scan groups"))?;
            }
            Ok(out)
        })
        .await
        .inspect_err(|e| {
            self.escalate_shared_damage(&e.to_string());
        })
    }

    /// Reads every key and value `group` has in every column family, verifying RocksDB's
    /// checksums and each log entry's own (a start-up check of small groups, the controller's).
    /// Blocking: call it from `spawn_blocking`.
    ///
    /// # Errors
    /// The first damage or read error met.
    pub fn verify_group(&self, group: GroupId) -> Result<(), StoreError> {
        for cf in ALL_CFS {
            let (lo, hi) = super::keys::group_range(group);
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_verify_checksums(true);
            ro.set_iterate_upper_bound(hi);
            let mut it = self.rocks.raw_iterator_cf_opt(self.cf(cf)?, ro);
            it.seek(&lo);
            while let Some(v) = it.value() {
                if cf == CF_LOG {
                    super::legacy::log_entry(v, true)?;
                }
                it.next();
            }
            it.status().map_err(StoreError::rocks("verify group"))?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the whole database into `dir` (which must not exist): hard links
    /// to its immutable files (after flushing the memtables), so it costs no copy on the same
    /// filesystem and keeps those files alive while the database moves on. Used to keep a
    /// damaged replica's old data until its rebuilt replica is in sync.
    /// Blocking: call it from `spawn_blocking`.
    ///
    /// # Errors
    /// RocksDB's (the flush or a link failed; `dir` may then hold a partial copy).
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.rocks).map_err(StoreError::rocks("checkpoint"))?;
        // No flush (the WAL files go into the checkpoint instead): a flush adds an L0 file and
        // so a compaction, which may read the very data found damaged and put the whole
        // database into a background error (the corrupt nemesis saw the node abort after it).
        cp.create_checkpoint_with_log_size(dir, u64::MAX).map_err(StoreError::rocks("checkpoint"))
    }

    /// Bytes each column family holds: live SST files plus memtables (RocksDB's own counters,
    /// read from memory).
    pub fn column_family_bytes(&self) -> Vec<(&'static str, u64)> {
        ALL_CFS
            .iter()
            .filter_map(|name| {
                let cf = self.rocks.cf_handle(name)?;
                let prop = |p: &str| self.rocks.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
                Some((*name, prop("rocksdb.total-sst-files-size") + prop("rocksdb.size-all-mem-tables")))
            })
            .collect()
    }

    /// What receives this crate's measurements.
    pub fn observer(&self) -> &dyn StorageObserver {
        self.observer.as_ref()
    }

    /// RocksDB's compaction backlog and block cache use.
    pub fn stats(&self) -> DbStats {
        let mut stats = DbStats::default();
        for name in ALL_CFS {
            let Some(cf) = self.rocks.cf_handle(name) else { continue };
            let prop = |p: &str| self.rocks.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
            stats.pending_compaction_bytes += prop("rocksdb.estimate-pending-compaction-bytes");
            // One cache shared by every column family: each reports the same figures.
            stats.block_cache_usage_bytes = prop("rocksdb.block-cache-usage");
            stats.block_cache_capacity_bytes = prop("rocksdb.block-cache-capacity");
        }
        stats
    }

    /// Number of fsync rounds the syncer completed.
    pub fn fsync_rounds(&self) -> u64 {
        self.syncer.rounds()
    }
}

/// Runs blocking RocksDB work off the tokio workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
