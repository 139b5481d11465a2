//! One fetch loop per owned partition: long-poll fetches from the partition's position into the
//! consumer's bounded queue (back-pressure: a full queue stops fetching). Each loop belongs to a
//! *generation*; batches of an older generation (a partition given up, sought or paused since)
//! are dropped by `poll`.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::FetchedRecord;
use tokio::sync::mpsc;

use super::TopicPartition;
use crate::error::ClientError;
use crate::Client;

/// What one fetch brought, or why the loop stopped.
pub(crate) struct Batch {
    pub tp: TopicPartition,
    pub generation: u64,
    pub result: Result<Vec<FetchedRecord>, ClientError>,
}

/// Starts fetching `tp` from `from`.
pub(crate) fn spawn(
    client: Arc<Client>,
    tp: TopicPartition,
    from: u64,
    generation: u64,
    tx: mpsc::Sender<Batch>,
    max_bytes: u32,
    wait: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pos = from;
        let wait_ms = wait.as_millis() as u32;
        loop {
            let fetched = client.fetch_incarnation(&tp.topic, tp.topic_id, tp.partition, pos, max_bytes, wait_ms).await;
            match fetched {
                Ok(r) => {
                    let Some(last) = r.records.last() else { continue };
                    pos = last.offset + 1;
                    let batch = Batch { tp: tp.clone(), generation, result: Ok(r.records) };
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                }
                // Out of range (the consumer applies its reset policy), a deleted incarnation, or
                // anything else no retry cures: the consumer decides.
                Err(e) if !e.is_retriable() => {
                    let _ = tx.send(Batch { tp: tp.clone(), generation, result: Err(e) }).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
}
