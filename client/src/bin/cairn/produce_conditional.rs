//! `cairn produce TOPIC --expect-offset N | --expect-key-offset N|none`: every input record in
//! ONE batch, appended only if the condition holds when the broker applies it (optimistic
//! concurrency). All or nothing: on OFFSET_MISMATCH nothing is appended and the error says
//! where the partition (or the key) is now, so a script can read and try again.

use std::sync::Arc;

use cairn_client::partitioner::partition_for_key;
use cairn_client::{Client, ClientError, Condition, KeyState, Record};
use serde_json::json;

use crate::output::Output;

/// Input records one conditional batch takes at most (it is one request).
pub const RECORDS_MAX: usize = 10_000;

/// `--expect-key-offset`: the key's last record at this offset, or None (no record yet). A type
/// of its own: clap reads a bare `Option<Option<_>>` as a flag with an optional value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyExpectation(pub Option<u64>);

/// Parses `--expect-key-offset`: an offset, or `none` (no record with the key yet).
pub fn parse_key_offset(s: &str) -> Result<KeyExpectation, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(KeyExpectation(None));
    }
    s.parse::<u64>().map(|o| KeyExpectation(Some(o))).map_err(|_| format!("{s:?} is neither an offset nor \"none\""))
}

/// Sends `records` as one conditional batch to `topic` (partition `partition`, else the key's).
pub async fn run(
    client: Arc<Client>,
    topic: &str,
    partition: Option<u32>,
    records: Vec<Record>,
    condition: Condition,
    out: &Output,
) -> anyhow::Result<()> {
    anyhow::ensure!(!records.is_empty(), "no input records: a conditional append needs at least one");
    anyhow::ensure!(
        records.len() <= RECORDS_MAX,
        "a conditional append is one batch of at most {RECORDS_MAX} records; the input has more"
    );
    let key = records[0].key.clone();
    if condition.expected_key_offset.is_some() {
        anyhow::ensure!(!key.is_empty(), "--expect-key-offset needs a record key (-k, -K or --input json)");
        if let Some(i) = records.iter().position(|r| r.key != key) {
            anyhow::bail!("--expect-key-offset needs one key for every record; input record {} has another", i + 1);
        }
    }
    let count = client.partition_count(topic).await?;
    let partition = match partition {
        Some(p) => p,
        None if !key.is_empty() && records.iter().all(|r| r.key == key) => partition_for_key(&key, count),
        None => anyhow::bail!("a conditional append goes to one partition: give -p, or one key for every record"),
    };
    let n = records.len() as u64;
    match client.produce_conditional(topic, partition, records, condition).await {
        Ok(ack) => {
            if out.json {
                out.value(
                    &json!({"topic": topic, "partition": partition, "base_offset": ack.base_offset, "records": n}),
                );
            } else {
                out.line(&format!(
                    "{topic}/{partition}: {n} record(s) at offsets {} to {}",
                    ack.base_offset,
                    ack.base_offset + n - 1
                ));
            }
            Ok(())
        }
        Err(e) => Err(explain(topic, partition, &e)),
    }
}

/// The error, with where the partition and the key are now for a mismatch.
fn explain(topic: &str, partition: u32, e: &ClientError) -> anyhow::Error {
    let Some(m) = e.mismatch() else { return anyhow::anyhow!("{e}") };
    let key = match m.key_offset {
        Some(KeyState::At(o)) => {
            format!("; the key's last record is at offset {o} (retry with --expect-key-offset {o})")
        }
        Some(KeyState::NoRecord) => "; the key has no record yet (retry with --expect-key-offset none)".into(),
        Some(KeyState::Forgotten { upto }) => format!(
            "; the partition's key index no longer holds the key (its last record, if any, is at or below {upto}): \
             read the partition, then append with --expect-offset"
        ),
        None => String::new(),
    };
    anyhow::anyhow!("not appended: {topic}/{partition} is at end offset {}{key} [OFFSET_MISMATCH]", m.end_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_offsets_parse_as_offsets_or_none() {
        assert_eq!(parse_key_offset("none"), Ok(KeyExpectation(None)));
        assert_eq!(parse_key_offset("NONE"), Ok(KeyExpectation(None)));
        assert_eq!(parse_key_offset("17"), Ok(KeyExpectation(Some(17))));
        assert!(parse_key_offset("-1").is_err());
        assert!(parse_key_offset("latest").is_err());
    }
}
