//! Free space of the data directory, checked before writing rather than discovered from a
//! failed write: below `[storage] free_space_min_bytes` the node refuses produce requests
//! (RESOURCE_EXHAUSTED, naming the node and the free space) and its replicas refuse new log
//! entries from their leaders (the leader carries on with the other replicas and retries), while
//! reads, votes and heartbeats go on. Above it again, everything resumes by itself.
//!
//! A background task measures every 200 ms; the checks read the last measurement.
//!
//! It also notes when space *returns* (free space rises back above what RocksDB needs to flush
//! its memtables): a disk that filled anyway (a floor of 0, or a filler faster than the check)
//! left RocksDB refusing writes and replicas stopped; RocksDB recovers by itself once it has
//! that room, and the supervisor then restarts the stopped replicas without waiting out its
//! backoff.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(200);
/// With the `fake-free-space` fault switch, free bytes are read from this file in the data
/// directory (tests simulate a filling disk without filling one).
pub const FAKE_FILE: &str = "cairn-fake-free-bytes";

/// The node's view of its data directory's free space.
pub struct DiskGuard {
    node: u64,
    floor: u64,
    free: AtomicU64,
    low: AtomicBool,
    /// Free space RocksDB needs to flush its memtables (and so to recover from a full disk).
    flush_room: u64,
    short: AtomicBool,
    /// Times free space rose back to `flush_room` after falling below it.
    returns: AtomicU64,
}

impl DiskGuard {
    fn new(node: u64, floor: u64, flush_room: u64) -> DiskGuard {
        DiskGuard {
            node,
            floor,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
            flush_room,
            short: AtomicBool::new(false),
            returns: AtomicU64::new(0),
        }
    }

    /// A guard that never refuses (tests of other parts, a floor of 0).
    pub fn unlimited(node: u64) -> Arc<DiskGuard> {
        Arc::new(DiskGuard::new(node, 0, 0))
    }

    /// Starts measuring `dir` (a fake value from [`FAKE_FILE`] when `fake`). Writes are refused
    /// below `floor`; `flush_room` is the space RocksDB needs to flush its memtables.
    pub fn spawn(
        node: u64,
        dir: PathBuf,
        floor: u64,
        flush_room: u64,
        fake: bool,
    ) -> (Arc<DiskGuard>, tokio::task::JoinHandle<()>) {
        let guard = Arc::new(DiskGuard::new(node, floor, flush_room));
        let g = guard.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let d = dir.clone();
                match tokio::task::spawn_blocking(move || measure(&d, fake)).await {
                    Ok(Ok(free)) => g.update(free),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot measure the data directory's free space"),
                    Err(e) => tracing::warn!(error = %e, "free-space task failed"),
                }
            }
        });
        (guard, task)
    }

    fn update(&self, free: u64) {
        self.free.store(free, Ordering::Relaxed);
        let short = free < self.flush_room.max(self.floor);
        if self.short.swap(short, Ordering::Relaxed) && !short {
            self.returns.fetch_add(1, Ordering::Relaxed);
        }
        let low = free < self.floor;
        if self.low.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::warn!(free, floor = self.floor, "free space below the floor: refusing writes, serving reads");
            } else {
                tracing::info!(free, floor = self.floor, "free space above the floor again: taking writes");
            }
        }
    }

    /// Free bytes at the last measurement (`u64::MAX` before the first).
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Free bytes as reported to others: 0 before the first measurement (unknown).
    pub fn reported_free_bytes(&self) -> u64 {
        match self.free_bytes() {
            u64::MAX => 0,
            free => free,
        }
    }

    /// The floor below which writes are refused (0: no floor).
    pub fn floor_bytes(&self) -> u64 {
        self.floor
    }

    /// How many times free space came back (see the module comment): a change tells the
    /// supervisor to restart stopped replicas now.
    pub fn space_returns(&self) -> u64 {
        self.returns.load(Ordering::Relaxed)
    }

    /// Why this node must not take writes now, if it must not (the broker answers
    /// STORAGE_FULL with it).
    pub fn refusal(&self) -> Option<String> {
        self.low.load(Ordering::Relaxed).then(|| {
            format!(
                "node {} has {} bytes free in its data directory, below its floor of {} bytes",
                self.node,
                self.free.load(Ordering::Relaxed),
                self.floor
            )
        })
    }
}

fn measure(dir: &std::path::Path, fake: bool) -> std::io::Result<u64> {
    if fake {
        if let Ok(text) = std::fs::read_to_string(dir.join(FAKE_FILE)) {
            return text.trim().parse().map_err(std::io::Error::other);
        }
    }
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_floor_writes_are_refused_and_resume_above_it() {
        let g = DiskGuard::new(2, 100, 400);
        assert!(g.refusal().is_none());
        g.update(99);
        let e = g.refusal().expect("below the floor");
        assert!(e.contains("node 2 has 99 bytes free"), "{e}");
        g.update(100);
        assert!(g.refusal().is_none());
        assert_eq!(g.space_returns(), 0, "not yet room for a flush");
        g.update(400);
        assert_eq!(g.space_returns(), 1);
        g.update(500);
        assert_eq!(g.space_returns(), 1, "counted once per return");
        assert!(measure(std::path::Path::new("/"), false).expect("statvfs") > 0);
    }
}
