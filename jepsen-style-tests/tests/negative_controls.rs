//! The suite must be able to fail: nodes broken on purpose (hidden fault switches) must be
//! reported with the matching anomaly.

mod common;

fn count(anomalies: &serde_json::Value, kinds: &[&str]) -> u64 {
    kinds.iter().map(|k| anomalies[k].as_u64().unwrap_or(0)).sum()
}

/// Whether a fault is caught is a matter of the schedule and timing: a reader must poll an
/// isolated leader's uncommitted tail, a dropped answer must land on a batch in flight. Each
/// control gets up to three runs, with new seeds, to show its anomaly; all three clean fails.
fn caught(args: &[&str], kinds: &[&str]) {
    let mut seen = Vec::new();
    for attempt in 1..=3 {
        let store = tempfile::tempdir().expect("tempdir");
        let common::Run { code, anomalies: a, .. } = common::run(store.path(), args);
        if code == 1 && count(&a, kinds) > 0 {
            return;
        }
        eprintln!("attempt {attempt}: exit {code}, none of {kinds:?} reported; trying another seed");
        seen.push(format!("exit {code}: {a}"));
    }
    panic!("the broken node was never caught in 3 runs: {seen:#?}");
}

#[test]
fn disabled_deduplication_is_reported_as_duplicates() {
    caught(
        &["--nemesis", "none", "--workload", "idempotent", "--time-limit", "25", "--fault", "no-dedup"],
        &["duplicate"],
    );
}

#[test]
fn acknowledging_before_commit_is_reported_as_lost_writes() {
    if !common::root_with_iptables() {
        eprintln!("SKIPPED: this control isolates leaders with iptables (needs root)");
        return;
    }
    caught(
        &["--nemesis", "partition", "--time-limit", "45", "--fault", "ack-before-commit"],
        &["lost-write", "unseen"],
    );
}

#[test]
fn serving_fetches_above_the_high_watermark_is_reported() {
    if !common::root_with_iptables() {
        eprintln!("SKIPPED: this control isolates leaders with iptables (needs root)");
        return;
    }
    // Readers saw records the isolated leader never committed; other records later took
    // those offsets.
    caught(
        &["--nemesis", "partition", "--time-limit", "45", "--fault", "fetch-above-hw"],
        &["inconsistent-offsets", "aborted-read", "duplicate", "unexpected"],
    );
}

/// Not in CI: the fault shows only when a batch in doubt is retried through the lagging node,
/// which the client's routing makes rare (about half the one-minute runs catch it; recorded in
/// docs/consistency.md). Run with `cargo test -p cairn-jepsen --test negative_controls --
/// --ignored`.
#[test]
#[ignore = "probabilistic: about half the runs trigger the fault (docs/consistency.md)"]
fn trusting_a_lagging_brokers_refusal_of_a_retry_is_reported() {
    if !common::root_with_iptables() {
        eprintln!("SKIPPED: this control cuts a node off the controller with iptables (needs root)");
        return;
    }
    // The behaviour before in-doubt tracking, on both sides: a node that does not know a new
    // topic yet refuses definitely, and producers believe it about batches whose first attempt
    // may have landed (then reuse their sequence numbers).
    caught(
        &[
            "--nemesis",
            "stale-broker",
            "--workload",
            "topics",
            "--time-limit",
            "60",
            "--producers",
            "8",
            "--fault",
            "definite-unknown-topic",
            // More answers lost: more batches in doubt when a retry meets the lagging node.
            "--fault",
            "drop-produce-responses=0.3",
            "--client-fault",
            "trust-retry-refusals",
        ],
        &["aborted-read", "duplicate", "inconsistent-offsets", "lost-write", "unseen", "idempotence"],
    );
}

#[test]
fn serving_another_topic_incarnation_is_reported() {
    if !common::root_with_iptables() {
        eprintln!("SKIPPED: this control partitions five nodes with iptables (needs root)");
        return;
    }
    // Replicas ignore the topic id, as before ids: the minority that still runs the deleted
    // incarnation acknowledges and serves records meant for the new one.
    caught(
        &[
            "--nemesis",
            "recreate",
            "--workload",
            "topics",
            "--nodes",
            "5",
            "--time-limit",
            "45",
            "--fault",
            "ignore-topic-id",
        ],
        &[
            "lost-write",
            "unseen",
            "duplicate",
            "inconsistent-offsets",
            "lost-on-node",
            "nonmonotonic-poll",
            "poll-skip",
        ],
    );
}

#[test]
fn serving_damaged_records_unverified_is_reported() {
    // Reads skip every checksum (RocksDB's and each entry's own) and the scrubber is off (the
    // suite turns it off with this switch): bytes the `corrupt` nemesis flipped in a replica's
    // blob and SST files reach readers.
    caught(
        &["--nemesis", "corrupt", "--workload", "idempotent", "--time-limit", "60", "--fault", "skip-fetch-checksum"],
        &["altered-record", "replica-divergence", "lost-on-node"],
    );
}

#[test]
fn committing_before_processing_is_reported_as_committed_lost() {
    // Members commit what a poll returned before recording it; a member killed in between
    // leaves records below the committed offset that nobody processed.
    caught(
        &[
            "--nemesis",
            "none",
            "--workload",
            "group",
            "--time-limit",
            "40",
            "--client-fault",
            "commit-before-processing",
        ],
        &["committed-lost"],
    );
}

#[test]
fn handing_out_partitions_before_their_revocation_is_reported_as_double_owners() {
    caught(
        &["--nemesis", "none", "--workload", "group", "--time-limit", "40", "--fault", "skip-revoke"],
        &["double-owner"],
    );
}

#[test]
fn a_coordinator_forgetting_offsets_on_failover_is_reported_as_commit_regression() {
    // The group's coordinator must fail over (a kill of its node) for the fault to show.
    caught(
        &["--nemesis", "kill", "--workload", "group", "--time-limit", "45", "--fault", "forget-offsets-on-load"],
        &["commit-regression"],
    );
}

#[test]
fn a_registry_forgetting_its_state_on_failover_is_reported() {
    // The registry's leader must change (a kill of its node) for the fault to show: the new
    // leader starts empty and hands out ids and versions again.
    caught(
        &["--nemesis", "kill", "--workload", "registry", "--time-limit", "45", "--fault", "forget-registry-on-load"],
        &["registry-lost", "registry-id-conflict", "registry-version-order", "registry-stale-read"],
    );
}

#[test]
fn a_coordinator_ignoring_added_partitions_is_reported_as_partitions_never_polled() {
    // The run grows the topic from 4 to 6 partitions; the coordinators keep assigning 4.
    caught(
        &["--nemesis", "none", "--workload", "group", "--time-limit", "45", "--fault", "ignore-new-partitions"],
        &["partition-never-polled"],
    );
}

#[test]
fn a_replica_truncated_past_its_checkpoint_is_reported() {
    // Node 2 alone removes one record more than retention allows at every truncation.
    caught(
        &[
            "--nemesis",
            "none",
            "--workload",
            "retention",
            "--time-limit",
            "30",
            "--fault",
            "truncate-past-checkpoint=2",
        ],
        &["replica-divergence", "log-start-regression", "read-below-log-start"],
    );
}

#[test]
fn a_node_ignoring_acls_is_reported_as_denied_writes() {
    // A secured run denies the workload's writes now and then; these nodes let them through.
    caught(
        &["--nemesis", "none", "--workload", "idempotent", "--time-limit", "35", "--tls", "--fault", "ignore-acls"],
        &["denied-write"],
    );
}

#[test]
fn nodes_appending_conditional_batches_unchecked_are_reported_as_conflicts() {
    // Writers race on four keys; these nodes append every racer, so two records of a key expect
    // the same offset.
    caught(
        &["--nemesis", "none", "--workload", "conditional", "--time-limit", "20", "--fault", "ignore-conditions"],
        &["conditional-conflict"],
    );
}

#[test]
fn nodes_ignoring_quotas_are_reported_as_over_quota() {
    // A secured run floods a topic as a principal held to a quota; these nodes admit it all.
    caught(
        &["--nemesis", "none", "--workload", "queue", "--time-limit", "25", "--tls", "--fault", "ignore-quotas"],
        &["over-quota"],
    );
}
