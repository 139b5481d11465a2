//! The node-wide WAL syncer: one fsync covers every group's appends.
//!
//! ```text
//!  group A append ─ write (no sync) ─┐
//!  group B append ─ write (no sync) ─┼─► pending callbacks ─► [syncer thread]
//!  group C append ─ write (no sync) ─┘       swap queue ─► flush_wal(sync) ─► complete exactly those
//! ```
//!
//! A callback is queued only after its write returned, so the fsync that starts after it was
//! taken from the queue covers its entries (RocksDB has one WAL for all column families). The
//! syncer never waits to gather more work: batching comes from the proposers. A callback is never
//! dropped. An fsync error fails every pending and later callback and calls the fatal hook: after
//! a WAL error RocksDB is read-only and an fsync must never be retried (the page cache may have
//! dropped the dirty pages, so a "successful" retry would lie).
//!
//! One failure is not an fsync failure: a sync *refused* ([`io::ErrorKind::StorageFull`]) because
//! a write to the WAL ran out of space (RocksDB then refuses to sync that WAL file at all). The
//! kernel's page cache is intact and nothing was lost; the pending callbacks fail (their groups
//! stop and are restarted), and later rounds go on once RocksDB has recovered on its own (it
//! flushes its memtables to new files and opens a new WAL when space returns).

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::observer::StorageObserver;

/// Completion of one flush request: `Ok` once the data written before it is on disk.
pub type FlushCallback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// What the syncer calls to make the WAL durable. RocksDB in production, a fake in tests.
pub trait WalSync: Send + Sync + 'static {
    fn sync_wal(&self) -> io::Result<()>;
}

/// Called once, on the syncer thread, when an fsync fails.
pub type FatalHook = Arc<dyn Fn(&io::Error) + Send + Sync>;

#[derive(Default)]
struct State {
    pending: Vec<FlushCallback>,
    failed: Option<String>,
    stopping: bool,
    /// Completed fsync rounds, for tests and metrics.
    rounds: u64,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Handle to the syncer thread. Dropping it drains the queue (with a final fsync) and joins.
pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the syncer thread.
    ///
    /// # Errors
    /// Fails when the OS cannot spawn a thread.
    pub fn start(wal: Arc<dyn WalSync>, on_fatal: FatalHook, observer: Arc<dyn StorageObserver>) -> io::Result<Syncer> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-syncer".into())
            .spawn(move || run(&worker, wal.as_ref(), &on_fatal, observer.as_ref()))?;
        Ok(Syncer { shared, thread: Some(thread) })
    }

    /// Queues `callback` to complete after the next fsync. Call it only after the write it
    /// covers has returned.
    pub fn submit(&self, callback: FlushCallback) {
        let mut st = lock(&self.shared.state);
        if let Some(err) = &st.failed {
            let err = io::Error::other(format!("earlier fsync failed: {err}"));
            drop(st);
            callback(Err(err));
            return;
        }
        st.pending.push(callback);
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Number of fsync rounds completed so far.
    pub fn rounds(&self) -> u64 {
        lock(&self.shared.state).rounds
    }

    /// The error of a failed fsync, if one happened.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.state).failed.clone()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding this lock can only come from a callback, which runs unlocked; recover
    // the guard rather than poisoning every later append.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(shared: &Shared, wal: &dyn WalSync, on_fatal: &FatalHook, observer: &dyn StorageObserver) {
    loop {
        let batch = {
            let mut st = lock(&shared.state);
            while st.pending.is_empty() && !st.stopping {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.pending.is_empty() {
                return; // stopping with nothing left
            }
            std::mem::take(&mut st.pending)
        };
        let started = Instant::now();
        match wal.sync_wal() {
            Ok(()) => {
                observer.fsync_round(started.elapsed(), batch.len());
                lock(&shared.state).rounds += 1;
                for cb in batch {
                    cb(Ok(()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                tracing::warn!(error = %e, "WAL sync refused for lack of space; failing the pending appends");
                for cb in batch {
                    cb(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL fsync failed; failing every pending append");
                let rest = {
                    let mut st = lock(&shared.state);
                    st.failed = Some(e.to_string());
                    std::mem::take(&mut st.pending)
                };
                for cb in batch.into_iter().chain(rest) {
                    cb(Err(io::Error::new(e.kind(), e.to_string())));
                }
                // Later submitters see `failed` and are failed at once by `submit`.
                on_fatal(&e);
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "syncer_test.rs"]
mod tests;
