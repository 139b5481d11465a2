//! Frees the disk space of purged log entries.
//!
//! A purge is one range delete: RocksDB drops the entries (and learns which blobs became garbage)
//! only when a compaction passes over them, and with small keys and record bytes in blob files
//! the `log` column family rarely compacts by itself. So every purge asks this thread to compact
//! the purged prefix; requests are gathered for [`GAP`] and each group's range compacted once.
//! The compaction flushes the memtable holding the range delete, drops the deleted keys, deletes
//! blob files left wholly garbage, and lets blob GC move the live blobs out of the oldest files.
//!
//! ```text
//!  LogStore::purge(g, upto) ─► try_send (bounded; a full queue drops it, the next purge asks again)
//!  [cairn-compactor] gather for GAP ─► per group: compact_range(log, [g 0, g upto])
//! ```

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::DB;

use super::keys::{self, CF_LOG};
use crate::ids::GroupId;

/// Requests waiting for the thread.
const QUEUE: usize = 1024;
/// How long requests are gathered before a round of compactions.
const GAP: Duration = Duration::from_secs(2);

/// The sending side, owned by the database.
pub(crate) struct Compactor {
    /// `None` only while dropping: closing it ends the thread.
    tx: Option<SyncSender<(GroupId, u64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread; dropping the compactor ends it and waits for it.
    pub(crate) fn start(rocks: Arc<DB>) -> std::io::Result<Compactor> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new().name("cairn-compactor".into()).spawn(move || run(&rocks, &rx))?;
        Ok(Compactor { tx: Some(tx), thread: Some(thread) })
    }

    /// Asks for the log of `group` up to and including `upto` to be compacted away.
    pub(crate) fn purged(&self, group: GroupId, upto: u64) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send((group, upto)) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => tracing::warn!(group, "log compactor thread is gone"),
        }
    }
}

impl Drop for Compactor {
    /// Waits for the thread: it holds the database open (its `Arc`), and a reopen of the same
    /// directory right after a drop (a restart in one process) must find RocksDB's lock released.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rocks: &DB, rx: &Receiver<(GroupId, u64)>) {
    while let Ok(first) = rx.recv() {
        let mut pending: BTreeMap<GroupId, u64> = BTreeMap::from([first]);
        let until = Instant::now() + GAP;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok((g, upto)) => {
                    let e = pending.entry(g).or_insert(upto);
                    *e = (*e).max(upto);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(cf) = rocks.cf_handle(CF_LOG) else { return };
        for (group, upto) in pending {
            let from = keys::log(group, 0);
            let to = keys::log(group, upto.saturating_add(1));
            rocks.compact_range_cf(cf, Some(&from[..]), Some(&to[..]));
        }
    }
}
