//! The newest entries of one group's log, kept in memory so replication (which reads what was
//! just appended) does not go back to RocksDB for them. Bounded in bytes and entries; anything
//! older is read from disk as before.

use std::collections::VecDeque;

use openraft::EntryPayload;

use crate::types::{Command, Entry};

/// Bytes of entries kept per group.
pub const TAIL_CACHE_BYTES: usize = 256 << 10;
/// Entries kept per group.
pub const TAIL_CACHE_ENTRIES: usize = 128;

fn size_of(e: &Entry) -> usize {
    64 + match &e.payload {
        EntryPayload::Normal(Command::Produce(p)) => p.batches.iter().map(|b| b.records.len() + 32).sum(),
        EntryPayload::Normal(Command::Meta(m)) => m.len(),
        _ => 64,
    }
}

/// Contiguous entries `[first, first + len)`.
#[derive(Default)]
pub(crate) struct TailCache {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl TailCache {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn next(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index + 1)
    }

    /// Adds freshly appended entries (contiguous, in order). A batch that does not continue the
    /// cached tail replaces it.
    pub fn push(&mut self, entries: &[Entry]) {
        let Some(head) = entries.first() else { return };
        if self.next() != Some(head.log_id.index) {
            self.clear();
        }
        for e in entries {
            let s = size_of(e);
            self.entries.push_back((e.clone(), s));
            self.bytes += s;
        }
        while self.entries.len() > TAIL_CACHE_ENTRIES || (self.bytes > TAIL_CACHE_BYTES && self.entries.len() > 1) {
            if let Some((_, s)) = self.entries.pop_front() {
                self.bytes -= s;
            }
        }
    }

    /// Drops entries at `index` and after (a conflicting suffix was truncated).
    pub fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.log_id.index >= index) {
            if let Some((_, s)) = self.entries.pop_back() {
                self.bytes -= s;
            }
        }
    }

    /// Drops entries up to and including `index` (purged).
    pub fn purge_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.log_id.index <= index) {
            if let Some((_, s)) = self.entries.pop_front() {
                self.bytes -= s;
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries `[start, end)` if the cache holds `start` (up to `end` or the cache's end, at most
    /// `byte_cap` bytes but at least one entry); None when `start` is not cached.
    pub fn get(&self, start: u64, end: Option<u64>, byte_cap: Option<usize>) -> Option<Vec<Entry>> {
        let first = self.first()?;
        if start < first || start >= self.next()? {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for (e, s) in self.entries.iter().skip((start - first) as usize) {
            if end.is_some_and(|x| e.log_id.index >= x) {
                break;
            }
            if byte_cap.is_some_and(|cap| !out.is_empty() && bytes + s > cap) {
                break;
            }
            bytes += s;
            out.push(e.clone());
        }
        Some(out)
    }

    /// Whether the cache reaches `end` (exclusive) from `start`, so a bounded read is complete.
    pub fn covers(&self, start: u64, end: Option<u64>) -> bool {
        match (self.first(), self.next(), end) {
            (Some(f), Some(n), Some(e)) => start >= f && e <= n,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::types::LogId;

    fn blank(i: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), i), payload: EntryPayload::Blank }
    }

    #[test]
    fn serves_contiguous_ranges_and_forgets_what_changed() {
        let mut c = TailCache::default();
        c.push(&[blank(5), blank(6), blank(7)]);
        assert_eq!(c.get(6, Some(8), None).map(|v| v.len()), Some(2));
        assert!(c.get(4, None, None).is_none(), "below the cache");
        assert!(c.covers(5, Some(8)) && !c.covers(5, Some(9)));
        c.truncate_from(7);
        assert!(c.get(7, None, None).is_none());
        c.push(&[blank(9)]); // not contiguous: replaces the tail
        assert!(c.get(5, None, None).is_none());
        assert_eq!(c.get(9, None, None).map(|v| v.len()), Some(1));
        c.purge_to(9);
        assert!(c.get(9, None, None).is_none());
    }

    #[test]
    fn is_bounded() {
        let mut c = TailCache::default();
        let many: Vec<Entry> = (0..(TAIL_CACHE_ENTRIES as u64 + 10)).map(blank).collect();
        c.push(&many);
        assert_eq!(c.entries.len(), TAIL_CACHE_ENTRIES);
        assert!(c.get(0, None, None).is_none());
    }
}
