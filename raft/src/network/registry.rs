//! Which groups (and which replica incarnation of each) this node hosts, for routing peer RPCs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::ids::{GroupId, ReplicaId};
use crate::types::Raft;

/// Groups hosted by this node.
#[derive(Clone, Default)]
pub struct GroupRegistry {
    inner: Arc<RwLock<HashMap<GroupId, (ReplicaId, Raft)>>>,
}

impl GroupRegistry {
    pub(crate) fn insert(&self, group: GroupId, replica: ReplicaId, raft: Raft) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).insert(group, (replica, raft));
    }

    pub(crate) fn remove(&self, group: GroupId, replica: ReplicaId) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if map.get(&group).is_some_and(|(r, _)| *r == replica) {
            map.remove(&group);
        }
    }

    /// The Raft handle of `group` if this node hosts exactly replica `replica` of it.
    pub(crate) fn lookup(&self, group: GroupId, replica: ReplicaId) -> Result<Raft, String> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match map.get(&group) {
            Some((r, raft)) if *r == replica => Ok(raft.clone()),
            Some((r, _)) => Err(format!("group {group}: hosting replica {r:#x}, not {replica:#x}")),
            None => Err(format!("group {group} is not hosted here")),
        }
    }
}
