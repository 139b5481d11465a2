//! Brings each group's Raft membership in line with the metadata, on the group's leader.
//!
//! Today the only change is a replaced node (see [`crate::controller::directories`]): its new
//! replica incarnation joins as a learner, and once it has caught up (openraft's own test: it
//! replicated the membership entry that added it) the voter set becomes the metadata's, which
//! removes the lost incarnation. Until then the new replica has no vote.
//!
//! ```text
//!  every second, per local group this node leads:
//!    metadata replicas == voters ─► nothing
//!    a wanted replica not a member ─► add_learner (non-blocking)
//!    every wanted replica caught up ─► change_voters (joint consensus)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_raft::group::PartitionGroup;
use cairn_raft::{GroupId, ReplicaId};

use super::LocalGroups;
use crate::controller::state::CONTROLLER_GROUP;
use crate::controller::Controller;

const EVERY: Duration = Duration::from_secs(1);
/// A joint-consensus change that takes longer is abandoned and tried again on a later pass.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until aborted.
pub async fn run(groups: Arc<LocalGroups>, controller: Arc<Controller>) {
    let busy: Arc<Mutex<HashSet<GroupId>>> = Arc::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let state = groups.state();
        if controller.is_leader() {
            step(CONTROLLER_GROUP, state.controller_members(), &busy, GroupHandle::Controller(controller.clone()));
        }
        for (_, _, p) in state.replicas_on(groups.env().me) {
            let Some(g) = groups.get(p.group_id).filter(|g| g.is_leader()) else { continue };
            step(p.group_id, LocalGroups::members(&state, p), &busy, GroupHandle::Partition(g));
        }
    }
}

/// A group to change: a partition replica, or the controller's.
enum GroupHandle {
    Partition(Arc<PartitionGroup>),
    Controller(Arc<Controller>),
}

impl GroupHandle {
    fn group(&self) -> &PartitionGroup {
        match self {
            GroupHandle::Partition(g) => g,
            GroupHandle::Controller(c) => c.group(),
        }
    }
}

/// One pass for one group: starts a change task unless the membership already matches or a
/// task for the group is still running.
fn step(group: GroupId, wanted: BTreeMap<ReplicaId, String>, busy: &Arc<Mutex<HashSet<GroupId>>>, handle: GroupHandle) {
    let (voters, learners) = handle.group().membership();
    let wanted_ids: BTreeSet<ReplicaId> = wanted.keys().copied().collect();
    if voters == wanted_ids && learners.is_empty() {
        return;
    }
    if !busy.lock().unwrap_or_else(|p| p.into_inner()).insert(group) {
        return;
    }
    let busy = busy.clone();
    tokio::spawn(async move {
        let g = handle.group();
        let missing: Vec<(ReplicaId, String)> = wanted
            .iter()
            .filter(|(id, _)| !voters.contains(id) && !learners.contains(id))
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        for (id, addr) in missing {
            tracing::info!(group, replica = format_args!("{id:#x}"), %addr, "adding a replica as a learner");
            if let Err(e) = g.add_learner(id, &addr).await {
                tracing::warn!(group, error = %e, "adding a learner failed; will retry");
            }
        }
        let caught_up = wanted_ids.iter().all(|id| voters.contains(id) || g.learner_caught_up(*id));
        if caught_up {
            tracing::info!(group, voters = ?wanted_ids, "learners caught up; changing the voters");
            match tokio::time::timeout(CHANGE_TIMEOUT, g.change_voters(wanted_ids)).await {
                Ok(Ok(())) => tracing::info!(group, "membership now matches the metadata"),
                Ok(Err(e)) => tracing::warn!(group, error = %e, "membership change failed; will retry"),
                Err(_) => tracing::warn!(group, "membership change timed out; will retry"),
            }
        }
        busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&group);
    });
}
