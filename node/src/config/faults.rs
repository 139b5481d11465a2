//! Test-only fault switches (hidden `--fault` flag / `CAIRN_FAULTS`). They break the node on
//! purpose so that tests and the fault-injection suite can prove they notice; all are off by
//! default and a node running with any of them logs a warning at start.

use super::error::ConfigError;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability of dropping a produce response after the batch committed (the client sees
    /// an unknown outcome and retries).
    pub drop_produce_responses: f64,
    /// Idempotent producer batches are not deduplicated.
    pub no_dedup: bool,
    /// Produce is acknowledged when proposed, before it commits (guessed offsets).
    pub ack_before_commit: bool,
    /// Fetch serves entries of the local log that are not applied (maybe never committed).
    pub fetch_above_hw: bool,
    /// A topic this node does not know is UNKNOWN_TOPIC (definite, not retriable) even when the
    /// request names an incarnation, as before topic ids: a lagging node's refusal looks final.
    pub definite_unknown_topic: bool,
    /// Topic ids are neither checked (requests resolve by name) nor reported in answers, as
    /// before topic ids: a replica of a deleted incarnation serves requests meant for the new one.
    pub ignore_topic_id: bool,
    /// Fetch serves stored records without verifying checksums (RocksDB's and each entry's
    /// own), so damaged bytes reach the client: the negative control of the `corrupt` nemesis.
    pub skip_fetch_checksum: bool,
    /// The data directory's free space is read from the file `cairn-fake-free-bytes` in it
    /// (when present) instead of the filesystem: tests simulate a filling disk.
    pub fake_free_space: bool,
    /// Group coordinators give a revoked partition to its new owner at once, without waiting
    /// for the old owner to give it up: the negative control of `double-owner`.
    pub skip_revoke: bool,
    /// Group coordinators forget committed offsets when they load (failover): the negative
    /// control of `commit-regression`.
    pub forget_offsets_on_load: bool,
    /// Group coordinators keep each topic's partition count as they first saw it: partitions
    /// added later are never assigned (the negative control of `partition-never-polled`).
    pub ignore_new_partitions: bool,
    /// On this node id only, retention truncates one record past each checkpoint: the
    /// negative control of the retention workload (replicas disagree on the log start).
    pub truncate_past_checkpoint: Option<u64>,
    /// ACLs are not checked (everything is allowed) even with `[auth] acls` on: the negative
    /// control of the fault suite's `denied-write`.
    pub ignore_acls: bool,
    /// Byte-rate quotas are not enforced (every principal unlimited) even with `[quotas]` set:
    /// the negative control of the fault suite's `over-quota`.
    pub ignore_quotas: bool,
    /// Conditional appends are appended without checking their condition: the negative
    /// control of the fault suite's `conditional-conflict`.
    pub ignore_conditions: bool,
    /// The schema registry forgets what `__schemas` holds when it loads (a new leader starts
    /// empty): the negative control of the fault suite's `registry` checker.
    pub forget_registry_on_load: bool,
}

impl Faults {
    /// Parses `NAME[=VALUE]` switches.
    ///
    /// # Errors
    /// Unknown switches and bad values.
    pub fn parse(specs: &[String]) -> Result<Faults, ConfigError> {
        let mut f = Faults::default();
        for spec in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let (name, value) = spec.split_once('=').map_or((spec, None), |(n, v)| (n, Some(v)));
            let bad = |m: &str| ConfigError::Invalid { key: "fault", message: format!("{spec:?}: {m}") };
            match (name, value) {
                ("drop-produce-responses", Some(v)) => {
                    let p: f64 = v.parse().map_err(|_| bad("expected a probability"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad("probability must be within 0..=1"));
                    }
                    f.drop_produce_responses = p;
                }
                ("no-dedup", None) => f.no_dedup = true,
                ("ack-before-commit", None) => f.ack_before_commit = true,
                ("fetch-above-hw", None) => f.fetch_above_hw = true,
                ("definite-unknown-topic", None) => f.definite_unknown_topic = true,
                ("ignore-topic-id", None) => f.ignore_topic_id = true,
                ("skip-fetch-checksum", None) => f.skip_fetch_checksum = true,
                ("fake-free-space", None) => f.fake_free_space = true,
                ("skip-revoke", None) => f.skip_revoke = true,
                ("forget-offsets-on-load", None) => f.forget_offsets_on_load = true,
                ("forget-registry-on-load", None) => f.forget_registry_on_load = true,
                ("ignore-new-partitions", None) => f.ignore_new_partitions = true,
                ("ignore-acls", None) => f.ignore_acls = true,
                ("ignore-quotas", None) => f.ignore_quotas = true,
                ("ignore-conditions", None) => f.ignore_conditions = true,
                ("truncate-past-checkpoint", Some(v)) => {
                    f.truncate_past_checkpoint = Some(v.parse().map_err(|_| bad("expected a node id"))?);
                }
                _ => return Err(bad("unknown fault switch")),
            }
        }
        Ok(f)
    }

    pub fn any(&self) -> bool {
        *self != Faults::default()
    }
}
