//! The schema registry (docs/schemas.md): subjects, versions, global ids and compatibility
//! levels, stored in the internal topic `__schemas` and served on every node's HTTP listener
//! with Confluent Schema Registry's REST API.
//!
//! ```text
//!  REST request on any node ─► Op ─┬─ this node leads __schemas/0 ─► Leader (one op at a time)
//!                                  └─ else ─► NodeInternal.Registry on the leader's node
//!  Leader: plan (read the state) ─► records? ─► one conditional batch at the known end offset
//!          ─► committed on a majority (fsynced) ─► apply to memory ─► answer
//!  every node: [manager, 200 ms] leads __schemas/0 and no current Leader ─► load one
//! ```
//!
//! Writes and reads both run on the leader, in one order, and an answer that writes nothing (a
//! read, a refusal) is given only once a majority confirmed this replica still leads: a read
//! sees every write acknowledged before it, even from a deposed leader that has not heard of its
//! successor (it answers "not run" instead, and the caller tries the next leader).

pub mod avro;
pub mod compat;
pub mod error;
pub mod format;
pub mod http;
pub mod leader;
pub mod ops;
pub mod records;
pub mod state;
pub mod validate;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::peer::node_internal_client::NodeInternalClient;
use cairn_proto::peer::RegistryCall;
use cairn_raft::group::PartitionGroup;
use cairn_raft::NodeId;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use error::RegistryError;
use leader::Leader;
use ops::{Op, PeerReply};

use crate::groups::LocalGroups;
use crate::topic::SCHEMAS_TOPIC;

/// How long a request waits for a registry leader (an election, a load) before 50002.
const WAIT_FOR_LEADER: Duration = Duration::from_secs(10);
/// One forwarded call's deadline.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

enum Slot {
    Empty,
    Loading(JoinHandle<Option<Leader>>),
    Ready(Arc<Leader>),
}

/// This node's part of the registry: its leader when it leads `__schemas`, and the way to the
/// leader when it does not.
pub struct Registry {
    local: Arc<LocalGroups>,
    slot: Mutex<Slot>,
    /// The REST API has no authentication: on a cluster whose clients must authenticate, it
    /// only reads.
    read_only: bool,
    /// Schema ids found valid for a subject lately (broker-side validation).
    valid: validate::ValidCache,
}

impl Registry {
    pub fn new(local: Arc<LocalGroups>) -> Arc<Registry> {
        let read_only = local.env().config.auth.enabled;
        Arc::new(Registry { local, slot: Mutex::new(Slot::Empty), read_only, valid: validate::ValidCache::default() })
    }

    /// Runs a REST request's operation (see [`Registry::call`]); writes are refused on a
    /// cluster with authentication on.
    ///
    /// # Errors
    /// As [`Registry::call`], and 40301 for a write when read-only.
    pub async fn rest_call(&self, op: Op) -> Result<Value, RegistryError> {
        if self.read_only && op.writes() {
            return Err(RegistryError::denied(
                "the registry's REST API does not authenticate; with [auth] enabled it only reads",
            ));
        }
        self.call(op).await
    }

    /// This node's replica of `__schemas/0`, if it has one.
    fn replica(&self) -> Option<Arc<PartitionGroup>> {
        let state = self.local.state();
        let p = state.topics.get(SCHEMAS_TOPIC)?.partitions.first()?;
        self.local.get(p.group_id)
    }

    /// Runs until aborted: keeps a loaded registry while this node leads `__schemas/0`.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.step();
        }
    }

    fn step(&self) {
        let led = self.replica().filter(|r| r.is_leader());
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let next = match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Ready(l) if led.as_ref().is_some_and(|r| l.is_current(r)) => Slot::Ready(l),
            Slot::Loading(task) if task.is_finished() => match task.now_or_never_result() {
                Some(l) if led.as_ref().is_some_and(|r| l.is_current(r)) => Slot::Ready(Arc::new(l)),
                _ => Slot::Empty,
            },
            Slot::Loading(task) if led.is_some() => Slot::Loading(task),
            Slot::Loading(task) => {
                task.abort();
                Slot::Empty
            }
            Slot::Ready(_) | Slot::Empty => Slot::Empty,
        };
        *slot = match (next, led) {
            (Slot::Empty, Some(replica)) => {
                let disk = self.local.env().disk.clone();
                let forget = self.local.env().config.faults.forget_registry_on_load;
                Slot::Loading(tokio::spawn(async move {
                    match Leader::load(replica, disk, forget).await {
                        Ok(l) => Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "schema registry could not load; will retry");
                            None
                        }
                    }
                }))
            }
            (next, _) => next,
        };
    }

    /// The leader running here, if current.
    fn ready(&self) -> Option<Arc<Leader>> {
        let replica = self.replica()?;
        match &*self.slot.lock().unwrap_or_else(|p| p.into_inner()) {
            Slot::Ready(l) if l.is_current(&replica) => Some(l.clone()),
            _ => None,
        }
    }

    /// Runs `op` here if this node's registry is current; else who leads, as far as known.
    pub async fn local_call(&self, op: Op) -> PeerReply {
        match self.ready() {
            Some(l) => PeerReply::Done(l.call(op).await),
            None => PeerReply::NotLeader { hint: self.leader_hint() },
        }
    }

    /// The node leading `__schemas/0` as this node knows it.
    fn leader_hint(&self) -> Option<NodeId> {
        self.replica().and_then(|r| r.status().leader).map(|h| h.node_id)
    }

    /// Runs `op` on the registry leader, wherever it is; waits out an election or a load (up
    /// to `WAIT_FOR_LEADER`, 10 s).
    ///
    /// # Errors
    /// The operation's refusal, or 50002/50003 when no leader answered.
    pub async fn call(&self, op: Op) -> Result<Value, RegistryError> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_LEADER;
        let mut last = String::from("no node leads __schemas yet");
        loop {
            if let Some(l) = self.ready() {
                match l.call(op.clone()).await {
                    // Not run (the leader stopped leading first): wait for the next one.
                    Err(e) if e.code == error::NOT_RUN => last = e.message,
                    answer => return answer,
                }
            } else if let Some(answer) = self.forward_once(&op, &mut last).await? {
                return answer;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RegistryError::timeout(format!("no registry leader answered: {last}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Offers `op` to the node known to lead `__schemas`, then to every other node holding a
    /// replica: the answer of the node that ran it, or `None` when none did.
    ///
    /// # Errors
    /// 50003 for a write sent to a node whose answer was lost (it may have been run).
    async fn forward_once(
        &self,
        op: &Op,
        last: &mut String,
    ) -> Result<Option<Result<Value, RegistryError>>, RegistryError> {
        {
            let state = self.local.state();
            let me = self.local.env().me;
            let mut nodes: Vec<NodeId> = self.leader_hint().into_iter().collect();
            if let Some(p) = state.topics.get(SCHEMAS_TOPIC).and_then(|t| t.partitions.first()) {
                for r in &p.replicas {
                    if !nodes.contains(&r.node) {
                        nodes.push(r.node);
                    }
                }
            }
            for node in nodes.into_iter().filter(|n| *n != me) {
                let Some(addr) = state.nodes.get(&node).map(|a| a.peer.clone()) else { continue };
                match self.forward(&addr, op).await {
                    Ok(PeerReply::Done(Err(e))) if e.code == error::NOT_RUN => {
                        *last = format!("node {node}: {}", e.message);
                    }
                    Ok(PeerReply::Done(answer)) => return Ok(Some(answer)),
                    Ok(PeerReply::NotLeader { .. }) => *last = format!("node {node} does not lead __schemas"),
                    // A write whose answer was lost may have happened: say so, do not retry it.
                    Err(e) if op.writes() && e.sent => return Err(RegistryError::forwarding(e.why)),
                    Err(e) => *last = format!("node {node}: {}", e.why),
                }
            }
        }
        Ok(None)
    }

    async fn forward(&self, addr: &str, op: &Op) -> Result<PeerReply, ForwardError> {
        let unsent = |why: String| ForwardError { why, sent: false };
        let body = serde_json::to_vec(op).map_err(|e| unsent(e.to_string()))?;
        let channel = self.local.env().peers.get(addr).map_err(|e| unsent(e.to_string()))?;
        let mut client = NodeInternalClient::new(channel);
        let answer =
            match tokio::time::timeout(FORWARD_TIMEOUT, client.registry(RegistryCall { op: body.into() })).await {
                Ok(Ok(r)) => r.into_inner(),
                Ok(Err(s)) if s.code() == tonic::Code::Unavailable => return Err(unsent(s.message().to_string())),
                Ok(Err(s)) => return Err(ForwardError { why: s.message().to_string(), sent: true }),
                Err(_) => return Err(ForwardError { why: "timed out".into(), sent: true }),
            };
        serde_json::from_slice(&answer.reply).map_err(|e| ForwardError { why: e.to_string(), sent: true })
    }
}

struct ForwardError {
    why: String,
    /// The call may have reached the other node.
    sent: bool,
}

trait JoinResult<T> {
    /// The result of a finished task (`None` if it panicked or was aborted).
    fn now_or_never_result(self) -> Option<T>;
}

impl<T> JoinResult<T> for JoinHandle<Option<T>> {
    fn now_or_never_result(self) -> Option<T> {
        futures::FutureExt::now_or_never(self).and_then(Result::ok).flatten()
    }
}
