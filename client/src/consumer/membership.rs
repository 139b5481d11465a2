//! The member's side of the group protocol: a background task heartbeats the coordinator and
//! records what the coordinator wants this member to own; the consumer's `poll` acts on it
//! (starts and stops fetching, commits, calls the listener) and reports what it owns, which
//! the next heartbeat tells the coordinator (acknowledging revocations).
//!
//! ```text
//!  [heartbeat task] every interval, or at once when poll changed what it owns:
//!      ConsumerGroupHeartbeat{member id, epoch, owned} ─► assignment ─► shared state ─► poll
//!      UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH, or no answer for a whole session ─► fenced:
//!      fetching stops at once, poll gives everything up, then the member joins again
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::v1::{ConsumerGroupHeartbeatRequest, TopicPartitions};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ConsumerConfig, Subscription, TopicPartition};
use crate::error::{ClientError, ErrorCode};
use crate::Client;

/// What the heartbeat task and `poll` share.
#[derive(Debug)]
pub(crate) struct Membership {
    pub member_id: String,
    /// 0 until joined (and after being fenced).
    pub epoch: i32,
    /// The latest assignment from the coordinator; `None` until the first answer after a join.
    pub assignment: Option<BTreeSet<TopicPartition>>,
    /// What `poll` owns now (reported in every heartbeat).
    pub owned: BTreeSet<TopicPartition>,
    /// The member lost its partitions (fenced, or a session without answers): `poll` must give
    /// everything up before the member joins again.
    pub fenced: bool,
    /// A refusal no retry cures (an invalid subscription): `poll` returns it.
    pub error: Option<ClientError>,
    pub last_ok: Instant,
    pub interval: Duration,
    pub session: Duration,
    /// The consumer is closing: the task sends a leave and stops.
    pub closing: bool,
}

/// Shared between the consumer and its heartbeat task.
pub(crate) struct Shared {
    pub client: Arc<Client>,
    pub cfg: ConsumerConfig,
    pub subscription: Subscription,
    pub state: Mutex<Membership>,
    /// Wakes the heartbeat task (poll changed what it owns, or the consumer closes).
    pub wake_heartbeat: Notify,
    /// Wakes `poll` (a new assignment, or fencing).
    pub wake_poll: Notify,
    /// Stops every fetcher at once when the member is fenced (before `poll` runs).
    pub on_fenced: Box<dyn Fn() + Send + Sync>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Partitions grouped by topic, as heartbeats carry them.
pub(crate) fn to_wire(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut by: BTreeMap<(u64, &str), Vec<u32>> = BTreeMap::new();
    for tp in set {
        by.entry((tp.topic_id, tp.topic.as_str())).or_default().push(tp.partition);
    }
    by.into_iter()
        .map(|((topic_id, topic), partitions)| TopicPartitions { topic_id, topic: topic.to_string(), partitions })
        .collect()
}

pub(crate) fn from_wire(list: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    list.iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| TopicPartition { topic: t.topic.clone(), topic_id: t.topic_id, partition: *p })
        })
        .collect()
}

fn request(shared: &Shared, m: &Membership) -> ConsumerGroupHeartbeatRequest {
    let cfg = &shared.cfg;
    let (topics, regex) = match &shared.subscription {
        Subscription::Topics(t) => (t.clone(), String::new()),
        Subscription::Pattern(p) => (Vec::new(), p.clone()),
    };
    ConsumerGroupHeartbeatRequest {
        group_id: cfg.group.clone(),
        member_id: m.member_id.clone(),
        member_epoch: m.epoch,
        instance_id: cfg.instance_id.clone().unwrap_or_default(),
        client_id: cfg.client_id.clone(),
        rebalance_timeout_ms: cfg.rebalance_timeout.as_millis() as u32,
        session_timeout_ms: cfg.session_timeout.as_millis() as u32,
        subscribed_topics: topics,
        subscribed_regex: regex,
        assignor: cfg.assignor.clone().unwrap_or_default(),
        owned: to_wire(&m.owned),
    }
}

/// Runs until the consumer closes (it then sends the leave heartbeat).
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let (req, wait, closing, fenced) = {
            let m = shared.lock();
            (request(&shared, &m), m.interval, m.closing, m.fenced)
        };
        if closing {
            leave(&shared, req).await;
            return;
        }
        if fenced {
            // poll gives the partitions up first; then the member joins again.
            tokio::select! {
                _ = shared.wake_heartbeat.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let budget = shared.lock().session / 2;
        // The coordinator's session runs from when it received the heartbeat, which is after
        // it was sent: counting from the send keeps this member's idea of its session from
        // outlasting the coordinator's (counting from the answer, which may come seconds
        // later, would let it read partitions the coordinator has given to someone else).
        let sent = Instant::now();
        match shared.client.group_heartbeat(req, budget.max(Duration::from_secs(1))).await {
            Ok(r) => {
                let mut m = shared.lock();
                m.member_id = r.member_id;
                m.epoch = r.member_epoch;
                m.assignment = Some(from_wire(&r.assignment));
                m.last_ok = sent;
                m.interval = Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(50)));
                if r.session_timeout_ms > 0 {
                    m.session = Duration::from_millis(u64::from(r.session_timeout_ms));
                }
                drop(m);
                shared.wake_poll.notify_one();
            }
            Err(e) if matches!(e.code(), Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch)) => {
                tracing::info!(group = %shared.cfg.group, error = %e, "fenced: giving up every partition, then rejoining");
                fence(&shared);
            }
            Err(e) if !e.is_retriable() && e.is_definite() => {
                tracing::warn!(group = %shared.cfg.group, error = %e, "the coordinator refused this member");
                let mut m = shared.lock();
                m.error = Some(e);
                drop(m);
                shared.wake_poll.notify_one();
                return;
            }
            Err(e) => {
                let lost = {
                    let m = shared.lock();
                    m.last_ok.elapsed() >= m.session
                };
                tracing::debug!(group = %shared.cfg.group, error = %e, lost, "heartbeat failed");
                if lost {
                    // The coordinator has removed this member by now: its partitions may be
                    // someone else's. Stop before reading any more.
                    fence(&shared);
                }
            }
        }
        tokio::select! {
            _ = shared.wake_heartbeat.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn fence(shared: &Shared) {
    (shared.on_fenced)();
    let mut m = shared.lock();
    m.fenced = true;
    m.epoch = 0;
    m.assignment = None;
    drop(m);
    shared.wake_poll.notify_one();
}

async fn leave(shared: &Shared, mut req: ConsumerGroupHeartbeatRequest) {
    if req.member_id.is_empty() || req.member_epoch == 0 {
        return;
    }
    // A static member keeps its place for a restart; a dynamic one leaves for good.
    req.member_epoch = if shared.cfg.instance_id.is_some() { -2 } else { -1 };
    req.owned.clear();
    if let Err(e) = shared.client.group_heartbeat(req, Duration::from_secs(5)).await {
        tracing::debug!(group = %shared.cfg.group, error = %e, "leave heartbeat failed; the session times out instead");
    }
}
