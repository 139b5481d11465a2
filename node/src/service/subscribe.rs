//! `Broker.Subscribe`: push a partition's committed records from an offset, within the window of
//! bytes the client granted.
//!
//! ```text
//!  client: start{offset, window} ─► [task] credit = window
//!          credit{bytes} ──────────►   loop: credit > 0 ? long-poll fetch ≤ credit ─► records
//!                                            credit == 0 ? wait for credit
//!                                      error ─► last message carries it (definite) ─► end
//! ```

use std::time::Duration;

use cairn_proto::v1::subscribe_request::Kind;
use cairn_proto::v1::{SubscribeRequest, SubscribeResponse, SubscribeStart};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::access::Need;
use super::broker::{fetched_size, BrokerService};
use super::error::ServiceError;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::quota::Direction;

/// Messages queued for one subscriber (the window bounds the bytes in them).
const QUEUE: usize = 16;
/// Each long-poll of the replica waits at most this long before looking at credit again.
const WAIT: Duration = Duration::from_millis(500);

fn end_with(e: &ServiceError) -> SubscribeResponse {
    SubscribeResponse { error: Some(e.detail().1), ..SubscribeResponse::default() }
}

/// Serves one Subscribe stream.
pub fn serve(
    broker: BrokerService,
    principal: Principal,
    mut inbound: Streaming<SubscribeRequest>,
) -> mpsc::Receiver<Result<SubscribeResponse, Status>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let start = match inbound.message().await {
            Ok(Some(SubscribeRequest { kind: Some(Kind::Start(s)) })) => s,
            _ => {
                let e = ServiceError::InvalidArgument("a subscription starts with a start message".into());
                let _ = tx.send(Ok(end_with(&e))).await;
                return;
            }
        };
        if let Err(e) = run(&broker, &principal, start, &mut inbound, &tx).await {
            let _ = tx.send(Ok(end_with(&e))).await;
        }
    });
    rx
}

async fn run(
    broker: &BrokerService,
    principal: &Principal,
    start: SubscribeStart,
    inbound: &mut Streaming<SubscribeRequest>,
    tx: &mpsc::Sender<Result<SubscribeResponse, Status>>,
) -> Result<(), ServiceError> {
    // Checked at the start and before every read: a read ACL revoked mid-stream ends it.
    let may_read = || broker.access().require(principal, Need::One(Operation::Read, Resource::topic(&start.topic)));
    may_read()?;
    let (topic_id, group) = broker.local_replica(&start.topic, start.partition, start.topic_id)?;
    let fetch_max = broker.fetch_bytes_max() as u64;
    let mut credit = if start.window_bytes == 0 { fetch_max } else { start.window_bytes };
    let mut pos = start.offset;
    let grant = |msg: Result<Option<SubscribeRequest>, Status>, credit: &mut u64| -> Result<bool, ServiceError> {
        match msg {
            Ok(Some(SubscribeRequest { kind: Some(Kind::CreditBytes(b)) })) => {
                *credit = credit.saturating_add(b);
                Ok(true)
            }
            Ok(Some(_)) => Err(ServiceError::InvalidArgument("only credit messages may follow the start".into())),
            // The client closed its side or went away: the subscription ends.
            Ok(None) | Err(_) => Ok(false),
        }
    };
    loop {
        may_read()?;
        if !broker.serves_incarnation(&start.topic, topic_id) {
            return Err(ServiceError::UnknownTopicId {
                topic: start.topic.clone(),
                requested: topic_id,
                current: None,
            });
        }
        if credit == 0 {
            if !grant(inbound.message().await, &mut credit)? {
                return Ok(());
            }
            continue;
        }
        let max = credit.min(fetch_max) as usize;
        broker.throttle(principal, Direction::Fetch, 0).await?;
        let fetched = tokio::select! {
            r = group.fetch(pos, max, WAIT) => r,
            m = inbound.message() => {
                if !grant(m, &mut credit)? {
                    return Ok(());
                }
                continue;
            }
        };
        let page = fetched?;
        if let Some(last) = page.records.last() {
            pos = last.offset + 1;
            let sent: u64 = page.records.iter().map(fetched_size).sum();
            broker.charge(principal, Direction::Fetch, sent);
            credit = credit.saturating_sub(sent.max(1));
            let msg = SubscribeResponse {
                records: page.records,
                high_watermark: page.high_watermark,
                log_start_offset: page.log_start_offset,
                error: None,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return Ok(());
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
    }
}
