//! The durable-sequence marker: a node must never forget what it fsynced.
//!
//! RocksDB recovers its WAL up to the first damaged record and silently drops the rest (only its
//! own `LOG` says so), and a WAL cut at a record boundary looks like an intact one. Either way a
//! node would come up without entries it acknowledged to Raft: amnesia. So every fsync round
//! also records, in a small file beside the database, the RocksDB sequence number it makes
//! durable; at open, a database whose recovered sequence is below the marker lost fsynced writes
//! and is refused ([`super::StoreError::WalLost`]).
//!
//! ```text
//!  fsync round:  seq = latest_sequence_number() ─┬─► WAL fsync ───────────┐
//!                                                └─► marker(seq) + fsync ─┴─► acknowledge
//! ```
//!
//! The marker is written in parallel with the WAL fsync and the round completes when both have,
//! so it never names a sequence the WAL does not hold durably (a crash between the two leaves a
//! marker at most one round ahead of a WAL that then also failed its fsync, which aborts the
//! node; refusing that WAL is right). Two slots alternate, each with a CRC, so a torn write of
//! one leaves the other readable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

const SLOT: u64 = 512;
const MAGIC: u32 = 0x4341_4452; // "CADR"

/// Where the marker of the database in `db_dir` lives.
pub fn marker_path(db_dir: &Path) -> PathBuf {
    db_dir.join("CAIRN-DURABLE-SEQUENCE")
}

fn encode(round: u64, seq: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..12].copy_from_slice(&round.to_le_bytes());
    b[12..20].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&b[0..20]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < 24 || b[0..4] != MAGIC.to_le_bytes() {
        return None;
    }
    let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
    if crc32fast::hash(&b[0..20]) != crc {
        return None;
    }
    let round = u64::from_le_bytes(b[4..12].try_into().ok()?);
    let seq = u64::from_le_bytes(b[12..20].try_into().ok()?);
    Some((round, seq))
}

/// The durable sequence the marker at `path` names: 0 when there is none (a new database).
///
/// # Errors
/// I/O errors other than a missing file.
pub fn read_marker(path: &Path) -> io::Result<(u64, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let slots = [bytes.get(0..24), bytes.get(SLOT as usize..SLOT as usize + 24)];
    Ok(slots.into_iter().flatten().filter_map(decode).max().unwrap_or((0, 0)))
}

/// Writes markers on a thread of its own, so each write's fsync runs beside the WAL's.
pub struct MarkerWriter {
    to_thread: mpsc::SyncSender<u64>,
    /// Behind a lock only to be `Sync`: the syncer thread alone waits on it.
    from_thread: std::sync::Mutex<mpsc::Receiver<io::Result<()>>>,
}

impl MarkerWriter {
    /// Opens (creating) the marker at `path`, continuing from what it holds.
    ///
    /// # Errors
    /// The file cannot be opened or the thread not started.
    pub fn open(path: &Path) -> io::Result<MarkerWriter> {
        let (mut round, _) = read_marker(path)?;
        let file: File = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if file.metadata()?.len() < SLOT * 2 {
            file.set_len(SLOT * 2)?;
            file.sync_all()?;
        }
        let (to_thread, rx) = mpsc::sync_channel::<u64>(1);
        let (tx, from_thread) = mpsc::sync_channel::<io::Result<()>>(1);
        std::thread::Builder::new().name("cairn-marker".into()).spawn(move || {
            while let Ok(seq) = rx.recv() {
                round += 1;
                let slot = (round % 2) * SLOT;
                let res = file.write_all_at(&encode(round, seq), slot).and_then(|()| file.sync_data());
                if tx.send(res).is_err() {
                    return;
                }
            }
        })?;
        Ok(MarkerWriter { to_thread, from_thread: std::sync::Mutex::new(from_thread) })
    }

    /// Starts recording `seq` as durable; [`MarkerWriter::wait`] returns its outcome.
    pub fn start(&self, seq: u64) -> io::Result<()> {
        self.to_thread.send(seq).map_err(|_| io::Error::other("marker thread stopped"))
    }

    /// Waits for the write [`MarkerWriter::start`] began.
    pub fn wait(&self) -> io::Result<()> {
        let rx = self.from_thread.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv().map_err(|_| io::Error::other("marker thread stopped"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = marker_path(dir.path());
        assert_eq!(read_marker(&path).expect("missing is zero"), (0, 0));
        let w = MarkerWriter::open(&path).expect("open");
        for seq in [5, 9, 14] {
            w.start(seq).expect("start");
            w.wait().expect("written");
        }
        assert_eq!(read_marker(&path).expect("read").1, 14);
        drop(w);
        // Tear the newest slot (round 3 went to slot 1): the older one (seq 9) is still read.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.write_all_at(&[0xff; 8], SLOT + 8).expect("tear");
        assert_eq!(read_marker(&path).expect("read").1, 9);
        // A reopened writer continues after the newest round, so its next write wins.
        let w = MarkerWriter::open(&path).expect("reopen");
        w.start(20).expect("start");
        w.wait().expect("written");
        assert_eq!(read_marker(&path).expect("read").1, 20);
    }
}
