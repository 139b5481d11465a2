//! Consumer group coordination, KIP-848 style (docs/architecture.md, "Consumer groups").
//!
//! ```text
//!  group G ─► partition murmur2(G) mod N of __consumer_offsets ─► its leader is G's coordinator
//!  every node: [manager, 200 ms] for each local replica of __consumer_offsets:
//!      leads it and no coordinator yet ─► load one (catch up, read the keyed state) ─► serve
//!      does not lead it / term changed / coordinator broken ─► drop it (callers: NOT_COORDINATOR)
//! ```

pub mod actor;
pub mod assignor;
mod confirm;
pub mod error;
pub mod group;
pub mod records;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_raft::error::LeaderHint;
use tokio::task::JoinHandle;

pub use actor::{Cmd, Coordinator, GroupView};
pub use error::CoordError;

use crate::config::GroupsSection;
use crate::groups::LocalGroups;
use crate::topic::OFFSETS_TOPIC;

/// What every coordinator of this node shares.
pub struct Shared {
    pub local: Arc<LocalGroups>,
    pub config: GroupsSection,
    /// Negative controls of the fault suite (see [`crate::config::Faults`]).
    pub faults: crate::config::Faults,
    /// With the `ignore-new-partitions` fault only: each topic's partition count when this node
    /// first saw it. Node-wide, recorded as soon as the metadata shows the topic, so a
    /// coordinator that moves or restarts keeps ignoring partitions added later.
    pub first_counts: std::sync::Mutex<HashMap<u64, u32>>,
}

/// One `__consumer_offsets` partition's coordinator on this node, if it leads it.
enum Slot {
    Loading(JoinHandle<()>),
    Ready(Arc<Coordinator>),
}

/// The coordinators of this node (one per `__consumer_offsets` partition it leads).
pub struct Coordinators {
    shared: Arc<Shared>,
    slots: RwLock<HashMap<u32, Slot>>,
    ready: Arc<RwLock<HashMap<u32, Arc<Coordinator>>>>,
}

impl Coordinators {
    pub fn new(local: Arc<LocalGroups>, config: GroupsSection) -> Arc<Coordinators> {
        let faults = local.env().config.faults;
        if faults.skip_revoke || faults.forget_offsets_on_load {
            tracing::warn!(?faults, "FAULT INJECTION enabled in the group coordinators");
        }
        Arc::new(Coordinators {
            shared: Arc::new(Shared { local, config, faults, first_counts: std::sync::Mutex::default() }),
            slots: RwLock::default(),
            ready: Arc::default(),
        })
    }

    pub fn config(&self) -> &GroupsSection {
        &self.shared.config
    }

    /// The `__consumer_offsets` partition of `group` and its partition count.
    ///
    /// # Errors
    /// NOT_COORDINATOR (no hint) while the internal topic does not exist yet.
    pub fn partition_of(&self, group: &str) -> Result<(u32, u32), CoordError> {
        let state = self.shared.local.state();
        let t = state
            .topics
            .get(OFFSETS_TOPIC)
            .ok_or_else(|| CoordError::NotCoordinator { group: group.to_string(), hint: None })?;
        let n = t.partitions.len() as u32;
        Ok((cairn_proto::hash::partition_for_key(group.as_bytes(), n), n))
    }

    /// Who coordinates `group`: this node's view of the leader of its partition (the local
    /// replica's knowledge, else the preferred replica).
    ///
    /// # Errors
    /// As [`Coordinators::partition_of`].
    pub fn find(&self, group: &str) -> Result<(u32, Option<LeaderHint>), CoordError> {
        let (p, _) = self.partition_of(group)?;
        let state = self.shared.local.state();
        let Some(part) = state.topics.get(OFFSETS_TOPIC).and_then(|t| t.partitions.get(p as usize)) else {
            return Ok((p, None));
        };
        if let Some(g) = self.shared.local.get(part.group_id) {
            if g.is_leader() {
                let me = self.shared.local.env().me;
                return Ok((p, state.nodes.get(&me).map(|a| LeaderHint { node_id: me, address: a.client.clone() })));
            }
            if let Some(h) = g.status().leader {
                return Ok((p, Some(h)));
            }
        }
        let hint = part
            .replicas
            .first()
            .and_then(|r| state.nodes.get(&r.node).map(|a| LeaderHint { node_id: r.node, address: a.client.clone() }));
        Ok((p, hint))
    }

    /// The coordinator of `group` when it runs here.
    ///
    /// # Errors
    /// NOT_COORDINATOR with a hint, or COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub fn route(&self, group: &str) -> Result<Arc<Coordinator>, CoordError> {
        let (p, _) = self.partition_of(group)?;
        if let Some(c) = self.ready.read().unwrap_or_else(|e| e.into_inner()).get(&p) {
            if !c.is_broken() && c.replica.is_leader() && c.replica.term() == c.term {
                return Ok(c.clone());
            }
        }
        if matches!(self.slots.read().unwrap_or_else(|e| e.into_inner()).get(&p), Some(Slot::Loading(_))) {
            return Err(CoordError::Loading { group: group.to_string() });
        }
        let (_, hint) = self.find(group)?;
        let me = self.shared.local.env().me;
        Err(CoordError::NotCoordinator { group: group.to_string(), hint: hint.filter(|h| h.node_id != me) })
    }

    /// Every coordinator ready here.
    pub fn all(&self) -> Vec<Arc<Coordinator>> {
        self.ready.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Runs until aborted: keeps one coordinator per `__consumer_offsets` partition led here.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.step();
        }
    }

    fn step(&self) {
        let state = self.shared.local.state();
        if self.shared.faults.ignore_new_partitions {
            let mut first = self.shared.first_counts.lock().unwrap_or_else(|p| p.into_inner());
            for t in state.topics.values() {
                first.entry(t.id).or_insert(t.partitions.len() as u32);
            }
        }
        let led: HashMap<u32, Arc<cairn_raft::group::PartitionGroup>> = state
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        self.shared.local.get(p.group_id).filter(|g| g.is_leader()).map(|g| (i as u32, g))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        // Finished loads become ready slots (or go, when the load failed).
        {
            let ready = self.ready.read().unwrap_or_else(|e| e.into_inner());
            let finished: Vec<u32> = slots
                .iter()
                .filter(|(_, s)| matches!(s, Slot::Loading(t) if t.is_finished()))
                .map(|(p, _)| *p)
                .collect();
            for p in finished {
                match ready.get(&p) {
                    Some(c) => slots.insert(p, Slot::Ready(c.clone())),
                    None => slots.remove(&p),
                };
            }
        }
        // Drop what is no longer ours, broken, or from another term or replica instance.
        slots.retain(|p, slot| {
            let keep = match slot {
                Slot::Loading(_) => led.contains_key(p),
                Slot::Ready(c) => {
                    led.get(p).is_some_and(|g| Arc::ptr_eq(g, &c.replica) && g.term() == c.term) && !c.is_broken()
                }
            };
            if !keep {
                if let Slot::Loading(task) = slot {
                    task.abort();
                }
                self.ready.write().unwrap_or_else(|e| e.into_inner()).remove(p);
            }
            keep
        });
        for (p, g) in led {
            if slots.contains_key(&p) {
                continue;
            }
            let (shared, ready) = (self.shared.clone(), self.ready.clone());
            let task = tokio::spawn(async move {
                match Coordinator::load(shared, p, g).await {
                    Ok(c) => {
                        ready.write().unwrap_or_else(|e| e.into_inner()).insert(p, Arc::new(c));
                    }
                    Err(e) => tracing::warn!(partition = p, error = %e, "coordinator could not load; will retry"),
                }
            });
            slots.insert(p, Slot::Loading(task));
        }
    }
}
