//! cairn-client: the Rust client of Cairn and the `cairn` command-line tool.
//!
//! ```text
//!  Client ─► metadata cache (topic → partition leaders) ─► leader's channel ─► cairn.v1.Broker
//!     └─ NOT_LEADER(hint) → follow ≤ redirects_max; retriable → backoff + refresh, within deadline
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::ClientError> {
//! use cairn_client::{Client, ClientConfig, Record, RecordExt};
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7701"])).await?;
//! let ack = client.produce("events", 0, vec![Record::from_value("OrderPlaced")]).await?;
//! let batch = client.fetch("events", 0, ack.base_offset, 0, 0).await?;
//! println!("{} records", batch.records.len());
//! # Ok(()) }
//! ```

mod acl_admin;
pub mod bench;
mod client;
mod condition;
mod config;
pub mod consumer;
pub mod dlq;
mod error;
mod group_admin;
mod metadata;
pub mod partitioner;
pub mod producer;
pub mod schema;
mod subscription;
pub mod trace;

pub use cairn_proto::v1::{
    AclEntry, CommittedOffset, DescribeClusterResponse, DescribeGroupResponse, DescribeTopicResponse, FetchResponse,
    FetchedRecord, GroupListing, Header, ListGroupsResponse, ListOffsetsResponse, OffsetCommitPartition, PartitionInfo,
    ProduceResponse, Record, ReplicaState, ReplicaStatus, RetentionConfig, TopicSummary,
};
pub use client::{Client, OffsetSpec};
pub use condition::{Condition, KeyState, Mismatch};
pub use config::{ClientConfig, ClientTls, Conn, Credentials, Token, DEFAULT_BROKERS};
pub use error::{ClientError, ErrorCode};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, RecordAck};
pub use subscription::PartitionStream;
pub use trace::TracedRecord;

/// Convenience constructors for records.
pub trait RecordExt {
    fn from_value(value: impl Into<bytes::Bytes>) -> Record;
    fn keyed(key: impl Into<bytes::Bytes>, value: impl Into<bytes::Bytes>) -> Record;
}

impl RecordExt for Record {
    fn from_value(value: impl Into<bytes::Bytes>) -> Record {
        Record { value: value.into(), ..Record::default() }
    }

    fn keyed(key: impl Into<bytes::Bytes>, value: impl Into<bytes::Bytes>) -> Record {
        Record { key: key.into(), value: value.into(), ..Record::default() }
    }
}
