//! Dead letters: a payments consumer that retries a record whose processing fails, with
//! exponential backoff, and then routes it to `<topic>.dlq` with headers saying why and where
//! it came from (see [`cairn_client::dlq`]), so one bad record never blocks its partition.
//! `cairn dlq replay payments.dlq` sends dead letters back once the consumer is fixed.
//!
//! ```text
//!  poll ─► process ─ok─► output
//!             └─fail─► retry after 50, 100, 200 ms ─fail─► append to payments.dlq (+ headers),
//!                                                          acknowledged before the offset is committed
//! ```
//!
//! The commit of a partition's position happens only after its dead letters are acknowledged
//! (auto-commit counts records as processed at the next poll), so a crash never loses one:
//! at worst a dead letter is written twice.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, Subscription};
use cairn_client::{dlq, Client, Header, Producer, ProducerConfig, Record};
use serde::{Deserialize, Serialize};

/// A payment instruction (the records of the example's topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub amount: i64,
}

/// Tries of one record before it becomes a dead letter.
pub const ATTEMPTS: u32 = 3;
const BACKOFF_FIRST: Duration = Duration::from_millis(50);

/// Processes one record: a JSON payment with a positive amount. `lenient` (the "fixed"
/// consumer) also takes `poison:<id>` records, as payments of 0.
///
/// # Errors
/// Why the record cannot be processed.
pub fn process(value: &[u8], lenient: bool) -> Result<Payment, String> {
    if lenient {
        if let Some(id) = value.strip_prefix(b"poison:") {
            return Ok(Payment { id: String::from_utf8_lossy(id).into_owned(), amount: 0 });
        }
    }
    let p: Payment = serde_json::from_slice(value).map_err(|e| format!("not a payment: {e}"))?;
    if p.amount <= 0 {
        return Err(format!("payment {} has a non-positive amount {}", p.id, p.amount));
    }
    Ok(p)
}

/// The dead letter of `r`, failed `attempts` times with `reason`.
pub fn dead_letter(r: &ConsumerRecord, reason: &str, attempts: u32, now_ms: i64) -> Record {
    let mut headers = r.headers.clone();
    let h = |k: &str, v: String| Header { key: k.to_string(), value: v.into_bytes().into() };
    headers.extend([
        h(dlq::HEADER_REASON, reason.to_string()),
        h(dlq::HEADER_TOPIC, r.topic.clone()),
        h(dlq::HEADER_PARTITION, r.partition.to_string()),
        h(dlq::HEADER_OFFSET, r.offset.to_string()),
        h(dlq::HEADER_ATTEMPTS, attempts.to_string()),
        h(dlq::HEADER_FAILED_AT, now_ms.to_string()),
    ]);
    Record { key: r.key.clone(), value: r.value.clone(), headers, timestamp_ms: r.timestamp_ms }
}

/// Consumes `topic` as group `group`, printing one JSON line per processed payment (with where
/// it came from) and routing failures to `<topic>.dlq`. With `until_idle`, returns after a
/// poll that brought nothing (`idle` long).
///
/// # Errors
/// Dead letters that cannot be written; consumer errors no retry cures.
pub async fn consume(
    client: Arc<Client>,
    topic: &str,
    group: &str,
    lenient: bool,
    until_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let dlq_topic = dlq::dlq_topic(topic);
    crate::log::ensure_topic(&client, &dlq_topic, 1).await?;
    let producer =
        Producer::new(client.clone(), ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() });
    let producer = producer.await?;
    let mut consumer =
        Consumer::subscribe(client.clone(), ConsumerConfig::new(group), Subscription::Topics(vec![topic.to_string()]))
            .await?;
    let partitions = client.partition_count(topic).await?;
    loop {
        let records = consumer.poll(until_idle.unwrap_or(Duration::from_secs(1))).await?;
        if records.is_empty() && until_idle.is_some() && caught_up(&client, &consumer, partitions).await? {
            consumer.close().await?;
            return Ok(());
        }
        for r in records {
            let mut backoff = BACKOFF_FIRST;
            let mut outcome = process(&r.value, lenient);
            for _ in 1..ATTEMPTS {
                if outcome.is_ok() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                outcome = process(&r.value, lenient);
            }
            match outcome {
                Ok(p) => {
                    let from: Vec<String> = r
                        .headers
                        .iter()
                        .filter(|h| h.key == dlq::HEADER_REPLAYED_FROM)
                        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
                        .collect();
                    let line = serde_json::json!({"processed": p.id, "amount": p.amount, "partition": r.partition,
                                                  "offset": r.offset, "replayed_from": from.first()});
                    println!("{line}");
                }
                Err(reason) => {
                    tracing::warn!(topic, partition = r.partition, offset = r.offset, %reason, "dead letter");
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    let letter = dead_letter(&r, &reason, ATTEMPTS, now);
                    // Acknowledged before the next poll can commit this record's offset.
                    producer.send(&dlq_topic, None, letter).await?.await?;
                }
            }
        }
    }
}

/// Whether `consumer` owns all `partitions` of its topic and has read each to its end offset.
async fn caught_up(client: &Client, consumer: &Consumer, partitions: u32) -> anyhow::Result<bool> {
    let owned = consumer.assignment();
    if owned.len() < partitions as usize {
        return Ok(false);
    }
    for tp in owned {
        let end = client.list_offsets(&tp.topic, tp.partition, cairn_client::OffsetSpec::Latest).await?.offset;
        if consumer.position(&tp).is_none_or(|p| p < end) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_fails_unless_lenient_and_bad_amounts_fail() {
        assert_eq!(process(br#"{"id":"p1","amount":5}"#, false), Ok(Payment { id: "p1".into(), amount: 5 }));
        assert!(process(b"poison:p2", false).is_err());
        assert_eq!(process(b"poison:p2", true), Ok(Payment { id: "p2".into(), amount: 0 }));
        assert!(process(br#"{"id":"p3","amount":-1}"#, true).expect_err("non-positive").contains("non-positive"));
    }

    #[test]
    fn a_dead_letter_keeps_the_record_and_says_why_and_where() {
        let r = ConsumerRecord {
            topic: "payments".into(),
            topic_id: 9,
            partition: 2,
            offset: 41,
            key: "k".as_bytes().to_vec().into(),
            value: "poison:p".as_bytes().to_vec().into(),
            headers: vec![Header { key: "trace".into(), value: "t".as_bytes().to_vec().into() }],
            timestamp_ms: 7,
        };
        let d = dead_letter(&r, "not a payment", 3, 1_000);
        assert_eq!((d.key.clone(), d.value.clone(), d.timestamp_ms), (r.key.clone(), r.value.clone(), 7));
        let get =
            |k: &str| d.headers.iter().find(|h| h.key == k).map(|h| String::from_utf8_lossy(&h.value).into_owned());
        assert_eq!(get("trace").as_deref(), Some("t"));
        assert_eq!(get(dlq::HEADER_REASON).as_deref(), Some("not a payment"));
        assert_eq!(get(dlq::HEADER_TOPIC).as_deref(), Some("payments"));
        assert_eq!(get(dlq::HEADER_PARTITION).as_deref(), Some("2"));
        assert_eq!(get(dlq::HEADER_OFFSET).as_deref(), Some("41"));
        assert_eq!(get(dlq::HEADER_ATTEMPTS).as_deref(), Some("3"));
    }
}
