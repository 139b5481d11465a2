//! cairn-testkit: a real Cairn cluster for your own tests.
//!
//! ```text
//!  Cluster::start(3) ─► bind 3 × (client, peer, HTTP) sockets on 127.0.0.1:0 ─► spawn cairn-node
//!                       processes that inherit them (no port is ever guessed), temp data dirs
//!                   └─► wait until the controller answers ─► Client ready
//!  create_topic / kill / restart / wait_for_leaders / leader_of ─► Drop kills every node
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_testkit::TestkitError> {
//! use cairn_client::{Record, RecordExt};
//! let mut cluster = cairn_testkit::Cluster::start(3).await?;
//! cluster.create_topic("orders", 3).await?;
//! let client = cluster.client().await?;
//! client.produce("orders", 0, vec![Record::from_value("OrderPlaced")]).await?;
//! let leader = cluster.leader_of("orders", 0).await?;
//! cluster.kill(leader);
//! cluster.wait_for_leaders("orders").await?;
//! cluster.restart(leader)?;
//! # Ok(()) }
//! ```
//!
//! The nodes are the `cairn-node` binary of this build: `CAIRN_NODE_BIN` names it, else it is
//! looked for next to the test executable (where `cargo build -p cairn-node` or
//! `cargo test --workspace` puts it).

mod binary;
mod cluster;
mod error;

pub use binary::node_binary;
pub use cluster::{Cluster, ClusterBuilder};
pub use error::TestkitError;
