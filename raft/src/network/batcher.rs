//! Coalesces small Raft messages to one peer node (the heartbeats of idle groups) into one
//! `Batch` RPC, so a thousand idle partitions cost a few frames per heartbeat interval rather
//! than a thousand.
//!
//! ```text
//!  group A heartbeat ─┐
//!  group B heartbeat ─┼─► bounded queue ─► [batcher task] take all queued (≤ BATCH_MAX)
//!  group C heartbeat ─┘                          └─► Batch RPC (≤ IN_FLIGHT at once) ─► replies in order
//! ```
//! The task never waits to gather more: batching comes from messages queuing while earlier
//! batches are in flight. Each message is still delivered to its own group's Raft.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::peer::raft_transport_client::RaftTransportClient;
use cairn_proto::peer::{RaftBatch, RaftReply, RaftRequest};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::transport::Channel;

/// Messages waiting for a batch; a full queue makes senders wait (back-pressure).
const QUEUE_MAX: usize = 8192;
/// Messages per batch RPC.
const BATCH_MAX: usize = 1024;
/// Batch RPCs in flight per peer node.
const IN_FLIGHT: usize = 4;

/// Why a coalesced message got no reply.
pub(crate) enum BatchError {
    Timeout,
    Transport(String),
}

struct Pending {
    req: RaftRequest,
    ttl: Duration,
    reply: oneshot::Sender<Result<RaftReply, BatchError>>,
}

/// Handle to one peer node's batcher task.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the batcher task for the node behind `channel`. Must run inside a tokio runtime.
    pub fn spawn(channel: Channel, message_bytes_max: usize) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        tokio::spawn(run(channel, message_bytes_max, rx));
        Batcher { tx }
    }

    /// Sends `req` in the next batch; waits at most `ttl` for its reply.
    pub async fn send(&self, req: RaftRequest, ttl: Duration) -> Result<RaftReply, BatchError> {
        let (reply, rx) = oneshot::channel();
        let queued = tokio::time::timeout(ttl, self.tx.send(Pending { req, ttl, reply })).await;
        match queued {
            Err(_) => return Err(BatchError::Timeout),
            Ok(Err(_)) => return Err(BatchError::Transport("batcher stopped".into())),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout(ttl, rx).await {
            Err(_) => Err(BatchError::Timeout),
            Ok(Err(_)) => Err(BatchError::Transport("batch dropped".into())),
            Ok(Ok(r)) => r,
        }
    }
}

async fn run(channel: Channel, message_bytes_max: usize, mut rx: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let client = RaftTransportClient::new(channel)
        .max_decoding_message_size(message_bytes_max)
        .max_encoding_message_size(message_bytes_max);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let mut client = client.clone();
        tokio::spawn(async move {
            let ttl = batch.iter().map(|p| p.ttl).max().unwrap_or(Duration::from_secs(1));
            let (requests, replies): (Vec<RaftRequest>, Vec<_>) = batch.into_iter().map(|p| (p.req, p.reply)).unzip();
            let mut call = tonic::Request::new(RaftBatch { requests });
            call.set_timeout(ttl);
            let res = tokio::time::timeout(ttl, client.batch(call)).await;
            drop(permit);
            match res {
                Ok(Ok(resp)) => {
                    let answers = resp.into_inner().replies;
                    if answers.len() != replies.len() {
                        let why = format!("batch answered {} of {} messages", answers.len(), replies.len());
                        for r in replies {
                            let _ = r.send(Err(BatchError::Transport(why.clone())));
                        }
                        return;
                    }
                    for (r, a) in replies.into_iter().zip(answers) {
                        let _ = r.send(Ok(a));
                    }
                }
                Ok(Err(status)) => {
                    for r in replies {
                        let _ = r.send(Err(BatchError::Transport(status.message().to_string())));
                    }
                }
                Err(_) => {
                    for r in replies {
                        let _ = r.send(Err(BatchError::Timeout));
                    }
                }
            }
        });
    }
}
