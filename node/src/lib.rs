//! cairn-node: one node of a Cairn cluster.
//!
//! ```text
//!  main ─► Config::load ─► telemetry::init ─► listener ─► server::run(config, listener, shutdown)
//!  server::run: identity check ─► RocksDB + syncer ─► partitions (Raft groups) ─► tonic server:
//!     cairn.v1.Broker │ cairn.peer.v1.RaftTransport │ grpc.health.v1 │ server reflection
//! ```

pub mod config;
pub mod identity;
pub mod listener;
pub mod liveness;
pub mod partitions;
pub mod server;
pub mod service;
pub mod telemetry;
