//! RocksDB storage shared by every group of a node: log store, metadata state machine,
//! retention checkpoints and the fsync syncer (docs/architecture.md, "Storage").

pub mod checkpoints;
pub mod codec;
mod compactor;
pub mod db;
pub mod durable;
pub mod error;
pub mod health;
pub mod key_index;
pub mod keys;
pub(crate) mod legacy;
pub mod log_store;
pub mod observer;
pub mod producers;
pub mod snapshot;
pub mod state_machine;
pub mod syncer;
mod tail_cache;

pub use db::{Db, DbOptions, DbStats};
pub use error::StoreError;
pub use health::{Failure, Health};
pub use log_store::LogStore;
pub use observer::{NoObserver, ProduceStage, StorageObserver};
pub use state_machine::{BatchLocation, CheckpointPolicy, Progress, SharedProducers, StateMachineStore};
pub use syncer::{FatalHook, WalSync};
