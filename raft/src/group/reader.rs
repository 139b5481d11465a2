//! Reads committed records by offset: idx CF (base offset → raft index) then the log entry.
//! Runs on the blocking pool; everything below the high watermark is immutable, so no lock is
//! needed against concurrent applies.

use cairn_proto::peer::RecordBatch;
use cairn_proto::v1::FetchedRecord;
use openraft::EntryPayload;
use prost::Message;
use rocksdb::ReadOptions;

use crate::error::GroupError;
use crate::ids::GroupId;
use crate::storage::codec::decode;
use crate::storage::keys::{self, CF_IDX, CF_LOG};
use crate::storage::{BatchLocation, Db, StoreError};
use crate::types::{Command, Entry, ProduceBatch};

/// Approximate wire size of a record, for the fetch byte budget.
fn record_size(r: &FetchedRecord) -> usize {
    32 + r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len() + 8).sum::<usize>()
}

/// Whether reads verify checksums: always, except under the fault-injection switch
/// `skip-fetch-checksum` (a negative control of the `corrupt` nemesis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verify(pub bool);

fn load_batch(
    db: &Db,
    group: GroupId,
    loc: &BatchLocation,
    verify: Verify,
) -> Result<Option<(ProduceBatch, Vec<cairn_proto::v1::Record>)>, GroupError> {
    let mut ro = ReadOptions::default();
    ro.set_verify_checksums(verify.0);
    let raw = db
        .rocks()
        .get_pinned_cf_opt(db.cf(CF_LOG)?, keys::log(group, loc.raft_index), &ro)
        .map_err(StoreError::rocks("get log entry"))?;
    let Some(raw) = raw else {
        return Ok(None); // removed by retention after we looked the batch up
    };
    let entry: Entry = crate::storage::legacy::log_entry(&raw, verify.0)?;
    let EntryPayload::Normal(Command::Produce(mut p)) = entry.payload else {
        return Err(StoreError::Corrupt {
            group,
            message: format!("idx points at non-produce entry {}", loc.raft_index),
        }
        .into());
    };
    let ordinal = loc.ordinal as usize;
    if ordinal >= p.batches.len() {
        return Err(StoreError::Corrupt {
            group,
            message: format!("idx ordinal {ordinal} past entry {}", loc.raft_index),
        }
        .into());
    }
    let batch = p.batches.swap_remove(ordinal);
    let records = RecordBatch::decode(batch.records.clone())
        .map_err(|source| GroupError::CorruptBatch { raft_index: loc.raft_index, source })?
        .records;
    Ok(Some((batch, records)))
}

fn batch_iter<'a>(db: &'a Db, group: GroupId, below: u64) -> Result<rocksdb::DBRawIterator<'a>, GroupError> {
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(keys::batch(group, 0).to_vec());
    ro.set_iterate_upper_bound(keys::batch(group, below).to_vec());
    Ok(db.rocks().raw_iterator_cf_opt(db.cf(CF_IDX)?, ro))
}

fn location(group: GroupId, key: &[u8], value: &[u8]) -> Result<(u64, BatchLocation), GroupError> {
    let base =
        keys::batch_base_offset(key).ok_or_else(|| StoreError::Corrupt { group, message: "bad idx key".into() })?;
    Ok((base, decode("batch location", value)?))
}

/// Records from `from` (inclusive) up to `high_watermark` (exclusive), stopping once
/// `max_bytes` is reached; at least one record is returned when one exists.
pub(crate) fn read(
    db: &Db,
    group: GroupId,
    from: u64,
    max_bytes: usize,
    high_watermark: u64,
    verify: Verify,
) -> Result<Vec<FetchedRecord>, GroupError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut it = batch_iter(db, group, high_watermark)?;
    it.seek_for_prev(keys::batch(group, from));
    if !it.valid() {
        it.seek(keys::batch(group, from));
    }
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let (base, loc) = location(group, k, v)?;
        let Some((_, records)) = load_batch(db, group, &loc, verify)? else {
            break;
        };
        for (i, r) in records.into_iter().enumerate() {
            let offset = base + i as u64;
            if offset < from {
                continue;
            }
            if offset >= high_watermark {
                return Ok(out);
            }
            let rec = FetchedRecord {
                offset,
                key: r.key,
                value: r.value,
                headers: r.headers,
                timestamp_ms: if r.timestamp_ms == 0 { loc.append_time_ms } else { r.timestamp_ms },
            };
            let size = record_size(&rec);
            if !out.is_empty() && bytes + size > max_bytes {
                return Ok(out);
            }
            bytes += size;
            out.push(rec);
        }
        it.next();
    }
    it.status().map_err(StoreError::rocks("iterate idx"))?;
    Ok(out)
}

/// The first offset in `[log_start, high_watermark)` whose record timestamp is at or after
/// `ts_ms`, or `high_watermark` when there is none.
///
/// The checkpoints are the time index: each knows the largest timestamp up to it (a running
/// maximum, so it only grows), so every segment before the last checkpoint older than `ts_ms`
/// is skipped whole. Then batch summaries from there, then one batch.
pub(crate) fn offset_for_timestamp(
    db: &Db,
    group: GroupId,
    ts_ms: i64,
    log_start: u64,
    high_watermark: u64,
) -> Result<u64, GroupError> {
    let from = crate::storage::checkpoints::summaries(db, group)?
        .iter()
        .filter(|s| s.stats.max_timestamp_ms < ts_ms)
        .map(|s| s.next_offset)
        .max()
        .unwrap_or(0)
        .max(log_start);
    let mut it = batch_iter(db, group, high_watermark)?;
    // The batch holding `from` (a DeleteRecords may have put the log start inside one).
    it.seek_for_prev(keys::batch(group, from));
    if !it.valid() {
        it.seek(keys::batch(group, from));
    }
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let (base, loc) = location(group, k, v)?;
        if loc.max_timestamp_ms >= ts_ms && base + u64::from(loc.record_count) > from {
            if let Some((_, records)) = load_batch(db, group, &loc, Verify(true))? {
                for (i, r) in records.iter().enumerate() {
                    let t = if r.timestamp_ms == 0 { loc.append_time_ms } else { r.timestamp_ms };
                    if t >= ts_ms && base + i as u64 >= from {
                        return Ok(base + i as u64);
                    }
                }
            }
        }
        it.next();
    }
    it.status().map_err(StoreError::rocks("iterate idx"))?;
    Ok(high_watermark)
}

/// FAULT INJECTION (negative control `fetch-above-hw`): records of entries this replica has in
/// its log but has not applied (possibly uncommitted), with offsets guessed from the high
/// watermark. A correct replica never serves these.
pub(crate) fn read_unapplied(
    db: &Db,
    group: GroupId,
    applied_index: Option<u64>,
    high_watermark: u64,
    from: u64,
) -> Result<Vec<FetchedRecord>, GroupError> {
    let start = applied_index.map_or(0, |i| i + 1);
    let entries = crate::storage::log_store::read_entries(db, group, start, None, Some(1 << 20))?;
    let mut out = Vec::new();
    let mut offset = high_watermark;
    for e in entries {
        let EntryPayload::Normal(Command::Produce(p)) = e.payload else { continue };
        for b in p.batches {
            let records = RecordBatch::decode(b.records.clone())
                .map_err(|source| GroupError::CorruptBatch { raft_index: e.log_id.index, source })?
                .records;
            for r in records {
                if offset >= from {
                    out.push(FetchedRecord {
                        offset,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        timestamp_ms: p.append_time_ms,
                    });
                }
                offset += 1;
            }
        }
    }
    Ok(out)
}
