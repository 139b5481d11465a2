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
    tx: SyncSender<(GroupId, u64)>,
}

impl Compactor {
    /// Starts the thread; it ends when the compactor is dropped.
    pub(crate) fn start(rocks: Arc<DB>) -> std::io::Result<Compactor> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name("cairn-compactor".into()).spawn(move || run(&rocks, &rx))?;
        Ok(Compactor { tx })
    }

    /// Asks for the log of `group` up to and including `upto` to be compacted away.
    pub(crate) fn purged(&self, group: GroupId, upto: u64) {
        match self.tx.try_send((group, upto)) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => tracing::warn!(group, "log compactor thread is gone"),
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
