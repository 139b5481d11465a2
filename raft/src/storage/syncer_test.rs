//! The syncer's ordering contract: a callback completes only after an fsync that started after
//! it was queued, and never before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::*;

/// A WAL whose fsync blocks until the test releases it, recording how many fsyncs started.
struct GatedWal {
    started: AtomicU64,
    started_tx: Mutex<mpsc::Sender<u64>>,
    release_rx: Mutex<mpsc::Receiver<io::Result<()>>>,
}

impl WalSync for GatedWal {
    fn sync_wal(&self) -> io::Result<()> {
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.started_tx.lock().map(|tx| tx.send(n));
        self.release_rx
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("test released nothing")))
    }
}

struct Harness {
    syncer: Syncer,
    started_rx: mpsc::Receiver<u64>,
    release_tx: mpsc::Sender<io::Result<()>>,
    done_tx: mpsc::Sender<(&'static str, bool)>,
    done_rx: mpsc::Receiver<(&'static str, bool)>,
    fatal_rx: mpsc::Receiver<String>,
}

fn harness() -> Harness {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (fatal_tx, fatal_rx) = mpsc::channel();
    let fatal_tx = Mutex::new(fatal_tx);
    let wal = Arc::new(GatedWal {
        started: AtomicU64::new(0),
        started_tx: Mutex::new(started_tx),
        release_rx: Mutex::new(release_rx),
    });
    let on_fatal: FatalHook = Arc::new(move |e: &io::Error| {
        let _ = fatal_tx.lock().map(|tx| tx.send(e.to_string()));
    });
    let syncer = Syncer::start(wal, on_fatal, Arc::new(crate::storage::NoObserver)).expect("start syncer");
    let (done_tx, done_rx) = mpsc::channel();
    Harness { syncer, started_rx, release_tx, done_tx, done_rx, fatal_rx }
}

impl Harness {
    fn submit(&self, name: &'static str) {
        let tx = self.done_tx.clone();
        self.syncer.submit(Box::new(move |r| {
            let _ = tx.send((name, r.is_ok()));
        }));
    }

    fn wait_started(&self) -> u64 {
        self.started_rx.recv_timeout(Duration::from_secs(10)).expect("an fsync should start")
    }

    fn assert_nothing_completed(&self) {
        // The syncer thread is blocked inside fsync (we hold the gate), so nothing can legally
        // complete; `try_recv` observes the state without waiting on a guess.
        assert!(self.done_rx.try_recv().is_err(), "a callback completed before its fsync finished");
    }

    fn completed(&self) -> (&'static str, bool) {
        self.done_rx.recv_timeout(Duration::from_secs(10)).expect("callback should complete")
    }
}

#[test]
fn no_callback_completes_before_the_fsync_that_covers_it() {
    let h = harness();
    h.submit("a");
    assert_eq!(h.wait_started(), 1);
    // "b" is queued while fsync #1 is running: #1 may not cover it.
    h.submit("b");
    h.assert_nothing_completed();

    h.release_tx.send(Ok(())).expect("release #1");
    assert_eq!(h.completed(), ("a", true));
    // b needs a second fsync that started after it was queued.
    assert_eq!(h.wait_started(), 2);
    h.assert_nothing_completed();
    h.release_tx.send(Ok(())).expect("release #2");
    assert_eq!(h.completed(), ("b", true));
    assert_eq!(h.syncer.rounds(), 2);
}

#[test]
fn one_fsync_completes_every_callback_queued_before_it() {
    let h = harness();
    h.submit("first");
    assert_eq!(h.wait_started(), 1);
    for name in ["x", "y", "z"] {
        h.submit(name);
    }
    h.release_tx.send(Ok(())).expect("release #1");
    assert_eq!(h.completed(), ("first", true));
    assert_eq!(h.wait_started(), 2);
    h.release_tx.send(Ok(())).expect("release #2");
    let mut names: Vec<_> = (0..3).map(|_| h.completed().0).collect();
    names.sort();
    assert_eq!(names, vec!["x", "y", "z"]);
    assert_eq!(h.syncer.rounds(), 2, "x, y and z share one fsync");
}

#[test]
fn fsync_error_fails_pending_and_later_callbacks_and_is_never_retried() {
    let h = harness();
    h.submit("a");
    assert_eq!(h.wait_started(), 1);
    h.submit("b");
    h.release_tx.send(Err(io::Error::other("disk on fire"))).expect("fail #1");
    let mut got = vec![h.completed(), h.completed()];
    got.sort();
    assert_eq!(got, vec![("a", false), ("b", false)]);
    assert!(h.fatal_rx.recv_timeout(Duration::from_secs(10)).expect("fatal hook").contains("disk on fire"));
    h.submit("late");
    assert_eq!(h.completed(), ("late", false));
    assert!(h.started_rx.try_recv().is_err(), "no fsync may be retried after a failure");
    assert!(h.syncer.failure().is_some());
}

#[test]
fn a_sync_refused_for_lack_of_space_fails_its_callbacks_but_not_the_node() {
    let h = harness();
    h.submit("a");
    assert_eq!(h.wait_started(), 1);
    h.release_tx.send(Err(io::Error::new(io::ErrorKind::StorageFull, "no space"))).expect("refuse #1");
    assert_eq!(h.completed(), ("a", false));
    // Not fatal, not latched: the next round runs and succeeds.
    h.submit("b");
    assert_eq!(h.wait_started(), 2);
    h.release_tx.send(Ok(())).expect("release #2");
    assert_eq!(h.completed(), ("b", true));
    assert!(h.fatal_rx.try_recv().is_err(), "a refused sync must not stop the node");
    assert!(h.syncer.failure().is_none());
}

#[test]
fn drop_completes_queued_callbacks_with_a_final_fsync() {
    let h = harness();
    h.submit("a");
    assert_eq!(h.wait_started(), 1);
    h.submit("b");
    h.release_tx.send(Ok(())).expect("release #1");
    h.release_tx.send(Ok(())).expect("pre-release #2");
    let Harness { syncer, done_rx, .. } = h;
    drop(syncer);
    let mut got: Vec<_> = done_rx.try_iter().collect();
    got.sort();
    assert_eq!(got, vec![("a", true), ("b", true)]);
}
