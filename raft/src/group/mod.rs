//! A partition replica: its Raft instance, proposer and reader, behind an API that
//! speaks offsets and records, not openraft types.

mod config;
mod partition;
mod proposer;
mod reader;
pub mod retention;

pub use config::{Faults, GroupConfig, RaftTimings};
pub use partition::{
    FetchResult, Gauges, GroupStatus, Observation, PartitionGroup, PendingProduce, ProduceAck, ProduceRequest, Role,
};
