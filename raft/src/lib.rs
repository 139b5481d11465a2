//! cairn-raft: everything Raft and RocksDB for Cairn. This is the only crate that imports
//! `openraft` and `rocksdb`; the node crate sees partitions through [`group::PartitionGroup`].
//!
//! ```text
//!   produce ─► group::proposer ─► openraft core ─► storage::log_store ─► storage::syncer (fsync)
//!                                      │                                  (one fsync, all groups)
//!                                      ├─► network::client ─► peers (AppendEntries / Vote)
//!                                      └─► storage::state_machine (offsets, high watermark)
//!   fetch ─► group::reader ─► idx CF (offset → raft index) ─► log CF (record bytes)
//! ```

pub mod error;
pub mod group;
pub mod ids;
pub mod network;
pub mod storage;
pub mod types;

pub use error::GroupError;
pub use ids::{GroupId, NodeId, ReplicaId};
