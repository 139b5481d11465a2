//! Errors of the storage layer.

use crate::ids::GroupId;

/// Anything that can go wrong below openraft's storage traits.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb {op}: {source}")]
    Rocks {
        op: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: bincode::Error,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: bincode::Error,
    },
    #[error("{what} has unsupported format version {version}")]
    Version { what: &'static str, version: u8 },
    #[error("group {group}: {message}")]
    Corrupt { group: GroupId, message: String },
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the node's fsync failed earlier; storage is read-only until restart: {0}")]
    SyncFailed(String),
}

impl StoreError {
    pub(crate) fn rocks(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
        move |source| StoreError::Rocks { op, source }
    }
}
