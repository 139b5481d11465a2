//! Node data directories in the controller, and the replacement of a node that lost its disk.
//!
//! ```text
//!  node starts with a new directory ─► registered (RegisterDirectory, by the controller leader)
//!  disk lost ─► peers refuse the node (directory mismatch) ─► operator: ReplaceNode
//!    ─► registered directory cleared, the node's replicas get new incarnations (not founders)
//!    ─► the node starts empty, registers its new directory, and every group's leader adds its
//!       new replica as a learner, waits for it to catch up, then makes it a voter
//! ```

use cairn_raft::ids::replica_id;
use cairn_raft::{NodeId, ReplicaId};

use super::state::{ClusterState, MetaAnswer, CONTROLLER_INCARNATION};

impl ClusterState {
    /// Records `directory` as `node`'s data directory: the first one, or the one that replaces a
    /// lost directory. A node that already has another directory registered is refused.
    pub(crate) fn register_directory(&mut self, node: NodeId, directory: u64) -> MetaAnswer {
        if !self.nodes.contains_key(&node) || directory == 0 {
            return MetaAnswer::Invalid(format!("cannot register directory {directory:#x} for node {node}"));
        }
        if self.retired_directories.contains(&directory) {
            return MetaAnswer::Invalid(format!(
                "data directory {directory:#x} of node {node} was replaced; it is never registered again"
            ));
        }
        match self.directories.get(&node).copied() {
            None | Some(0) => {
                self.directories.insert(node, directory);
                MetaAnswer::Done
            }
            Some(d) if d == directory => MetaAnswer::AlreadyExists,
            Some(d) => MetaAnswer::Invalid(format!(
                "node {node} has data directory {d:#x} registered, not {directory:#x}: replace the node first"
            )),
        }
    }

    /// Marks `node` for replacement: its registered directory is cleared and each of its
    /// replicas (partitions and controller) gets a new incarnation that joins its group as a
    /// learner. Answers how many partition replicas will be rebuilt.
    pub(crate) fn replace_node(&mut self, node: NodeId) -> MetaAnswer {
        if !self.nodes.contains_key(&node) {
            return MetaAnswer::Invalid(format!("node {node} is not a member of this cluster"));
        }
        if self.directories.get(&node).copied().unwrap_or(0) == 0 {
            return MetaAnswer::Invalid(format!(
                "node {node} has no registered data directory (never started, or already awaiting its replacement)"
            ));
        }
        if let Some(old) = self.directories.insert(node, 0) {
            self.retired_directories.insert(old);
        }
        self.controller_incarnations.insert(node, self.next_incarnation);
        self.next_incarnation += 1;
        let mut replicas = 0u32;
        for p in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            for r in p.replicas.iter_mut().filter(|r| r.node == node) {
                r.incarnation = self.next_incarnation;
                self.next_incarnation += 1;
                replicas += 1;
            }
        }
        MetaAnswer::Replaced { replicas }
    }

    /// Whether `node` was marked for replacement and has not registered its new directory yet.
    pub fn awaiting_replacement(&self, node: NodeId) -> bool {
        self.directories.get(&node) == Some(&0)
    }

    /// Incarnation of `node`'s controller replica.
    pub fn controller_incarnation(&self, node: NodeId) -> u32 {
        self.controller_incarnations.get(&node).copied().unwrap_or(CONTROLLER_INCARNATION)
    }

    /// The controller group's members as the metadata wants them: replica id → client address
    /// (what Raft memberships carry, for leader hints; the transport finds peer addresses by
    /// node id, see [`cairn_raft::network::AddressBook`]).
    pub fn controller_members(&self) -> std::collections::BTreeMap<ReplicaId, String> {
        self.nodes
            .iter()
            .map(|(n, addr)| (replica_id(*n, self.controller_incarnation(*n)), addr.client.clone()))
            .collect()
    }
}
