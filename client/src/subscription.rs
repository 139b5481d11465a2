//! [`PartitionStream`]: a partition's records pushed by a replica (`Broker.Subscribe`), within a
//! window of bytes this side grants: the server sends at most the window ahead of what the
//! caller consumed (plus the one record that crosses it), so a slow reader is never flooded.

use cairn_proto::v1::subscribe_request::Kind;
use cairn_proto::v1::{FetchedRecord, SubscribeRequest, SubscribeResponse, SubscribeStart};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::ClientError;

/// A subscription to one partition (see the module comment).
pub struct PartitionStream {
    credit: mpsc::Sender<SubscribeRequest>,
    answers: tonic::Streaming<SubscribeResponse>,
    addr: String,
    /// The serving replica's high watermark after the last batch.
    pub high_watermark: u64,
}

fn bytes_of(records: &[FetchedRecord]) -> u64 {
    records
        .iter()
        .map(|r| {
            (r.key.len() + r.value.len() + r.headers.iter().map(|h| h.key.len() + h.value.len()).sum::<usize>()) as u64
        })
        .sum()
}

impl PartitionStream {
    /// The next batch, without granting credit for it (see [`PartitionStream::grant`]). `None`
    /// when the server ended the stream without an error.
    ///
    /// # Errors
    /// The error the stream ended with (definite: the replica can no longer serve it) or a
    /// transport failure.
    pub async fn recv(&mut self) -> Option<Result<Vec<FetchedRecord>, ClientError>> {
        match self.answers.message().await {
            Ok(Some(r)) => {
                if let Some(e) = r.error {
                    return Some(Err(ClientError::from_detail(e)));
                }
                self.high_watermark = r.high_watermark;
                Some(Ok(r.records))
            }
            Ok(None) => None,
            Err(status) => Some(Err(ClientError::from_status(&self.addr, status))),
        }
    }

    /// Lets the server send `bytes` more.
    pub async fn grant(&self, bytes: u64) {
        let _ = self.credit.send(SubscribeRequest { kind: Some(Kind::CreditBytes(bytes)) }).await;
    }

    /// The next batch; its bytes are granted again at once (the window stays the same).
    ///
    /// # Errors
    /// As [`PartitionStream::recv`].
    pub async fn next(&mut self) -> Option<Result<Vec<FetchedRecord>, ClientError>> {
        let batch = self.recv().await;
        if let Some(Ok(records)) = &batch {
            self.grant(bytes_of(records).max(1)).await;
        }
        batch
    }
}

impl Client {
    /// Subscribes to `topic`/`partition` from `offset` on a replica of it (the leader known to
    /// this client), with `window_bytes` of records in flight at most (0: the server's fetch
    /// limit).
    ///
    /// # Errors
    /// UNKNOWN_TOPIC and the replica's refusal; exhausted retries opening the stream.
    pub async fn subscribe(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        window_bytes: u64,
    ) -> Result<PartitionStream, ClientError> {
        let (topic_id, _) = self.topic(topic).await?;
        let addr = self.partition_target(topic, partition);
        let ch = self.channel_to(&addr)?;
        let (tx, rx) = mpsc::channel(16);
        let start = SubscribeStart { topic: topic.to_string(), partition, topic_id, offset, window_bytes };
        tx.send(SubscribeRequest { kind: Some(Kind::Start(start)) })
            .await
            .map_err(|_| ClientError::InvalidArgument("subscription closed".into()))?;
        let answers = self
            .broker(ch)
            .subscribe(ReceiverStream::new(rx))
            .await
            .map_err(|s| ClientError::from_status(&addr, s))?
            .into_inner();
        Ok(PartitionStream { credit: tx, answers, addr, high_watermark: 0 })
    }
}
