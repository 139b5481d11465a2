//! The sequence rules, against the table directly.

use super::*;

const DAY: i64 = 86_400_000;
const LIMITS: ProducerLimits = ProducerLimits { expiry_ms: DAY, max: 1_000 };

fn b(pid: u64, epoch: u32, seq: u32) -> ProducerRef {
    ProducerRef { producer_id: pid, epoch, base_sequence: seq }
}

/// Applies like the state machine does: check, then record when accepted.
fn apply(t: &mut ProducerTable, p: ProducerRef, count: u32, next_offset: &mut u64) -> Verdict {
    let v = t.check(&p, count, &LIMITS);
    if v == Verdict::Accept {
        let at = t.clock_ms;
        t.record(&p, count, *next_offset, at, &LIMITS);
        *next_offset += u64::from(count);
    }
    v
}

/// A duplicate of a batch appended while the table's clock was 0.
fn dup(base_offset: u64) -> Verdict {
    Verdict::Duplicate { base_offset, append_time_ms: 0 }
}

#[test]
fn in_order_batches_are_accepted_and_retries_return_the_original_offset() {
    let (mut t, mut off) = (ProducerTable::default(), 100);
    assert_eq!(apply(&mut t, b(7, 0, 0), 3, &mut off), Verdict::Accept); // seq 0..=2 at 100
    assert_eq!(apply(&mut t, b(7, 0, 3), 2, &mut off), Verdict::Accept); // seq 3..=4 at 103
    assert_eq!(apply(&mut t, b(7, 0, 0), 3, &mut off), dup(100));
    assert_eq!(apply(&mut t, b(7, 0, 3), 2, &mut off), dup(103));
    assert_eq!(off, 105, "duplicates append nothing");
}

#[test]
fn a_gap_is_out_of_order_and_changes_nothing() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    apply(&mut t, b(1, 0, 0), 1, &mut off);
    let before = t.clone();
    assert_eq!(apply(&mut t, b(1, 0, 2), 1, &mut off), Verdict::Refuse(Refusal::OutOfOrder { expected: 1 }));
    assert_eq!(t, before);
    assert_eq!(apply(&mut t, b(1, 0, 1), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(1, 0, 2), 1, &mut off), Verdict::Accept);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    for seq in 0..7 {
        assert_eq!(apply(&mut t, b(1, 0, seq), 1, &mut off), Verdict::Accept);
    }
    // Batches 2..=6 are in the window: duplicates with their offsets.
    for seq in 2..7 {
        assert_eq!(apply(&mut t, b(1, 0, seq), 1, &mut off), dup(u64::from(seq)));
    }
    // Batches 0 and 1 fell out of the window: known old, offset no longer known.
    assert_eq!(apply(&mut t, b(1, 0, 0), 1, &mut off), Verdict::Refuse(Refusal::DuplicateOld));
    assert_eq!(apply(&mut t, b(1, 0, 1), 1, &mut off), Verdict::Refuse(Refusal::DuplicateOld));
    assert_eq!(off, 7);
}

#[test]
fn sequences_wrap_around() {
    let mut t = ProducerTable::default();
    let mut off = 0;
    // Start a producer near the top of the sequence space (as after ~4 billion records).
    t.record(&b(9, 0, u32::MAX - 3), 2, 0, 0, &LIMITS); // seqs MAX-3..=MAX-2
    off += 2;
    assert_eq!(apply(&mut t, b(9, 0, u32::MAX - 1), 3, &mut off), Verdict::Accept); // MAX-1, MAX, 0
    assert_eq!(apply(&mut t, b(9, 0, 1), 1, &mut off), Verdict::Accept, "next after wrap is 1");
    assert_eq!(apply(&mut t, b(9, 0, u32::MAX - 1), 3, &mut off), dup(2));
    assert_eq!(apply(&mut t, b(9, 0, 5), 1, &mut off), Verdict::Refuse(Refusal::OutOfOrder { expected: 2 }));
    assert_eq!(apply(&mut t, b(9, 0, u32::MAX - 10), 1, &mut off), Verdict::Refuse(Refusal::DuplicateOld));
}

#[test]
fn epochs_fence_old_instances_and_a_bump_restarts_sequences() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    apply(&mut t, b(4, 0, 0), 1, &mut off);
    apply(&mut t, b(4, 0, 1), 1, &mut off);
    // The new instance (epoch 1) must start at sequence 0.
    assert_eq!(apply(&mut t, b(4, 1, 2), 1, &mut off), Verdict::Refuse(Refusal::OutOfOrder { expected: 0 }));
    assert_eq!(apply(&mut t, b(4, 1, 0), 1, &mut off), Verdict::Accept);
    // The zombie (epoch 0) is fenced, whatever its sequence.
    assert_eq!(apply(&mut t, b(4, 0, 2), 1, &mut off), Verdict::Refuse(Refusal::Fenced { current_epoch: 1 }));
    assert_eq!(apply(&mut t, b(4, 0, 0), 1, &mut off), Verdict::Refuse(Refusal::Fenced { current_epoch: 1 }));
    assert_eq!(apply(&mut t, b(4, 1, 1), 1, &mut off), Verdict::Accept);
    assert_eq!(off, 4);
}

#[test]
fn unknown_producers_must_start_at_zero_and_expiry_uses_the_log_clock() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    assert_eq!(apply(&mut t, b(5, 0, 3), 1, &mut off), Verdict::Refuse(Refusal::UnknownProducer));
    t.tick(1_000);
    assert_eq!(apply(&mut t, b(5, 0, 0), 1, &mut off), Verdict::Accept);
    // Just within the expiry the producer is known; a leader clock that goes backwards does not
    // move the table's clock back.
    t.tick(1_000 + DAY);
    t.tick(500);
    assert_eq!(apply(&mut t, b(5, 0, 1), 1, &mut off), Verdict::Accept);
    // Idle for longer than the expiry: forgotten, and a later batch is UNKNOWN_PRODUCER.
    t.tick(1_000 + 3 * DAY);
    assert_eq!(t.check(&b(5, 0, 2), 1, &LIMITS), Verdict::Refuse(Refusal::UnknownProducer));
    assert_eq!(t.expire(DAY), vec![5]);
    assert!(t.producers.is_empty());
}

#[test]
fn producers_are_independent() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    assert_eq!(apply(&mut t, b(1, 0, 0), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(2, 0, 0), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(1, 0, 1), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(2, 0, 0), 1, &mut off), dup(1));
}

#[test]
fn a_retry_is_answered_with_the_original_append_time() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    t.tick(5_000);
    assert_eq!(apply(&mut t, b(3, 0, 0), 2, &mut off), Verdict::Accept);
    t.tick(9_000);
    assert_eq!(
        t.check(&b(3, 0, 0), 2, &LIMITS),
        Verdict::Duplicate { base_offset: 0, append_time_ms: 5_000 },
        "the retry reports when the batch was appended, not when it was retried"
    );
}

#[test]
fn at_the_cap_a_new_producer_evicts_the_one_idle_longest() {
    let limits = ProducerLimits { expiry_ms: DAY, max: 3 };
    let mut t = ProducerTable::default();
    for (pid, at) in [(10, 1_000), (11, 2_000), (12, 3_000)] {
        t.tick(at);
        assert_eq!(t.record(&b(pid, 0, 0), 1, pid, at, &limits), None);
    }
    // Producer 10 writes again: now 11 is the one idle longest.
    t.tick(4_000);
    assert_eq!(t.record(&b(10, 0, 1), 1, 20, 4_000, &limits), None);
    t.tick(5_000);
    assert_eq!(t.record(&b(13, 0, 0), 1, 21, 5_000, &limits), Some(11));
    assert_eq!(t.producers.keys().copied().collect::<Vec<_>>(), vec![10, 12, 13]);
    assert_eq!(t.check(&b(11, 0, 1), 1, &limits), Verdict::Refuse(Refusal::UnknownProducer));
    // The bound holds however many new producers arrive.
    for pid in 100..200 {
        t.tick(6_000 + pid as i64);
        t.record(&b(pid, 0, 0), 1, pid, 0, &limits);
        assert_eq!(t.producers.len(), 3);
    }
    // The derived index survives a round trip through the stored form.
    let back: ProducerTable = bincode::deserialize(&bincode::serialize(&t).expect("encode")).expect("decode");
    assert_eq!(back, t);
}

#[test]
fn expiry_takes_exactly_the_producers_idle_past_the_limit() {
    let mut t = ProducerTable::default();
    for (pid, at) in [(1, 0), (2, 10), (3, 20)] {
        t.tick(at);
        t.record(&b(pid, 0, 0), 1, pid, at, &LIMITS);
    }
    t.tick(DAY + 10);
    assert_eq!(t.expire(DAY), vec![1], "idle DAY + 10 > DAY; producer 2 is idle exactly DAY");
    assert_eq!(t.producers.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
}
