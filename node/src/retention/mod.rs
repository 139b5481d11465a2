//! Retention, node side: each topic's settings over the cluster defaults, and the [`sweeper`]
//! that makes partition leaders cut segments and truncate, and every replica free what was
//! truncated (docs/operations.md, "Retention").

pub mod sweeper;

use cairn_raft::group::retention::RetentionPolicy;

use crate::config::RetentionSection;
use crate::controller::state::Retention;

/// Where an effective setting comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Set on the topic.
    Topic,
    /// The cluster default (`[retention]` of the node's configuration).
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Topic => "topic",
            Source::Default => "default",
        }
    }
}

/// One effective setting: its value as the API shows it (-1 = no limit) and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub value: i64,
    pub source: Source,
}

/// A topic's effective `retention_ms` and `retention_bytes`.
pub fn effective(topic: &Retention, defaults: &RetentionSection) -> (Effective, Effective) {
    let pick = |own: i64, default: i64| match own {
        0 => Effective { value: default, source: Source::Default },
        v => Effective { value: v, source: Source::Topic },
    };
    (pick(topic.retention_ms, defaults.retention_ms), pick(topic.retention_bytes, defaults.retention_bytes))
}

/// The policy a leader applies to one partition of a topic with these settings.
pub fn policy(topic: &Retention, defaults: &RetentionSection) -> RetentionPolicy {
    let (ms, bytes) = effective(topic, defaults);
    let limit = |e: Effective| u64::try_from(e.value).ok().filter(|v| *v > 0);
    RetentionPolicy {
        retention_ms: limit(ms),
        retention_bytes: limit(bytes),
        segment_bytes: defaults.segment_bytes,
        segment_ms: defaults.segment_ms,
    }
}

/// Checks a topic's settings as a client sent them.
///
/// # Errors
/// A message naming the bad value.
pub fn check_topic_settings(r: &Retention) -> Result<(), String> {
    for (name, v) in [("retention_ms", r.retention_ms), ("retention_bytes", r.retention_bytes)] {
        if v < -1 {
            return Err(format!("{name} {v}: expected -1 (no limit), 0 (the cluster default) or a positive number"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_settings_override_the_defaults_and_minus_one_means_no_limit() {
        let defaults = RetentionSection { retention_ms: 1_000, retention_bytes: -1, ..RetentionSection::default() };
        let p = policy(&Retention { retention_ms: 0, retention_bytes: 0 }, &defaults);
        assert_eq!((p.retention_ms, p.retention_bytes), (Some(1_000), None));
        let p = policy(&Retention { retention_ms: -1, retention_bytes: 4_096 }, &defaults);
        assert_eq!((p.retention_ms, p.retention_bytes), (None, Some(4_096)));
        let (ms, bytes) = effective(&Retention { retention_ms: -1, retention_bytes: 0 }, &defaults);
        assert_eq!((ms.value, ms.source, bytes.value, bytes.source), (-1, Source::Topic, -1, Source::Default));
        assert!(check_topic_settings(&Retention { retention_ms: -2, retention_bytes: 0 }).is_err());
        assert!(check_topic_settings(&Retention { retention_ms: -1, retention_bytes: 1 }).is_ok());
    }
}
