//! Cairn as a load target: produce through the idempotent producer (durable acknowledgement),
//! consume by fetching, end to end by a consumer tailing what producers send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use super::{LoadResult, LoadSpec, SendFuture, Target};
use crate::{Client, OffsetSpec, Producer, Record};

/// Produce to `topic` (round-robin over its partitions); an op completes at the durable ack.
pub struct CairnProduce {
    pub producer: Arc<Producer>,
    pub topic: String,
}

impl Target for CairnProduce {
    fn send(&self, payload: Bytes) -> SendFuture {
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        Box::pin(async move {
            let delivery = producer
                .send(&topic, None, Record { value: payload, ..Record::default() })
                .await
                .map_err(|e| e.to_string())?;
            delivery.await.map(|_| ()).map_err(|e| e.to_string())
        })
    }

    fn retry_reasons(&self) -> Vec<(String, u64)> {
        self.producer.take_retry_reasons()
    }
}

/// Creates `topic` with `partitions` (replication factor from the cluster default) unless it
/// exists, waits until every partition has a leader, then until the leaders are the preferred
/// replicas: the rebalancer moves them there shortly after creation, and a measurement must
/// not include those elections.
///
/// # Errors
/// Creation failed or leaders were not elected within a minute.
pub async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> anyhow::Result<()> {
    if client.partition_count(topic).await.is_err() {
        client.create_topic(topic, partitions, 0, None).await?;
    }
    let start = Instant::now();
    loop {
        let d = client.describe_topic(topic).await?;
        let led = d.partitions.iter().all(|p| p.leader_node_id != 0);
        let settled = d.partitions.iter().all(|p| p.replica_node_ids.first() == Some(&p.leader_node_id));
        if settled {
            break;
        }
        if led && start.elapsed() > Duration::from_secs(20) {
            eprintln!("note: some partitions of {topic} are not led by their preferred replica; measuring anyway");
            break;
        }
        anyhow::ensure!(led || start.elapsed() < Duration::from_secs(60), "topic {topic} got no leaders");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.refresh_metadata().await?;
    Ok(())
}

/// Reads every partition of `topic` from offset 0 to its current end, one fetch of up to
/// 4 MiB at a time per partition, for at most `spec.duration`. Latency is per fetch.
///
/// # Errors
/// The topic's partitions or ends could not be listed, or a reader task panicked.
pub async fn read_topic(client: Arc<Client>, topic: &str, spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let parts = client.partition_count(topic).await?;
    let mut ends = Vec::new();
    for p in 0..parts {
        ends.push(client.list_offsets(topic, p, OffsetSpec::Latest).await?.offset);
    }
    let hist =
        Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("invariant: valid bounds")));
    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut tasks = Vec::new();
    for (p, end) in (0..parts).zip(ends) {
        let (client, topic, hist, records, bytes) =
            (client.clone(), topic.to_string(), hist.clone(), records.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut pos = 0u64;
            while pos < end && Instant::now() < deadline {
                let t = Instant::now();
                let Ok(r) = client.fetch(&topic, p, pos, 4 << 20, 0).await else { continue };
                let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).record(t.elapsed().as_micros().max(1) as u64);
                let Some(last) = r.records.last() else { continue };
                pos = last.offset + 1;
                records.fetch_add(r.records.len() as u64, Ordering::Relaxed);
                bytes.fetch_add(r.records.iter().map(|x| x.value.len() as u64).sum(), Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut r = LoadResult::from_histogram(spec, records.load(Ordering::Relaxed), 0, secs, &h);
    r.mb_per_s = bytes.load(Ordering::Relaxed) as f64 / secs / 1e6;
    Ok(r)
}
