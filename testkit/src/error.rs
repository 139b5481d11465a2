//! The test kit's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No `cairn-node` binary where the kit looked.
    #[error(
        "cairn-node not found (looked at {}): build it with `cargo build -p cairn-node`, or set CAIRN_NODE_BIN",
        .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NodeBinaryMissing { looked: Vec<PathBuf> },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The cluster, a topic or a leader was not ready in time; the nodes' logs say why.
    #[error("{what} within {secs} s; the nodes' logs end with:{logs}")]
    NotReady { what: String, secs: u64, logs: String },
    #[error("no node {0} in this cluster")]
    UnknownNode(u64),
    #[error(transparent)]
    Client(#[from] cairn_client::ClientError),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let what = what.into();
        move |source| TestkitError::Io { what, source }
    }
}
