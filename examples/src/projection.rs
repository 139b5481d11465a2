//! A CQRS read model: the `shop` topic's order events (keyed by customer) projected into SQLite
//! (`customers`: orders and money spent per customer) by a consumer group member.
//!
//! ```text
//!  poll ─► one SQLite transaction: skip records below the stored offset of their partition,
//!          update the model, store next offset ─► COMMIT ─► (then, informational) group commit
//! ```
//!
//! The offsets that count are the ones in SQLite, committed in the same transaction as the
//! model: a crash at any point leaves the two consistent, and records delivered again (the
//! group's commit lags) are skipped by offset. Exactly-once effect, no broker transactions.
//! A rebuild drops the model and its offsets and resets the group to the start of the topic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::consumer::{Consumer, ConsumerConfig, Subscription, TopicPartition};
use cairn_client::{Client, OffsetCommitPartition, OffsetSpec, Producer, ProducerConfig, Record, RecordExt};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// The projector's consumer group.
pub const GROUP: &str = "cqrs-projection";

/// One event of the shop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderPlaced { order: String, amount: i64 },
    OrderRefunded { order: String, amount: i64 },
}

/// One customer's row of the read model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub orders: i64,
    pub spent: i64,
}

fn fold(model: &mut BTreeMap<String, Row>, customer: &str, e: &Event) {
    let row = model.entry(customer.to_string()).or_default();
    match e {
        Event::OrderPlaced { amount, .. } => {
            row.orders += 1;
            row.spent += amount;
        }
        Event::OrderRefunded { amount, .. } => {
            row.orders -= 1;
            row.spent -= amount;
        }
    }
}

/// Opens (creating if needed) the read model's database.
///
/// # Errors
/// SQLite errors.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let db = Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS customers (customer TEXT PRIMARY KEY, orders INTEGER NOT NULL, spent INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                                             PRIMARY KEY (topic, partition));",
    )?;
    Ok(db)
}

/// The next offset the model needs of each partition of `topic`.
fn stored_offsets(db: &Connection, topic: &str) -> anyhow::Result<BTreeMap<u32, u64>> {
    let mut q = db.prepare("SELECT partition, next_offset FROM offsets WHERE topic = ?1")?;
    let rows = q.query_map([topic], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The whole read model.
///
/// # Errors
/// SQLite errors.
pub fn model(db: &Connection) -> anyhow::Result<BTreeMap<String, Row>> {
    let mut q = db.prepare("SELECT customer, orders, spent FROM customers")?;
    let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, Row { orders: r.get(1)?, spent: r.get(2)? })))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies polled records in ONE transaction with their offsets; returns how many were new.
fn project(
    db: &mut Connection,
    topic: &str,
    records: &[cairn_client::consumer::ConsumerRecord],
) -> anyhow::Result<usize> {
    let tx = db.transaction()?;
    let mut next = stored_offsets(&tx, topic)?;
    let mut applied = 0;
    for r in records {
        if r.offset < next.get(&r.partition).copied().unwrap_or(0) {
            continue; // delivered again: already in the model
        }
        next.insert(r.partition, r.offset + 1);
        let (Ok(customer), Ok(e)) = (std::str::from_utf8(&r.key), serde_json::from_slice::<Event>(&r.value)) else {
            continue;
        };
        let (orders, spent) = match e {
            Event::OrderPlaced { amount, .. } => (1, amount),
            Event::OrderRefunded { amount, .. } => (-1, -amount),
        };
        tx.execute(
            "INSERT INTO customers (customer, orders, spent) VALUES (?1, ?2, ?3)
             ON CONFLICT (customer) DO UPDATE SET orders = orders + ?2, spent = spent + ?3",
            params![customer, orders, spent],
        )?;
        applied += 1;
    }
    for (p, n) in &next {
        tx.execute(
            "INSERT INTO offsets (topic, partition, next_offset) VALUES (?1, ?2, ?3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = ?3",
            params![topic, p, *n as i64],
        )?;
    }
    tx.commit()?;
    Ok(applied)
}

/// Runs the projector; with `until_caught_up`, returns once the model holds every record that
/// was in the topic when it started (else runs until stopped).
///
/// # Errors
/// SQLite errors; consumer errors no retry cures.
pub async fn run(client: Arc<Client>, topic: &str, db_path: &Path, until_caught_up: bool) -> anyhow::Result<()> {
    let mut db = open(db_path)?;
    let mut ends = BTreeMap::new();
    for p in 0..client.partition_count(topic).await? {
        ends.insert(p, client.list_offsets(topic, p, OffsetSpec::Latest).await?.offset);
    }
    let cfg = ConsumerConfig { auto_commit: false, ..ConsumerConfig::new(GROUP) };
    let mut consumer = Consumer::subscribe(client.clone(), cfg, Subscription::Topics(vec![topic.to_string()])).await?;
    let mut sought: Vec<TopicPartition> = Vec::new();
    loop {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        let applied = tokio::task::block_in_place(|| project(&mut db, topic, &records))?;
        if applied > 0 {
            tracing::debug!(applied, "projected");
        }
        let stored = tokio::task::block_in_place(|| stored_offsets(&db, topic))?;
        // Newly assigned partitions continue from the model's offsets, not the group's.
        for tp in consumer.assignment() {
            if !sought.contains(&tp) {
                if let Some(&next) = stored.get(&tp.partition) {
                    if consumer.position(&tp).is_some_and(|p| p < next) {
                        consumer.seek(&tp, next)?;
                    }
                }
                sought.push(tp);
            }
        }
        sought.retain(|tp| consumer.assignment().contains(tp));
        // The group's offsets follow the model's (for lag and for a restart's starting point).
        let commits: Vec<(TopicPartition, u64)> =
            consumer.assignment().into_iter().filter_map(|tp| stored.get(&tp.partition).map(|n| (tp, *n))).collect();
        if !commits.is_empty() && applied > 0 {
            if let Err(e) = consumer.commit_offsets(&commits).await {
                tracing::warn!(error = %e, "group commit failed (the model's own offsets are what count)");
            }
        }
        if until_caught_up && ends.iter().all(|(p, end)| stored.get(p).copied().unwrap_or(0) >= *end) {
            consumer.close().await?;
            return Ok(());
        }
    }
}

/// Drops the model and its offsets, and moves the group back to the start of `topic`: the
/// next run rebuilds everything. The projector must be stopped (the group empty).
///
/// # Errors
/// SQLite errors; the group still has members.
pub async fn reset(client: &Client, topic: &str, db_path: &Path) -> anyhow::Result<()> {
    let db = open(db_path)?;
    db.execute_batch("DELETE FROM customers; DELETE FROM offsets;")?;
    let (topic_id, partitions) = client.topic(topic).await?;
    let offsets = (0..partitions)
        .map(|partition| OffsetCommitPartition {
            topic: topic.to_string(),
            topic_id,
            partition,
            offset: 0,
            metadata: String::new(),
        })
        .collect();
    client.alter_offsets(GROUP, offsets).await?;
    Ok(())
}

/// The model a fold over the whole topic gives (what the read model must equal).
///
/// # Errors
/// Reads that fail.
pub async fn fold_topic(client: &Client, topic: &str) -> anyhow::Result<BTreeMap<String, Row>> {
    let mut m = BTreeMap::new();
    for (_, r) in crate::log::read_topic(client, topic).await? {
        if let (Ok(c), Ok(e)) = (std::str::from_utf8(&r.key), serde_json::from_slice::<Event>(&r.value)) {
            fold(&mut m, c, &e);
        }
    }
    Ok(m)
}

/// Appends `count` shop events (about one refund in ten) for customers `c-0` to `c-{customers}`.
///
/// # Errors
/// Appends that fail.
pub async fn generate(client: Arc<Client>, topic: &str, count: u64, customers: u64, seed: u64) -> anyhow::Result<()> {
    let producer = Producer::new(client, ProducerConfig::default()).await?;
    let mut pending = Vec::new();
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    for n in 0..count {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let customer = format!("c-{}", (x >> 33) % customers.max(1));
        let amount = 1 + ((x >> 20) % 500) as i64;
        let order = format!("o-{seed}-{n}");
        let e = if (x >> 40) % 10 == 0 {
            Event::OrderRefunded { order, amount }
        } else {
            Event::OrderPlaced { order, amount }
        };
        pending.push(producer.send(topic, None, Record::keyed(customer, serde_json::to_vec(&e)?)).await?);
    }
    for d in pending {
        d.await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::consumer::ConsumerRecord;

    fn rec(partition: u32, offset: u64, customer: &str, e: &Event) -> ConsumerRecord {
        ConsumerRecord {
            topic: "shop".into(),
            topic_id: 1,
            partition,
            offset,
            key: customer.as_bytes().to_vec().into(),
            value: serde_json::to_vec(e).expect("json").into(),
            headers: Vec::new(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn records_delivered_again_are_projected_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = open(&dir.path().join("model.db")).expect("open");
        let placed = Event::OrderPlaced { order: "o1".into(), amount: 30 };
        let refund = Event::OrderRefunded { order: "o1".into(), amount: 30 };
        let batch = [rec(0, 0, "c1", &placed), rec(1, 0, "c1", &placed), rec(0, 1, "c2", &placed)];
        assert_eq!(project(&mut db, "shop", &batch).expect("project"), 3);
        // A redelivery of offsets 0-1 of partition 0 (the group commit lagged), then new ones.
        let again = [rec(0, 0, "c1", &placed), rec(0, 1, "c2", &placed), rec(0, 2, "c1", &refund)];
        assert_eq!(project(&mut db, "shop", &again).expect("project"), 1);
        let m = model(&db).expect("model");
        assert_eq!(m["c1"], Row { orders: 1, spent: 30 });
        assert_eq!(m["c2"], Row { orders: 1, spent: 30 });
        assert_eq!(stored_offsets(&db, "shop").expect("offsets"), BTreeMap::from([(0, 3), (1, 1)]));
    }
}
