//! Encoding of openraft messages inside `RaftRequest.payload` / `RaftReply`. The proto package
//! name (`cairn.peer.v1`) versions this format.

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot {op} peer message {what}: {source}")]
pub struct CodecError {
    op: &'static str,
    what: &'static str,
    #[source]
    source: bincode::Error,
}

pub fn to_bytes<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serialize(v).map_err(|source| CodecError { op: "encode", what, source })
}

pub fn from_bytes<T: DeserializeOwned>(what: &'static str, b: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(b).map_err(|source| CodecError { op: "decode", what, source })
}
