//! A partition replica: its Raft instance, proposer, reader and watchdog, behind an API that
//! speaks offsets and records, not openraft types.

mod config;
mod partition;
mod proposer;
mod reader;
mod watchdog;

pub use config::{GroupConfig, RaftTimings};
pub use partition::{FetchResult, GroupStatus, PartitionGroup, ProduceAck, ProduceRequest};
