//! The sequence rules, against the table directly.

use super::*;

const DAY: i64 = 86_400_000;

fn b(pid: u64, epoch: u32, seq: u32) -> ProducerRef {
    ProducerRef { producer_id: pid, epoch, base_sequence: seq }
}

/// Applies like the state machine does: check, then record when accepted.
fn apply(t: &mut ProducerTable, p: ProducerRef, count: u32, next_offset: &mut u64) -> Verdict {
    let v = t.check(&p, count, DAY);
    if v == Verdict::Accept {
        t.record(&p, count, *next_offset, DAY);
        *next_offset += u64::from(count);
    }
    v
}

#[test]
fn in_order_batches_are_accepted_and_retries_return_the_original_offset() {
    let (mut t, mut off) = (ProducerTable::default(), 100);
    assert_eq!(apply(&mut t, b(7, 0, 0), 3, &mut off), Verdict::Accept); // seq 0..=2 at 100
    assert_eq!(apply(&mut t, b(7, 0, 3), 2, &mut off), Verdict::Accept); // seq 3..=4 at 103
    assert_eq!(apply(&mut t, b(7, 0, 0), 3, &mut off), Verdict::Duplicate { base_offset: 100 });
    assert_eq!(apply(&mut t, b(7, 0, 3), 2, &mut off), Verdict::Duplicate { base_offset: 103 });
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
        assert_eq!(apply(&mut t, b(1, 0, seq), 1, &mut off), Verdict::Duplicate { base_offset: u64::from(seq) });
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
    t.record(&b(9, 0, u32::MAX - 3), 2, 0, DAY); // seqs MAX-3..=MAX-2
    off += 2;
    assert_eq!(apply(&mut t, b(9, 0, u32::MAX - 1), 3, &mut off), Verdict::Accept); // MAX-1, MAX, 0
    assert_eq!(apply(&mut t, b(9, 0, 1), 1, &mut off), Verdict::Accept, "next after wrap is 1");
    assert_eq!(apply(&mut t, b(9, 0, u32::MAX - 1), 3, &mut off), Verdict::Duplicate { base_offset: 2 });
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
    assert_eq!(t.check(&b(5, 0, 2), 1, DAY), Verdict::Refuse(Refusal::UnknownProducer));
    assert_eq!(t.expire(DAY), vec![5]);
    assert!(t.producers.is_empty());
}

#[test]
fn producers_are_independent() {
    let (mut t, mut off) = (ProducerTable::default(), 0);
    assert_eq!(apply(&mut t, b(1, 0, 0), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(2, 0, 0), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(1, 0, 1), 1, &mut off), Verdict::Accept);
    assert_eq!(apply(&mut t, b(2, 0, 0), 1, &mut off), Verdict::Duplicate { base_offset: 1 });
}
