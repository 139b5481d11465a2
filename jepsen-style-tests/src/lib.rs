//! cairn-jepsen: a Jepsen-style fault-injection suite for Cairn.
//!
//! ```text
//!  run ─► [netns] start N real cairn-node processes ─► workload clients ─┐
//!          nemesis: kill / pause / partition / client-partition / ...   ├─► history.jsonl
//!  heal ─► drain: fresh reads of every partition on every node ─────────┘
//!  check ─► pure checkers over the history ─► results.json, table, latency picture
//! ```

pub mod checker;
pub mod cluster;
pub mod conditional;
pub mod group_history;
pub mod history;
pub mod http;
pub mod incarnations;
pub mod member;
pub mod members;
pub mod nemesis;
pub mod quota;
pub mod registry;
pub mod report;
pub mod run;
pub mod storage_faults;
pub mod summary;
pub mod tls;
pub mod workload;
