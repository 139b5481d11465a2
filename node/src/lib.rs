//! cairn-node: one node of a Cairn cluster.
//!
//! ```text
//!  main ─► Config::load ─► telemetry::init ─► listeners ─► server::run(config, listeners, shutdown)
//!  server::run: identity check (a new directory: join::check with the peers) ─► RocksDB + syncer ─► controller (group 0) ─► reconciler starts
//!     the partition groups placed here
//!     ─► client listener: cairn.v1.Broker │ cairn.v1.Admin │ cairn.v1.Groups │ grpc.health.v1 │ reflection
//!     ─► peer listener: cairn.peer.v1.RaftTransport │ cairn.peer.v1.NodeInternal │ grpc.health.v1
//!     ─► HTTP listener: /metrics, /health/live, /health/ready (metrics)
//! ```

pub mod address;
pub mod admission;
pub mod auth;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod describe;
pub mod disk;
pub mod groups;
pub mod http1;
pub mod identity;
pub mod join;
pub mod listener;
pub mod liveness;
pub mod metrics;
pub mod quota;
pub mod registry;
pub mod restart;
pub mod retention;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod topic;
