//! Retention decisions of a partition leader: pure functions of the applied progress, the
//! checkpoint summaries and the clock (docs/architecture.md, "Retention").
//!
//! ```text
//!  leader, every check interval:
//!    segment full or old ─► propose Checkpoint          (a new truncation point)
//!    newest checkpoint C whose records may all go ─► propose PrefixTruncate{C}
//!  every replica, after applying PrefixTruncate{C}:
//!    snapshot at C ─► purge the log up to C (the record bytes leave RocksDB)
//! ```
//!
//! Each rule allows a prefix of the checkpoints (sizes, running maximum timestamps and offsets
//! all grow with the index), so the newest checkpoint any rule allows is the truncation point:
//! truncation is always a prefix of the log, never a hole.

use crate::storage::checkpoints::CheckpointSummary;
use crate::storage::Progress;
use crate::types::LogId;

/// The effective retention of one partition (topic settings over the cluster defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Records whose timestamps are all older than this may go (`None`: no time limit).
    pub retention_ms: Option<u64>,
    /// Keep at least this many record bytes and remove older ones beyond it (`None`: no limit).
    pub retention_bytes: Option<u64>,
    /// A new checkpoint (truncation point) once this many record bytes arrived since the last.
    pub segment_bytes: u64,
    /// ... or once the records since the last checkpoint are this old.
    pub segment_ms: u64,
}

/// Whether the leader should propose a checkpoint now.
pub fn wants_checkpoint(p: &Progress, policy: &RetentionPolicy, now_ms: i64) -> bool {
    if p.bytes_since_checkpoint == 0 {
        return false;
    }
    let age = now_ms.saturating_sub(p.stats.checkpoint_time_ms);
    p.bytes_since_checkpoint >= policy.segment_bytes || age >= i64::try_from(policy.segment_ms).unwrap_or(i64::MAX)
}

/// The newest checkpoint whose records may all go, if it is past the current retention point.
/// `summaries` are oldest first.
pub fn truncation_point(
    p: &Progress,
    summaries: &[CheckpointSummary],
    policy: &RetentionPolicy,
    now_ms: i64,
) -> Option<LogId> {
    let after_current = |s: &&CheckpointSummary| p.retention_point.is_none_or(|r| s.log_id.index > r.index);
    let allowed = |s: &CheckpointSummary| {
        // Removing everything up to s keeps `bytes_total - s.bytes_total`: at least the limit.
        let by_size = policy
            .retention_bytes
            .is_some_and(|limit| p.stats.bytes_total.saturating_sub(s.stats.bytes_total) >= limit);
        let by_time = policy.retention_ms.is_some_and(|limit| {
            let cutoff = now_ms.saturating_sub(i64::try_from(limit).unwrap_or(i64::MAX));
            s.stats.max_timestamp_ms < cutoff
        });
        // Records below the log start (DeleteRecords) are gone already; free their bytes.
        let deleted = s.next_offset <= p.log_start_offset;
        by_size || by_time || deleted
    };
    summaries.iter().filter(after_current).take_while(|s| allowed(s)).last().map(|s| s.log_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LogStats;

    fn lid(index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    fn cp(index: u64, next_offset: u64, bytes_total: u64, max_ts: i64) -> CheckpointSummary {
        CheckpointSummary {
            log_id: lid(index),
            next_offset,
            stats: LogStats { bytes_total, max_timestamp_ms: max_ts, ..LogStats::default() },
        }
    }

    fn progress(bytes_total: u64, retention_point: Option<u64>, log_start: u64) -> Progress {
        Progress {
            high_watermark: 1_000,
            log_start_offset: log_start,
            applied_index: Some(100),
            retention_point: retention_point.map(lid),
            bytes_since_checkpoint: 0,
            stats: LogStats { bytes_total, ..LogStats::default() },
            key_index_keys: 0,
        }
    }

    const NONE: RetentionPolicy =
        RetentionPolicy { retention_ms: None, retention_bytes: None, segment_bytes: 100, segment_ms: 60_000 };

    #[test]
    fn size_keeps_at_least_the_limit_and_removes_whole_segments_only() {
        let cps = [cp(10, 100, 100, 0), cp(20, 200, 200, 0), cp(30, 300, 300, 0)];
        let policy = RetentionPolicy { retention_bytes: Some(150), ..NONE };
        // 350 bytes: removing up to 20 keeps 150 (allowed), up to 30 keeps 50 (not).
        assert_eq!(truncation_point(&progress(350, None, 0), &cps, &policy, 0), Some(lid(20)));
        assert_eq!(truncation_point(&progress(240, None, 0), &cps, &policy, 0), None);
        // Already truncated at 20: nothing newer is allowed yet.
        assert_eq!(truncation_point(&progress(350, Some(20), 0), &cps, &policy, 0), None);
        assert_eq!(truncation_point(&progress(450, Some(20), 0), &cps, &policy, 0), Some(lid(30)));
    }

    #[test]
    fn time_uses_the_running_maximum_so_a_future_timestamp_holds_everything_before_it() {
        let cps = [cp(10, 100, 100, 1_000), cp(20, 200, 200, 9_000), cp(30, 300, 300, 9_000)];
        let policy = RetentionPolicy { retention_ms: Some(1_000), ..NONE };
        assert_eq!(truncation_point(&progress(400, None, 0), &cps, &policy, 5_000), Some(lid(10)));
        assert_eq!(truncation_point(&progress(400, None, 0), &cps, &policy, 10_001), Some(lid(30)));
        assert_eq!(truncation_point(&progress(400, None, 0), &cps, &policy, 1_500), None);
    }

    #[test]
    fn deleted_records_free_the_checkpoints_at_or_below_the_log_start() {
        let cps = [cp(10, 100, 100, 0), cp(20, 200, 200, 0)];
        assert_eq!(truncation_point(&progress(300, None, 150), &cps, &NONE, 0), Some(lid(10)));
        assert_eq!(truncation_point(&progress(300, None, 200), &cps, &NONE, 0), Some(lid(20)));
        assert_eq!(truncation_point(&progress(300, None, 99), &cps, &NONE, 0), None);
    }

    #[test]
    fn a_checkpoint_is_wanted_for_a_full_or_old_segment_with_records() {
        let mut p = progress(0, None, 0);
        assert!(!wants_checkpoint(&p, &NONE, 1_000_000), "nothing since the last one");
        p.bytes_since_checkpoint = 99;
        assert!(!wants_checkpoint(&p, &NONE, 1_000));
        p.bytes_since_checkpoint = 100;
        assert!(wants_checkpoint(&p, &NONE, 1_000));
        p.bytes_since_checkpoint = 1;
        p.stats.checkpoint_time_ms = 1_000;
        assert!(!wants_checkpoint(&p, &NONE, 60_999));
        assert!(wants_checkpoint(&p, &NONE, 61_000));
    }
}
