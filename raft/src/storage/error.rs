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
    /// Stored bytes do not match the checksum stored with them: the data is damaged.
    #[error("checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x} (the data is damaged)")]
    Checksum { what: &'static str, stored: u32, computed: u32 },
    /// The WAL holds less than this node had fsynced (see [`super::durable`]).
    #[error(
        "the write-ahead log lost writes this node had fsynced and acknowledged: it was made durable up to \
         sequence {durable}, recovery found only {recovered} (a cut or damaged WAL)"
    )]
    WalLost { durable: u64, recovered: u64 },
    #[error("durable-sequence marker: {0}")]
    Marker(std::io::Error),
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the node's fsync failed earlier; storage is read-only until restart: {0}")]
    SyncFailed(String),
}

impl StoreError {
    /// Whether the error means stored data is damaged or lost (a checksum mismatch, RocksDB's
    /// `Corruption`, bytes that do not decode): a restart does not cure it, only rebuilding
    /// the replica from the others does.
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Checksum { .. }
            | StoreError::Decode { .. }
            | StoreError::Version { .. }
            | StoreError::Corrupt { .. }
            | StoreError::WalLost { .. } => true,
            StoreError::Rocks { source, .. } => source.kind() == rocksdb::ErrorKind::Corruption,
            StoreError::Encode { .. } | StoreError::Task(_) | StoreError::SyncFailed(_) | StoreError::Marker(_) => {
                false
            }
        }
    }

    pub(crate) fn rocks(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
        move |source| StoreError::Rocks { op, source }
    }
}
