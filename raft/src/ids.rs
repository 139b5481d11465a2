//! Identifiers: node ids, replica ids and group ids.
//!
//! Openraft's member ids inside a group are *replica* ids: `(node_id << 32) | incarnation`. A
//! replica placed again on the same node gets a new incarnation, so messages meant for an older
//! incarnation are recognisably stale.

/// Id of a node process (1 ..= u32::MAX).
pub type NodeId = u64;
/// Openraft member id within one group.
pub type ReplicaId = u64;
/// Id of one Raft group (one partition, or the controller). Never reused.
pub type GroupId = u64;

/// Builds the replica id of `node` at `incarnation`.
pub fn replica_id(node: NodeId, incarnation: u32) -> ReplicaId {
    (node << 32) | u64::from(incarnation)
}

/// The node a replica lives on.
pub fn node_of(replica: ReplicaId) -> NodeId {
    replica >> 32
}

/// Largest valid node id (node ids must fit in the upper half of a replica id).
pub const NODE_ID_MAX: NodeId = u32::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_id_round_trips_node() {
        for node in [1, 2, 3, NODE_ID_MAX] {
            for inc in [0, 1, u32::MAX] {
                assert_eq!(node_of(replica_id(node, inc)), node);
                assert_eq!(replica_id(node, inc) & 0xffff_ffff, u64::from(inc));
            }
        }
    }
}
